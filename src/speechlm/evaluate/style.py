"""Style keeping of spoken continuations, after SpiRit-LM's STSP and pGSLM's prosody figures.

A prompt spoken in one style (``speechlm.corpus.styles``) is continued by the model, and the
continuation is labelled twice: from its audio, by a small classifier of utterance-level delivery
features fitted here on labelled speech of held-out voices, and from its transcript, by
``label_of_text``. S->S accuracy is the share of continuations labelled as their prompt.
Controls, with the same classifier: the prompt utterance's own remaining audio (what a perfect
continuation could score) and that rest resynthesised through the model's tokenizer and vocoder
(the ceiling its vocoder allows). pGSLM's figures: the Pearson correlation across prompts of the
prompt's and the continuation's mean log-F0, and min-MAE, the closest of K samples' mean log-F0
to the original rest's.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.corpus.manifest import Utterance
from speechlm.corpus.styles import STYLES, label_of_text
from speechlm.errors import AudioError, SpeechLMError

FEATURE_RATE = 16000  # every feature is measured at 16 kHz, so rates of models do not matter
ACTIVE_DB = 35.0  # a frame within this many dB of the loudest frame is speech, not pause
MIN_VOICED_FRAMES = 10  # 0.1 s of voiced F0: fewer leaves the F0 statistics undefined
MIN_RUN = 3  # voiced frames (30 ms) that make a voiced segment for the onset rate
MIN_REST_SECONDS = 0.5  # original audio left after the prompt, for the controls
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


# -- the benchmark --------------------------------------------------------------------------
def split_labelled(utterances: Sequence[Utterance], classifier_fraction: float = 0.5,
                   seed: int = 0) -> tuple[list[Utterance], list[Utterance]]:
    """(classifier part, prompt part): disjoint utterances, stratified by style.

    Within each style utterances are ordered by a hash of ``seed`` and their id (so the split
    does not depend on manifest order or on other utterances) and the first
    ``round(classifier_fraction * n)`` fit the classifier; the rest, in the same order, are
    the prompt candidates. Both parts keep every voice, so the classifier has met the prompts'
    voices but never their utterances; ``leave_one_speaker_out`` measures it on unmet voices.
    """
    if not 0.0 <= classifier_fraction < 1.0:
        raise SpeechLMError(f"classifier_fraction must be in [0, 1), got {classifier_fraction}")
    fit, prompts = [], []
    for style in sorted({u.style for u in utterances if u.style is not None}):
        group = sorted((u for u in utterances if u.style == style),
                       key=lambda u: hashlib.sha1(f"{seed}:{u.id}".encode()).hexdigest())
        k = round(classifier_fraction * len(group))
        fit += group[:k]
        prompts += group[k:]
    return fit, prompts


def prompt_cut(utt: Utterance, prompt_seconds: float) -> float:
    """Where the prompt ends (seconds into the utterance): the word end nearest
    ``prompt_seconds`` when the utterance has word alignments (one in [prompt_seconds / 2,
    duration - MIN_REST_SECONDS], so no word is cut in two), else ``prompt_seconds``."""
    ends = [e for _, _, e in utt.words or []
            if prompt_seconds / 2 <= e <= utt.duration - MIN_REST_SECONDS]
    return min(ends, key=lambda e: abs(e - prompt_seconds)) if ends else prompt_seconds


def _pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None with under three pairs or a constant side."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _rate(pairs: Sequence[tuple[Any, Any]]) -> float | None:
    """Share of (label, truth) pairs that agree, pairs with a None label left out."""
    hits = [a == b for a, b in pairs if a is not None]
    return float(np.mean(hits)) if hits else None


def _confusion(pairs: Sequence[tuple[str, str | None]], labels: Sequence[str]) -> dict:
    """{true style: {predicted style: count}}, pairs with no prediction left out."""
    table = {t: dict.fromkeys(labels, 0) for t in labels}
    for truth, pred in pairs:
        if pred is not None:
            table.setdefault(truth, dict.fromkeys(labels, 0))
            table[truth][pred] = table[truth].get(pred, 0) + 1
    return table


def _transcriber(asr_lm: str, utterances: Sequence[Utterance], out: Path):
    """pocketsphinx with the manifest transcripts' bigram LM (``domain``) or generic English."""
    from speechlm.evaluate.asr import default_transcriber, normalize_text

    if asr_lm == "generic":
        return default_transcriber()
    if asr_lm != "domain":
        raise SpeechLMError(f"unknown asr_lm '{asr_lm}'; known: domain, generic")
    from speechlm.evaluate.domain_lm import domain_transcriber

    texts = [u.text for u in utterances if u.text and normalize_text(u.text)]
    if not texts:
        raise SpeechLMError("eval style: the manifest has no transcripts to build the domain "
                            "ASR's LM from; use --asr-lm generic")
    return domain_transcriber(texts, out / "asr_lm")


