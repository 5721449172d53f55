"""Causal unit tokenizer, frame by frame: what the real-time engine hears, equal to offline.

``frame_units(tok, wav, rate)`` is the offline path (a whole clip: the units a model trains on);
``StreamingUnits(tok).push(chunk)`` gives the same units live, whatever the chunk sizes. Both run
the same pieces of a causal ``SpectralFeatures`` (``static_frames``, ``regression_deltas``,
``normalise``) and the same nearest-centroid assignment; the stream keeps only what its next
frame needs: the samples from the next frame's start on and the last ``2 * DELTA_SPAN`` frames of
cepstra and of deltas. Only a tokenizer fitted with ``causal=True`` (mfcc, logmel) qualifies.

Units are assigned in float64 here (``_Assigner``) so that chunking cannot flip a near tie;
``UnitTokenizer.encode`` assigns in float32 over a whole batch, so on an exact near tie (gap
below float32 rounding) its unit may differ from ``frame_units``'s: train streaming models on
``frame_units``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from speechlm.errors import ConfigError, SpeechLMError
from speechlm.tokenizers.features import (
    DELTA_SPAN,
    SpectralFeatures,
    regression_deltas,
    single_thread,
)
from speechlm.tokenizers.frontends import ENCODER_KINDS


def causal_frontend(tokenizer) -> SpectralFeatures:
    """The causal spectral front end of a unit tokenizer; a ConfigError saying why otherwise."""
    frontend = getattr(tokenizer, "frontend", None)
    if getattr(tokenizer, "quantizer", None) is None or frontend is None:
        raise ConfigError(f"streaming units need a k-means unit tokenizer (mfcc, logmel) fitted "
                          f"with causal=True; got kind '{tokenizer.kind}'")
    if frontend.kind in ENCODER_KINDS:
        raise ConfigError(f"kind '{frontend.kind}': an SSL encoder has no causal front end (its "
                          "convolutions and attention see the whole utterance); stream an mfcc or "
                          "logmel tokenizer fitted with causal=True")
    if not (isinstance(frontend, SpectralFeatures) and frontend.causal):
        raise ConfigError("this tokenizer was fitted offline (centred STFT frames, centred "
                          "deltas and per-utterance normalisation all look ahead, so live units "
                          "would differ from its training units); fit it with causal=True "
                          "(speechlm tokenizer fit --causal, or tokenizer: {causal: true} in a "
                          "recipe) to stream it")
    if getattr(tokenizer, "switch_penalty", 0.0) > 0:
        raise ConfigError("switch_penalty: the Viterbi smoothing looks at the whole utterance; a "
                          "streamed tokenizer needs smoothing=0 (refit with causal=True and no "
                          "smoothing)")
    return frontend


def frame_units(tokenizer, wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Units (int64, one per frame, not de-duplicated) of a whole clip through the causal path:
    ``n // hop`` frames for ``n`` samples at the tokenizer's rate (resampled like ``encode``)."""
    frontend = causal_frontend(tokenizer)
    (w,) = tokenizer.resample([wav], sample_rate)
    with single_thread():
        feats = frontend([w])[0]  # (T, D)
        return _Assigner(tokenizer.quantizer)(feats)


@dataclass
class StreamState:
    """What a stream carries from one push to the next."""

    samples: np.ndarray  # float32: the (padded) signal from the next frame's first sample on
    skip: int = 0  # samples still to drop before the next frame's start (only if n_fft < hop)
    # the last 2 * DELTA_SPAN frames (the first one replicated while there are fewer): (2n, D)
    static: torch.Tensor | None = None  # cepstra, for the deltas
    deltas: torch.Tensor | None = None  # deltas, for the delta-deltas
    n_samples: int = 0  # samples pushed since the start
    n_frames: int = 0  # frames returned since the start


@dataclass
class UnitFrames:
    """The frames one push completed."""

    units: np.ndarray  # (T,) int64
    features: np.ndarray  # (T, D) float32, normalised: what the quantiser sees


