"""What models built around a trained causal LM share (LLaMA-Omni, Spectron)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class AroundLM:
    """Mixin (before ``PreTrainedModel``) for a model holding a trained causal LM as ``self.lm``
    and new parts around it: the LM's embeddings are the model's, and :meth:`around` makes one
    with the LM's weights copied."""

    lm: Any

    def get_input_embeddings(self) -> nn.Module:
        return self.lm.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.lm.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm.get_output_embeddings()

    @classmethod
    def around(cls, backbone: Any, config: Any, seed: int = 0) -> Any:
        """``cls(config)`` (its new parts seeded) with ``backbone``'s weights in ``lm``."""
        torch.manual_seed(seed)
        model = cls(config)
        model.lm.load_state_dict(backbone.state_dict())  # strict: every key and shape
        return model.to(backbone.dtype)
