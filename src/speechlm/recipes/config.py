"""Recipe files: YAML with one block per scale, plus ``key=value`` command-line overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from speechlm.errors import ConfigError

RECIPE_DIR = Path(__file__).parent
# Top-level keys a scale block may have; `train` is validated by TrainConfig itself.
SCALE_KEYS = {
    "corpus", "valid_fraction", "benchmark", "tokenizer", "textlm", "train", "vocoder", "eval",
    "generate",
}


def available_recipes() -> list[str]:
    """Names of the recipes shipped with speechlm."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(
    name: str, scale: str = "tiny", overrides: list[str] | None = None
) -> dict[str, Any]:
    """Load recipe ``name`` (a shipped name or a YAML path) at ``scale`` and apply overrides.

    Overrides are ``dotted.key=value`` with YAML values (``train.max_steps=100``,
    ``tokenizer.kind=logmel``); an unknown key raises ``ConfigError`` naming it.
    """
    path = Path(name)
    if not path.suffix:
        path = RECIPE_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown recipe '{name}'; available: {', '.join(available_recipes())} "
                          "(or give the path of a recipe YAML file)")
    doc = yaml.safe_load(path.read_text())
    scales = doc.get("scales", {})
    if scale not in scales:
        raise ConfigError(f"recipe '{doc.get('name', name)}' has no scale '{scale}'; "
                          f"available: {', '.join(scales)}")
    cfg = copy.deepcopy(scales[scale])
    unknown = set(cfg) - SCALE_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)} in scale '{scale}'; "
                          f"known: {sorted(SCALE_KEYS)}")
    for item in overrides or []:
        apply_override(cfg, item)
    cfg["name"] = doc.get("name", path.stem)
    cfg["scale"] = scale
    return cfg


def apply_override(cfg: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in ``cfg`` in place; the parent keys must exist."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form key=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if parts[0] not in SCALE_KEYS:
        raise ConfigError(f"unknown config key '{key}'; top-level keys: {sorted(SCALE_KEYS)}")
    node = cfg
    for i, part in enumerate(parts[:-1]):
        if node.get(part) is None:
            node[part] = {}
        if not isinstance(node[part], dict):
            raise ConfigError(f"config key '{'.'.join(parts[: i + 1])}' is not a section")
        node = node[part]
    node[parts[-1]] = parse_value(raw)


def parse_value(raw: str) -> Any:
    """A YAML scalar, except that ``1e-3`` is a float (YAML 1.1 would read it as a string)."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
