"""Importers: existing corpora on disk -> ``DIR/manifest.jsonl`` (+ ``DIR/errors.jsonl``).

Audio is referenced by absolute path, not copied (except a Hugging Face dataset whose audio is
stored inline as bytes: those are written once to ``DIR/audio/``). Every file is checked by
reading it (or only its header with ``check="header"``); files that fail are skipped, counted
and listed in ``DIR/errors.jsonl`` as ``{"audio", "id", "error"}``, and the import finishes.

Formats:
- ``librispeech``: ``SRC/SPEAKER/CHAPTER/*.flac`` with ``SPEAKER-CHAPTER.trans.txt`` lines
  ``<utterance id> <TRANSCRIPT>``;
- ``folder``: audio files anywhere under ``SRC`` (wav, flac, ogg, mp3, aiff, opus) with optional
  same-stem ``.txt`` transcripts; the speaker is the first folder level under ``SRC``, if any;
- ``hf``: a ``datasets`` dataset saved with ``save_to_disk`` with an ``Audio`` column;
- ``dialogue``: two-channel recordings (Fisher-style, one speaker per channel) anywhere under
  ``SRC``, with optional same-stem ``.ctm`` words or Fisher ``.txt`` transcripts: one dialogue
  record per file (``speechlm.corpus.dialogue_import.import_dialogues``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from speechlm.audio import audio_info, load_audio
from speechlm.corpus.manifest import Utterance, write_manifest
from speechlm.errors import AudioError, SpeechLMError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus"}
FORMATS = ("librispeech", "folder", "hf", "dialogue")
TEXT_COLUMNS = ("text", "transcription", "sentence", "normalized_text", "transcript")
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id")


@dataclass
class Candidate:
    """An utterance found in the source before its audio is checked."""

    id: str
    audio: Path
    text: str | None = None
    speaker: str | None = None


def check_audio(path: Path, check: str, max_seconds: float | None) -> tuple[float, int]:
    """(duration s, sample rate) of a usable file; raises ``AudioError`` naming the cause."""
    info = audio_info(path)
    if info.frames <= 0:
        raise AudioError(f"{path}: zero-length audio")
    if check == "full":  # decode everything: finds corrupt data and NaN/Inf, not just headers
        load_audio(path, sample_rate=int(info.samplerate), max_seconds=max_seconds)
    elif max_seconds is not None and info.frames / info.samplerate > max_seconds:
        raise AudioError(f"{path}: {info.frames / info.samplerate:.1f}s long, over the limit "
                         f"of {max_seconds:g}s")
    return info.frames / info.samplerate, int(info.samplerate)


def read_transcript(path: Path, encoding: str = "utf-8") -> str:
    """A transcript file's text; a file not in ``encoding`` raises a ``SpeechLMError`` saying how
    to import it (with ``--transcript-encoding``)."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as e:
        raise SpeechLMError(
            f"{path}: transcript is not {encoding} ({e.reason} at byte {e.start}); convert it "
            f"(iconv -f latin1 -t utf-8) or import with --transcript-encoding latin-1") from None
    except LookupError:
        raise SpeechLMError(f"transcript encoding '{encoding}' is unknown "
                            "(e.g. utf-8, latin-1, cp1252)") from None


def librispeech_candidates(src: Path, encoding: str = "utf-8"
                           ) -> Iterator[Candidate | tuple[str, str, str]]:
    """Utterances of every ``*.trans.txt`` under ``src``; yields error triples for bad lines."""
    for trans in sorted(src.rglob("*.trans.txt")):
        speaker = trans.name.split("-")[0]
        try:
            lines = read_transcript(trans, encoding).splitlines()
        except SpeechLMError as e:
            yield (str(trans), trans.name.removesuffix(".trans.txt"), str(e))
            continue
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) < 2:
                yield (str(trans), parts[0], f"{trans}:{lineno}: no transcript after the id")
                continue
            uid, text = parts
            audio = next((trans.parent / f"{uid}{s}" for s in (".flac", ".wav")
                          if (trans.parent / f"{uid}{s}").exists()), trans.parent / f"{uid}.flac")
            yield Candidate(uid, audio, text.strip(), speaker)


