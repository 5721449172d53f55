"""``speechlm run RECIPE --dry-run``: the validated recipe and what each stage would do.

No data is read, no weights are loaded and nothing is downloaded: model sizes are counted on the
``meta`` device from configs (a checkpoint's config only when it is a local folder or already
cached).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from speechlm.recipes.config import Recipe
from speechlm.recipes.pipeline import plan_recipe, stage_config
from speechlm.recipes.stages import STAGES, RunContext

LONG_LIST = 6  # lists longer than this are abbreviated in the plan (e.g. 88 voices)


def format_plan(recipe: Recipe, out: Path | None = None, manifest: Path | None = None) -> str:
    """The plan as text: each stage, its validated settings and what it would produce."""
    ctx = RunContext(recipe, out, manifest)
    plans = plan_recipe(ctx)
    lines = [f"recipe {recipe.name} ({recipe.scale}): {recipe.description}".rstrip(": "),
             f"stages: {' -> '.join(recipe.stages)}"]
    for name in recipe.stages:
        spec = STAGES.get(name)
        needs = spec.needs_of(ctx.conf(name))
        lines.append("")
        lines.append(f"[{name}]" + (f" reads {', '.join(needs)}" if needs else ""))
        own = stage_config(ctx, name).get(spec.key) if spec.config is not None else None
        if own:
            text = yaml.safe_dump({spec.key: _short(own)}, sort_keys=False, width=100,
                                  default_flow_style=None)
            lines += ["  " + line for line in text.rstrip().splitlines()]
        elif spec.config is not None:
            lines.append(f"  {spec.key}: null")
        lines += [f"  => {k}: {v}" for k, v in plans[name].items()]
    lines += ["", "dry run: the recipe is valid; nothing was run"]
    return "\n".join(lines)


def _short(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list) and len(value) > LONG_LIST:
        return [*value[:3], f"... ({len(value)} items)"]
    return value
