"""MFCC and log-mel features computed with torch.

Why torch and not librosa/python_speech_features: torch is already a dependency, its STFT and
matmuls are vectorised and multi-threaded (and run on a GPU unchanged), and the mel filterbank
comes from ``transformers.audio_utils`` (the one HF feature extractors use), so nothing is
hand-rolled beyond the DCT matrix and the delta regression. Each utterance is computed on its own
(no padding), so its features never depend on what it was batched with: tokens are identical
whether an utterance is encoded alone, in a batch, or in a resumed job.

``causal=True`` is the variant the real-time engine can run frame by frame
(``speechlm.tokenizers.streaming``): frame t sees only the samples before ``(t + 1) * hop``, deltas
look back instead of around, and normalisation uses global statistics fitted on training
features (``FeatureStats``) instead of the utterance's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from speechlm.errors import ConfigError

SPECTRAL_KINDS = ("mfcc", "logmel")


@dataclass
class SpectralSpec:
    """Settings of an MFCC or log-mel front end (saved in ``tokenizer.json``)."""

    kind: str = "mfcc"
    sample_rate: int = 16000
    frame_rate: float = 50.0  # the calibration used MFCC-39 at 50 Hz
    win_ms: float = 25.0
    n_fft: int = 512
    n_mels: int = 40
    n_mfcc: int = 13
    deltas: bool = True  # MFCC-39 = 13 cepstra + deltas + delta-deltas
    normalize: bool = True  # mean/variance normalisation: per utterance, or global when causal
    fmin: float = 20.0
    fmax: float = 7600.0
    causal: bool = False  # frame t from samples before (t + 1) * hop only: see SpectralFeatures

    def __post_init__(self) -> None:
        if self.kind not in SPECTRAL_KINDS:
            raise ConfigError(f"features.kind: '{self.kind}' is not one of {SPECTRAL_KINDS}")
        hop = self.sample_rate / self.frame_rate
        if hop != int(hop):
            raise ConfigError(f"features.frame_rate: {self.frame_rate} Hz does not divide "
                              f"{self.sample_rate} Hz into whole samples")


@dataclass
class FeatureStats:
    """Global per-dimension mean and (population) standard deviation of un-normalised features,
    fitted on the training set; a causal front end normalises with these."""

    mean: list[float]  # (D,)
    std: list[float]  # (D,)

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ConfigError(f"features.mean/std: {len(self.mean)} means but {len(self.std)} "
                              "standard deviations")


class SpectralFeatures:
    """``__call__(wavs) -> list[(T, D) float32 tensors]`` at ``frame_rate`` Hz.

    Offline (default): centred STFT (``n // hop + 1`` frames, frame t centred on sample
    ``t * hop``), regression deltas over +-2 frames, per-utterance normalisation.

    Causal (``spec.causal``): the signal is left-padded with ``n_fft - hop`` zeros and framed
    with ``center=False``, so frame t is the ``n_fft`` samples ending at ``(t + 1) * hop`` and
    ``n`` samples give exactly ``n // hop`` frames; the Hann window sits at the end of that frame
    (its last ``win`` samples), so frame t is known as soon as sample ``(t + 1) * hop - 1`` is.
    Its window centre (``frame_offset``) is ``hop - win / 2`` samples after ``t * hop`` (+7.5 ms
    at 50 Hz, -2.5 ms at 100 Hz with a 25 ms window). Frame t's delta is the regression delta of
    frame ``t - 2`` (it needs frames ``t - 4 .. t``), its delta-delta that of the deltas again
    (cepstra ``t - 8 .. t``): the static part stays current and the dynamics lag, which is what
    a live front end can know. Frames before the first replicate it, as the offline edges do.
    Normalisation uses ``stats`` (global, fitted by ``fit_tokenizer(..., causal=True)``).
    """

    frame_offset = 0.0  # centred STFT: frame t is centred on sample t * hop

    def __init__(self, spec: SpectralSpec, stats: FeatureStats | None = None) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.sample_rate = spec.sample_rate
        self.frame_rate = spec.frame_rate
        self.hop = int(spec.sample_rate / spec.frame_rate)
        self.win = int(round(spec.win_ms * spec.sample_rate / 1000))
        self.causal = spec.causal
        if self.causal:  # window centre of frame t, less t * hop (see the class docstring)
            self.frame_offset = (self.hop - self.win / 2) / spec.sample_rate
        self.stats = stats
        self._check_stats()
        from transformers.audio_utils import mel_filter_bank

        fb = mel_filter_bank(num_frequency_bins=spec.n_fft // 2 + 1, num_mel_filters=spec.n_mels,
                             min_frequency=spec.fmin, max_frequency=spec.fmax,
                             sampling_rate=spec.sample_rate, norm="slaney", mel_scale="slaney")
        self.fb = torch.from_numpy(fb.astype(np.float32))  # (F, n_mels)
        self.window = torch.hann_window(self.win)
        self.dct = _dct_matrix(spec.n_mels, spec.n_mfcc)  # (n_mels, n_mfcc)
        self._fb64, self._dct64 = self.fb.double(), self.dct.double()  # causal path: see there
        # causal frames: the window at the end of the n_fft frame, so its last weighted sample
        # is the frame's last (centred in it, the last (n_fft - win) / 2 would be dead latency)
        self._end_window = F.pad(self.window, (spec.n_fft - self.win, 0))  # (n_fft,)

    def _check_stats(self) -> None:
        if self.stats is not None and not (self.causal and self.spec.normalize):
            raise ConfigError("features.mean/std: global statistics are only used by a causal "
                              "front end with normalize=True (offline ones normalise per "
                              "utterance)")
        if self.causal and self.spec.normalize:
            if self.stats is None:
                raise ConfigError(
                    "features: a causal front end with normalize=True needs global mean/std "
                    "fitted on training features (per-utterance statistics would look at the "
                    "future); fit the tokenizer with fit_tokenizer(..., causal=True) or "
                    "`speechlm tokenizer fit --causal`, or set normalize=False")
            if len(self.stats.mean) != self.dim:
                raise ConfigError(f"features.mean/std: {len(self.stats.mean)} values, the "
                                  f"features have {self.dim} dimensions")
            self._mean = torch.tensor(self.stats.mean, dtype=torch.float32)  # (D,)
            self._scale = torch.tensor(self.stats.std, dtype=torch.float32) + 1e-5  # (D,)

    @property
    def dim(self) -> int:
        if self.kind == "logmel":
            return self.spec.n_mels
        return self.spec.n_mfcc * (3 if self.spec.deltas else 1)

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` samples (centred: ``n // hop + 1``, none for a clip
        shorter than one analysis window; causal: ``n // hop``)."""
        if self.causal:
            return n_samples // self.hop
        return 0 if n_samples < self.win else n_samples // self.hop + 1

    @torch.inference_mode()
    def __call__(self, wavs: list[np.ndarray]) -> list[torch.Tensor]:
        with single_thread():
            return [self._one(torch.as_tensor(np.asarray(w, dtype=np.float32))) for w in wavs]

    def _one(self, wav: torch.Tensor) -> torch.Tensor:
        if self.causal:
            return self.normalise(self._causal_raw(wav))
        if len(wav) < self.win:  # not one whole window of signal: no frame, as an encoder gives
            return torch.zeros(0, self.dim)
        if len(wav) < self.spec.n_fft // 2 + 1:  # reflect padding needs at least n_fft/2 samples
            wav = F.pad(wav, (0, self.spec.n_fft // 2 + 1 - len(wav)))
        spec = torch.stft(wav, self.spec.n_fft, self.hop, self.win, self.window,
                          center=True, return_complex=True)  # (F, T)
        mel = (spec.real.square() + spec.imag.square()).T @ self.fb  # (T, n_mels)
        x = torch.log(mel + 1e-6)
        if self.kind == "mfcc":
            x = x @ self.dct  # (T, n_mfcc)
            if self.spec.deltas:
                d1 = _deltas(x)
                x = torch.cat([x, d1, _deltas(d1)], dim=1)  # (T, 3 * n_mfcc)
        if self.spec.normalize:
            x = (x - x.mean(0)) / (x.std(0, unbiased=False) + 1e-5)
        return x

    # -- causal path: the pieces StreamingUnits runs on each chunk, so both agree exactly --

    def causal_pad(self) -> int:
        """Zeros put before the signal (negative: samples dropped) so frame t ends at
        ``(t + 1) * hop``."""
        return self.spec.n_fft - self.hop

    def _causal_raw(self, wav: torch.Tensor) -> torch.Tensor:
        """Un-normalised causal features of a whole clip: (n // hop, D)."""
        pad = self.causal_pad()
        wav = F.pad(wav, (pad, 0)) if pad >= 0 else wav[-pad:]
        static = self.static_frames(wav)  # (T, n_mfcc or n_mels)
        if self.kind != "mfcc" or not self.spec.deltas:
            return static
        d1 = _deltas(static, causal=True)
        return torch.cat([static, d1, _deltas(d1, causal=True)], dim=1)  # (T, 3 * n_mfcc)

    def static_frames(self, padded: torch.Tensor) -> torch.Tensor:
        """Log-mel or cepstra (no deltas, no normalisation) of every whole ``n_fft`` frame of
        ``padded``, one per hop from its first sample: (T, n_mels or n_mfcc)."""
        if len(padded) < self.spec.n_fft:
            return torch.zeros(0, self.spec.n_mels if self.kind == "logmel" else self.spec.n_mfcc)
        spec = torch.stft(padded, self.spec.n_fft, self.hop, self.spec.n_fft, self._end_window,
                          center=False, return_complex=True)  # (F, T)
        # float64 products: a float32 GEMM's rounding depends on how many rows it gets, and a
        # stream computes one frame where the offline path computes all; rounded back to
        # float32, both give the same features whatever the chunking
        mel = ((spec.real.square() + spec.imag.square()).T.double() @ self._fb64).float()
        x = torch.log(mel + 1e-6)  # (T, n_mels)
        if self.kind == "mfcc":
            x = (x.double() @ self._dct64).float()  # (T, n_mfcc)
        return x

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Causal features (T, D) normalised with the global statistics (as is when
        ``normalize`` is off)."""
        if not self.spec.normalize:
            return x
        return (x - self._mean) / self._scale

    def to_dict(self) -> dict:
        d = asdict(self.spec)
        if not self.causal:
            del d["causal"]  # offline front ends keep writing the tokenizer.json they always did
        if self.stats is not None:
            d.update(asdict(self.stats))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SpectralFeatures:
        """Rebuild from ``to_dict()`` (global ``mean``/``std`` included)."""
        d = dict(d)
        stats = None
        if "mean" in d or "std" in d:
            stats = FeatureStats(d.pop("mean", []), d.pop("std", []))
        return cls(SpectralSpec(**d), stats)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch ops on one intra-op thread inside the block.

    Per-utterance ops here are small (a few hundred frames): with several OpenMP threads their
    start/stop costs dominate, and on shared cores it was 8x slower (38 vs 320 audio s/s for the
    MFCC job on this 2-core machine). Parallelism comes from job workers instead.
    """
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Orthonormal DCT-II basis as an (n_in, n_out) matrix (the usual MFCC cepstrum)."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)
    basis = torch.cos(math.pi / n_in * (n[:, None] + 0.5) * k[None, :])
    basis[:, 0] *= 1 / math.sqrt(2)
    return (basis * math.sqrt(2 / n_in)).float()


DELTA_SPAN = 2  # regression deltas over +-2 frames


def _deltas(x: torch.Tensor, n: int = DELTA_SPAN, causal: bool = False) -> torch.Tensor:
    """Regression deltas over +-n frames with edge replication, as in HTK/Kaldi. x: (T, D).

    ``causal``: frame t gets the delta of frame t - n (frames t - 2n .. t), the first frame
    replicated before the start.
    """
    if len(x) == 0:
        return x
    pad = (2 * n, 0) if causal else (n, n)
    return regression_deltas(F.pad(x.T[None], pad, mode="replicate")[0].T, n)  # (T + 2n, D)


def regression_deltas(padded: torch.Tensor, n: int = DELTA_SPAN) -> torch.Tensor:
    """Deltas of the ``T`` middle frames of ``padded`` (T + 2n, D), frames n .. n + T - 1."""
    t = len(padded) - 2 * n
    num = sum(i * (padded[n + i : n + i + t] - padded[n - i : n - i + t]) for i in range(1, n + 1))
    return num / (2 * sum(i * i for i in range(1, n + 1)))