def folder_candidates(src: Path, encoding: str = "utf-8"
                      ) -> Iterator[Candidate | tuple[str, str, str]]:
    """Audio files under ``src`` with optional same-stem ``.txt`` transcripts."""
    seen: set[str] = set()
    for path in sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        rel = path.relative_to(src)
        uid = "_".join(rel.with_suffix("").parts)
        if uid in seen:  # same stem, two formats
            uid = f"{uid}_{path.suffix[1:].lower()}"
        seen.add(uid)
        txt = path.with_suffix(".txt")
        try:
            text = read_transcript(txt, encoding).strip() if txt.exists() else None
        except SpeechLMError as e:
            yield (str(path), uid, str(e))
            continue
        speaker = rel.parts[0] if len(rel.parts) > 1 else None
        yield Candidate(uid, path, text, speaker)


def hf_candidates(src: Path, out: Path, audio_column: str | None = None,
                  text_column: str | None = None, split: str | None = None
                  ) -> Iterator[Candidate | tuple[str, str, str]]:
    """Rows of a ``datasets`` dataset on disk; inline audio bytes are written to out/audio/."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(src))
    except Exception as e:
        raise SpeechLMError(f"{src}: not a dataset saved with save_to_disk ({e})") from e
    if isinstance(loaded, datasets.DatasetDict):
        names = [split] if split else list(loaded)
        if split and split not in loaded:
            raise SpeechLMError(f"{src}: no split '{split}'; splits: {list(loaded)}")
        parts = [(name, loaded[name]) for name in names]
    else:
        parts = [(split or "", loaded)]
    for name, ds in parts:
        col = audio_column or next((c for c, f in ds.features.items()
                                    if isinstance(f, datasets.Audio) or _is_array_audio(f)), None)
        if col is None or col not in ds.column_names:
            raise SpeechLMError(f"{src}: no audio column (pass --audio-column; columns: "
                                f"{ds.column_names})")
        arrays = _is_array_audio(ds.features[col])
        if not arrays:
            try:
                ds = ds.cast_column(col, datasets.Audio(decode=False))
            except Exception as e:
                raise SpeechLMError(
                    f"{src}: column '{col}' is not audio (an Audio feature, or dicts of 'array' "
                    f"and 'sampling_rate'): {type(e).__name__}: {e}") from None
        tcol = text_column or next((c for c in TEXT_COLUMNS if c in ds.column_names), None)
        scol = next((c for c in SPEAKER_COLUMNS if c in ds.column_names), None)
        for i, row in enumerate(ds):
            uid = str(row["id"]) if "id" in ds.column_names else f"{i:08d}"
            uid = f"{name}_{uid}" if name and len(parts) > 1 else uid
            audio = row[col] or {}
            if arrays:  # decoded samples stored inline: written out as a float WAV
                try:
                    yield Candidate(uid, _write_array(audio, out / "audio" / f"{uid}.wav"),
                                    _text(row, tcol), _speaker(row, scol))
                except SpeechLMError as e:
                    yield (f"{src}[{i}]", uid, f"{src}: row {i}: {e}")
                continue
            path = Path(audio["path"]) if audio.get("path") else None
            if path is not None and not path.is_absolute():
                path = (src / path)
            if audio.get("bytes") and (path is None or not path.exists()):
                suffix = path.suffix if path is not None and path.suffix else ".wav"
                path = out / "audio" / f"{uid}{suffix}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(audio["bytes"])
            if path is None:
                yield (f"{src}[{i}]", uid, f"{src}: row {i} has no audio path or bytes")
                continue
            yield Candidate(uid, path, _text(row, tcol), _speaker(row, scol))


def _is_array_audio(feature) -> bool:
    """A column of decoded audio without the ``Audio`` feature: dicts of samples and rate."""
    return isinstance(feature, dict) and {"array", "sampling_rate"} <= set(feature)


def _write_array(audio: dict, path: Path) -> Path:
    """Write one row's ``array`` at its ``sampling_rate`` (float WAV: no clipping, and NaN
    stays visible to the audio check); mono ``(T,)`` or ``(channels, T)``."""
    import numpy as np

    from speechlm.audio import save_audio

    wav, rate = np.asarray(audio.get("array"), dtype=np.float32), audio.get("sampling_rate")
    if not isinstance(rate, int) or rate <= 0:
        raise SpeechLMError(f"sampling_rate must be a positive integer, got {rate!r}")
    if wav.ndim not in (1, 2) or wav.size == 0:
        raise SpeechLMError(f"expected a non-empty (T,) or (channels, T) array, got shape "
                            f"{wav.shape}")
    save_audio(path, wav.T if wav.ndim == 2 else wav, rate, exact=True)
    return path


def _text(row: dict, column: str | None) -> str | None:
    text = row[column] if column else None
    return text if isinstance(text, str) else None


def _speaker(row: dict, column: str | None) -> str | None:
    return str(row[column]) if column and row[column] is not None else None


def import_corpus(src: str | Path, fmt: str, out_dir: str | Path, check: str = "full",
                  max_seconds: float | None = None, audio_column: str | None = None,
                  text_column: str | None = None, split: str | None = None,
                  transcript_encoding: str = "utf-8") -> dict:
    """Import ``src`` in format ``fmt`` into ``out_dir``; returns counts (also summary.json).

    Transcript files are read as ``transcript_encoding``; a file that is not is skipped and
    listed in ``errors.jsonl`` with the option that imports it.
    """
    from speechlm.progress import progress_bar

    src, out = Path(src), Path(out_dir)
    if fmt not in FORMATS:
        raise SpeechLMError(f"unknown corpus format '{fmt}'; known: {', '.join(FORMATS)}")
    if not src.exists():
        raise SpeechLMError(f"{src}: source folder not found")
    if check not in ("full", "header"):
        raise SpeechLMError(f"check must be 'full' or 'header', got '{check}'")
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "dialogue":  # records of two channels, not utterances: their own manifest shape
        from speechlm.corpus.dialogue_import import import_dialogues

        return import_dialogues(src, out, check=check, max_seconds=max_seconds,
                                transcript_encoding=transcript_encoding)
    if fmt == "librispeech":
        found = librispeech_candidates(src, transcript_encoding)
    elif fmt == "folder":
        found = folder_candidates(src, transcript_encoding)
    else:
        found = hf_candidates(src, out, audio_column, text_column, split)
    utts: list[Utterance] = []
    errors: list[dict] = []
    ids: set[str] = set()
    # a folder's files are listed up front (cheap), so its bar has a total and an ETA; a
    # dataset's rows stream, as writing their audio bytes is the slow part
    found = found if fmt == "hf" else list(found)
    for cand in progress_bar(found, desc=f"importing {src.name}", unit="file", leave=False):
        if isinstance(cand, tuple):
            errors.append({"audio": cand[0], "id": cand[1], "error": cand[2]})
            continue
        if cand.id in ids:
            errors.append({"audio": str(cand.audio), "id": cand.id,
                           "error": f"duplicate id '{cand.id}'"})
            continue
        try:
            duration, rate = check_audio(cand.audio, check, max_seconds)
        except AudioError as e:
            errors.append({"audio": str(cand.audio), "id": cand.id, "error": str(e)})
            continue
        ids.add(cand.id)
        utts.append(Utterance(id=cand.id, audio=str(cand.audio.resolve()),
                              duration=round(duration, 4), sample_rate=rate, text=cand.text,
                              speaker=cand.speaker))
    write_manifest(out / "manifest.jsonl", utts)
    with open(out / "errors.jsonl", "w", encoding="utf-8") as f:
        for err in errors:
            f.write(json.dumps(err, ensure_ascii=False) + "\n")
    summary = {"source": str(src.resolve()), "format": fmt, "utterances": len(utts),
               "hours": round(sum(u.duration for u in utts) / 3600.0, 4),
               "speakers": len({u.speaker for u in utts if u.speaker}), "errors": len(errors)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
