"""Command-line sub-commands of speechlm.generate (placeholder until built)."""

import typer

def generate() -> None:
    """Continue a spoken prompt (not built yet)."""
    raise typer.Exit(2)


def resynth() -> None:
    """Tokenise and vocode a file (not built yet)."""
    raise typer.Exit(2)
