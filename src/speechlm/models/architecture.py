"""The one interface training, evaluation and generation call on any speech LM architecture.

A model directory names its architecture (``speechlm.json``: ``architecture``); the
``ARCHITECTURES`` registry maps that name to an :class:`Architecture`. Each architecture lives in
one module (``causal_lm.py`` for plain HF causal LMs; ``modeling_*.py`` for new ones, each a
``PreTrainedModel`` on a stock ``transformers`` backbone registered with ``AutoConfig`` /
``AutoModel``) and provides:

- ``build`` (cold init from config kwargs) and ``check_config`` (every key, at load time);
- the training objective it trains with by default, and its speech format (the example a spoken
  prompt becomes);
- ``score``: per-example log-likelihood, summed and mean (the zero-shot benchmarks);
- ``generate``: continuations of prompt examples, as streams a vocoder can speak;
- ``streaming`` (optional): frame-by-frame stepping with its state in a dataclass.

Sub-models: an architecture may keep several models in one directory (VALL-E's AR and NAR,
AudioLM's stages); ``submodels`` names their roles, ``main`` being the one at the directory root.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speechlm.errors import ConfigError
from speechlm.registry import Registry

if TYPE_CHECKING:
    from speechlm.models.sampling import Sampling
    from speechlm.models.speech_lm import SpeechLM
    from speechlm.sequences.example import Example
    from speechlm.sequences.vocab import SpeechVocab
    from speechlm.tokenizers.streams import Streams

MAIN = "main"  # role of the sub-model stored at the model directory's root


class Architecture(ABC):
    """Base class: the abstract methods are what every architecture must provide."""

    name: str = ""
    objective: str = "lm"  # default training objective (speechlm.train.objectives)
    speech_format: str | None = "speech_only"  # what a spoken prompt becomes (eos=False)
    submodels: tuple[str, ...] = (MAIN,)

    # ---- configuration and construction -------------------------------------------------
    @abstractmethod
    def check_config(self, model_cfg: dict[str, Any], key: str = "model") -> None:
        """Raise ``ConfigError`` naming any invalid key of the model config."""

    @abstractmethod
    def build(self, model_cfg: dict[str, Any], vocab: SpeechVocab, seed: int = 0) -> Any:
        """A randomly initialised model for ``vocab`` (cold init)."""

    def count_parameters(self, model_cfg: dict[str, Any], vocab: SpeechVocab) -> int:
        """Parameters of the model ``build`` would make, counted without allocating memory."""
        import torch

        with torch.device("meta"):
            return sum(p.numel() for p in self.build(model_cfg, vocab).parameters())

    @abstractmethod
    def load(self, path: Path, device: str = "cpu") -> Any:
        """One sub-model from its directory (weights from safetensors only), in eval mode."""

    # ---- what evaluation and generation call ---------------------------------------------
    def prompt(self, lm: SpeechLM, streams: Streams, eos: bool = False) -> Example:
        """One utterance's streams as this model's speech example (no EOS: a prompt)."""
        from speechlm.sequences.formats import FORMATS

        row = {name: getattr(streams, name) for name in streams.names()}
        return FORMATS.get(self.speech_format).fn(row, lm.vocab, None, eos=eos)

    @abstractmethod
    def score(self, lm: SpeechLM, examples: Sequence[Example], batch_size: int = 32,
              progress: bool = False) -> np.ndarray:
        """Summed and mean log-probability of each example's predicted positions: (N, 2)."""

    @abstractmethod
    def generate(self, lm: SpeechLM, prompts: Sequence[Streams], sampling: Sampling,
                 max_new: Sequence[int], min_new: Sequence[int] | None = None
                 ) -> list[tuple[Streams, bool]]:
        """Continue each prompt by at most ``max_new[i]`` steps (and, where the model allows,
        at least ``min_new[i]`` before end of sequence): ``(new streams, stopped at EOS)``.

        A prompt longer than the model's context keeps its last part that fits, with a warning.
        """

    def streaming(self, lm: SpeechLM, batch_size: int = 1) -> Any:
        """A context manager yielding a stepper (``step(inputs) -> outputs``), if supported."""
        raise ConfigError(f"architecture '{self.name}' has no streaming step")


ARCHITECTURES: Registry[Architecture] = Registry(
    "architecture", ("speechlm.models.causal_lm", "speechlm.models.multistream",
                     "speechlm.models.expressive", "speechlm.models.dialogue",
                     "speechlm.models.codec_lm", "speechlm.models.answering",
                     "speechlm.models.duplex"))


def get_architecture(name: str, key: str = "architecture") -> Architecture:
    """The registered architecture ``name`` (a miss lists the valid names)."""
    return ARCHITECTURES.get(name, key=key)
