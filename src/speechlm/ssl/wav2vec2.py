"""wav2vec 2.0 pre-training on ``transformers``' own ``Wav2Vec2ForPreTraining``.

The objective is the stock one (contrastive loss over the Gumbel-quantised conv features of
masked frames, against ``num_negatives`` distractors from the same window, plus the diversity
loss on codebook use), on the stock modules. Three things differ from calling the HF model:

- the contrastive logits are computed as one (T x T) cosine-similarity matrix per window, from
  which the true frame and the distractors are read, instead of gathering ``num_negatives``
  copies of every quantised vector: the same numbers (a test compares them with the HF loss),
  but the backward pass of that gather (a scatter-add of B x T x 100 vectors) made a CPU step
  of a 4 x 256 model 4x slower than HuBERT's at the same size;
- the loss per masked frame (the model returns a sum, as fairseq does before it divides the
  gradient by the sample size), so the learning rate does not depend on the batch;
- the Gumbel temperature schedule: from ``max`` down to ``min`` geometrically, reaching ``min``
  at 70% of the run, as wav2vec 2.0 base's factor 0.999995 per update does over 400k updates
  (2 -> 0.5 after ~277k), so a short run anneals over the same share of its steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
    """``Wav2Vec2ForPreTraining``'s modules and loss, averaged over masked frames."""

    def forward(self, input_values: torch.Tensor, mask_time_indices: torch.Tensor,
                sampled_negative_indices: torch.Tensor, **kwargs) -> Wav2Vec2PreTrainingLoss:
        """input_values: (B, L); mask_time_indices: (B, T) bool; sampled_negative_indices:
        (B, T, N) flat ``b * T + t`` indices of each masked frame's distractors (same row)."""
        mask = mask_time_indices.bool()
        out = self.wav2vec2(input_values, mask_time_indices=mask)
        pred = self.project_hid(out.last_hidden_state)  # (B, T, P)
        quantized, perplexity = self.quantizer(self.dropout_features(out.extract_features),
                                               mask_time_indices=mask)
        q = self.project_q(quantized.to(self.project_q.weight.dtype))  # (B, T, P)
        b, t, _ = q.shape
        # cosine similarity of each prediction with every quantised frame of its window
        sim = (F.normalize(pred.float(), dim=-1, eps=1e-8)
               @ F.normalize(q.float(), dim=-1, eps=1e-8).transpose(1, 2))  # (B, T, T)
        sim = sim / self.config.contrastive_logits_temperature
        idx = sampled_negative_indices.long() % t  # (B, T, N): frames of the same row
        with torch.no_grad():  # a distractor identical to the true vector is no distractor
            same = (q[:, :, None] == q[:, None]).all(-1).gather(2, idx)  # (B, T, N)
        negatives = sim.gather(2, idx).masked_fill(same, float("-inf"))
        logits = torch.cat([sim.diagonal(dim1=1, dim2=2)[..., None], negatives], -1)[mask]
        contrastive = F.cross_entropy(logits, logits.new_zeros(len(logits), dtype=torch.long),
                                      reduction="sum")
        n_codes = self.config.num_codevectors_per_group * self.config.num_codevector_groups
        diversity = (n_codes - perplexity) / n_codes * mask.sum()
        n = mask.sum().clamp_min(1)
        loss = (contrastive + self.config.diversity_loss_weight * diversity) / n
        return Wav2Vec2PreTrainingLoss(loss=loss, contrastive_loss=contrastive.detach() / n,
                                       diversity_loss=diversity.detach() / n,
                                       codevector_perplexity=perplexity.detach())


class GumbelAnnealing(TrainerCallback):
    """Sets the quantiser's temperature before each step, from the step number alone (so a
    resumed run anneals exactly as an uninterrupted one)."""

    def __init__(self, max_steps: int, start: float, end: float) -> None:
        self.max_steps, self.start, self.end = max_steps, start, end

    def on_step_begin(self, args, state, control, model=None, **kwargs) -> None:
        model.set_gumbel_temperature(
            gumbel_temperature(state.global_step, self.max_steps, self.start, self.end))
