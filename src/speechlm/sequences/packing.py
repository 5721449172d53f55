"""Sequence packing: concatenate examples and cut fixed-length blocks, with no padding.

As in GSLM/fairseq's ``break_mode=none``: documents follow each other (each starts with BOS), a
block may span a document boundary, and only the final partial block is dropped. Training builds
its blocks on disk (``speechlm.train.data``); this in-memory form serves tests and small jobs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from speechlm.sequences.example import IGNORE, TOKENS, Example


def pack(examples: Iterable[Example], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack single-stream examples into ``(input_ids, labels)`` of shape ``(n_blocks, seq_len)``."""
    ids, masks = [], []
    for e in examples:
        ids.append(e.streams[TOKENS])
        masks.append(e.masks[TOKENS])
    flat = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    mask = np.concatenate(masks) if masks else np.zeros(0, bool)
    n = len(flat) // seq_len
    ids_a = flat[: n * seq_len].astype(np.int64).reshape(n, seq_len)
    lab_a = np.where(mask[: n * seq_len], flat[: n * seq_len], IGNORE).astype(np.int64)
    return ids_a, lab_a.reshape(n, seq_len)
