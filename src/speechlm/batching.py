"""Length bucketing shared by every batched pass over variable-length items (scoring, encoders)."""

from __future__ import annotations

from collections.abc import Sequence


def length_buckets(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (sorted, longest first so OOM shows early).

    A batch holds at most ``batch_size`` sequences and ``len(batch) * longest <= max_tokens``
    (a single sequence longer than ``max_tokens`` gets a batch of its own).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) >= batch_size or (len(current) + 1) * longest > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
