"""wav2vec 2.0 pre-training on ``transformers``' own ``Wav2Vec2ForPreTraining``.

The objective is the stock one (contrastive loss over the Gumbel-quantised conv features of
masked frames, against ``num_negatives`` distractors from the same window, plus the diversity
loss on codebook use); what is added here is what the HF model leaves to its training loop:

- the loss per masked frame (the model returns a sum, as fairseq does before it divides the
  gradient by the sample size), so the learning rate does not depend on the batch;
- the Gumbel temperature schedule: from ``max`` down to ``min`` geometrically, reaching ``min``
  at 70% of the run, as wav2vec 2.0 base's factor 0.999995 per update does over 400k updates
  (2 -> 0.5 after ~277k), so a short run anneals over the same share of its steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import TrainerCallback, Wav2Vec2ForPreTraining
from transformers.utils import ModelOutput

ANNEAL_SHARE = 0.7  # of max_steps, when the temperature reaches its minimum


def gumbel_temperature(step: int, max_steps: int, start: float, end: float) -> float:
    """Temperature at ``step``: ``start`` decayed geometrically to ``end`` at 70% of the run."""
    horizon = max(1.0, ANNEAL_SHARE * max_steps)
    return max(end, start * (end / start) ** (step / horizon))


@dataclass
class Wav2Vec2PreTrainingLoss(ModelOutput):
    """``loss`` per masked frame; its two parts (also per masked frame) and codebook perplexity."""

    loss: torch.Tensor | None = None
    contrastive_loss: torch.Tensor | None = None
    diversity_loss: torch.Tensor | None = None
    codevector_perplexity: torch.Tensor | None = None


class Wav2Vec2Objective(Wav2Vec2ForPreTraining):
    """``Wav2Vec2ForPreTraining`` whose loss is averaged over masked frames."""

    def forward(self, input_values: torch.Tensor, mask_time_indices: torch.Tensor,
                sampled_negative_indices: torch.Tensor, **kwargs) -> Wav2Vec2PreTrainingLoss:
        out = super().forward(input_values, mask_time_indices=mask_time_indices,
                              sampled_negative_indices=sampled_negative_indices)
        n = mask_time_indices.sum().clamp_min(1)
        return Wav2Vec2PreTrainingLoss(
            loss=out.loss / n, contrastive_loss=out.contrastive_loss.detach() / n,
            diversity_loss=out.diversity_loss.detach() / n,
            codevector_perplexity=out.codevector_perplexity.detach())


class GumbelAnnealing(TrainerCallback):
    """Sets the quantiser's temperature before each step, from the step number alone (so a
    resumed run anneals exactly as an uninterrupted one)."""

    def __init__(self, max_steps: int, start: float, end: float) -> None:
        self.max_steps, self.start, self.end = max_steps, start, end

    def on_step_begin(self, args, state, control, model=None, **kwargs) -> None:
        model.set_gumbel_temperature(
            gumbel_temperature(state.global_step, self.max_steps, self.start, self.end))
