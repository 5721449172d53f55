"""Architectures of models that answer questions: ``omni`` (LLaMA-Omni) and ``spectron``.

Both wrap a trained speech-text LM with new parts (a speech adapter and a CTC unit decoder; a
spectrogram head) and are made from a trained model directory by their training entry
(``speechlm.train.omni``, ``speechlm.train.spectron``), never from a bare config. They answer
spoken or written questions (``speechlm chat``); they do no likelihood scoring or speech
continuation.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from speechlm.errors import ConfigError
from speechlm.models.architecture import ARCHITECTURES, Architecture


class AnsweringArchitecture(Architecture):
    """Loads the model class ``model_class`` (``module:Class``) from a model directory."""

    def __init__(self, name: str, model_class: str, what: str) -> None:
        self.name = self.objective = name
        self.model_class, self.what = model_class, what

    def check_config(self, model_cfg: dict[str, Any], key: str = "model") -> None:
        raise ConfigError(f"{key}: a {self.name} model starts from a trained model directory "
                          f"(init: from_model, objective: {self.name}), not from a config")

    def build(self, model_cfg, vocab, seed: int = 0):
        self.check_config(model_cfg)

    def load(self, path: Path, device: str = "cpu") -> Any:
        from transformers import AutoModel

        from speechlm.pretrained import load_pretrained

        module, cls = self.model_class.split(":")
        expected = getattr(importlib.import_module(module), cls)  # registers it with AutoModel
        model = load_pretrained(AutoModel, path, self.what)
        if not isinstance(model, expected):
            raise ConfigError(f"{path}: holds a {type(model).__name__}, not a {cls}")
        return model.to(device).eval()

    def _refuse(self, what: str):
        raise ConfigError(f"a {self.name} model answers questions (speechlm chat); it does no "
                          f"{what}")

    def score(self, lm, examples, batch_size: int = 32, progress: bool = False):
        self._refuse("likelihood scoring")

    def generate(self, lm, prompts, sampling, max_new, min_new=None):
        self._refuse("speech continuation")


ARCHITECTURES.add("omni", AnsweringArchitecture(
    "omni", "speechlm.models.modeling_omni:OmniSpeechLM", "LLaMA-Omni model"))
ARCHITECTURES.add("spectron", AnsweringArchitecture(
    "spectron", "speechlm.models.modeling_spectron:SpectronLM", "Spectron model"))
