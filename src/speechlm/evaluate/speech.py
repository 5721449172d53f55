"""Quality of generated or resynthesised speech against its reference utterances.

``speechlm eval speech --audio DIR --manifest M --out S`` matches every ``DIR/<id>.wav`` to the
manifest utterance ``<id>`` and scores it, per file and in aggregate, with up to four groups:

- ``wer``: WER and CER of pocketsphinx transcripts (by default with a bigram LM of the manifest's
  own transcripts, :func:`speechlm.evaluate.domain_lm.domain_transcriber`), beside the same ASR
  on the reference audio: the ceiling;
- ``speaker``: cosine similarity of resemblyzer VoiceEncoder embeddings of the file and of its
  reference, beside two baselines on original audio: the reference against another utterance of
  its speaker, and against an utterance of another speaker;
- ``mos``: DNSMOS (P.835 overall, signal, background; P.808) from ``speechmos``, of the file and
  of its reference;
- ``intrusive``: for files as long as their reference (within ``length_tolerance``): STOI, PESQ
  (wideband), F0 RMSE in cents, F0 correlation and voicing decision error.

Every metric runs at 16 kHz on audio read by :mod:`speechlm.audio`; every model ships in its
wheel, so nothing is downloaded. A file that cannot be scored is skipped and listed with its
reason; the others are scored.
"""

from __future__ import annotations

import json
import random
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from speechlm import speaker
from speechlm.corpus.manifest import Utterance
from speechlm.errors import AudioError, SpeechLMError

SAMPLE_RATE = 16000  # pocketsphinx, resemblyzer, DNSMOS and wideband PESQ all work at 16 kHz
SILENCE_DBFS = -60.0  # RMS below this is silence: nothing for any metric to measure
SPEAKER_MIN_SECONDS = speaker.MIN_SECONDS
# DNSMOS scores 9 s windows and loops a shorter clip to fill one; a clip under a second would be
# repeated ten times and scored as that loop
MOS_MIN_SECONDS = 1.0
BASELINE_TRIES = 5  # candidate utterances tried per baseline before giving it up for a file


@dataclass
class SpeechOptions:
    """What the metric groups are built from."""

    utterances: list[Utterance]
    out_dir: Path
    asr_lm: str = "domain"
    length_tolerance: float = 0.1
    seed: int = 0


@dataclass
class Clip:
    """A generated file and its reference utterance, both mono float32 at ``SAMPLE_RATE``."""

    path: Path
    wav: np.ndarray
    utt: Utterance
    ref: np.ndarray


# -- metrics on arrays ----------------------------------------------------------------------
def _number(x: object) -> float | None:
    """A finite float, or None: NaN is not JSON and means 'undefined' here."""
    x = float(x)
    return x if np.isfinite(x) else None


