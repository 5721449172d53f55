"""Delivery of speech: utterance-level features, a style classifier over them, F0 contours.

What ``speechlm eval style`` (``speechlm.evaluate.style``) listens with: ``style_features``
measures how an utterance is spoken (register, pitch movement, loudness, tempo, pausing,
brightness), ``StyleClassifier`` labels it with a speaking style, ``plot_f0_contours`` shows a
prompt's pitch and its continuation's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import AudioError, SpeechLMError

FEATURE_RATE = 16000  # every feature is measured at 16 kHz, so rates of models do not matter
ACTIVE_DB = 35.0  # a frame within this many dB of the loudest frame is speech, not pause
MIN_VOICED_FRAMES = 10  # 0.1 s of voiced F0: fewer leaves the F0 statistics undefined
MIN_RUN = 3  # voiced frames (30 ms) that make a voiced segment for the onset rate
CLASSIFIER_FILE = "classifier.json"
# inverse L2 strength of the logistic regression: voices differ more in register than styles do
# (19 semitones between the held-out espeak voices, +-5 between styles), and a strong prior
# keeps the fit from leaning on one voice's register: leave-one-speaker-out accuracy on the
# four held-out voices (4 sentences per voice and style) was 0.77 at C=0.1, 0.69 at C=1
C = 0.1

# utterance-level delivery features, in ``style_features`` order. F0 is in semitones re 100 Hz
# over voiced frames (Praat, 100 frames/s); "active" frames are within ACTIVE_DB of the loudest,
# and the active span runs from the first active frame to the last
FEATURES: dict[str, str] = {
    "f0_mean_st": "mean voiced log-F0 (semitones re 100 Hz): the register",
    "f0_std_st": "std of voiced log-F0 (semitones): how much the pitch moves",
    "f0_range_st": "10th to 90th percentile of voiced log-F0 (semitones): pitch range",
    "f0_slope_st_per_s": "least-squares slope of voiced log-F0 over time (semitones/s)",
    "f0_delta_st_per_s": "mean |change| of log-F0 between adjacent voiced frames (semitones/s)",
    "voicing_rate": "share of the active span that is voiced",
    "energy_mean_db": "mean frame RMS of active frames (dBFS): loudness",
    "energy_std_db": "std of frame RMS of active frames (dB): dynamics",
    "onset_rate_hz": "voiced segments (>= 30 ms) started per second of active span: tempo",
    "pause_ratio": "share of the active span that is not active: pausing",
    "spectral_centroid_hz": "mean spectral centroid of active frames, 0-8 kHz: brightness",
    "alpha_ratio_db": "mean energy 1-5 kHz over 50 Hz-1 kHz of active frames (dB): vocal effort",
}


# -- features -------------------------------------------------------------------------------
def style_features(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """The :data:`FEATURES` of one mono utterance, as a (len(FEATURES),) float64 vector.

    Raises ``AudioError`` when it has under ``MIN_VOICED_FRAMES`` voiced frames (silence, noise,
    or too short): its F0 statistics would be undefined.
    """
    from speechlm.tokenizers.prosody import F0_RATE, extract_f0, frame_energy

    wav = np.asarray(wav, np.float32)
    if sample_rate != FEATURE_RATE:
        import soxr

        wav = soxr.resample(wav, sample_rate, FEATURE_RATE).astype(np.float32)
    f0 = extract_f0(wav, FEATURE_RATE)
    voiced = f0 > 0
    if voiced.sum() < MIN_VOICED_FRAMES:
        raise AudioError(f"{int(voiced.sum())} voiced frames ({len(wav) / FEATURE_RATE:.2f} s of "
                         f"audio): too little voiced speech for style features (needs "
                         f"{MIN_VOICED_FRAMES})")
    n = len(f0)
    db = frame_energy(wav, FEATURE_RATE, n) * (20.0 / np.log(10.0))  # ln RMS -> dBFS
    active = db > db.max() - ACTIVE_DB
    first, last = np.flatnonzero(active)[[0, -1]]
    span = slice(first, last + 1)
    span_seconds = (last + 1 - first) / F0_RATE

    st = 12.0 * np.log2(f0[voiced] / 100.0)
    t = np.flatnonzero(voiced) / F0_RATE
    slope = np.polyfit(t, st, 1)[0] if np.ptp(t) > 0 else 0.0
    adjacent = voiced[1:] & voiced[:-1]
    all_st = 12.0 * np.log2(np.maximum(f0, 1e-3) / 100.0)
    delta = np.abs(np.diff(all_st))[adjacent].mean() * F0_RATE if adjacent.any() else 0.0
    # a voiced segment starts where a run of >= MIN_RUN voiced frames begins
    edges = np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    onsets = int(((ends - starts) >= MIN_RUN).sum())
    centroid, alpha = _spectral(wav, n, active)
    return np.array([
        st.mean(), st.std(), np.percentile(st, 90) - np.percentile(st, 10), slope, delta,
        voiced[span].mean(), db[active].mean(), db[active].std(), onsets / span_seconds,
        1.0 - active[span].mean(), centroid, alpha,
    ], dtype=np.float64)


def _spectral(wav: np.ndarray, n: int, active: np.ndarray) -> tuple[float, float]:
    """Mean spectral centroid (Hz) and alpha ratio (dB) over the ``active`` 10-ms frames."""
    hop, size = FEATURE_RATE // 100, 512  # 32-ms Hann windows centred on each 10-ms frame
    padded = np.pad(wav, (size // 2, size // 2 + n * hop))
    frames = np.lib.stride_tricks.sliding_window_view(padded, size)[::hop][:n][active]
    power = np.abs(np.fft.rfft(frames * np.hanning(size), axis=1)) ** 2 + 1e-12  # (A, F)
    freqs = np.fft.rfftfreq(size, 1.0 / FEATURE_RATE)
    centroid = (power * freqs).sum(1) / power.sum(1)
    low = power[:, (freqs >= 50) & (freqs < 1000)].sum(1)
    high = power[:, (freqs >= 1000) & (freqs < 5000)].sum(1)
    return float(centroid.mean()), float((10.0 * np.log10(high / low)).mean())


# -- the classifier -------------------------------------------------------------------------
class StyleClassifier:
    """Standardised :data:`FEATURES` -> multinomial logistic regression (sklearn's lbfgs).

    Saved as JSON (classes, coef, intercept, mean, scale): nothing is unpickled on load.
    Prediction is the softmax of ``coef @ z + intercept`` in numpy, the same before and after a
    round trip; a two-class fit is stored in the same (2, F) form (sklearn's one row w becomes
    -w/2 and w/2, which gives the same probabilities).
    """

    def __init__(self, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray,
                 mean: np.ndarray, scale: np.ndarray, info: dict | None = None) -> None:
        self.classes = list(classes)
        self.coef, self.intercept = np.asarray(coef, float), np.asarray(intercept, float)
        self.mean, self.scale = np.asarray(mean, float), np.asarray(scale, float)
        self.info = info or {}  # how it was fitted (counts, speakers, cross-validation)

    @classmethod
    def fit_features(cls, features: np.ndarray, labels: Sequence[str],
                     c: float = C) -> StyleClassifier:
        """Fit on a (N, F) feature matrix; ``c`` is sklearn's inverse L2 strength."""
        from sklearn.linear_model import LogisticRegression

        x, y = np.asarray(features, float), np.asarray(labels)
        if len(set(y.tolist())) < 2:
            raise SpeechLMError(f"style classifier: needs at least two styles to fit, got "
                                f"{sorted(set(y.tolist()))}")
        mean, scale = x.mean(0), x.std(0)
        scale[scale == 0] = 1.0  # a constant feature carries nothing; keep it finite
        lr = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
        coef, intercept = lr.coef_, lr.intercept_
        if len(lr.classes_) == 2:
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.r_[-intercept / 2,
                                                                       intercept / 2]
        return cls([str(k) for k in lr.classes_], coef, intercept, mean, scale,
                   {"n_fit": len(y), "fit_counts": {k: int((y == k).sum())
                                                    for k in sorted(set(y.tolist()))}})

    @classmethod
    def fit(cls, wavs: Sequence[np.ndarray], labels: Sequence[str],
            sample_rate: int) -> StyleClassifier:
        """Fit on waveforms at ``sample_rate`` (each must have voiced speech)."""
        return cls.fit_features(np.stack([style_features(w, sample_rate) for w in wavs]), labels)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, n_classes) class probabilities of a (N, F) feature matrix."""
        z = (np.atleast_2d(features) - self.mean) / self.scale
        logits = z @ self.coef.T + self.intercept
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def predict_features(self, features: np.ndarray) -> list[str]:
        """The most probable style of each row of a (N, F) feature matrix."""
        return [self.classes[i] for i in self.probabilities(features).argmax(1)]

    def predict(self, wavs: Sequence[np.ndarray], sample_rate: int) -> list[str]:
        """The style of each waveform at ``sample_rate``."""
        return self.predict_features(np.stack([style_features(w, sample_rate) for w in wavs]))

    def save(self, out_dir: str | Path) -> Path:
        """Write ``out_dir/classifier.json``; returns its path."""
        path = Path(out_dir) / CLASSIFIER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "features": list(FEATURES), "classes": self.classes, "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(), "mean": self.mean.tolist(),
            "scale": self.scale.tolist(), "info": self.info}, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> StyleClassifier:
        """Read a classifier that ``save`` wrote; refuses one of other features."""
        path = Path(directory) / CLASSIFIER_FILE
        if not path.exists():
            raise SpeechLMError(f"{path}: no style classifier here (write one with "
                                "`speechlm eval style`, which saves it under OUT/classifier)")
        spec = json.loads(path.read_text())
        if spec.get("features") != list(FEATURES):
            raise SpeechLMError(f"{path}: fitted on features {spec.get('features')}, but this "
                                f"version measures {list(FEATURES)}; fit it again")
        return cls(spec["classes"], np.array(spec["coef"]), np.array(spec["intercept"]),
                   np.array(spec["mean"]), np.array(spec["scale"]), spec.get("info"))


def leave_one_speaker_out(features: np.ndarray, labels: Sequence[str],
                          speakers: Sequence[str]) -> dict:
    """Held-out-voice accuracy: each speaker's utterances classified by a fit on the others.

    ``accuracy`` is over every utterance predicted; a speaker whose fold has under two styles
    to fit on is left out (listed in ``speakers_left_out``). None with fewer than two speakers.
    """
    x, y, spk = np.asarray(features, float), np.asarray(labels), np.asarray(speakers)
    voices = sorted(set(spk.tolist()))
    out: dict[str, Any] = {"accuracy": None, "by_speaker": {}, "speakers_left_out": [],
                           "n_predicted": 0}
    if len(voices) < 2:
        out["note"] = f"needs at least two speakers, got {voices}"
        return out
    hits = []
    for v in voices:
        train = spk != v
        if len(set(y[train].tolist())) < 2:
            out["speakers_left_out"].append(v)
            continue
        pred = StyleClassifier.fit_features(x[train], y[train]).predict_features(x[~train])
        ok = [p == t for p, t in zip(pred, y[~train], strict=True)]
        out["by_speaker"][v] = float(np.mean(ok))
        hits += ok
    if hits:
        out["accuracy"], out["n_predicted"] = float(np.mean(hits)), len(hits)
    return out


# -- F0 contours ----------------------------------------------------------------------------
def plot_f0_contours(prompt_wav: np.ndarray, continuation_wav: np.ndarray, sample_rate: int,
                     path: str | Path, title: str, continuation_rate: int | None = None) -> Path:
    """A PNG of the prompt's F0 contour then the continuation's on one time axis, the boundary
    marked. ``continuation_rate`` is the continuation's sample rate when it differs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speechlm.tokenizers.prosody import F0_RATE, extract_f0

    rate2 = continuation_rate or sample_rate
    boundary = len(prompt_wav) / sample_rate
    fig, ax = plt.subplots(figsize=(8, 3))
    for wav, rate, offset, label in ((prompt_wav, sample_rate, 0.0, "prompt"),
                                     (continuation_wav, rate2, boundary, "continuation")):
        f0 = extract_f0(np.asarray(wav, np.float32), rate)
        ax.plot(offset + np.arange(len(f0)) / F0_RATE, np.where(f0 > 0, f0, np.nan), label=label)
    ax.axvline(boundary, color="k", linestyle="--", linewidth=1)
    ax.set(xlabel="time (s)", ylabel="F0 (Hz)", title=title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
