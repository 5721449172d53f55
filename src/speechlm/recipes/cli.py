"""``speechlm run RECIPE --out RUN``: a recipe end to end (``--dry-run``: its plan only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from speechlm.recipes.config import available_recipes


def run(
    recipe: Annotated[str, typer.Argument(
        help=f"Recipe name ({', '.join(available_recipes())}) or a recipe YAML path.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Run directory (created; re-use to resume)."),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="Train on this imported corpus, not synthetic speech."),
    ] = None,
    scale: Annotated[str, typer.Option(
        "--scale", help="tiny (CPU), paper, or another scale the recipe lists (slam, "
                        "spiritlm-expressive: tiny-interleaved; gslm: tiny-ssl).")] = "tiny",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Validate the recipe and print the plan (stages, "
                                       "settings, model sizes); no data, no weights, no work."),
    ] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Config overrides, e.g. train.max_steps=200 tokenizer.units=50."),
    ] = None,
) -> None:
    """Run a recipe end to end: corpus, tokenizer, tokens, LM, vocoder, evaluation, report.

    The recipe lists its stages; every setting is validated before the first one starts. Each
    stage writes RUN/<stage>/ and is skipped when already finished; an interrupted run continues
    where it stopped (training resumes from its last checkpoint), also after RUN was moved. The
    trained model is RUN/model, the figures RUN/results.json and the report RUN/report.md.
    """
    from speechlm.errors import ConfigError
    from speechlm.recipes.config import load_recipe

    cfg = load_recipe(recipe, scale, overrides)
    if dry_run:
        from speechlm.recipes.plan import format_plan

        typer.echo(format_plan(cfg, out, manifest))
        return
    if out is None:
        raise ConfigError("--out: give the run directory (or --dry-run to see the plan)")
    from speechlm.recipes.pipeline import console, run_recipe

    results = run_recipe(cfg, out, manifest)
    console.print(f"[bold green]done[/bold green]: report {out / 'report.md'}")
    for task, res in results.get("benchmarks", {}).items():
        count = f"{res['n_pairs']} pairs" if "n_pairs" in res else f"{res.get('n_items')} items"
        console.print(f"  {task}: accuracy {res['accuracy']:.3f} ({count})")
