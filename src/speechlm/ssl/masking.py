"""Span masking (HuBERT, wav2vec 2.0), wav2vec 2.0's distractors, HuBERT's masked loss.

Spans come from ``transformers``' own ``_compute_mask_indices`` (the wav2vec 2.0 / HuBERT
sampler, a copy of fairseq's): about ``mask_prob * T / mask_length`` random start frames, each
masking ``mask_length`` frames; overlaps make the masked share smaller than ``mask_prob``
(about 57% of frames for HuBERT's 0.8 and 10). The loss is taken on masked frames only, as
HuBERT trains (fairseq's ``pred_masked_weight=1``, ``pred_nomask_weight=0``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from speechlm.sequences.example import IGNORE

MIN_SPANS = 2  # the HF default (mask_time_min_masks): every row has masked frames to learn from


@contextmanager
def numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator inside the block only.

    ``transformers``' samplers draw from it; seeding it for one call makes the draw depend on
    ``seed`` alone and leaves the Trainer's own numpy stream as it was.
    """
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


def span_mask(shape: tuple[int, int], mask_prob: float, mask_length: int, seed: int,
              min_spans: int = MIN_SPANS) -> torch.Tensor:
    """A (B, T) bool mask of ``mask_length``-frame spans; the same for the same ``seed``."""
    from transformers.models.hubert.modeling_hubert import _compute_mask_indices

    with numpy_seed(seed):
        mask = _compute_mask_indices(shape, mask_prob, mask_length, min_masks=min_spans)
    return torch.from_numpy(mask)


def negative_indices(mask: torch.Tensor, num_negatives: int, seed: int) -> torch.Tensor:
    """(B, T, N) wav2vec 2.0 distractors: for each masked frame, ``num_negatives`` other masked
    frames of the same row (as flat ``b * T + t`` indices; ``transformers``' sampler)."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import _sample_negative_indices

    with numpy_seed(seed):
        idx = _sample_negative_indices(tuple(mask.shape), num_negatives, mask.numpy())
    return torch.from_numpy(idx.astype(np.int64))


def masked_prediction_loss(logits: torch.Tensor, labels: torch.Tensor,
                           mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the frames that are masked and have a label.

    logits: (B, T, K); labels: (B, T) unit ids, ``IGNORE`` where a frame has none; mask: (B, T).
    Unmasked frames do not count (0 when no masked frame has a label).
    """
    keep = mask & (labels != IGNORE)  # (B, T)
    total = F.cross_entropy(logits[keep], labels[keep], reduction="sum")  # over (N, K), (N,)
    return total / keep.sum().clamp_min(1)
