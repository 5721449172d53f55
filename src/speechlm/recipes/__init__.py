"""Recipes: YAML files (one per system of the seed) and the pipeline that runs them."""

from speechlm.recipes.config import available_recipes, load_recipe

__all__ = ["available_recipes", "load_recipe"]
