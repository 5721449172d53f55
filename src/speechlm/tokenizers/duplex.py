"""Duplex scenarios at frame rate: both channels through a causal unit tokenizer, plus the text
stream (``speechlm.sequences.duplex``), written as a token dataset the ``duplex`` objective reads.

The tokenizer must be causal (``causal: true``): the real-time engine assigns units frame by
frame (``speechlm.tokenizers.streaming``), so the model must train on exactly those units.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError


def silence_unit(tok: Any) -> int:
    """The unit of digital silence (what the assistant's channel holds between its turns)."""
    from speechlm.tokenizers.streaming import frame_units

    rate = int(tok.sample_rate)
    return int(np.bincount(frame_units(tok, np.zeros(rate, np.float32), rate)).argmax())


def tokenize_scenarios(tok: Any, records: Sequence[dict], vocab: Sequence[str],
                       words: bool = True, progress: bool = False,
                       transcript: Sequence[str] | None = None) -> tuple[list[dict], list[dict]]:
    """(rows, errors): a row per readable stereo scenario (:func:`scenario_row`, with the
    transcript stream when a ``transcript`` vocabulary is given); an error ``{"id", "audio",
    "error"}`` per scenario that cannot be used (named, never fatal alone)."""
    from speechlm.audio import load_audio
    from speechlm.errors import AudioError
    from speechlm.progress import progress_bar
    from speechlm.sequences.duplex import scenario_row
    from speechlm.tokenizers.streaming import frame_units

    rate = int(tok.sample_rate)
    rows, errors = [], []
    for rec in progress_bar(records, unit="scenario", desc="tokenize scenarios",
                            disable=not progress):
        try:
            wav = load_audio(rec["audio"], rate, mono=False)
        except AudioError as e:
            errors.append({"id": rec["id"], "audio": rec["audio"], "error": str(e)})
            continue
        if wav.shape[0] != 2:
            errors.append({"id": rec["id"], "audio": rec["audio"],
                           "error": f"{wav.shape[0]} channel(s); a scenario has 2 (microphone, "
                                    "assistant)"})
            continue
        listen, speak = (frame_units(tok, ch, rate) for ch in wav)
        if min(len(listen), len(speak)) < 2:
            errors.append({"id": rec["id"], "audio": rec["audio"],
                           "error": "too short to tokenise (fewer than 2 frames)"})
            continue
        rows.append(scenario_row(rec, listen, speak, float(tok.frame_rate), vocab, words,
                                 transcript))
    return rows, errors


def write_duplex_tokens(out_dir: str | Path, rows: list[dict], errors: list[dict], tok: Any,
                        tokenizer_dir: str | Path, vocab: Sequence[str],
                        transcript: Sequence[str] | None = None, **info: Any) -> dict:
    """Write the rows as a token dataset (``info.json`` holds ``text_vocab``, the silence unit
    and, when the rows have a transcript stream, its vocabulary ``transcript_vocab``) and
    ``errors.jsonl``; returns its summary."""
    import pyarrow as pa

    from speechlm.sequences.duplex import TRANSCRIPT
    from speechlm.tokenizers.job import ERRORS_FILE, write_token_table

    if not rows:
        raise SpeechLMError(f"{out_dir}: no scenario could be tokenised ({len(errors)} skipped: "
                            f"{errors[0]['error'] if errors else 'none given'})")
    streams = ("listen", "speak", "text", *((TRANSCRIPT,) if transcript is not None else ()))
    schema = pa.schema([("id", pa.string()), ("kind", pa.string()), ("subkind", pa.string()),
                        *((c, pa.list_(pa.int32())) for c in streams)])
    if transcript is not None:
        info["transcript_vocab"] = list(transcript)
    frames = sum(len(r["listen"]) for r in rows)
    summary = {"scenarios": len(rows), "skipped": len(errors), "frames": frames,
               "hours": round(frames / tok.frame_rate / 3600, 4)}
    write_token_table(out_dir, pa.Table.from_pylist(rows, schema=schema), tokenizer_dir,
                      tok.n_units, tok.frame_rate, kind=tok.kind, text_vocab=list(vocab),
                      silence_unit=silence_unit(tok), **summary, **info)
    (Path(out_dir) / ERRORS_FILE).write_text("".join(json.dumps(e) + "\n" for e in errors))
    return {**summary, "skipped_scenarios": errors}