def _fit_classifier(utts: Sequence[Utterance], rate: int, progress: bool) -> tuple[
        StyleClassifier, list[dict]]:
    """Fit on ``utts`` (unusable ones listed, not fatal) with its leave-one-speaker-out CV."""
    from speechlm.audio import load_audio
    from speechlm.progress import progress_bar

    feats, labels, speakers, skipped = [], [], [], []
    for u in progress_bar(utts, unit="utt", desc="classifier features", disable=not progress):
        try:
            feats.append(style_features(load_audio(u.audio, rate, u.start, u.end), rate))
        except SpeechLMError as e:
            skipped.append({"id": u.id, "reason": f"{u.audio}: {e}"})
            continue
        labels.append(u.style)
        speakers.append(u.speaker or u.id)  # no speaker: each utterance is its own voice
    if not feats:
        raise SpeechLMError("eval style: no utterance of the classifier part could be measured")
    x = np.stack(feats)
    clf = StyleClassifier.fit_features(x, labels)
    clf.info |= {"speakers": sorted(set(speakers)),
                 "cross_validation": leave_one_speaker_out(x, labels, speakers)}
    return clf, skipped


def _prepare(u: Utterance, rate: int, prompt_seconds: float) -> dict:
    """The prompt and the rest of one utterance with their features; raises to skip it."""
    from speechlm.audio import load_audio

    cut = prompt_cut(u, prompt_seconds)
    if u.duration < cut + MIN_REST_SECONDS:
        raise AudioError(f"{u.duration:.2f} s long: too short for a {cut:.2f}-s prompt and "
                         f"{MIN_REST_SECONDS:g} s of original rest")
    wav = load_audio(u.audio, rate, u.start, u.end)
    prompt, rest = wav[: int(cut * rate)], wav[int(cut * rate):]
    feats = {}
    for name, part in (("prompt", prompt), ("rest", rest)):
        try:
            feats[name] = style_features(part, rate)
        except AudioError as e:
            raise AudioError(f"{name}: {e}") from e
    return {"utt": u, "cut": cut, "prompt": prompt, "rest": rest, "feats": feats}


def _measure(clf: StyleClassifier, wav: np.ndarray, rate: int) -> tuple[str, float]:
    """(classifier label, mean log-F0 in semitones) of one clip; raises ``AudioError``."""
    feats = style_features(wav, rate)
    return clf.predict_features(feats)[0], float(feats[0])


