"""Toy token datasets in the contract's layout, for tests and benchmarks without audio.

:func:`write_toy_token_dataset`: words of a small lexicon are fixed unit strings; sentences are
random word sequences with random unit durations and exact word alignments, so the data has
structure a tiny LM can learn and word boundaries that interleaving can use.

:func:`write_toy_instruction_dataset` (``prompt_units``, ``units``) and
:func:`write_toy_preference_dataset` (``prompt_units``, ``chosen_units``, ``rejected_units``):
random spoken prompts whose answer follows one rule, :func:`toy_answer` (every unit of the
prompt plus one, modulo the number of units), so fine-tuning has a known thing to learn and a
preference pair has a known better side.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speechlm.sequences.expressive import PITCH_RATE, STYLE_RATE  # a prosody tokenizer's rates


def write_toy_token_dataset(out_dir: str | Path, n_rows: int = 200, n_units: int = 20,
                            n_words: int = 30, frame_rate: float = 50.0, seed: int = 0,
                            tokenizer_dir: str | Path | None = None, f0_bins: int = 0,
                            n_pitch: int = 0, n_style: int = 0) -> Path:
    """Write ``out_dir/data/*.parquet`` + ``info.json`` (+ a placeholder tokenizer dir).

    ``f0_bins > 0`` adds an ``f0`` column as a prosody tokenizer writes it: a per-unit bin in
    ``1..f0_bins`` (0 = unvoiced), each word a fixed contour shifted by its speaker's register,
    drawn from a second generator so the other columns do not change.

    ``n_pitch > 0`` with ``n_style > 0`` add ``pitch`` (12.5 Hz) and ``style`` (1 Hz) columns
    (:func:`toy_prosody`), and their sizes and rates to ``info.json``.
    """
    import pyarrow as pa

    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    lexicon = [rng.integers(0, n_units, size=rng.integers(2, 7)).tolist() for _ in range(n_words)]
    expressive = bool(n_pitch and n_style)
    f0_rng = np.random.default_rng([seed, 1])
    contours = [f0_rng.integers(0, f0_bins + 1, size=len(w)) for w in lexicon] if f0_bins else []
    rows = []
    for i in range(n_rows):
        words, units, durs, f0, t = [], [], [], [], 0.0
        for w in rng.integers(0, n_words, size=rng.integers(3, 9)):
            if f0_bins:  # voiced bins move with the speaker (i % 4), unvoiced stay 0
                c = contours[w]
                f0 += np.where(c > 0, np.clip(c + i % 4 - 1, 1, f0_bins), 0).tolist()
            d = rng.integers(1, 5, size=len(lexicon[w])).tolist()
            start = t
            t += sum(d) / frame_rate
            words.append({"label": f"w{w}", "start": start, "end": t})
            units += lexicon[w]
            durs += d
        rows.append({"id": f"toy{i:05d}", "speaker": f"s{i % 4}",
                     "text": " ".join(w["label"] for w in words), "duration": t,
                     "units": units, "durations": durs, "words": words,
                     **({"f0": f0} if f0_bins else {}),
                     **(toy_prosody(words, i, n_pitch, n_style) if expressive else {})})
    schema = pa.schema([
        ("id", pa.string()), ("speaker", pa.string()), ("text", pa.string()),
        ("duration", pa.float64()), ("units", pa.list_(pa.int32())),
        ("durations", pa.list_(pa.int32())),
        ("words", pa.list_(pa.struct([("label", pa.string()), ("start", pa.float64()),
                                      ("end", pa.float64())]))),
    ] + ([("f0", pa.list_(pa.int32()))] if f0_bins else [])
      + ([("pitch", pa.list_(pa.int32())), ("style", pa.list_(pa.int32()))]
         if expressive else []))
    info = ({"n_pitch": n_pitch, "n_style": n_style, "pitch_rate": PITCH_RATE,
             "style_rate": STYLE_RATE} if expressive else {})
    return write_token_rows(out, rows, schema, n_units, frame_rate, tokenizer_dir, **info)


def toy_prosody(words: list[dict], row: int, n_pitch: int, n_style: int) -> dict[str, list[int]]:
    """``pitch`` and ``style`` columns of one toy row, over its words' time span.

    Each word has its own pitch token (from its label) held over its time, so pitch changes at
    word boundaries; style is the speaker's (``row % 4``) and steps by one every two seconds.
    """
    end = words[-1]["end"]
    starts = np.asarray([w["start"] for w in words])
    steps = np.arange(int(np.ceil(end * PITCH_RATE))) / PITCH_RATE
    word = np.searchsorted(starts, steps, side="right") - 1  # the word at each pitch step
    pitch = [int(words[k]["label"][1:]) % n_pitch for k in word]
    style = [(row % 4 + k // 2) % n_style for k in range(int(np.ceil(end * STYLE_RATE)))]
    return {"pitch": pitch, "style": style}


def write_token_rows(out_dir: str | Path, rows: list[dict], schema, n_units: int,
                     frame_rate: float = 50.0, tokenizer_dir: str | Path | None = None,
                     **info) -> Path:
    """Write ``rows`` as a one-part token dataset: Parquet, ``info.json``, ``errors.jsonl``.

    Without ``tokenizer_dir`` a placeholder speech-tokenizer folder is made inside ``out_dir``
    (the model directory copies it; nothing loads it). ``info`` adds keys to ``info.json``.
    """
    import pyarrow as pa

    from speechlm.tokenizers.job import write_token_table

    out = Path(out_dir)
    if tokenizer_dir is None:
        tokenizer_dir = out / "toy_tokenizer"
        Path(tokenizer_dir).mkdir(parents=True, exist_ok=True)
        (Path(tokenizer_dir) / "config.json").write_text(json.dumps(
            {"kind": "toy", "n_units": n_units, "frame_rate": frame_rate}))
    return write_token_table(out, pa.Table.from_pylist(rows, schema=schema), tokenizer_dir,
                             n_units, frame_rate, **info)


def toy_answer(prompt_units: list[int], n_units: int) -> list[int]:
    """The rule every toy answer follows: each prompt unit plus one, modulo ``n_units``."""
    return [(u + 1) % n_units for u in prompt_units]


def _toy_prompts(n_rows: int, n_units: int, lengths: tuple[int, int],
                 rng: np.random.Generator) -> list[list[int]]:
    return [rng.integers(0, n_units, size=rng.integers(lengths[0], lengths[1] + 1)).tolist()
            for _ in range(n_rows)]


def write_toy_instruction_dataset(out_dir: str | Path, n_rows: int = 64, n_units: int = 20,
                                  lengths: tuple[int, int] = (3, 8), seed: int = 0,
                                  tokenizer_dir: str | Path | None = None) -> Path:
    """Rows ``{prompt_units, units}``: a random prompt and its :func:`toy_answer`.

    ``lengths`` bounds the prompt length (inclusive).
    """
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    rows = [{"id": f"inst{i:05d}", "prompt_units": p, "units": toy_answer(p, n_units)}
            for i, p in enumerate(_toy_prompts(n_rows, n_units, lengths, rng))]
    schema = pa.schema([("id", pa.string()), ("prompt_units", pa.list_(pa.int32())),
                        ("units", pa.list_(pa.int32()))])
    return write_token_rows(out_dir, rows, schema, n_units, tokenizer_dir=tokenizer_dir)


def write_toy_preference_dataset(out_dir: str | Path, n_rows: int = 64, n_units: int = 20,
                                 lengths: tuple[int, int] = (3, 8), seed: int = 0,
                                 tokenizer_dir: str | Path | None = None) -> Path:
    """Rows ``{prompt_units, chosen_units, rejected_units}``.

    The chosen answer is the prompt's :func:`toy_answer`; the rejected one is random units of
    the same length, so that length alone cannot tell them apart.
    """
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    rows = []
    for i, p in enumerate(_toy_prompts(n_rows, n_units, lengths, rng)):
        chosen = toy_answer(p, n_units)
        rejected = rng.integers(0, n_units, size=len(chosen)).tolist()
        rows.append({"id": f"pref{i:05d}", "prompt_units": p, "chosen_units": chosen,
                     "rejected_units": rejected})
    schema = pa.schema([("id", pa.string()), ("prompt_units", pa.list_(pa.int32())),
                        ("chosen_units", pa.list_(pa.int32())),
                        ("rejected_units", pa.list_(pa.int32()))])
    return write_token_rows(out_dir, rows, schema, n_units, tokenizer_dir=tokenizer_dir)
