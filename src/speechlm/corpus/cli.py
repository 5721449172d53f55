"""Command-line sub-commands of speechlm.corpus (placeholder until built)."""

import typer

corpus_app = typer.Typer(no_args_is_help=True)
synth_app = typer.Typer(no_args_is_help=True)
