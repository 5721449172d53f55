"""Command-line sub-commands of speechlm.tokenizers (placeholder until built)."""

import typer

tokenizer_app = typer.Typer(no_args_is_help=True)


def tokenize() -> None:
    """Tokenise a manifest into sharded Parquet (not built yet)."""
    raise typer.Exit(2)
