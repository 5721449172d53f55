"""A toy token dataset in the contract's layout, for tests and benchmarks without audio.

Words of a small lexicon are fixed unit strings; sentences are random word sequences with
random unit durations and exact word alignments, so the data has structure a tiny LM can learn
and word boundaries that interleaving can use.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_toy_token_dataset(out_dir: str | Path, n_rows: int = 200, n_units: int = 20,
                            n_words: int = 30, frame_rate: float = 50.0, seed: int = 0,
                            tokenizer_dir: str | Path | None = None) -> Path:
    """Write ``out_dir/data/*.parquet`` + ``info.json`` (+ a placeholder tokenizer dir)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lexicon = [rng.integers(0, n_units, size=rng.integers(2, 7)).tolist() for _ in range(n_words)]
    rows = []
    for i in range(n_rows):
        words, units, durs, t = [], [], [], 0.0
        for w in rng.integers(0, n_words, size=rng.integers(3, 9)):
            d = rng.integers(1, 5, size=len(lexicon[w])).tolist()
            start = t
            t += sum(d) / frame_rate
            words.append({"label": f"w{w}", "start": start, "end": t})
            units += lexicon[w]
            durs += d
        rows.append({"id": f"toy{i:05d}", "speaker": f"s{i % 4}",
                     "text": " ".join(w["label"] for w in words), "duration": t,
                     "units": units, "durations": durs, "words": words})
    schema = pa.schema([
        ("id", pa.string()), ("speaker", pa.string()), ("text", pa.string()),
        ("duration", pa.float64()), ("units", pa.list_(pa.int32())),
        ("durations", pa.list_(pa.int32())),
        ("words", pa.list_(pa.struct([("label", pa.string()), ("start", pa.float64()),
                                      ("end", pa.float64())]))),
    ])
    (out / "data").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema),
                   out / "data" / "shard-00000-of-00001.part-00000.parquet")
    if tokenizer_dir is None:
        tokenizer_dir = out / "toy_tokenizer"
        Path(tokenizer_dir).mkdir(exist_ok=True)
        (Path(tokenizer_dir) / "config.json").write_text(json.dumps(
            {"kind": "toy", "n_units": n_units, "frame_rate": frame_rate}))
    info = {"tokenizer": str(Path(tokenizer_dir).resolve()), "n_units": n_units,
            "frame_rate": frame_rate}
    (out / "info.json").write_text(json.dumps(info, indent=2))
    (out / "errors.jsonl").write_text("")
    return out
