"""Command-line sub-commands of speechlm.train (placeholder until built)."""

import typer

def train() -> None:
    """Train a speech LM from a YAML config (not built yet)."""
    raise typer.Exit(2)
