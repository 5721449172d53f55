"""Recipes: YAML stage lists (one file per system of the seed), the stage registry and the
pipeline that runs them."""

from speechlm.recipes.config import Recipe, available_recipes, load_recipe

__all__ = ["Recipe", "available_recipes", "load_recipe"]
