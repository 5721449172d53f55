"""Training data: a token-dataset directory -> formatted, packed ``(seq_len,)`` blocks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from speechlm.errors import ConfigError
from speechlm.sequences.formats import make_sequence
from speechlm.sequences.packing import pack
from speechlm.sequences.vocab import SpeechVocab

COLUMNS = ("units", "durations", "words", "text")


def read_info(data_dir: str | Path) -> dict:
    """The token dataset's ``info.json`` (``tokenizer``, ``n_units``, ``frame_rate``)."""
    p = Path(data_dir) / "info.json"
    if not p.is_file():
        raise ConfigError(f"{p} not found: data must be a token dataset written by "
                          "`speechlm tokenize`")
    info = json.loads(p.read_text())
    for key in ("n_units", "frame_rate"):
        if key not in info:
            raise ConfigError(f"{p}: missing key {key!r}")
    return info


def load_rows(data_dir: str | Path):
    """The token dataset as a ``datasets.Dataset`` (through the tokenizers package when present)."""
    try:
        from speechlm.tokenizers.job import load_token_dataset
    except ImportError:  # the tokenizers package may be absent in a partial install
        load_token_dataset = None
    if load_token_dataset is not None:
        return load_token_dataset(data_dir)
    from datasets import load_dataset

    files = sorted(str(p) for p in (Path(data_dir) / "data").glob("*.parquet"))
    if not files:
        raise ConfigError(f"{data_dir}: no Parquet shards found")
    return load_dataset("parquet", data_files=files, split="train")


class BlockDataset(torch.utils.data.Dataset):
    """Packed blocks as a map-style dataset of ``{"input_ids", "labels"}`` int64 tensors."""

    def __init__(self, input_ids: np.ndarray, labels: np.ndarray):
        self.input_ids = torch.from_numpy(input_ids)
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}

    @property
    def n_tokens(self) -> int:
        """Number of tokens in all blocks."""
        return self.input_ids.numel()


def build_blocks(data_dir: str | Path, vocab: SpeechVocab, formats: dict[str, float],
                 seq_len: int, seed: int, p_switch: float = 0.3, key: str = "data") -> BlockDataset:
    """Format every row (format choice seeded by row index) and pack into blocks."""
    info = read_info(data_dir)
    if int(info["n_units"]) > vocab.n_units:
        raise ConfigError(f"{key}: {data_dir} has {info['n_units']} units but the vocabulary "
                          f"{vocab.n_units}")
    ds = load_rows(data_dir)
    cols = [c for c in COLUMNS if c in ds.column_names]
    frame_rate = float(info["frame_rate"])
    seqs = []
    index = 0
    for batch in ds.select_columns(cols).iter(batch_size=1024):
        n = len(batch[cols[0]])
        for j in range(n):
            row = {c: batch[c][j] for c in cols}
            seqs.append(make_sequence(row, vocab, formats, seed, index, frame_rate, p_switch))
            index += 1
    ids, labels = pack(seqs, seq_len)
    if len(ids) == 0:
        total = sum(len(s.input_ids) for s in seqs)
        raise ConfigError(f"seq_len: {seq_len} is longer than all of {key} ({total} tokens); "
                          "lower seq_len or add data")
    return BlockDataset(ids, labels)
