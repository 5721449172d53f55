"""HuBERT pre-training model: a stock ``HubertModel`` plus HuBERT's label head.

The head is HuBERT's (fairseq ``HubertModel.final_proj`` + ``label_embs_concat``): the encoder's
output is projected to ``final_dim`` and scored against one learned embedding per cluster by
cosine similarity divided by a temperature (0.1). A plain linear head would also train; the
cosine form is kept because it is the published objective, and because its logits are bounded
(|logit| <= 1 / temperature), so early training cannot push them to extremes. Only
``self.hubert`` is kept at the end: it is saved as a plain ``HubertModel`` that any HuBERT
reader (``AutoModel``, the ``hubert`` tokenizer kind) loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import HubertConfig, HubertModel
from transformers.models.hubert.modeling_hubert import HubertPreTrainedModel
from transformers.utils import ModelOutput

from speechlm.ssl.masking import masked_prediction_loss


@dataclass
class HubertPreTrainingOutput(ModelOutput):
    """``loss``: masked-prediction loss (with ``labels``); ``logits``: (B, T, K) cluster scores."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class HubertForPreTraining(HubertPreTrainedModel):
    """``HubertModel`` + projection + cluster embeddings; loss on masked frames only."""

    def __init__(self, config: HubertConfig, n_labels: int, final_dim: int = 256,
                 temperature: float = 0.1) -> None:
        super().__init__(config)
        self.hubert = HubertModel(config)
        self.final_proj = nn.Linear(config.hidden_size, final_dim)
        self.label_embeddings = nn.Embedding(n_labels, final_dim)
        self.temperature = temperature
        self.post_init()

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, D) encoder output -> (B, T, K) cosine similarity to each cluster / temperature."""
        x = F.normalize(self.final_proj(hidden), dim=-1)  # (B, T, final_dim)
        e = F.normalize(self.label_embeddings.weight, dim=-1)  # (K, final_dim)
        return x @ e.T / self.temperature

    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None,
                mask_time_indices: torch.Tensor | None = None) -> HubertPreTrainingOutput:
        """input_values: (B, L) audio; labels and mask_time_indices: (B, T) model frames.

        Masked frames get the model's learned mask embedding before the transformer
        (``HubertModel``'s own ``mask_time_indices``), and only they count in the loss.
        """
        hidden = self.hubert(input_values, mask_time_indices=mask_time_indices).last_hidden_state
        logits = self.logits(hidden)  # (B, T, K)
        loss = None
        if labels is not None:
            if mask_time_indices is None:
                raise ValueError("labels need mask_time_indices: the loss is on masked frames")
            loss = masked_prediction_loss(logits, labels, mask_time_indices)
        return HubertPreTrainingOutput(loss=loss, logits=logits)
