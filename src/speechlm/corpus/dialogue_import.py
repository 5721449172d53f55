"""Real two-channel dialogue (Fisher-style, one speaker per channel) as dialogue records.

``import_dialogues`` references a folder of stereo recordings in the manifest shape of
``speechlm.corpus.dialogue`` (the synthetic dialogues'): per-channel ``words`` from same-stem
``.ctm`` files, per-channel ``segments`` from Fisher ``.txt`` transcripts, overlap events where
words are given. ``speechlm corpus import SRC --format dialogue`` calls it.
"""

from __future__ import annotations

import json
from pathlib import Path

from speechlm.corpus.dialogue import _write_records, gold_turn_stats, overlap_events
from speechlm.errors import SpeechLMError

# CTM channel column and Fisher speaker label -> channel index
CHANNEL_LABELS = {"a": 0, "1": 0, "b": 1, "2": 1}


def read_ctm(path: Path, encoding: str = "utf-8") -> list[list[list]]:
    """Per-channel words ``[word, start, end]`` of a CTM file (``file channel start duration
    word [confidence]``; channel A/1 or B/2)."""
    from speechlm.corpus.importers import read_transcript

    words: list[list[list]] = [[], []]
    for lineno, line in enumerate(read_transcript(path, encoding).splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith((";;", "#")):
            continue
        try:
            ch = CHANNEL_LABELS[parts[1].lower()]
            start, dur = float(parts[2]), float(parts[3])
            word = parts[4]
        except (IndexError, KeyError, ValueError):
            raise SpeechLMError(f"{path}:{lineno}: expected 'file channel start duration word' "
                                f"with channel A/B or 1/2, got {line.strip()!r}") from None
        words[ch].append([word, round(start, 4), round(start + dur, 4)])
    return [sorted(w, key=lambda x: x[1]) for w in words]


def read_fisher_transcript(path: Path, encoding: str = "utf-8") -> list[list[list]]:
    """Per-channel segments ``[text, start, end]`` of a Fisher transcript (``start end A:
    text`` lines; ``#`` comments)."""
    from speechlm.corpus.importers import read_transcript

    segments: list[list[list]] = [[], []]
    for lineno, line in enumerate(read_transcript(path, encoding).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            start, end, rest = line.split(maxsplit=2)
            label, text = rest.split(":", 1)
            ch = CHANNEL_LABELS[label.strip().lower()]
            segments[ch].append([text.strip(), round(float(start), 4), round(float(end), 4)])
        except (ValueError, KeyError):
            raise SpeechLMError(f"{path}:{lineno}: expected 'start end A: text' (or B:), got "
                                f"{line.strip()!r}") from None
    return segments


def dialogue_files(src: Path) -> list[Path]:
    """The audio files under ``src`` (libsndfile reads uncompressed NIST SPHERE too)."""
    from speechlm.corpus.importers import AUDIO_SUFFIXES

    return sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES | {".sph"})


def import_dialogues(src: str | Path, out_dir: str | Path, check: str = "full",
                     max_seconds: float | None = None, transcript_encoding: str = "utf-8"
                     ) -> dict:
    """Reference a folder of two-channel recordings (Fisher-style) in ``out_dir/manifest.jsonl``.

    Each audio file under ``src`` is one dialogue, channel 0 (A) and 1 (B) one speaker each;
    same-stem ``.ctm`` files give per-channel words, Fisher ``.txt`` transcripts per-channel
    ``segments``. Speakers are named ``<id>-A`` / ``<id>-B``. Files that cannot be used (not
    audio, empty, not 2 channels, a bad transcript) are skipped and listed in ``errors.jsonl``.
    """
    from speechlm.audio import audio_info
    from speechlm.corpus.importers import check_audio
    from speechlm.progress import progress_bar

    src, out = Path(src), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records, errors = [], []
    for path in progress_bar(dialogue_files(src), desc=f"importing {src.name}",
                             unit="file", leave=False):
        uid = "_".join(path.relative_to(src).with_suffix("").parts)
        try:
            duration, rate = check_audio(path, check, max_seconds)
            n_channels = audio_info(path).channels
            if n_channels != 2:
                raise SpeechLMError(f"{path}: {n_channels} channel(s); a dialogue needs 2, one "
                                    "speaker each")
            channels = [{"channel": c, "speaker": f"{uid}-{'AB'[c]}"} for c in (0, 1)]
            if path.with_suffix(".ctm").exists():
                for c, words in zip(channels, read_ctm(path.with_suffix(".ctm"),
                                                       transcript_encoding), strict=True):
                    c["words"] = words
            if path.with_suffix(".txt").exists():
                for c, segs in zip(channels, read_fisher_transcript(
                        path.with_suffix(".txt"), transcript_encoding), strict=True):
                    c["segments"] = segs
        except SpeechLMError as e:
            errors.append({"audio": str(path), "id": uid, "error": str(e)})
            continue
        with_words = all(c.get("words") for c in channels)
        records.append({"id": uid, "audio": str(path.resolve()), "duration": round(duration, 4),
                        "sample_rate": rate, "channels": channels,
                        "events": overlap_events([c["words"] for c in channels])
                        if with_words else []})
    _write_records(out / "manifest.jsonl", records)
    with open(out / "errors.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
    summary = {"source": str(src.resolve()), "format": "dialogue", "dialogues": len(records),
               "hours": round(sum(r["duration"] for r in records) / 3600.0, 4),
               "with_words": sum(all(c.get("words") for c in r["channels"]) for r in records),
               "errors": len(errors), "turn_stats": gold_turn_stats(records)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
