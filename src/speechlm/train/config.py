"""``TrainConfig``: every training setting, validated when built (an invalid key is named)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechlm.errors import ConfigError

CHOICES = {
    "init": ("cold", "warm"),
    "vocab_mode": ("replace", "extend"),
    "precision": ("fp32", "bf16"),
}


@dataclass
class TrainConfig:
    """Settings of one ``speechlm train`` run (YAML keys have the same names).

    ``batch_size`` is per process and micro-step: the global batch is
    ``batch_size * grad_accum * processes`` sequences of ``seq_len`` packed tokens.
    """

    data: str
    output_dir: str
    eval_data: str | None = None
    init: str = "cold"
    model: dict = field(default_factory=lambda: {
        "model_type": "llama", "hidden_size": 256, "intermediate_size": 1024,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
        "max_position_embeddings": 2048})
    init_from: str | None = None
    vocab_mode: str = "extend"
    formats: dict = field(default_factory=lambda: {"speech_only": 1.0})
    p_switch: float = 0.3
    seq_len: int = 256
    batch_size: int = 16
    grad_accum: int = 1
    max_steps: int = 1000
    lr: float = 5e-4
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    warmup_steps: int = 100
    precision: str = "fp32"
    save_steps: int = 500
    save_total_limit: int = 2
    eval_steps: int = 500
    logging_steps: int = 50
    seed: int = 0
    fsdp: bool = False
    torch_compile: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _type_ok(value, hints[f.name]):
                raise ConfigError(f"{f.name}: expected {_type_name(hints[f.name])}, "
                                  f"got {type(value).__name__} {value!r}")
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}: must be one of {', '.join(allowed)}, "
                                  f"got {getattr(self, key)!r}")
        for key in ("seq_len", "batch_size", "grad_accum", "max_steps", "save_steps", "eval_steps",
                    "logging_steps"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be positive, got {getattr(self, key)}")
        if self.init == "warm" and not self.init_from:
            raise ConfigError("init_from: required when init=warm (a text LM directory or hub id)")
        from speechlm.sequences.formats import check_formats

        check_formats(self.formats)
        # ints are valid floats in YAML (lr: 1 is 1.0)
        for f in dataclasses.fields(self):
            if hints[f.name] is float:
                setattr(self, f.name, float(getattr(self, f.name)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; an unknown or missing key raises ``ConfigError`` naming it."""
        names = {f.name for f in dataclasses.fields(cls)}
        for k in d:
            if k not in names:
                raise ConfigError(f"{k}: unknown config key; valid keys: "
                                  f"{', '.join(sorted(names))}")
        for f in dataclasses.fields(cls):
            if (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                    and f.name not in d):
                raise ConfigError(f"{f.name}: required config key is missing")
        # YAML 1.1 reads 1e-3 (no dot) as a string: accept it where a float is expected
        hints = typing.get_type_hints(cls)
        d = dict(d)
        for k, v in d.items():
            if hints[k] is float and isinstance(v, str):
                try:
                    d[k] = float(v)
                except ValueError:
                    pass  # left as is: __post_init__ names the key
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
        """Read a YAML file (or nothing), then apply ``key=value`` overrides.

        Dotted keys reach into mappings: ``model.hidden_size=64``; values are parsed as YAML.
        """
        import yaml

        d: dict[str, Any] = {}
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"{p}: config file not found")
            try:
                d = yaml.safe_load(p.read_text()) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{p}: invalid YAML: {e}") from e
            if not isinstance(d, dict):
                raise ConfigError(f"{p}: the config must be a mapping of key: value")
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r}: expected key=value")
            key, raw = item.split("=", 1)
            value = yaml.safe_load(raw) if raw else None
            parts = key.split(".")
            target = d
            for part in parts[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise ConfigError(f"{key}: {part} is not a mapping")
            target[parts[-1]] = value
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (saved in the model directory)."""
        return dataclasses.asdict(self)


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))
