"""Validated configuration dataclasses and the one ``key=value`` override parser.

Every configuration in speechlm (a training run, each stage of a recipe) is a dataclass deriving
from :class:`Config`. Building one checks every key before any work starts: an unknown key names
itself and lists the valid ones, a wrong type or a value out of range names the key and what it
accepts. Limits live beside the field as metadata (``choice``, ``positive``, ``at_least``,
``fraction``), so a reader sees a key's rule where the key is declared.

Overrides (``train.max_steps=100``, ``model.hidden_size=64``) go through :func:`apply_overrides`
for every command; values are YAML scalars, except that ``1e-3`` is a float (YAML 1.1 reads it as
a string).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from speechlm.errors import ConfigError


def choice(default: Any, *choices: Any) -> Any:
    """A field whose value must be one of ``choices`` (``default`` first when it is one)."""
    return dataclasses.field(default=default, metadata={"choices": choices or (default,)})


def positive(default: Any = dataclasses.MISSING) -> Any:
    """A number that must be > 0."""
    return dataclasses.field(default=default, metadata={"gt": 0})


def at_least(low: float, default: Any = dataclasses.MISSING) -> Any:
    """A number that must be >= ``low``."""
    return dataclasses.field(default=default, metadata={"ge": low})


def fraction(default: Any = dataclasses.MISSING) -> Any:
    """A number in the open interval (0, 1)."""
    return dataclasses.field(default=default, metadata={"gt": 0, "lt": 1})


def mapping(factory: Any = dict) -> Any:
    """A dict-valued field (a fresh default per instance)."""
    return dataclasses.field(default_factory=factory)


@dataclasses.dataclass
class Config:
    """Base class: subclasses are dataclasses whose fields are the YAML keys.

    ``__post_init__`` checks types and field limits, then calls :meth:`validate` for rules that
    involve several keys. Error messages start with the key; :meth:`from_dict` prefixes the path
    of the section (``train.``) so the user sees where the key lives.
    """

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            tp = hints[f.name]
            if _is_config_class(tp) and isinstance(value, dict):
                value = tp.from_dict(value, prefix=f"{f.name}.")
                setattr(self, f.name, value)
            if not _type_ok(value, tp):
                raise ConfigError(f"{f.name}: expected {_type_name(tp)}, "
                                  f"got {type(value).__name__} {value!r}")
            if _base_type(tp) is float and isinstance(value, int):
                setattr(self, f.name, float(value))  # ints are valid floats (YAML `lr: 1`)
            _check_limits(f, value)
        self.validate()

    def validate(self) -> None:
        """Rules across keys; override and raise ``ConfigError`` starting with the key."""

    @classmethod
    def keys(cls) -> list[str]:
        """The valid keys, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: Any, prefix: str = "") -> Config:
        """Build from a mapping; any invalid key raises ``ConfigError`` named ``prefix + key``."""
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping of "
                              f"key: value, got {type(d).__name__} {d!r}")
        names = cls.keys()
        for k in d:
            if k not in names:
                raise ConfigError(f"{prefix}{k}: unknown key; valid keys: {', '.join(names)}")
        for f in dataclasses.fields(cls):
            if (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                    and f.name not in d):
                raise ConfigError(f"{prefix}{f.name}: required key is missing")
        hints = typing.get_type_hints(cls)
        d = dict(d)
        for k, v in d.items():
            if _base_type(hints[k]) is float and isinstance(v, str):
                d[k] = _float_or_same(v)
        try:
            return cls(**d)
        except ConfigError as e:
            raise ConfigError(f"{prefix}{e}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dataclasses.asdict(self)


def apply_overrides(d: dict[str, Any], items: typing.Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` items to the nested mapping ``d`` in place (and return it).

    Missing sections are created; validation (done by the config classes afterwards) names any
    key that does not exist.
    """
    import yaml

    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override '{item}': empty key")
        node = d
        for i, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                raise ConfigError(f"{'.'.join(parts[: i + 1])}: is a value, not a section; "
                                  f"cannot set {key}")
            node = node[part]
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: value {raw!r} is not valid YAML ({e})") from None
        node[parts[-1]] = _float_or_same(value)
    return d


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file holding a mapping, or a ``ConfigError`` naming the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        d = yaml.safe_load(p.read_text())
    except yaml.MarkedYAMLError as e:  # one line: FILE:LINE:COLUMN and the parser's complaint
        mark = e.problem_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: invalid YAML: {e.problem or e.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: invalid YAML: {' '.join(str(e).split())}") from None
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: the config must be a mapping of key: value")
    return d


def load_json(path: str | Path, missing: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, unreadable or non-object file is a ``ConfigError``
    naming it (``missing`` says what the folder should have been)."""
    import json

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p} not found: {missing}")
    try:
        d = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid JSON ({e}); the folder is damaged") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: expected a JSON object")
    return d


def check_hf_config(model_cfg: dict[str, Any], key: str = "model") -> Any:
    """Validate HF config kwargs (``model_type`` + its keys) and return the built config.

    ``transformers`` accepts any keyword silently; here a key the config class does not know is
    an error that lists the valid keys, and a value whose type differs from the default's
    (``hidden_size: big``) is named.
    """
    import inspect

    from transformers import CONFIG_MAPPING, AutoConfig

    kwargs = dict(model_cfg)
    model_type = kwargs.pop("model_type", None)
    if not model_type:
        raise ConfigError(f"{key}.model_type: required (e.g. llama, qwen2, opt, gpt2)")
    if model_type not in CONFIG_MAPPING:
        raise ConfigError(f"{key}.model_type: unknown '{model_type}'; valid: "
                          f"{', '.join(sorted(CONFIG_MAPPING.keys()))}")
    cls = CONFIG_MAPPING[model_type]
    defaults = cls().to_dict()
    valid = (set(inspect.signature(cls.__init__).parameters) | set(defaults)) - {"self", "kwargs"}
    for k, v in kwargs.items():
        if k not in valid:
            raise ConfigError(f"{key}.{k}: unknown key for model_type {model_type}; valid keys: "
                              f"{', '.join(sorted(k for k in valid if not k.startswith('_')))}")
        default = defaults.get(k)
        if isinstance(default, bool) or isinstance(v, bool):
            ok = default is None or isinstance(v, bool) == isinstance(default, bool)
        elif isinstance(default, int | float):
            ok = isinstance(v, int | float) and (isinstance(default, float) or isinstance(v, int))
        else:
            ok = True
        if not ok:
            raise ConfigError(f"{key}.{k}: expected {type(default).__name__} (as the default "
                              f"{default!r}), got {type(v).__name__} {v!r}")
        if isinstance(v, int | float) and not isinstance(v, bool) and v < 0:
            raise ConfigError(f"{key}.{k}: must be >= 0, got {v}")
    try:
        return AutoConfig.for_model(model_type, **kwargs)
    except (ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"{key}: invalid config for model_type={model_type}: {e}") from None


SHOWN_CHANGES = 4  # differing keys named in a refusal


def describe_changes(old: dict, new: dict) -> str:
    """``train.max_steps: 8 -> 9, ...``: the keys whose values differ, flattened."""
    a, b = _flatten(old), _flatten(new)
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k, _UNSET) != b.get(k, _UNSET)]
    shown = [f"{k}: {_show(a.get(k, _UNSET))} -> {_show(b.get(k, _UNSET))}"
             for k in keys[:SHOWN_CHANGES]]
    more = len(keys) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


_UNSET = object()


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _show(v: Any) -> str:
    import json

    return "(unset)" if v is _UNSET else json.dumps(v)


# ---- type checks ----------------------------------------------------------------------------
def _is_config_class(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Config)


def _base_type(tp: Any) -> Any:
    """``float`` for ``float | None``, else ``tp``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _float_or_same(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    return isinstance(value, origin or tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if _is_config_class(tp):
        return "a mapping"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _check_limits(f: dataclasses.Field, value: Any) -> None:
    if value is None:
        return
    m = f.metadata
    if "choices" in m and value not in m["choices"]:
        raise ConfigError(f"{f.name}: must be one of {', '.join(map(str, m['choices']))}, "
                          f"got {value!r}")
    if "gt" in m and not value > m["gt"]:
        raise ConfigError(f"{f.name}: must be > {m['gt']}, got {value!r}")
    if "ge" in m and not value >= m["ge"]:
        raise ConfigError(f"{f.name}: must be >= {m['ge']}, got {value!r}")
    if "lt" in m and not value < m["lt"]:
        raise ConfigError(f"{f.name}: must be < {m['lt']}, got {value!r}")