class StreamingUnits:
    """Units of a live signal, frame by frame, equal to ``frame_units`` on the whole signal.

    ``push(samples)`` takes float32 mono at ``sample_rate`` in chunks of any size and returns the
    units of the frames they complete (frame t completes with sample ``(t + 1) * hop``);
    ``push_frames`` also returns their features; ``reset()`` starts a new signal.
    """

    def __init__(self, tokenizer) -> None:
        self.frontend = causal_frontend(tokenizer)
        self.assign = _Assigner(tokenizer.quantizer)
        self.sample_rate = self.frontend.sample_rate
        self.frame_rate = self.frontend.frame_rate
        self.hop = self.frontend.hop
        self.n_fft = self.frontend.spec.n_fft
        self.deltas = self.frontend.kind == "mfcc" and self.frontend.spec.deltas
        self.reset()

    def reset(self) -> None:
        """Forget the signal so far: the next push is sample 0 of a new one."""
        pad = self.frontend.causal_pad()
        self.state = StreamState(samples=np.zeros(max(pad, 0), np.float32), skip=max(-pad, 0))

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Units (int64) of the frames these samples complete (often none, or one)."""
        return self.push_frames(samples).units

    @torch.inference_mode()
    def push_frames(self, samples: np.ndarray) -> UnitFrames:
        """Units and normalised features of the frames these samples complete."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise SpeechLMError(f"push: expected mono 1-D samples, got shape {x.shape}")
        st = self.state
        st.n_samples += len(x)
        if st.skip:
            drop = min(st.skip, len(x))
            x, st.skip = x[drop:], st.skip - drop
        buf = np.concatenate([st.samples, x]) if len(x) else st.samples
        m = (len(buf) - self.n_fft) // self.hop + 1 if len(buf) >= self.n_fft else 0
        if m == 0:
            st.samples = buf
            return UnitFrames(np.zeros(0, np.int64), np.zeros((0, self.frontend.dim), np.float32))
        # all m frames in one batch; keep from frame m's first sample on
        static = self.frontend.static_frames(
            torch.from_numpy(buf[: (m - 1) * self.hop + self.n_fft]))  # (m, D_static)
        st.samples = buf[m * self.hop :].copy()
        st.skip = max(m * self.hop - len(buf), 0)  # n_fft < hop: the next frame starts later
        feats = static
        if self.deltas:
            st.static, d1 = _step_deltas(st.static, static)
            st.deltas, d2 = _step_deltas(st.deltas, d1)
            feats = torch.cat([static, d1, d2], dim=1)  # (m, 3 * n_mfcc)
        feats = self.frontend.normalise(feats)
        units = self.assign(feats)  # (m,)
        st.n_frames += m
        return UnitFrames(units=units, features=feats.numpy())


class _Assigner:
    """Nearest centroid in float64: a float32 GEMM rounds differently for 1 row and for 500, which
    could flip a near tie between the streamed and the offline unit of the same frame."""

    def __init__(self, quantizer) -> None:
        self.centroids = quantizer.centroids.double()  # (K, D)
        self.sq = self.centroids.square().sum(1)  # (K,)

    @torch.inference_mode()
    def __call__(self, feats: torch.Tensor) -> np.ndarray:
        partial = self.sq[None, :] - 2 * feats.double() @ self.centroids.T  # (T, K)
        return partial.argmin(1).numpy().astype(np.int64)  # ||x||^2 does not change the argmin


def _step_deltas(history: torch.Tensor | None, new: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(new history, causal deltas of ``new``) given the last ``2 * DELTA_SPAN`` frames before
    it (None at the start: the first frame replicated, as the offline path pads)."""
    n2 = 2 * DELTA_SPAN
    if history is None:
        history = new[:1].expand(n2, -1)
    ext = torch.cat([history, new])  # (2n + m, D)
    return ext[-n2:].clone(), regression_deltas(ext, DELTA_SPAN)  # (2n, D), (m, D)
