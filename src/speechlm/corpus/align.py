"""Word times for transcribed speech: a spoken reference of the transcript, aligned by DTW.

Interleaved speech-text training (SpiRit-LM, SUTLM) and the spoken-written similarity need
each word's start and end. The synthetic corpus has them; an imported corpus (LibriSpeech, a
folder of clips with transcripts, a HF dataset) has only the text. ``speechlm corpus align``
adds them: espeak-ng speaks the transcript with word events (so the reference's word times
are exact), the reference is re-spoken at the clip's speaking rate, and dynamic time warping
of MFCC frames (100 Hz, per-utterance mean/variance normalised) maps each reference boundary
onto the clip, as the aeneas aligner does for audiobooks. It needs no acoustic model, so it
runs offline on any language espeak speaks; a forced aligner with an acoustic model (Montreal
Forced Aligner, a CTC model) is more accurate on spontaneous speech, and its CTM or TextGrid
words can be put in the manifest's ``words`` directly instead.

Measured on held-out synthetic voices (docs/corpus.md): median boundary error 3 ms, 92% within
50 ms. Synthetic speech shares espeak's own timing model, so expect larger errors on recordings
of people; no such recordings are available here to measure them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from speechlm.corpus.manifest import Alignment, Utterance, read_manifest, write_manifest
from speechlm.errors import SpeechLMError

FRAME_RATE = 100.0  # DTW frames per second: 10-ms boundaries
REF_VOICE = "en-us"
REF_RATE = 175  # espeak's default words per minute, the first pass's rate
RATE_RANGE = (80, 450)  # what espeak speaks intelligibly
MAX_SECONDS = 120  # longer clips are refused: DTW holds (clip frames x reference frames)
PAUSE_LEVEL = 0.25  # a frame this far from the noise floor towards the speech peak is quiet
MIN_PAUSE = 0.05  # seconds of quiet at a word's edge that make a pause
LEAD_PAUSE = 0.15  # ... at a word's start (longer than a stop's closure)
CLOSURE = 0.02  # seconds of quiet kept before a word that follows a pause
PARTIAL = "partial.jsonl"  # finished rows of an interrupted job, read back on resume


def transcript_words(text: str) -> list[str]:
    """The words of a transcript: whitespace tokens with punctuation stripped (inner
    apostrophes and hyphens kept), case kept."""
    words = []
    for tok in text.split():
        tok = re.sub(r"^[^\w]+|[^\w]+$", "", tok)
        if tok:
            words.append(tok)
    return words


class Aligner:
    """Aligns transcripts to clips; one per process (it holds the espeak handle)."""

    def __init__(self, voice: str = REF_VOICE, sample_rate: int = 16000) -> None:
        from speechlm.corpus.espeak import Espeak
        from speechlm.tokenizers.frontends import make_frontend

        self.voice = voice
        self.sample_rate = sample_rate
        self.espeak = Espeak.get()
        self.frontend = make_frontend("mfcc", {"frame_rate": FRAME_RATE,
                                               "sample_rate": sample_rate})

    def align(self, wav: np.ndarray, text: str) -> Alignment:
        """``(word, start, end)`` in seconds of ``wav`` (mono, ``sample_rate``) for each word
        of ``text``. Raises ``SpeechLMError`` when there is nothing to align."""
        import librosa

        words = transcript_words(text)
        if not words:
            raise SpeechLMError("the transcript has no words")
        sr = self.sample_rate
        if wav.size == 0 or not np.any(wav):
            raise SpeechLMError("the clip is silent")
        if len(wav) > MAX_SECONDS * sr:  # DTW's cost matrix grows with the square
            raise SpeechLMError(f"the clip is {len(wav) / sr:.0f}s long, over {MAX_SECONDS}s: "
                                "cut it into utterances first (manifest start/end)")
        # the speech: from the first to the last frame above the noise floor (a level relative
        # to the peak, as librosa's trim uses, keeps leading noise in a noisy recording)
        quiet = _quiet_frames(wav, sr)
        loud = np.flatnonzero(~quiet)
        if loud.size == 0:
            raise SpeechLMError("no speech found: the clip has no frame above its noise floor")
        hop = int(sr / FRAME_RATE)
        a, b = max(loud[0] - 2, 0) * hop, min((loud[-1] + 1) * hop, len(wav))
        clip = wav[a:b].astype(np.float32)
        # lower case: espeak spells some all-capital words letter by letter (LibriSpeech's
        # transcripts are upper case); the labels keep the transcript's case
        spoken = " ".join(w.lower() for w in words)
        ref = self._speak(spoken, REF_RATE)
        span = ref.words[-1][2] - ref.words[0][1]
        rate = REF_RATE * span / max(len(clip) / sr, 1e-3)
        ref = self._speak(spoken, int(np.clip(rate, *RATE_RANGE)))
        if len(ref.words) != len(words):
            raise SpeechLMError(f"espeak spoke {len(ref.words)} words for the transcript's "
                                f"{len(words)}")
        r0, r1 = ref.words[0][1], ref.words[-1][2]
        refwav = ref.wav[int(r0 * sr):max(int(r1 * sr), int(r0 * sr) + 1)].astype(np.float32)
        x, y = (f.numpy() for f in self.frontend([clip, refwav]))
        if len(x) < 2 or len(y) < 2:
            raise SpeechLMError(f"the clip's speech is too short to align ({len(clip) / sr:.3f}s)")
        _, path = librosa.sequence.dtw(x.T, y.T, metric="euclidean")
        # first clip frame matched to each reference frame (the path runs end -> start)
        first = np.full(len(y), len(x) - 1)
        np.minimum.at(first, path[:, 1], path[:, 0])

        def clip_time(t: float) -> float:
            j = min(max(int(round((t - r0) * FRAME_RATE)), 0), len(y) - 1)
            if t >= r1:  # the end of the last word is the end of the speech
                return b / sr
            return a / sr + first[j] / FRAME_RATE

        out = []
        for label, (_, start, end) in zip(words, ref.words, strict=True):
            s, e = clip_time(start), clip_time(end)
            s, e = _after_pause(s, e, quiet), _before_pause(s, e, quiet)
            out.append((label, round(s, 4), round(max(e, s), 4)))
        return out

    def _speak(self, text: str, rate: int):
        spoken = self.espeak.speak(text, self.voice, rate=rate, sample_rate=self.sample_rate)
        if not spoken.words:
            raise SpeechLMError("espeak spoke no word of the transcript")
        return spoken


def _quiet_frames(wav: np.ndarray, sr: int) -> np.ndarray:
    """Per 10-ms frame of ``wav``: True where it is near the clip's noise floor."""
    from speechlm.audio import frame_db

    db = frame_db(wav, int(sr / FRAME_RATE))
    if db.size == 0:
        return np.zeros(0, bool)
    peak = np.percentile(db, 95)
    floor = max(np.percentile(db, 5), peak - 60.0)
    return db < floor + PAUSE_LEVEL * (peak - floor)


