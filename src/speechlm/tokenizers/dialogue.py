"""Two-channel dialogues -> frame units per channel (dGSLM's input), and the silence unit.

Each channel of a stereo dialogue is tokenised by a unit tokenizer fitted on mono speech (the
run's ``tokenizer`` stage) and kept at frame rate: de-duplicated units are repeated by their
durations (:func:`~speechlm.models.dialogue.frame_units`), so both channels stay frame-aligned.
Two ways (``segments``):

- ``whole``: each channel in one piece, as dGSLM tokenises Fisher with HuBERT (an encoder
  without per-utterance normalisation);
- ``speech``: each channel's speech regions (energy VAD, regions closer than ``region_gap`` s
  merged, ``pad`` s of context kept on each side) tokenised one by one, the frames between them
  set to the silence unit. For a front end that normalises features per utterance (the MFCC
  and log-mel ones), a whole channel, half of it silence, would be normalised with other
  statistics than the mono utterances the k-means was fitted on (measured on the tiny
  tokenizer: 35-40% of speech frames change unit); a region looks like such an utterance.

The **silence unit** is the unit a silent channel holds: the most frequent unit of the frames
outside detected speech (``whole``: anywhere in the channel; ``speech``: the pads and pauses
inside the regions), counted over the dialogues it is computed on (the training split). A
dialogue that cannot be used (unreadable audio, not two channels, shorter than a frame) is
skipped and listed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError

SEGMENTS = ("whole", "speech")
UNFILLED = -1  # a frame outside every tokenised region (``speech``), set to the silence unit


def speech_regions(wav: np.ndarray, sample_rate: int, region_gap: float, pad: float,
                   hop: int) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of one channel's speech regions (energy VAD), merged when
    closer than ``region_gap`` s, widened by ``pad`` s, starts on the frame grid (``hop``)."""
    from speechlm.evaluate.turns import energy_vad, merge_ipus

    regions = []
    for s, e in merge_ipus(energy_vad(wav, sample_rate), region_gap):
        a = max(0, int((s - pad) * sample_rate) // hop * hop)
        b = min(len(wav), int(math.ceil((e + pad) * sample_rate)))
        if b > a:
            regions.append((a, b))
    return regions


def _speech_mask(n: int, frame_rate: float, segments: Sequence[tuple[float, float]]
                 ) -> np.ndarray:
    """(n,) True at frames whose centre lies inside a speech segment (seconds)."""
    t = np.arange(n) / frame_rate
    mask = np.zeros(n, dtype=bool)
    for s, e in segments:
        mask |= (t >= s) & (t < e)
    return mask


def channel_frames(tok: Any, wav: np.ndarray, segments: str = "whole", region_gap: float = 1.0,
                   pad: float = 0.2) -> tuple[np.ndarray, Counter]:
    """One channel's frame units (:data:`UNFILLED` between ``speech`` regions) and the counts
    of the units on its frames outside detected speech (for :func:`silence_from_counts`)."""
    from speechlm.evaluate.turns import energy_vad
    from speechlm.models.dialogue import frame_units

    rate, fr = int(tok.sample_rate), float(tok.frame_rate)
    voiced = energy_vad(wav, rate)
    if segments == "whole":
        frames = frame_units(tok.encode([wav], rate)[0])
        quiet = ~_speech_mask(len(frames), fr, voiced)
        return frames, Counter(frames[quiet].tolist())
    if segments != "speech":
        raise SpeechLMError(f"segments: must be one of {', '.join(SEGMENTS)}, got {segments!r}")
    hop = int(round(rate / fr))
    frames = np.full(len(wav) // hop + 1, UNFILLED, dtype=np.int64)
    inside = np.zeros(len(frames), dtype=bool)
    regions = speech_regions(wav, rate, region_gap, pad, hop)
    pieces = tok.encode([wav[a:b] for a, b in regions], rate) if regions else []
    for (a, _), streams in zip(regions, pieces, strict=True):
        f = frame_units(streams)[: len(frames) - a // hop]
        frames[a // hop: a // hop + len(f)] = f
        inside[a // hop: a // hop + len(f)] = True
    quiet = inside & ~_speech_mask(len(frames), fr, voiced)
    return frames, Counter(frames[quiet].tolist())


def silence_from_counts(counts: Counter, tok: Any) -> int:
    """The most frequent unit of silent frames; without any, the unit of digital silence."""
    if counts:
        return int(max(sorted(counts), key=lambda u: counts[u]))
    from speechlm.models.dialogue import frame_units

    rate = int(tok.sample_rate)
    zeros = tok.encode([np.zeros(rate, np.float32)], rate)[0]
    return int(np.bincount(frame_units(zeros)).argmax())


def tokenize_dialogues(tok: Any, records: Sequence[dict], segments: str = "whole",
                       region_gap: float = 1.0, pad: float = 0.2,
                       silence: int | None = None, progress: bool = False
                       ) -> tuple[list[dict], list[dict], int]:
    """Both channels of each dialogue record at frame rate: (rows, errors, silence unit).

    A row is ``{"id", "duration", "speaker_a", "speaker_b", "units_a", "units_b"}``; an error
    ``{"id", "audio", "error"}``. ``silence`` (default: counted here, :func:`silence_from_counts`)
    fills the frames between ``speech`` regions.
    """
    from speechlm.audio import load_audio
    from speechlm.errors import AudioError
    from speechlm.progress import progress_bar

    rows, errors, counts = [], [], Counter()
    for rec in progress_bar(records, unit="dialogue", desc="tokenize dialogues",
                            disable=not progress):
        try:
            wav = load_audio(rec["audio"], int(tok.sample_rate), mono=False)
        except AudioError as e:
            errors.append({"id": rec["id"], "audio": rec["audio"], "error": str(e)})
            continue
        if wav.shape[0] != 2:
            what = "mono (1 channel)" if wav.shape[0] == 1 else f"{wav.shape[0]} channels"
            errors.append({"id": rec["id"], "audio": rec["audio"],
                           "error": f"{what}; a dialogue needs 2 channels, one speaker each"})
            continue
        pair = []
        for ch in wav:
            frames, c = channel_frames(tok, ch, segments, region_gap, pad)
            counts.update(c)
            pair.append(frames)
        n = min(len(pair[0]), len(pair[1]))
        if n < 2:
            errors.append({"id": rec["id"], "audio": rec["audio"],
                           "error": f"too short to tokenise ({wav.shape[1] / tok.sample_rate:.3f}"
                                    " s gave fewer than 2 frames)"})
            continue
        speakers = [c.get("speaker") for c in rec["channels"]]
        rows.append({"id": rec["id"], "duration": float(wav.shape[1] / tok.sample_rate),
                     "speaker_a": speakers[0], "speaker_b": speakers[1],
                     "units_a": pair[0][:n], "units_b": pair[1][:n]})
    if silence is None:
        silence = silence_from_counts(counts, tok)
    for row in rows:
        for key in ("units_a", "units_b"):
            row[key] = np.where(row[key] == UNFILLED, silence, row[key]).astype(np.int32)
    return rows, errors, silence


def write_dialogue_tokens(out_dir: Any, rows: list[dict], errors: list[dict], tok: Any,
                          tokenizer_dir: Any, **info) -> dict:
    """Write a token dataset of dialogue rows (``units_a``/``units_b``), its ``info.json``
    (``info`` added) and ``errors.jsonl``; returns its summary."""
    import json
    from pathlib import Path

    import pyarrow as pa

    from speechlm.tokenizers.job import ERRORS_FILE, write_token_table

    schema = pa.schema([("id", pa.string()), ("duration", pa.float32()),
                        ("speaker_a", pa.string()), ("speaker_b", pa.string()),
                        ("units_a", pa.list_(pa.int32())), ("units_b", pa.list_(pa.int32()))])
    if not rows:
        raise SpeechLMError(f"{out_dir}: no dialogue could be tokenised ({len(errors)} skipped: "
                            f"{errors[0]['error'] if errors else 'none given'})")
    frames = sum(len(r["units_a"]) for r in rows)
    summary = {"dialogues": len(rows), "skipped": len(errors), "frames_per_channel": frames,
               "hours": round(frames / tok.frame_rate / 3600, 4)}
    write_token_table(out_dir, pa.Table.from_pylist(rows, schema=schema), tokenizer_dir,
                      tok.n_units, tok.frame_rate, kind=tok.kind, **summary, **info)
    (Path(out_dir) / ERRORS_FILE).write_text("".join(json.dumps(e) + "\n" for e in errors))
    return {**summary, "skipped_dialogues": errors}
