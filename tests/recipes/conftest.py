"""Tests taking ``recipe, scale`` run for every scale of every shipped recipe (a new recipe or
scale is covered without editing them)."""

from __future__ import annotations

import yaml

from speechlm.recipes import available_recipes
from speechlm.recipes.config import RECIPE_DIR


def pytest_generate_tests(metafunc) -> None:
    if {"recipe", "scale"} <= set(metafunc.fixturenames):
        pairs = [(name, scale) for name in available_recipes()
                 for scale in yaml.safe_load((RECIPE_DIR / f"{name}.yaml").read_text())["scales"]]
        metafunc.parametrize("recipe, scale", pairs, ids=[f"{r}-{s}" for r, s in pairs])
