"""HuBERT's span masking and its masked-prediction loss.

Spans come from ``transformers``' own ``_compute_mask_indices`` (the wav2vec 2.0 / HuBERT
sampler, a copy of fairseq's): about ``mask_prob * T / mask_length`` random start frames, each
masking ``mask_length`` frames; overlaps make the masked share smaller than ``mask_prob``
(about 57% of frames for HuBERT's 0.8 and 10). The loss is taken on masked frames only, as
HuBERT trains (fairseq's ``pred_masked_weight=1``, ``pred_nomask_weight=0``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from speechlm.sequences.example import IGNORE

MIN_SPANS = 2  # the HF default (mask_time_min_masks): every row has masked frames to learn from


def span_mask(shape: tuple[int, int], mask_prob: float, mask_length: int, seed: int,
              min_spans: int = MIN_SPANS) -> torch.Tensor:
    """A (B, T) bool mask of ``mask_length``-frame spans; the same for the same ``seed``."""
    from transformers.models.hubert.modeling_hubert import _compute_mask_indices

    # the sampler draws from numpy's global generator: seed it for this call only, so the mask
    # depends on ``seed`` alone and the Trainer's own numpy stream is left as it was
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        mask = _compute_mask_indices(shape, mask_prob, mask_length, min_masks=min_spans)
    finally:
        np.random.set_state(state)
    return torch.from_numpy(mask)


def masked_prediction_loss(logits: torch.Tensor, labels: torch.Tensor,
                           mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the frames that are masked and have a label.

    logits: (B, T, K); labels: (B, T) unit ids, ``IGNORE`` where a frame has none; mask: (B, T).
    Unmasked frames do not count (0 when no masked frame has a label).
    """
    keep = mask & (labels != IGNORE)  # (B, T)
    total = F.cross_entropy(logits[keep], labels[keep], reduction="sum")  # over (N, K), (N,)
    return total / keep.sum().clamp_min(1)