def _mean(rows: Sequence[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def stoi_score(reference: np.ndarray, degraded: np.ndarray) -> float | None:
    """STOI (pystoi, 0..1) of equal-length 16 kHz signals; None when too little speech remains."""
    from pystoi import stoi

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = stoi(reference, degraded, SAMPLE_RATE)
    # under 30 frames (~0.4 s) left after pystoi drops silent frames, it warns and returns a
    # placeholder 1e-5 instead of a score
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return None
    return _number(value)


def pesq_wb(reference: np.ndarray, degraded: np.ndarray) -> float | None:
    """Wideband PESQ (P.862.2 MOS-LQO, 1.04..4.64) of 16 kHz signals; None where undefined."""
    from pesq import PesqError, pesq

    try:
        return _number(pesq(SAMPLE_RATE, reference, degraded, "wb"))
    except PesqError:  # under 0.25 s, or no utterance found in the reference
        return None


def f0_agreement(reference: np.ndarray, degraded: np.ndarray) -> dict:
    """F0 of ``degraded`` against ``reference`` (Praat, 100 frames/s, by ``extract_f0``).

    ``f0_rmse_cents`` (RMS of 1200 log2(f/f_ref)) and ``f0_corr`` (Pearson, in Hz) over the frames
    both voice; ``vde``, the voicing decision error: the share of frames voiced in one signal
    and not in the other. Undefined figures are None.
    """
    from speechlm.tokenizers.prosody import extract_f0

    f_ref, f_deg = extract_f0(reference, SAMPLE_RATE), extract_f0(degraded, SAMPLE_RATE)
    n = min(len(f_ref), len(f_deg))
    f_ref, f_deg = f_ref[:n], f_deg[:n]
    both = (f_ref > 0) & (f_deg > 0)
    out = {"vde": _number(np.mean((f_ref > 0) != (f_deg > 0))) if n else None,
           "f0_rmse_cents": None, "f0_corr": None, "f0_frames": int(both.sum())}
    if both.sum() >= 2:
        cents = 1200.0 * np.log2(f_deg[both] / f_ref[both])
        out["f0_rmse_cents"] = _number(np.sqrt(np.mean(cents ** 2)))
        if f_ref[both].std() > 0 and f_deg[both].std() > 0:
            out["f0_corr"] = _number(np.corrcoef(f_ref[both], f_deg[both])[0, 1])
    return out


# -- metric groups: one protocol, one registry ----------------------------------------------
class MetricGroup(Protocol):
    """What ``evaluate_speech`` asks of a metric group; each is built from ``SpeechOptions``."""

    min_seconds: float  # shortest file (and reference) the group can score
    columns: list[tuple[str, str]]  # (per-file key, header) in speech.md's table of files
    summary: list[tuple[str, str | None, str | None]]  # (label, key, reference figure's key)

    def score(self, clip: Clip) -> dict:
        """Per-file figures (None where undefined); raises ``AudioError`` to skip the file."""

    def aggregate(self, rows: Sequence[dict]) -> dict:
        """Figures over the rows of all scored files."""


class AsrMetric:
    """WER and CER of the file's transcript and, as the ceiling, of its reference audio's."""

    min_seconds = 0.0
    columns = [("wer", "WER"), ("ceiling_wer", "ceiling WER")]
    summary = [("WER (reference: the ceiling)", "wer", "ceiling_wer"),
               ("CER (reference: the ceiling)", "cer", "ceiling_cer")]

    def __init__(self, opts: SpeechOptions) -> None:
        from speechlm.evaluate.asr import default_transcriber, normalize_text

        if opts.asr_lm == "generic":
            self.asr = default_transcriber()
        elif opts.asr_lm == "domain":
            from speechlm.evaluate.domain_lm import domain_transcriber

            texts = [u.text for u in opts.utterances if u.text and normalize_text(u.text)]
            if not texts:
                raise SpeechLMError("eval speech: the manifest has no transcripts to build the "
                                    "ASR's LM from or to score WER against; leave out 'wer'")
            # written beside the results, so the LM the figures came from can be inspected
            self.asr = domain_transcriber(texts, opts.out_dir / "asr_lm")
        else:
            raise SpeechLMError(f"unknown asr_lm '{opts.asr_lm}'; known: domain, generic")

    def score(self, clip: Clip) -> dict:
        from speechlm.evaluate.asr import cer, normalize_text, wer

        hyp = self.asr.transcribe(clip.wav, SAMPLE_RATE)
        ref_hyp = self.asr.transcribe(clip.ref, SAMPLE_RATE)
        text = clip.utt.text or ""
        row = {"text": text, "transcript": hyp, "reference_transcript": ref_hyp}
        if not normalize_text(text):  # no reference words: WER is undefined
            return row | dict.fromkeys(("wer", "cer", "ceiling_wer", "ceiling_cer"))
        return row | {"wer": wer(text, hyp), "cer": cer(text, hyp),
                      "ceiling_wer": wer(text, ref_hyp), "ceiling_cer": cer(text, ref_hyp)}

    def aggregate(self, rows: Sequence[dict]) -> dict:
        """Corpus WER/CER (total edits over total reference words/characters)."""
        from speechlm.evaluate.asr import cer, wer

        rows = [r for r in rows if r["wer"] is not None]
        if not rows:
            return {"wer": None, "cer": None, "ceiling_wer": None, "ceiling_cer": None,
                    "wer_files": 0}
        texts = [r["text"] for r in rows]
        hyps, ceil = [r["transcript"] for r in rows], [r["reference_transcript"] for r in rows]
        return {"wer": wer(texts, hyps), "cer": cer(texts, hyps), "ceiling_wer": wer(texts, ceil),
                "ceiling_cer": cer(texts, ceil), "wer_files": len(rows)}


class SpeakerMetric:
    """Cosine similarity of resemblyzer embeddings: file vs reference, and two baselines."""

    min_seconds = SPEAKER_MIN_SECONDS
    columns = [("speaker_similarity", "speaker sim.")]
    summary = [("speaker similarity (reference: same speaker, another utterance)",
                "speaker_similarity", "same_speaker_similarity"),
               ("speaker similarity, another speaker (original audio)", None,
                "different_speaker_similarity")]

    def __init__(self, opts: SpeechOptions) -> None:
        self.by_speaker: dict[str, list[Utterance]] = {}
        for u in opts.utterances:
            if u.speaker is not None:
                self.by_speaker.setdefault(u.speaker, []).append(u)
        self.seed = opts.seed
        self._cache: dict[str, np.ndarray | AudioError] = {}

    def embed(self, wav: np.ndarray, where: str) -> np.ndarray:
        """The unit-norm embedding of 16 kHz speech; raises ``AudioError`` when it is too short."""
        from speechlm.speaker import voice_embedding

        return voice_embedding(wav, where, min_seconds=SPEAKER_MIN_SECONDS)

    def _utterance_embedding(self, utt: Utterance, wav: np.ndarray | None = None) -> np.ndarray:
        if utt.id not in self._cache:
            try:
                audio = wav if wav is not None else load_reference(utt)
                self._cache[utt.id] = self.embed(audio, f"reference {utt.audio}")
            except AudioError as e:
                self._cache[utt.id] = e
        hit = self._cache[utt.id]
        if isinstance(hit, AudioError):
            raise hit
        return hit

    def _baseline(self, utt: Utterance, emb: np.ndarray, same: bool) -> tuple[float | None,
                                                                              str | None]:
        """Similarity of ``utt`` to a seeded pick of another utterance of the same (or another)
        speaker, and that utterance's id; (None, None) when there is none to compare with."""
        if utt.speaker is None:
            return None, None
        pool = [u for spk, us in self.by_speaker.items() if (spk == utt.speaker) == same
                for u in us if u.id != utt.id]
        # seeded per utterance: a file's baseline does not depend on which other files are scored
        random.Random(f"{self.seed}:{utt.id}:{same}").shuffle(pool)
        for other in pool[:BASELINE_TRIES]:
            try:
                return float(emb @ self._utterance_embedding(other)), other.id
            except AudioError:
                continue
        return None, None

    def score(self, clip: Clip) -> dict:
        ref = self._utterance_embedding(clip.utt, clip.ref)
        gen = self.embed(clip.wav, str(clip.path))
        same, same_id = self._baseline(clip.utt, ref, same=True)
        other, other_id = self._baseline(clip.utt, ref, same=False)
        return {"speaker_similarity": float(gen @ ref),  # unit vectors: the dot is the cosine
                "same_speaker_similarity": same, "same_speaker_id": same_id,
                "different_speaker_similarity": other, "different_speaker_id": other_id}

    def aggregate(self, rows: Sequence[dict]) -> dict:
        return {k: _mean(rows, k) for k in ("speaker_similarity", "same_speaker_similarity",
                                            "different_speaker_similarity")}


_MOS_KEYS = ("ovrl", "sig", "bak", "p808")


class MosMetric:
    """DNSMOS of the file and of its reference (non-intrusive: each is scored on its own)."""

    min_seconds = MOS_MIN_SECONDS
    columns = [("dnsmos_ovrl", "DNSMOS ovrl")]
    summary = [(f"DNSMOS {k}", f"dnsmos_{k}", f"reference_dnsmos_{k}") for k in _MOS_KEYS]

    def __init__(self, opts: SpeechOptions) -> None:
        from speechmos import dnsmos  # ONNX models ship in the speechmos wheel

        self.dnsmos = dnsmos

    def _scores(self, wav: np.ndarray) -> dict:
        # speechmos refuses samples outside [-1, 1], which resampling can overshoot by a little
        out = self.dnsmos.run(np.clip(wav, -1.0, 1.0), SAMPLE_RATE)
        return {k: _number(out[f"{k}_mos"]) for k in _MOS_KEYS}

    def score(self, clip: Clip) -> dict:
        gen, ref = self._scores(clip.wav), self._scores(clip.ref)
        return {f"dnsmos_{k}": gen[k] for k in _MOS_KEYS} | {
            f"reference_dnsmos_{k}": ref[k] for k in _MOS_KEYS}

    def aggregate(self, rows: Sequence[dict]) -> dict:
        return {f"{side}dnsmos_{k}": _mean(rows, f"{side}dnsmos_{k}")
                for side in ("", "reference_") for k in _MOS_KEYS}


_INTRUSIVE_KEYS = ("stoi", "pesq_wb", "f0_rmse_cents", "f0_corr", "vde")


class IntrusiveMetric:
    """STOI, PESQ and F0 agreement of time-aligned resynthesis with its reference."""

    min_seconds = 0.0
    columns = [("stoi", "STOI"), ("pesq_wb", "PESQ"), ("f0_rmse_cents", "F0 RMSE (cents)"),
               ("vde", "VDE")]
    summary = [("STOI", "stoi", None), ("PESQ (wideband)", "pesq_wb", None),
               ("F0 RMSE (cents)", "f0_rmse_cents", None), ("F0 correlation", "f0_corr", None),
               ("voicing decision error", "vde", None)]

    def __init__(self, opts: SpeechOptions) -> None:
        self.tolerance = opts.length_tolerance

    def score(self, clip: Clip) -> dict:
        diff = (len(clip.wav) - len(clip.ref)) / SAMPLE_RATE
        row = {"length_difference": diff, "aligned": abs(diff) <= self.tolerance}
        if not row["aligned"]:  # not resynthesis of this reference: nothing to align against
            return row | dict.fromkeys((*_INTRUSIVE_KEYS, "f0_frames"))
        n = min(len(clip.wav), len(clip.ref))
        ref, gen = clip.ref[:n], clip.wav[:n]
        return row | {"stoi": stoi_score(ref, gen), "pesq_wb": pesq_wb(ref, gen),
                      **f0_agreement(ref, gen)}

    def aggregate(self, rows: Sequence[dict]) -> dict:
        aligned = [r for r in rows if r["aligned"]]
        return {"n_aligned": len(aligned)} | {k: _mean(aligned, k) for k in _INTRUSIVE_KEYS}


METRICS = {"wer": AsrMetric, "speaker": SpeakerMetric, "mos": MosMetric,
           "intrusive": IntrusiveMetric}


def parse_metrics(spec: str | Sequence[str]) -> list[str]:
    """Metric group names from ``"wer,mos"`` or a list, in registry order; raises on a miss."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise SpeechLMError(f"unknown metric group(s) {unknown or names}; "
                            f"known: {', '.join(METRICS)}")
    return [n for n in METRICS if n in names]


# -- reading a pair -------------------------------------------------------------------------
def load_reference(utt: Utterance) -> np.ndarray:
    """A manifest utterance's audio (its start..end segment) at ``SAMPLE_RATE``."""
    from speechlm.audio import load_audio

    return load_audio(utt.audio, SAMPLE_RATE, start=utt.start, end=utt.end)


def _check_speech(wav: np.ndarray, where: str, min_seconds: float) -> None:
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if rms < 10 ** (SILENCE_DBFS / 20):
        raise AudioError(f"{where}: silent (RMS below {SILENCE_DBFS:g} dBFS)")
    if len(wav) < min_seconds * SAMPLE_RATE:
        raise AudioError(f"{where}: {len(wav) / SAMPLE_RATE:.2f} s long, too short for the "
                         f"chosen metrics (they need {min_seconds:g} s)")


def load_clip(path: Path, utt: Utterance | None, manifest: str | Path,
              min_seconds: float) -> Clip:
    """Read a generated file and its reference; raises a one-line error naming the file at
    fault."""
    from speechlm.audio import audio_info, load_audio

    if utt is None:
        raise SpeechLMError(f"{path}: no utterance '{path.stem}' in {manifest} to compare it "
                            "with (files are matched to manifest ids by name)")
    ref_rate = audio_info(utt.audio).samplerate
    if ref_rate != utt.sample_rate:
        raise AudioError(f"reference {utt.audio} is {ref_rate} Hz but the manifest says "
                         f"{utt.sample_rate} Hz")
    # any rate at or above 16 kHz is resampled; upsampling a lower one would leave the band
    # above its Nyquist frequency empty, which PESQ and DNSMOS score as degradation
    for where, rate in ((str(path), audio_info(path).samplerate),
                        (f"reference {utt.audio}", ref_rate)):
        if rate < SAMPLE_RATE:
            raise AudioError(f"{where}: {rate} Hz, below the {SAMPLE_RATE} Hz the metrics need")
    wav, ref = load_audio(path, SAMPLE_RATE), load_reference(utt)
    _check_speech(wav, str(path), min_seconds)
    _check_speech(ref, f"reference {utt.audio}", min_seconds)
    return Clip(path, wav, utt, ref)


# -- the job --------------------------------------------------------------------------------
def evaluate_speech(audio_dir: str | Path, manifest: str | Path, out_dir: str | Path,
                    metrics: str | Sequence[str] = tuple(METRICS), asr_lm: str = "domain",
                    length_tolerance: float = 0.1, seed: int = 0,
                    progress: bool = True) -> dict:
    """Score every ``*.wav`` of ``audio_dir`` against its reference in ``manifest``.

    Writes ``speech.json`` (settings, ``aggregate``, ``files``, ``skipped``) and ``speech.md``
    under ``out_dir`` and returns the JSON's content. A file that cannot be scored (no
    reference, unreadable, silent, too short, below 16 kHz) is skipped and listed with its
    reason; raises ``SpeechLMError`` when none could be scored (after writing the reports).
    """
    from speechlm.corpus.manifest import read_manifest
    from speechlm.progress import progress_bar

    names = parse_metrics(metrics)
    audio_dir, out = Path(audio_dir), Path(out_dir)
    if not audio_dir.is_dir():
        raise SpeechLMError(f"{audio_dir}: not a folder of audio files")
    files = sorted(p for p in audio_dir.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    if not files:
        raise SpeechLMError(f"{audio_dir}: no .wav files to score")
    utts = read_manifest(manifest)
    by_id = {u.id: u for u in utts}
    out.mkdir(parents=True, exist_ok=True)
    opts = SpeechOptions(utts, out, asr_lm, length_tolerance, seed)
    groups: list[MetricGroup] = [METRICS[n](opts) for n in names]
    min_seconds = max(g.min_seconds for g in groups)

    rows: list[dict] = []
    skipped: list[dict] = []
    bar = progress_bar(files, unit="file", desc="speech", disable=not progress)
    for path in bar:
        try:
            row = _score(load_clip(path, by_id.get(path.stem), manifest, min_seconds), groups)
        except Exception as e:  # noqa: BLE001 - one bad file is listed, the others still scored
            skipped.append({"id": path.stem, "file": str(path), "reason": _reason(e, path)})
            if progress:
                bar.write(f"skipped {skipped[-1]['reason']}", file=sys.stderr)
            continue
        rows.append(row)

    aggregate = {"n_files": len(files), "n_scored": len(rows), "n_skipped": len(skipped)}
    for g in groups:
        aggregate |= g.aggregate(rows)
    scored = {r["id"] for r in rows} | {s["id"] for s in skipped}
    result = {"audio": str(audio_dir), "manifest": str(manifest), "metrics": names,
              "asr_lm": asr_lm if "wer" in names else None, "length_tolerance": length_tolerance,
              "seed": seed, "sample_rate": SAMPLE_RATE,
              "references_without_audio": sum(u.id not in scored for u in utts),
              "aggregate": aggregate, "files": rows, "skipped": skipped}
    (out / "speech.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(out / "speech.md", result, groups)
    if not rows:
        raise SpeechLMError(f"eval speech: none of the {len(files)} files could be scored; "
                            f"reasons in {out / 'speech.json'}")
    return result


def _score(clip: Clip, groups: Sequence[MetricGroup]) -> dict:
    row = {"id": clip.path.stem, "file": str(clip.path), "reference": clip.utt.audio,
           "seconds": len(clip.wav) / SAMPLE_RATE, "reference_seconds": len(clip.ref) / SAMPLE_RATE}
    for g in groups:
        row |= g.score(clip)
    return row


def _reason(e: Exception, path: Path) -> str:
    """One line saying why ``path`` was skipped; it starts with the file, also when its
    reference is the cause."""
    msg = " ".join(str(e).split())
    if not isinstance(e, SpeechLMError):  # a model failing on odd input: say which error
        msg = f"{type(e).__name__}: {msg}"
    return msg if msg.startswith(str(path)) else f"{path}: {msg}"


def score_clips(clips: Sequence[Clip], utterances: Sequence[Utterance], out_dir: str | Path,
                metrics: str | Sequence[str], asr_lm: str = "domain", seed: int = 0
                ) -> list[dict]:
    """Score audio already in memory, each clip against its own ``ref`` (e.g. a resynthesised
    prompt against the prompt): one row per clip, or ``{"id", "file", "skipped": reason}``.

    ``utterances`` give the domain ASR's LM and the speaker baselines' pools; ``out_dir`` keeps
    the ASR's LM.
    """
    opts = SpeechOptions(list(utterances), Path(out_dir), asr_lm, 0.1, seed)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    groups: list[MetricGroup] = [METRICS[n](opts) for n in parse_metrics(metrics)]
    min_seconds = max(g.min_seconds for g in groups)
    rows = []
    for clip in clips:
        try:
            _check_speech(clip.wav, str(clip.path), min_seconds)
            _check_speech(clip.ref, f"reference {clip.utt.audio}", min_seconds)
            rows.append(_score(clip, groups))
        except Exception as e:  # noqa: BLE001 - one bad clip is reported, the others scored
            rows.append({"id": clip.path.stem, "file": str(clip.path),
                         "skipped": _reason(e, clip.path)})
    return rows


def write_markdown(path: Path, result: dict, groups: Sequence[MetricGroup]) -> None:
    """``speech.md``: the aggregate beside its reference figures, each file, the skipped ones."""
    from speechlm.evaluate.report import markdown_table

    agg = result["aggregate"]
    md = ["# Speech quality", "",
          f"{agg['n_scored']} of {agg['n_files']} files scored, {agg['n_skipped']} skipped; "
          f"audio: {result['audio']}; manifest: {result['manifest']}; "
          f"metrics: {', '.join(result['metrics'])}", ""]
    md += [markdown_table(["metric", "generated", "reference / baseline"],
                          [[label, agg.get(key) if key else None, agg.get(ref) if ref else None]
                           for g in groups for label, key, ref in g.summary]), ""]
    if "n_aligned" in agg:
        md += [f"Intrusive metrics over the {agg['n_aligned']} files within "
               f"{result['length_tolerance']:g} s of their reference's length.", ""]
    columns = [c for g in groups for c in g.columns]
    md += ["## Files", "", markdown_table(["id"] + [h for _, h in columns],
                                          [[r["id"]] + [r.get(k) for k, _ in columns]
                                           for r in result["files"]]), ""]
    if result["skipped"]:
        md += ["## Skipped", "", markdown_table(
            ["file", "reason"], [[s["file"], s["reason"].replace("|", "\\|")]
                                 for s in result["skipped"]]), ""]
    path.write_text("\n".join(md))
