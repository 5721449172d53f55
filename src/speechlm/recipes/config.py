"""Recipe files: a YAML stage list, one block of stage settings per scale, ``key=value`` overrides.

Layout of a recipe file::

    name: gslm
    description: ...
    stages: [corpus, data, benchmark, tokenizer, tokens, model, vocoder, eval, generate]
    scales:
      tiny:  {corpus: {...}, data: {...}, tokenizer: {...}, train: {...}, ...}
      paper: {...}

A scale block has one section per stage that has settings, named by the stage
(``Stage.key``: the stage name, except the ``model`` stage whose section is ``train``), and may
list its own ``stages`` when a scale runs others (a warm start at paper scale, say).
:func:`load_recipe` validates all of it before any work: every key of every section (the HF
model keys included), and the stage graph (each stage's inputs come earlier in the list).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechlm.config import apply_overrides, load_yaml
from speechlm.errors import ConfigError

RECIPE_DIR = Path(__file__).parent
TOP_KEYS = ("name", "description", "stages", "scales")


@dataclass
class Recipe:
    """A loaded, validated recipe at one scale."""

    name: str
    scale: str
    description: str
    stages: list[str]  # in run order
    confs: dict[str, Any]  # stage name -> its validated config (None: no settings)


def available_recipes() -> list[str]:
    """Names of the recipes shipped with speechlm."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def _unshared(value: Any) -> Any:
    """A copy in which no two places hold the same dict or list. YAML merge keys (``<<: *ar``)
    share nested mappings, and ``copy.deepcopy`` keeps that sharing, so an override of
    ``nar.model.x`` would also change ``train.model``."""
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value


def load_recipe(name: str, scale: str = "tiny", overrides: list[str] | None = None) -> Recipe:
    """Load recipe ``name`` (a shipped name or a YAML path) at ``scale``, apply the overrides
    (``train.max_steps=100``, ``tokenizer.kind=logmel``) and validate everything.

    Any invalid key or value raises ``ConfigError`` naming it (``tokenizer.unitz: unknown key;
    valid keys: ...``).
    """
    from speechlm.recipes.stages import STAGES

    path = Path(name)
    if not path.suffix:
        path = RECIPE_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown recipe '{name}'; available: {', '.join(available_recipes())} "
                          "(or give the path of a recipe YAML file)")
    doc = load_yaml(path)
    for key in doc:
        if key not in TOP_KEYS:
            raise ConfigError(f"{path}: {key}: unknown key; valid keys: {', '.join(TOP_KEYS)}")
    recipe_name = doc.get("name", path.stem)
    scales = doc.get("scales") or {}
    if scale not in scales:
        raise ConfigError(f"recipe '{recipe_name}' has no scale '{scale}'; "
                          f"available: {', '.join(scales)}")
    block = _unshared(scales[scale] or {})
    if not isinstance(block, dict):
        raise ConfigError(f"{path}: scales.{scale}: expected a mapping of stage sections")
    stages = block.pop("stages", doc.get("stages"))  # a scale may run its own list
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{path}: stages: give the list of stages, e.g. [corpus, data, ...]; "
                          f"valid: {', '.join(STAGES.names())}")
    specs = [STAGES.get(s, key="stages") for s in stages]
    block = apply_overrides(block, overrides or [])
    sections = {spec.key: spec for spec in specs if spec.config is not None}
    for key, value in block.items():
        if key not in sections:
            raise ConfigError(f"{_first_leaf(key, value)}: unknown section '{key}' for recipe "
                              f"'{recipe_name}'; valid sections: {', '.join(sections)}")
    confs = {spec.name: spec.load(block.get(spec.key)) for spec in specs}
    _check_graph(stages, confs)
    return Recipe(recipe_name, scale, doc.get("description", ""), list(stages), confs)


def _check_graph(stages: list[str], confs: dict[str, Any]) -> None:
    """Each stage's inputs (and ``after`` stages, when present) come earlier in the list."""
    from speechlm.recipes.stages import STAGES

    for i, name in enumerate(stages):
        if name in stages[:i]:
            raise ConfigError(f"stages: '{name}' is listed twice")
        spec = STAGES.get(name)
        for need in spec.needs_of(confs[name]):
            if need not in stages[:i]:
                fix = "must come before it" if need in stages else "is missing"
                raise ConfigError(f"stages: '{name}' reads the output of stage '{need}', which "
                                  f"{fix}; stages: {', '.join(stages)}")
        for first in spec.after:
            if first in stages[i + 1:]:
                raise ConfigError(f"stages: '{name}' must come after '{first}'; "
                                  f"stages: {', '.join(stages)}")


def _first_leaf(key: str, value: Any) -> str:
    """``trian.max_steps`` for ``{trian: {max_steps: 3}}``: the full key a user typed."""
    while isinstance(value, dict) and len(value) == 1:
        (sub, value), = value.items()
        key = f"{key}.{sub}"
    return key
