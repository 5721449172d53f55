"""``TrainConfig``: every training setting, validated when built (an invalid key is named)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechlm.config import Config, apply_overrides, at_least, choice, load_yaml, mapping, positive
from speechlm.errors import ConfigError

DEFAULT_MODEL = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 1024,
                 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
                 "max_position_embeddings": 2048}


@dataclass
class TrainConfig(Config):
    """Settings of one ``speechlm train`` run (YAML keys have the same names).

    ``init``: ``cold`` (a new ``architecture`` from ``model``), ``warm`` (a text LM's weights,
    ``init_from`` a directory or hub id, vocabulary by ``vocab_mode``) or ``from_model`` (an
    existing speechlm model directory, its vocabulary extended by the markers the formats need).
    ``objective`` defaults to the architecture's (``lm`` for causal LMs); ``objective_args``
    holds its parameters (e.g. ``{beta: 0.1}`` for ``dpo``).

    ``batch_size`` is per process and micro-step: the global batch is
    ``batch_size * grad_accum * processes`` sequences of ``seq_len`` packed tokens.

    Generalisation on corpora of any size: ``max_epochs`` caps the steps by the data (the
    budget is ``min(max_steps, max_epochs * steps per epoch)``); with ``eval_data``, ``keep:
    best`` keeps the checkpoint with the lowest held-out loss (not the last), and
    ``early_stopping_patience`` stops after that many evaluations without improvement.
    A warm start's new token rows start as ``new_rows`` says (``mean``: the old rows' mean plus
    small noise; ``normal``: with the old rows' spread; ``copy``: copies of old rows); for the
    first ``freeze_body_steps`` steps only the embeddings and output layer learn.
    ``precision: auto`` trains in bf16 where the hardware computes it natively (CUDA with bf16,
    CPUs with AVX512-BF16 or AMX), fp32 elsewhere; the run records which.
    """

    data: str
    output_dir: str
    eval_data: str | None = None
    init: str = choice("cold", "cold", "warm", "from_model")
    architecture: str = "causal_lm"
    model: dict = mapping(lambda: dict(DEFAULT_MODEL))
    init_from: str | None = None
    vocab_mode: str = choice("extend", "replace", "extend")
    new_rows: str = choice("mean", "mean", "normal", "copy")
    freeze_body_steps: int = at_least(0, 0)
    objective: str | None = None
    objective_args: dict = mapping()
    formats: dict | None = None  # default: the architecture's speech format alone
    seq_len: int = positive(256)
    batch_size: int = positive(16)
    grad_accum: int = positive(1)
    max_steps: int = positive(1000)
    max_epochs: float | None = positive(None)
    keep: str = choice("best", "best", "last")
    early_stopping_patience: int | None = positive(None)
    lr: float = positive(5e-4)
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    warmup_steps: int = 100
    precision: str = choice("auto", "auto", "fp32", "bf16")
    save_steps: int = positive(500)
    save_total_limit: int = positive(2)
    eval_steps: int = positive(500)
    logging_steps: int = positive(50)
    seed: int = 0
    fsdp: bool = False
    torch_compile: bool = False
    progress: bool = True

    def validate(self) -> None:
        from speechlm.models.architecture import get_architecture
        from speechlm.train.objectives import get_objective

        if self.init in ("warm", "from_model") and not self.init_from:
            what = "a text LM directory or hub id" if self.init == "warm" else \
                "a speechlm model directory"
            raise ConfigError(f"init_from: required when init={self.init} ({what})")
        if self.freeze_body_steps and self.init == "cold":
            raise ConfigError("freeze_body_steps: only for init=warm or from_model (a cold "
                              "body has nothing to keep)")
        if self.freeze_body_steps and self.fsdp:
            raise ConfigError("freeze_body_steps: not with fsdp (its parameters are flattened "
                              "shards); use DDP or one process")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps: must be >= 0, got {self.warmup_steps}")
        if self.eval_data and self.keep == "best" and self.save_steps % self.eval_steps:
            raise ConfigError(f"save_steps: {self.save_steps} must be a multiple of eval_steps "
                              f"({self.eval_steps}) to keep the best checkpoint (or keep: last)")
        if self.early_stopping_patience and not self.eval_data:
            raise ConfigError("early_stopping_patience: needs eval_data (a held-out set)")
        arch = get_architecture(self.architecture)
        if self.formats is None:  # derived once, here, so the saved config says what ran
            # an architecture without one (duplex) trains on its objective's own data
            self.formats = {arch.speech_format: 1.0} if arch.speech_format else {}
        objective = get_objective(self.objective or arch.objective)
        uses = self.format_uses()
        objective.check(self, uses)
        if self.init == "cold":
            arch.check_config(self.model, "model")

    def format_uses(self) -> list:
        """The parsed ``formats`` ([] for an objective that trains on data of its own and is
        given none: duplex)."""
        from speechlm.sequences.formats import parse_formats
        from speechlm.train.objectives import get_objective

        if not self.formats and not get_objective(self.objective_name).takes_formats:
            return []
        return parse_formats(self.formats)

    @property
    def objective_name(self) -> str:
        """The objective in use (the architecture's default when ``objective`` is unset)."""
        if self.objective:
            return self.objective
        from speechlm.models.architecture import get_architecture

        return get_architecture(self.architecture).objective

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
        """Read a YAML file (or nothing), then apply ``key=value`` overrides.

        Dotted keys reach into mappings: ``model.hidden_size=64``; values are parsed as YAML.
        """
        d: dict[str, Any] = load_yaml(path) if path is not None else {}
        return cls.from_dict(apply_overrides(d, overrides))