def evaluate_style(model_dir: Any, manifest: str | Path, out_dir: str | Path,
                   prompts_per_style: int = 10, prompt_seconds: float = 3.0,
                   continuation_seconds: float = 4.0, samples: int = 3, seed: int = 0,
                   classifier_fraction: float = 0.5, classifier: str | Path | None = None,
                   temperature: float = 1.0, min_seconds: float = 1.0,
                   asr_lm: str = "domain", vocoder: str | Path | None = None,
                   device: str | None = None, batch_size: int = 8,
                   progress: bool = True) -> dict:
    """Run the style benchmark of ``model_dir`` on the styled utterances of ``manifest``.

    The manifest's labelled utterances are split by :func:`split_labelled`; the classifier is
    fitted on the first part (saved under ``out_dir/classifier``) unless ``classifier`` names
    a fitted one. Up to ``prompts_per_style`` utterances of each style of the second part are
    cut at :func:`prompt_cut` and continued ``samples`` times (at least ``min_seconds``, at most
    ``continuation_seconds``). Writes ``style.json``, ``style.md``, ``f0_<style>.png`` and
    ``audio/`` under ``out_dir`` and returns the JSON's content. A prompt that cannot be used
    (too short, unvoiced prompt or rest) is skipped and listed; so is a sample that came out
    empty or unvoiced.
    """
    from speechlm.audio import save_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.evaluate.scoring import load_model
    from speechlm.generate.continuation import continue_speech_batch, resolve_vocoder, resynthesize
    from speechlm.models.sampling import Sampling
    from speechlm.progress import progress_bar

    if samples < 1 or prompts_per_style < 1:
        raise SpeechLMError(f"samples and prompts_per_style must be >= 1, got {samples} and "
                            f"{prompts_per_style}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    utts = [u for u in read_manifest(manifest) if u.style is not None]
    unknown = sorted({u.style for u in utts} - set(STYLES))
    if unknown or not utts:
        raise SpeechLMError(f"{manifest}: styles {unknown or 'none'} given; eval style needs "
                            f"utterances labelled with 'style' among {', '.join(STYLES)}")
    speech_lm = load_model(model_dir, device)
    voc = resolve_vocoder(speech_lm, vocoder)
    tok = speech_lm.speech_tokenizer
    rate, voc_rate = int(tok.sample_rate), int(voc.sample_rate)
    fit_part, prompt_part = split_labelled(utts, classifier_fraction, seed)

    fit_skipped: list[dict] = []
    if classifier is not None:
        clf = StyleClassifier.load(classifier)
    else:
        clf, fit_skipped = _fit_classifier(fit_part, rate, progress)
        clf.save(out / "classifier")

    # prompts: the first prompts_per_style usable candidates of each style, in split order
    prompts, skipped = [], []
    for style in STYLES:
        taken = 0
        for u in (u for u in prompt_part if u.style == style):
            if taken == prompts_per_style:
                break
            try:
                prompts.append(_prepare(u, rate, prompt_seconds))
                taken += 1
            except SpeechLMError as e:
                skipped.append({"id": u.id, "style": style, "reason": f"{u.audio}: {e}"})
                if progress:
                    print(f"skipped prompt {u.id}: {e}", file=sys.stderr)
    if not prompts:
        raise SpeechLMError(f"{manifest}: no usable prompt (reasons: "
                            f"{[s['reason'] for s in skipped][:3]})")

    # K continuations of every prompt in one batched call, sample-major: conts[k * n + i]
    n = len(prompts)
    conts = continue_speech_batch(
        speech_lm, [p["prompt"] for p in prompts] * samples, rate,
        Sampling(continuation_seconds, temperature, seed=seed,
                 min_seconds=min(min_seconds, continuation_seconds)),
        vocoder=voc, batch_size=batch_size)
    asr = _transcriber(asr_lm, utts, out)
    rest_texts = asr.transcribe_batch([p["rest"] for p in prompts], rate, progress=progress)

    rows, to_transcribe = [], []  # (sample row, audio) of every scored continuation
    for i, p in enumerate(progress_bar(prompts, unit="prompt", desc="style",
                                       disable=not progress)):
        u = p["utt"]
        save_audio(out / "audio" / f"{u.id}_prompt.wav", p["prompt"], rate)
        row = {"id": u.id, "speaker": u.speaker, "style": u.style, "text": u.text,
               "prompt_seconds": round(p["cut"], 4),
               "rest_seconds": round(len(p["rest"]) / rate, 4),
               "prompt_audio": f"audio/{u.id}_prompt.wav",
               "prompt_f0_st": float(p["feats"]["prompt"][0]),
               "rest_f0_st": float(p["feats"]["rest"][0]),
               "rest_audio_label": clf.predict_features(p["feats"]["rest"])[0],
               "rest_transcript": rest_texts[i], "rest_text_label": label_of_text(rest_texts[i]),
               "resynth_audio_label": None, "resynth_f0_st": None, "resynth_error": None}
        try:
            resynth = resynthesize(tok, voc, p["rest"], rate)[1]
            row["resynth_audio_label"], row["resynth_f0_st"] = _measure(clf, resynth, voc_rate)
        except SpeechLMError as e:
            row["resynth_error"] = str(e)
        row["samples"] = []
        for k in range(samples):
            c = conts[k * n + i]
            s = {"sample": k, "seconds": round(len(c.audio) / voc_rate, 4),
                 "stopped_at_eos": c.stopped_at_eos}
            try:
                if not len(c.audio):
                    raise AudioError("the model ended the continuation at once")
                s["audio_label"], s["f0_st"] = _measure(clf, c.audio, voc_rate)
            except AudioError as e:
                row["samples"].append(s | {"skipped": str(e)})
                continue
            s["audio"] = f"audio/{u.id}_cont{k}.wav"
            save_audio(out / s["audio"], c.audio, voc_rate)
            row["samples"].append(s)
            to_transcribe.append((s, c.audio))
        rows.append(row)
    texts = asr.transcribe_batch([a for _, a in to_transcribe], voc_rate, progress=progress)
    for (s, _), text in zip(to_transcribe, texts, strict=True):
        s |= {"transcript": text, "text_label": label_of_text(text)}

    _plot_first_of_each_style(rows, prompts, conts, out, rate, voc_rate)
    result = {"model": str(speech_lm.dir), "manifest": str(manifest),
              "prompts_per_style": prompts_per_style, "prompt_seconds": prompt_seconds,
              "continuation_seconds": continuation_seconds, "min_seconds": min_seconds,
              "samples": samples, "seed": seed, "temperature": temperature,
              "classifier_fraction": classifier_fraction, "asr_lm": asr_lm,
              "classifier": {"path": str(classifier or out / "classifier"),
                             "fitted_here": classifier is None, "classes": clf.classes,
                             "n_fit_part": len(fit_part), "skipped": fit_skipped, **clf.info},
              "summary": summarise(rows, clf.classes), "prompts": rows, "skipped": skipped}
    (out / "style.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(out / "style.md", result)
    return result


def _plot_first_of_each_style(rows: list[dict], prompts: list[dict], conts: list, out: Path,
                              rate: int, voc_rate: int) -> None:
    """``f0_<style>.png``: the first prompt of each style with its first scored sample."""
    n = len(prompts)
    done = set()
    for i, row in enumerate(rows):
        scored = [s["sample"] for s in row["samples"] if "skipped" not in s]
        if row["style"] in done or not scored:
            continue
        done.add(row["style"])
        plot_f0_contours(prompts[i]["prompt"], conts[scored[0] * n + i].audio, rate,
                         out / f"f0_{row['style']}.png",
                         f"{row['style']}: {row['id']}, sample {scored[0]}", voc_rate)


def summarise(rows: Sequence[dict], classes: Sequence[str]) -> dict:
    """Every figure of ``style.json``'s ``summary``, computed from its per-prompt rows."""
    scored = [(r, s) for r in rows for s in r["samples"] if "skipped" not in s]
    with_samples = [r for r in rows if any("skipped" not in s for s in r["samples"])]
    truth = [r["style"] for r in rows]
    majority = max(truth.count(t) for t in set(truth)) / len(truth) if truth else None

    def sample_f0(r: dict) -> list[float]:
        return [s["f0_st"] for s in r["samples"] if "skipped" not in s]

    resynth = [r for r in rows if r["resynth_f0_st"] is not None]
    labels = list(dict.fromkeys([*STYLES, *classes]))
    return {
        "n_prompts": len(rows), "n_samples_scored": len(scored),
        "n_samples_skipped": sum(len(r["samples"]) for r in rows) - len(scored),
        "style_accuracy": _rate([(s["audio_label"], r["style"]) for r, s in scored]),
        "sentiment_accuracy": _rate([(s["text_label"], r["style"]) for r, s in scored]),
        "rest_style_accuracy": _rate([(r["rest_audio_label"], r["style"]) for r in rows]),
        "resynth_style_accuracy": _rate([(r["resynth_audio_label"], r["style"]) for r in rows]),
        "rest_sentiment_accuracy": _rate([(r["rest_text_label"], r["style"]) for r in rows]),
        "chance": 1.0 / len(classes), "majority_rate": majority,
        # one point per prompt: its mean log-F0 against its samples' average mean log-F0
        "f0_corr": _pearson([r["prompt_f0_st"] for r in with_samples],
                            [np.mean(sample_f0(r)) for r in with_samples]),
        "rest_f0_corr": _pearson([r["prompt_f0_st"] for r in rows],
                                 [r["rest_f0_st"] for r in rows]),
        "resynth_f0_corr": _pearson([r["prompt_f0_st"] for r in resynth],
                                    [r["resynth_f0_st"] for r in resynth]),
        "f0_min_mae_st": float(np.mean([min(abs(f - r["rest_f0_st"]) for f in sample_f0(r))
                                        for r in with_samples])) if with_samples else None,
        "f0_mean_mae_st": float(np.mean([abs(s["f0_st"] - r["rest_f0_st"])
                                         for r, s in scored])) if scored else None,
        "resynth_f0_mae_st": float(np.mean([abs(r["resynth_f0_st"] - r["rest_f0_st"])
                                            for r in resynth])) if resynth else None,
        "by_style": {t: {"n_prompts": truth.count(t),
                         "style_accuracy": _rate([(s["audio_label"], t) for r, s in scored
                                                  if r["style"] == t]),
                         "sentiment_accuracy": _rate([(s["text_label"], t) for r, s in scored
                                                      if r["style"] == t])}
                     for t in labels if t in truth},
        "confusion": {
            "continuation_audio": _confusion([(r["style"], s["audio_label"])
                                              for r, s in scored], labels),
            "continuation_text": _confusion([(r["style"], s["text_label"])
                                             for r, s in scored], labels),
            "rest_audio": _confusion([(r["style"], r["rest_audio_label"]) for r in rows], labels),
            "resynth_audio": _confusion([(r["style"], r["resynth_audio_label"]) for r in rows],
                                        labels),
            "rest_text": _confusion([(r["style"], r["rest_text_label"]) for r in rows], labels)},
    }


def write_markdown(path: Path, result: dict) -> None:
    """``style.md``: headline figures beside their controls, per style, confusions, prompts."""
    from speechlm.evaluate.report import markdown_table

    s, clf = result["summary"], result["classifier"]
    cv = (clf.get("cross_validation") or {}).get("accuracy")
    md = ["# Style keeping", "",
          f"{s['n_prompts']} prompts x {result['samples']} samples ({s['n_samples_scored']} "
          f"scored, {s['n_samples_skipped']} skipped); {len(result['skipped'])} prompts "
          f"skipped; model: {result['model']}; manifest: {result['manifest']}", "",
          markdown_table(["figure", "continuation", "original rest", "resynthesised rest"], [
              ["S->S style accuracy (audio classifier)", s["style_accuracy"],
               s["rest_style_accuracy"], s["resynth_style_accuracy"]],
              ["sentiment accuracy (transcript)", s["sentiment_accuracy"],
               s["rest_sentiment_accuracy"], None],
              ["mean log-F0 correlation with the prompt", s["f0_corr"], s["rest_f0_corr"],
               s["resynth_f0_corr"]],
              ["mean log-F0 MAE to the original rest (st): min over samples / mean",
               f"{_num(s['f0_min_mae_st'])} / {_num(s['f0_mean_mae_st'])}", 0.0,
               s["resynth_f0_mae_st"]]]), "",
          f"Chance {s['chance']:.4f}; majority-class rate {_num(s['majority_rate'])}; "
          f"classifier: {', '.join(clf['classes'])}, leave-one-speaker-out accuracy "
          f"{_num(cv)} ({'fitted here' if clf['fitted_here'] else 'loaded'} from "
          f"{clf['path']}).", "", "## By style", "",
          markdown_table(["style", "prompts", "style accuracy", "sentiment accuracy"],
                         [[k, v["n_prompts"], v["style_accuracy"], v["sentiment_accuracy"]]
                          for k, v in s["by_style"].items()]), ""]
    for name, table in s["confusion"].items():
        labels = list(table)
        md += [f"## Confusion: {name.replace('_', ' ')} (rows: prompt style)", "",
               markdown_table(["", *labels], [[t, *(table[t][p] for p in labels)]
                                              for t in labels]), ""]
    md += ["## Prompts", "", markdown_table(
        ["id", "style", "rest label", "continuation labels (audio)", "continuation labels (text)"],
        [[r["id"], r["style"], r["rest_audio_label"],
          " ".join(x.get("audio_label", "-") for x in r["samples"]),
          " ".join(x.get("text_label", "-") for x in r["samples"])] for r in result["prompts"]]),
        ""]
    if result["skipped"]:
        md += ["## Skipped prompts", "", markdown_table(
            ["id", "style", "reason"], [[x["id"], x["style"], x["reason"].replace("|", "\\|")]
                                        for x in result["skipped"]]), ""]
    path.write_text("\n".join(md))


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"
