"""``MultiStreamLM``: parallel streams through one stock decoder (pGSLM's MS-TLM), as HF classes.

Each step's input is the sum of one vector per stream: the unit stream through the backbone's own
token embedding (the full speech vocabulary: specials, markers, units), every other stream
through its own small embedding (``discrete``: a class per value, values above the range capped
at the last class, as pGSLM caps durations) or a linear projection of its value
(``continuous``); a missing value (:data:`NO_VALUE`) has its own learned vector. The sum goes to
any ``AutoModel`` backbone as ``inputs_embeds``; one head per stream reads its last hidden state.
The loss is the weighted sum of per-stream losses (cross-entropy for discrete streams, L1 for
continuous ones), each averaged over the positions its own mask keeps, values at ``t``
predicting ``t + 1``.

Streams and their delays are data in the config (``MultiStreamConfig.streams``); the training
config gives them under ``model.streams`` beside the backbone's keys::

    model: {model_type: llama, hidden_size: 256, ...,
            streams: {units: {weight: 1.0},
                      durations: {kind: discrete, size: 32, delay: 1, weight: 1.0},
                      f0: {kind: discrete, size: 33, delay: 1, weight: 1.0, temperature: 0.7}}}

The ``multistream`` architecture (scoring, generation, streaming) is in
``speechlm.models.multistream``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import ModelOutput

from speechlm.config import Config, at_least, choice, positive
from speechlm.errors import ConfigError
from speechlm.sequences.multistream import (
    NO_VALUE,
    STREAM_COLUMNS,
    UNITS,
)

MODEL_TYPE = "speechlm_multistream"
KINDS = ("discrete", "continuous")
# pGSLM's streams: durations capped at 31 frames, 32 log-F0 bins + unvoiced (bin 0)
DEFAULT_STREAMS = {"durations": {"kind": "discrete", "size": 32, "delay": 1},
                   "f0": {"kind": "discrete", "size": 33, "delay": 1}}
CAPPED = ("durations",)  # discrete streams whose values above the range are capped on purpose
LOWEST = {"durations": 1}  # smallest value generation may produce (a unit lasts a frame)


@dataclass
class StreamSpec(Config):
    """One stream: discrete (``size`` classes) or continuous, its loss weight and its delay."""

    name: str
    kind: str = choice("discrete", *KINDS)
    size: int = 0  # discrete: number of classes (the unit stream: the vocabulary's size)
    weight: float = at_least(0, 1.0)
    delay: int = at_least(0, 0)  # steps the stream lags the units by
    temperature: float = positive(1.0)  # sampling (discrete streams other than units)

    def validate(self) -> None:
        if self.kind == "discrete" and self.size < 2:
            raise ConfigError(f"size: a discrete stream needs >= 2 classes, got {self.size}")
        if self.kind == "continuous" and self.size:
            raise ConfigError("size: a continuous stream has no classes")


def stream_specs(cfg: Mapping[str, Any] | None, vocab_size: int,
                 key: str = "model.streams") -> tuple[StreamSpec, ...]:
    """``model.streams`` -> validated specs, units first; every bad key or value is named."""
    cfg = DEFAULT_STREAMS if cfg is None else cfg
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{key}: expected a mapping of stream name -> settings, got {cfg!r}")
    units = cfg.get(UNITS) or {}
    if not isinstance(units, Mapping) or set(units) - {"weight"}:
        raise ConfigError(f"{key}.units: takes only weight (its classes are the vocabulary, its "
                          f"delay 0), got {units!r}")
    specs = [StreamSpec.from_dict({**units, "name": UNITS, "size": vocab_size}, f"{key}.units.")]
    for name, given in cfg.items():
        if name == UNITS:
            continue
        if name not in STREAM_COLUMNS:
            raise ConfigError(f"{key}.{name}: unknown stream; valid: "
                              f"{', '.join((UNITS, *STREAM_COLUMNS))}")
        given = given or {}
        if not isinstance(given, Mapping) or "name" in given:
            raise ConfigError(f"{key}.{name}: expected a mapping of settings (kind, size, "
                              f"weight, delay, temperature), got {given!r}")
        # a continuous stream takes the pGSLM delay but not the default classes
        defaults = {k: v for k, v in DEFAULT_STREAMS[name].items()
                    if k != "size" or given.get("kind", "discrete") == "discrete"}
        specs.append(StreamSpec.from_dict({**defaults, **given, "name": name}, f"{key}.{name}."))
    if sum(s.weight for s in specs) <= 0:
        raise ConfigError(f"{key}: the stream weights sum to zero")
    return tuple(specs)


class MultiStreamConfig(PretrainedConfig):
    """A stock backbone config (``backbone``) plus the stream specs (``streams``, units first)."""

    model_type = MODEL_TYPE
    sub_configs_defaults = {"backbone": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    backbone: dict | PretrainedConfig | None = None
    streams: list[dict] | None = None  # StreamSpec fields, as JSON

    @property
    def stream_specs(self) -> tuple[StreamSpec, ...]:
        """The streams, units first (their classes: the backbone's vocabulary, even resized)."""
        specs = [StreamSpec(**s) for s in self.streams or [{"name": UNITS, "size": 2}]]
        return (replace(specs[0], size=self.backbone.vocab_size), *specs[1:])

    @property
    def delays(self) -> dict[str, int]:
        """Delay of every stream besides units (the format's ``delays`` parameter)."""
        return {s.name: s.delay for s in self.stream_specs[1:]}

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        """The backbone's config (what caches and initialisers look up)."""
        return self.backbone


class ContinuousInput(nn.Module):
    """A value's linear projection; a learned vector where the stream has no value."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(1, hidden)
        self.missing = nn.Parameter(torch.zeros(hidden))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        present = (values != NO_VALUE).unsqueeze(-1)  # (B, L, 1)
        x = self.proj(values.to(self.proj.weight.dtype).unsqueeze(-1))  # (B, L, H)
        return torch.where(present, x, self.missing)


@dataclass
class MultiStreamOutput(ModelOutput):
    """Loss (weighted sum), per-stream losses, per-stream outputs and the KV cache.

    ``logits[name]``: (B, L, size) for a discrete stream, (B, L) predicted values for a
    continuous one.
    """

    loss: torch.Tensor | None = None
    logits: dict[str, torch.Tensor] | None = None
    stream_losses: dict[str, torch.Tensor] | None = None
    cache: Any = None


class MultiStreamLM(PreTrainedModel):
    """Summed stream inputs -> stock backbone -> one head per stream."""

    config_class = MultiStreamConfig
    base_model_prefix = "multistream"
    _supports_sdpa = True

    def __init__(self, config: MultiStreamConfig) -> None:
        super().__init__(config)
        self.specs = config.stream_specs
        self.backbone = AutoModel.from_config(config.backbone)
        hidden = config.backbone.hidden_size
        self.inputs = nn.ModuleDict({
            s.name: nn.Embedding(s.size + 1, hidden) if s.kind == "discrete"  # row size: no value
            else ContinuousInput(hidden) for s in self.specs[1:]})
        self.heads = nn.ModuleDict({s.name: nn.Linear(hidden, s.size if s.kind == "discrete" else 1)
                                    for s in self.specs})
        self._no_split_modules = self.backbone._no_split_modules  # FSDP wraps backbone layers
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, ContinuousInput):
            # the transformers initialiser skips weights a checkpoint has already filled
            init.normal_(module.missing, std=self.config.backbone.initializer_range)

    def get_input_embeddings(self) -> nn.Module:
        """The unit stream's embedding (what vocabulary resizing grows)."""
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        """The unit stream's head."""
        return self.heads[UNITS]

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.heads[UNITS] = value

    def embed(self, streams: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Sum of every stream's input vectors: (B, L, hidden)."""
        x = self.get_input_embeddings()(streams[UNITS])  # (B, L, H)
        for s in self.specs[1:]:
            v = streams[s.name]  # (B, L)
            if s.kind == "discrete":
                v = torch.where(v == NO_VALUE, s.size, v.clamp(0, s.size - 1))
            x = x + self.inputs[s.name](v)  # (B, L, H)
        return x

    def forward(self, streams: dict[str, torch.Tensor],
                masks: dict[str, torch.Tensor] | None = None,
                attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None,
                cache: Any = None, use_cache: bool = False) -> MultiStreamOutput:
        """``streams[name]``: (B, L) values; with ``masks`` (B, L), the loss (t predicts t+1)."""
        h_out = self.backbone(inputs_embeds=self.embed(streams), attention_mask=attention_mask,
                              position_ids=position_ids, cache=cache, use_cache=use_cache)
        h = h_out.last_hidden_state  # (B, L, H)
        logits = {s.name: self.heads[s.name](h) if s.kind == "discrete"
                  else self.heads[s.name](h).squeeze(-1) for s in self.specs}  # (B, L, C) | (B, L)
        loss = losses = None
        if masks is not None:
            losses = {s.name: self.stream_loss(s, logits[s.name], streams[s.name], masks[s.name])
                      for s in self.specs}
            loss = sum(s.weight * losses[s.name] for s in self.specs)
        return MultiStreamOutput(loss=loss, logits=logits, stream_losses=losses,
                                 cache=h_out.cache if use_cache else None)

    @staticmethod
    def stream_loss(spec: StreamSpec, logits: torch.Tensor, values: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
        """Mean loss of one stream over the targets its mask keeps (step t predicts t + 1)."""
        pred, target = logits[:, :-1].float(), values[:, 1:]  # (B, L-1, C) | (B, L-1); (B, L-1)
        keep = mask[:, 1:].float()  # (B, L-1)
        if spec.kind == "discrete":
            per = F.cross_entropy(pred.transpose(1, 2), target.clamp(0, spec.size - 1),
                                  reduction="none")  # (B, L-1)
        else:
            per = (pred - target.float()).abs()  # (B, L-1)
        return (per * keep).sum() / keep.sum().clamp(min=1.0)


AutoConfig.register(MODEL_TYPE, MultiStreamConfig, exist_ok=True)
AutoModel.register(MultiStreamConfig, MultiStreamLM, exist_ok=True)