def _before_pause(start: float, end: float, quiet: np.ndarray) -> float:
    """``end`` moved back over a pause it ran into (at least ``MIN_PAUSE`` of quiet frames).

    The reference is spoken without pauses, so DTW gives a pause to the word before it; word
    times, as in the synthetic corpus and forced aligners, leave pauses between words. A
    shorter quiet stretch is kept: it may be a stop's closure inside the word.
    """
    first, last = int(round(start * FRAME_RATE)), int(round(end * FRAME_RATE))
    j = min(last, len(quiet))
    while j > first + 1 and quiet[j - 1]:
        j -= 1
    return j / FRAME_RATE if last - j >= MIN_PAUSE * FRAME_RATE else end


def _after_pause(start: float, end: float, quiet: np.ndarray) -> float:
    """``start`` moved forward over a pause DTW gave to the start of this word (as
    :func:`_before_pause` does for the word before). Only a quiet stretch of ``LEAD_PAUSE`` or
    more counts, and ``CLOSURE`` of it is kept: a stop's silent closure begins its word."""
    first, last = int(round(start * FRAME_RATE)), int(round(end * FRAME_RATE))
    j = first
    while j < min(last, len(quiet)) - 1 and quiet[j]:
        j += 1
    if j - first < LEAD_PAUSE * FRAME_RATE:
        return start
    return max(start, j / FRAME_RATE - CLOSURE)


