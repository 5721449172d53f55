"""MFCC and log-mel features computed with torch.

Why torch and not librosa/python_speech_features: torch is already a dependency, its STFT and
matmuls are vectorised and multi-threaded (and run on a GPU unchanged), and the mel filterbank
comes from ``transformers.audio_utils`` (the one HF feature extractors use), so nothing is
hand-rolled beyond the DCT matrix and the delta regression. Each utterance is computed on its own
(no padding), so its features never depend on what it was batched with: tokens are identical
whether an utterance is encoded alone, in a batch, or in a resumed job.
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
    normalize: bool = True  # per-utterance mean/variance normalisation
    fmin: float = 20.0
    fmax: float = 7600.0

    def __post_init__(self) -> None:
        if self.kind not in SPECTRAL_KINDS:
            raise ConfigError(f"features.kind: '{self.kind}' is not one of {SPECTRAL_KINDS}")
        hop = self.sample_rate / self.frame_rate
        if hop != int(hop):
            raise ConfigError(f"features.frame_rate: {self.frame_rate} Hz does not divide "
                              f"{self.sample_rate} Hz into whole samples")


class SpectralFeatures:
    """``__call__(wavs) -> list[(T, D) float32 tensors]`` at ``frame_rate`` Hz."""

    frame_offset = 0.0  # centred STFT: frame t is centred on sample t * hop

    def __init__(self, spec: SpectralSpec) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.sample_rate = spec.sample_rate
        self.frame_rate = spec.frame_rate
        self.hop = int(spec.sample_rate / spec.frame_rate)
        self.win = int(round(spec.win_ms * spec.sample_rate / 1000))
        from transformers.audio_utils import mel_filter_bank

        fb = mel_filter_bank(num_frequency_bins=spec.n_fft // 2 + 1, num_mel_filters=spec.n_mels,
                             min_frequency=spec.fmin, max_frequency=spec.fmax,
                             sampling_rate=spec.sample_rate, norm="slaney", mel_scale="slaney")
        self.fb = torch.from_numpy(fb.astype(np.float32))  # (F, n_mels)
        self.window = torch.hann_window(self.win)
        self.dct = _dct_matrix(spec.n_mels, spec.n_mfcc)  # (n_mels, n_mfcc)

    @property
    def dim(self) -> int:
        if self.kind == "logmel":
            return self.spec.n_mels
        return self.spec.n_mfcc * (3 if self.spec.deltas else 1)

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` samples (centred STFT)."""
        return n_samples // self.hop + 1

    @torch.inference_mode()
    def __call__(self, wavs: list[np.ndarray]) -> list[torch.Tensor]:
        with single_thread():
            return [self._one(torch.as_tensor(np.asarray(w, dtype=np.float32))) for w in wavs]

    def _one(self, wav: torch.Tensor) -> torch.Tensor:
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

    def to_dict(self) -> dict:
        return asdict(self.spec)


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


def _deltas(x: torch.Tensor, n: int = 2) -> torch.Tensor:
    """Regression deltas over +-n frames with edge replication, as in HTK/Kaldi. x: (T, D)."""
    padded = F.pad(x.T[None], (n, n), mode="replicate")[0].T  # (T + 2n, D)
    t = len(x)
    num = sum(i * (padded[n + i : n + i + t] - padded[n - i : n - i + t]) for i in range(1, n + 1))
    return num / (2 * sum(i * i for i in range(1, n + 1)))
