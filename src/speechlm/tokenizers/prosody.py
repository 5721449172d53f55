"""Prosody streams: F0 per unit (pGSLM) and pitch / style tokens (SpiRit-LM Expressive).

- F0 with Praat's autocorrelation tracker (praat-parselmouth) at 100 Hz; 0 where unvoiced.
- Speaker-normalised log-F0: log F0 minus the speaker's mean voiced log F0 (speakers seen while
  fitting), or the utterance's own mean for unknown speakers, divided by the matching std.
- ``f0``: per de-duplicated unit, the mean normalised log-F0 of its voiced frames, quantised into
  ``n_f0_bins`` equal-mass bins (1..n); 0 when under half of the unit's frames are voiced.
- ``pitch`` at 12.5 Hz: k-means codes of 80 ms windows of (normalised log-F0, voicing) frames.
- ``style`` at 1 Hz: k-means codes of 1 s summaries (log-F0 mean/std, voicing rate, energy
  mean/std, energy change), standardised with statistics fitted on the training audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speechlm.tokenizers.kmeans import KMeansQuantizer
from speechlm.tokenizers.streams import Streams

F0_RATE = 100.0
PITCH_WINDOW = 8  # F0 frames per pitch token: 100 / 8 = 12.5 Hz
STYLE_WINDOW = 100  # F0 frames per style token: 1 Hz
PROSODY_FILE = "prosody.safetensors"
N_F0_BINS, N_PITCH, N_STYLE = 32, 64, 16  # default codebook sizes (pGSLM's 32 F0 bins)
PROSODY_INFO = ("n_pitch", "n_style", "pitch_rate", "style_rate")  # what token datasets need


def extract_f0(wav: np.ndarray, sample_rate: int, fmin: float = 60.0,
               fmax: float = 500.0) -> np.ndarray:
    """F0 in Hz at 100 Hz (frame k centred at k/100 s), 0 where unvoiced. (T,) float32."""
    import parselmouth

    n = int(np.ceil(len(wav) / sample_rate * F0_RATE))
    if len(wav) < sample_rate * 3 / fmin:  # Praat needs 3 periods of the lowest pitch
        return np.zeros(n, np.float32)
    snd = parselmouth.Sound(np.asarray(wav, np.float64), sampling_frequency=sample_rate)
    pitch = snd.to_pitch_ac(time_step=1 / F0_RATE, pitch_floor=fmin, pitch_ceiling=fmax)
    values = pitch.selected_array["frequency"].astype(np.float32)
    # Praat's frames start half a window in: take the nearest Praat frame for each k/100 s,
    # and call frames outside Praat's range unvoiced
    j = np.floor((np.arange(n) / F0_RATE - pitch.xs()[0]) * F0_RATE + 0.5).astype(int)
    inside = (j >= 0) & (j < len(values))
    f0 = np.zeros(n, np.float32)
    f0[inside] = values[j[inside]]
    return f0


def prosody_info(tokenizer_dir: str | Path) -> dict[str, float]:
    """Sizes and rates of the pitch and style tokens the tokenizer saved in ``tokenizer_dir``
    writes (:data:`PROSODY_INFO`); empty when it writes none or the folder holds no tokenizer."""
    from speechlm.tokenizers.base import SPEC_FILE, read_spec

    if not (Path(tokenizer_dir) / SPEC_FILE).is_file():
        return {}
    spec = read_spec(tokenizer_dir).get("prosody") or {}
    return {k: spec[k] for k in PROSODY_INFO if k in spec}


def frame_energy(wav: np.ndarray, sample_rate: int, n: int) -> np.ndarray:
    """Log RMS energy of n frames of 1/100 s."""
    hop = int(sample_rate / F0_RATE)
    padded = np.pad(np.asarray(wav, np.float32), (0, max(0, n * hop - len(wav))))[: n * hop]
    return np.log(np.sqrt((padded.reshape(n, hop) ** 2).mean(1)) + 1e-5)


class Prosody:
    """Fitted prosody quantisers; ``annotate`` fills ``f0``, ``pitch`` and ``style`` of Streams."""

    def __init__(self, sample_rate: int, f0_edges: np.ndarray, pitch: KMeansQuantizer,
                 style: KMeansQuantizer, style_mean: np.ndarray, style_std: np.ndarray,
                 speakers: dict[str, list[float]]) -> None:
        self.sample_rate = sample_rate
        self.f0_edges = np.asarray(f0_edges, np.float32)
        self.pitch, self.style = pitch, style
        self.style_mean = np.asarray(style_mean, np.float32)
        self.style_std = np.asarray(style_std, np.float32)
        self.speakers = speakers

    @property
    def n_f0_bins(self) -> int:
        return len(self.f0_edges) + 1

    # -- features -------------------------------------------------------------------------
    def normalised_logf0(self, f0: np.ndarray, speaker: str | None) -> np.ndarray:
        """Speaker-normalised log-F0 (0 where unvoiced)."""
        voiced = f0 > 0
        if not voiced.any():
            return np.zeros_like(f0)
        lf = np.log(np.where(voiced, f0, 1.0))
        if speaker is not None and speaker in self.speakers:
            mean, std = self.speakers[speaker]
        else:
            mean, std = float(lf[voiced].mean()), float(lf[voiced].std())
        return np.where(voiced, (lf - mean) / max(std, 1e-3), 0.0).astype(np.float32)

    @staticmethod
    def pitch_vectors(nlf: np.ndarray, voiced: np.ndarray) -> np.ndarray:
        """(W, 2 * PITCH_WINDOW) windows of (log-F0, voicing), zero-padded at the end."""
        w = -(-len(nlf) // PITCH_WINDOW)
        pad = w * PITCH_WINDOW - len(nlf)
        x = np.pad(nlf, (0, pad)).reshape(w, PITCH_WINDOW)
        v = np.pad(voiced.astype(np.float32), (0, pad)).reshape(w, PITCH_WINDOW)
        return np.concatenate([x, v], 1).astype(np.float32)

    @staticmethod
    def style_vectors(nlf: np.ndarray, voiced: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """(S, 6) one-second summaries."""
        rows = []
        for s in range(0, max(len(nlf), 1), STYLE_WINDOW):
            lf, v, e = nlf[s : s + STYLE_WINDOW], voiced[s : s + STYLE_WINDOW], \
                energy[s : s + STYLE_WINDOW]
            lv = lf[v] if v.any() else np.zeros(1, np.float32)
            de = np.abs(np.diff(e)).mean() if len(e) > 1 else 0.0
            rows.append([lv.mean(), lv.std(), v.mean() if len(v) else 0.0,
                         e.mean() if len(e) else 0.0, e.std() if len(e) else 0.0, de])
        return np.asarray(rows, np.float32)

    # -- encoding -------------------------------------------------------------------------
    def annotate(self, s: Streams, wav: np.ndarray, speaker: str | None) -> None:
        """Add ``f0`` (per unit), ``pitch`` (12.5 Hz) and ``style`` (1 Hz) to ``s`` in place."""
        f0 = extract_f0(wav, self.sample_rate)
        voiced = f0 > 0
        nlf = self.normalised_logf0(f0, speaker)
        if s.units is not None and s.durations is not None:
            s.f0 = self._unit_bins(nlf, voiced, s.durations, s.frame_rate)
        s.pitch = self.pitch.assign(torch.from_numpy(self.pitch_vectors(nlf, voiced))).numpy()
        sv = self.style_vectors(nlf, voiced, frame_energy(wav, self.sample_rate, len(f0)))
        sv = (sv - self.style_mean) / self.style_std
        s.style = self.style.assign(torch.from_numpy(sv)).numpy()
        s.pitch_rate, s.style_rate = F0_RATE / PITCH_WINDOW, F0_RATE / STYLE_WINDOW

    def _unit_bins(self, nlf: np.ndarray, voiced: np.ndarray, durations: np.ndarray,
                   frame_rate: float) -> np.ndarray:
        ends = np.cumsum(durations)
        starts = ends - durations
        scale = F0_RATE / frame_rate
        out = np.zeros(len(durations), np.int64)
        for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
            lo, hi = int(a * scale), max(int(a * scale) + 1, int(b * scale))
            v = voiced[lo:hi]
            if len(v) and v.mean() >= 0.5:
                out[i] = 1 + int(np.searchsorted(self.f0_edges, nlf[lo:hi][v].mean()))
        return out

    def unit_bins_from_pitch(self, pitch: np.ndarray, pitch_rate: float, durations: np.ndarray,
                             frame_rate: float) -> np.ndarray:
        """Per-unit F0 bins (as ``annotate``'s ``f0``) from pitch tokens: (N,) int64.

        ``pitch`` is a stream at its fixed rate (token ``j`` covers ``[j, j + 1) / pitch_rate``
        s, as ``annotate`` writes it and ``split_expressive`` re-expands a generated one). Each
        token becomes its centroid's window of (normalised log-F0, voicing) frames at 100 Hz,
        voiced where the centroid's voicing is at least one half; the units are then binned as
        from a real F0 contour. This lets an F0-conditioned (pGSLM-style) vocoder speak the
        pitch an expressive LM generated.
        """
        if abs(pitch_rate * PITCH_WINDOW - F0_RATE) > 1e-6:
            raise ValueError(f"pitch_rate {pitch_rate} Hz: this codebook's tokens are windows "
                             f"of {PITCH_WINDOW} frames at {F0_RATE:g} Hz "
                             f"({F0_RATE / PITCH_WINDOW:g} Hz)")
        windows = self.pitch.centroids.numpy()[np.asarray(pitch, dtype=np.int64)]  # (J, 2W)
        nlf = windows[:, :PITCH_WINDOW].reshape(-1)  # (J * W,) frames at F0_RATE
        voiced = windows[:, PITCH_WINDOW:].reshape(-1) >= 0.5
        return self._unit_bins(nlf, voiced, np.asarray(durations, dtype=np.int64), frame_rate)

    # -- fitting and storage --------------------------------------------------------------
    @classmethod
    def fit(cls, audio: list[tuple[np.ndarray, str | None]], sample_rate: int, seed: int = 0,
            n_f0_bins: int = N_F0_BINS, n_pitch: int = N_PITCH,
            n_style: int = N_STYLE) -> Prosody:
        """Fit speaker statistics, F0 bin edges and the pitch/style codebooks on ``audio``."""
        f0s = [extract_f0(w, sample_rate) for w, _ in audio]
        by_spk: dict[str, list[np.ndarray]] = {}
        for f0, (_, spk) in zip(f0s, audio, strict=True):
            if spk is not None and (f0 > 0).any():
                by_spk.setdefault(spk, []).append(np.log(f0[f0 > 0]))
        speakers = {k: [float(np.concatenate(v).mean()), float(np.concatenate(v).std())]
                    for k, v in by_spk.items()}
        proto = cls(sample_rate, np.zeros(0), None, None, np.zeros(6), np.ones(6), speakers)
        nlfs = [proto.normalised_logf0(f0, spk) for f0, (_, spk) in zip(f0s, audio, strict=True)]
        voiced_vals = np.concatenate([n[f > 0] for n, f in zip(nlfs, f0s, strict=True)] +
                                     [np.zeros(0, np.float32)])
        qs = np.linspace(0, 1, n_f0_bins + 1)[1:-1]
        edges = np.quantile(voiced_vals, qs) if len(voiced_vals) else np.zeros(n_f0_bins - 1)
        pv = np.concatenate([cls.pitch_vectors(n, f > 0) for n, f in zip(nlfs, f0s, strict=True)])
        sv = np.concatenate([cls.style_vectors(n, f > 0, frame_energy(w, sample_rate, len(f)))
                             for n, f, (w, _) in zip(nlfs, f0s, audio, strict=True)])
        mean, std = sv.mean(0), sv.std(0) + 1e-5
        pitch = KMeansQuantizer.fit(pv, min(n_pitch, len(pv)), seed=seed)
        style = KMeansQuantizer.fit((sv - mean) / std, min(n_style, len(sv)), seed=seed)
        return cls(sample_rate, edges, pitch, style, mean, std, speakers)

    def to_dict(self) -> dict:
        return {"file": PROSODY_FILE, "sample_rate": self.sample_rate,
                "n_f0_bins": self.n_f0_bins, "n_pitch": self.pitch.n_units,
                "n_style": self.style.n_units, "pitch_rate": F0_RATE / PITCH_WINDOW,
                "style_rate": F0_RATE / STYLE_WINDOW, "speakers": self.speakers}

    def save_weights(self, out_dir: Path) -> None:
        from safetensors.torch import save_file

        t = {"f0_edges": self.f0_edges, "pitch": self.pitch.centroids.numpy(),
             "style": self.style.centroids.numpy(), "style_mean": self.style_mean,
             "style_std": self.style_std}
        save_file({k: torch.from_numpy(np.ascontiguousarray(v, np.float32))
                   for k, v in t.items()}, str(out_dir / PROSODY_FILE))

    @classmethod
    def from_dict(cls, spec: dict, directory: Path) -> Prosody:
        from safetensors.torch import load_file

        t = {k: v.numpy() for k, v in load_file(str(directory / spec["file"])).items()}
        return cls(spec["sample_rate"], t["f0_edges"], KMeansQuantizer(t["pitch"]),
                   KMeansQuantizer(t["style"]), t["style_mean"], t["style_std"],
                   spec.get("speakers", {}))
