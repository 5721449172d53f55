"""Command-line sub-commands of speechlm.recipes (placeholder until built)."""

import typer

def run() -> None:
    """Run a recipe end to end (not built yet)."""
    raise typer.Exit(2)
