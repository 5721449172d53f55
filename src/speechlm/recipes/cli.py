"""``speechlm run RECIPE --out RUN``: a recipe end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def run(
    recipe: Annotated[str, typer.Argument(help="Recipe name (gslm, twist) or a recipe YAML path.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (created; re-use to resume).")],
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="Train on this imported corpus, not synthetic speech."),
    ] = None,
    scale: Annotated[str, typer.Option("--scale", help="tiny (CPU) or paper.")] = "tiny",
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Config overrides, e.g. train.max_steps=200 tokenizer.units=50."),
    ] = None,
) -> None:
    """Run a recipe end to end: corpus, tokenizer, tokens, LM, vocoder, evaluation, report.

    Each stage writes RUN/<stage>/ and is skipped when already finished; an interrupted run
    continues where it stopped (training resumes from its last checkpoint). The trained model is
    RUN/model, the figures RUN/results.json and the report RUN/report.md.
    """
    from speechlm.recipes.config import load_recipe
    from speechlm.recipes.pipeline import console, run_recipe

    cfg = load_recipe(recipe, scale, overrides)
    results = run_recipe(cfg, out, manifest)
    console.print(f"[bold green]done[/bold green]: report {out / 'report.md'}")
    for task, res in results.get("benchmarks", {}).items():
        console.print(f"  {task}: accuracy {res['accuracy']:.3f} ({res['n_pairs']} pairs)")
