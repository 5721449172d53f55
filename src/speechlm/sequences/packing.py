"""Sequence packing: concatenate sequences and cut fixed-length blocks, with no padding.

As in GSLM/fairseq's ``break_mode=none``: documents follow each other (each starts with BOS), a
block may span a document boundary, and only the final partial block is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from speechlm.sequences.formats import Sequence


def pack(seqs: Iterable[Sequence], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack sequences into ``(input_ids, labels)`` arrays of shape ``(n_blocks, seq_len)``."""
    ids: list[int] = []
    labels: list[int] = []
    for s in seqs:
        ids.extend(s.input_ids)
        labels.extend(s.labels)
    n = len(ids) // seq_len
    ids_a = np.asarray(ids[: n * seq_len], dtype=np.int64).reshape(n, seq_len)
    lab_a = np.asarray(labels[: n * seq_len], dtype=np.int64).reshape(n, seq_len)
    return ids_a, lab_a
