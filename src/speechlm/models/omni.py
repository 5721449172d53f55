"""Architecture ``omni``: LLaMA-Omni's speech adapter and CTC unit decoder around a trained LM.

The model (:class:`~speechlm.models.modeling_omni.OmniSpeechLM`) is made from a trained model
directory by ``speechlm.train.omni`` (``init: from_model``), never from a bare config, and it
answers questions (``speechlm chat``); it has no likelihood scoring or speech continuation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speechlm.errors import ConfigError
from speechlm.models.architecture import ARCHITECTURES, Architecture


class OmniArchitecture(Architecture):
    """Loads an omni model directory; training builds it from a backbone (see module doc)."""

    name = "omni"
    objective = "omni"

    def check_config(self, model_cfg: dict[str, Any], key: str = "model") -> None:
        raise ConfigError(f"{key}: an omni model starts from a trained model directory "
                          "(init: from_model, objective: omni), not from a config")

    def build(self, model_cfg, vocab, seed: int = 0):
        self.check_config(model_cfg)

    def load(self, path: Path, device: str = "cpu") -> Any:
        from transformers import AutoModel

        from speechlm.models.modeling_omni import OmniSpeechLM
        from speechlm.pretrained import load_pretrained

        model = load_pretrained(AutoModel, path, "LLaMA-Omni model")
        if not isinstance(model, OmniSpeechLM):
            raise ConfigError(f"{path}: holds a {type(model).__name__}, not an OmniSpeechLM")
        return model.to(device).eval()

    def _refuse(self, what: str):
        raise ConfigError(f"an omni model answers questions (speechlm chat); it does no {what}")

    def score(self, lm, examples, batch_size: int = 32, progress: bool = False):
        self._refuse("likelihood scoring")

    def generate(self, lm, prompts, sampling, max_new, min_new=None):
        self._refuse("speech continuation")


ARCHITECTURES.add("omni", OmniArchitecture())