_ALIGNER: Aligner | None = None


def _init(voice: str, parent: int | None = None) -> None:
    global _ALIGNER
    if parent is not None:  # a pool worker: it ends with the job
        from speechlm.tokenizers.job import die_with_parent

        die_with_parent(parent)
    _ALIGNER = Aligner(voice)


def _align_row(utt: Utterance) -> tuple[Utterance, str | None]:
    """The row with ``words``, or the row and why it could not be aligned."""
    from speechlm.audio import AudioError, load_audio

    assert _ALIGNER is not None
    if not utt.text or not utt.text.strip():
        return utt, "no transcript ('text') to align"
    try:
        wav = load_audio(utt.audio, _ALIGNER.sample_rate, start=utt.start, end=utt.end)
        return replace(utt, words=_ALIGNER.align(wav, utt.text)), None
    except (AudioError, SpeechLMError) as e:
        return utt, str(e)


def align_manifest(manifest: str | Path, out_dir: str | Path, workers: int = 1,
                   voice: str = REF_VOICE, realign: bool = False) -> dict:
    """``out_dir/manifest.jsonl``: ``manifest`` with ``words`` on every row that could be
    aligned; rows that could not (no transcript, unreadable audio, silence, a transcript espeak
    cannot speak) are kept without words and listed in ``out_dir/errors.jsonl``. Rows that
    already have words keep them unless ``realign``. Returns counts (also ``summary.json``).

    Finished rows are appended to ``out_dir/partial.jsonl`` as they come, so a killed job
    resumes where it stopped.
    """
    from speechlm.progress import progress_bar

    manifest, out = Path(manifest), Path(out_dir)
    utts = read_manifest(manifest)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, tuple[Utterance, str | None]] = {}
    partial = out / PARTIAL
    if partial.exists():
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # the last line of a killed job may be cut short
                continue
            done[rec["id"]] = (rec["words"], rec["error"])
    todo = [u for u in utts if u.id not in done and (realign or not u.words)]
    with open(partial, "a", encoding="utf-8") as f, \
            progress_bar(total=sum(u.duration for u in todo), unit="s",
                         desc="aligning words") as bar:
        for utt, error in _run(todo, workers, voice):
            done[utt.id] = (utt.words if error is None else None, error)
            f.write(json.dumps({"id": utt.id, "words": done[utt.id][0], "error": error},
                               ensure_ascii=False) + "\n")
            f.flush()
            bar.update(utt.duration)
    rows, errors, kept = [], [], 0
    for u in utts:
        if u.id in done:
            words, error = done[u.id]
            if error is not None:
                errors.append({"id": u.id, "audio": u.audio, "error": error})
            rows.append(replace(u, words=[tuple(w) for w in words]) if words else u)
        else:
            kept += 1
            rows.append(u)
    write_manifest(out / "manifest.jsonl", rows)
    with open(out / "errors.jsonl", "w", encoding="utf-8") as f:
        for err in errors:
            f.write(json.dumps(err, ensure_ascii=False) + "\n")
    summary = {"manifest": str(manifest.resolve()), "utterances": len(utts),
               "aligned": len(utts) - kept - len(errors), "kept_words": kept,
               "errors": len(errors), "voice": voice, "method": "espeak-ng reference + DTW"}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    partial.unlink()
    return summary


def _run(todo: list[Utterance], workers: int, voice: str
         ) -> Iterator[tuple[Utterance, str | None]]:
    if workers <= 1 or len(todo) < 2:
        _init(voice)
        yield from map(_align_row, todo)
        return
    import multiprocessing as mp
    import os

    # spawn: a forked child would share the parent's espeak and torch thread state
    with mp.get_context("spawn").Pool(workers, initializer=_init,
                                      initargs=(voice, os.getpid())) as pool:
        yield from pool.imap(_align_row, todo, chunksize=8)
