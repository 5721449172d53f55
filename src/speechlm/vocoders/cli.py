"""Command-line sub-commands of speechlm.vocoders (placeholder until built)."""

import typer

vocoder_app = typer.Typer(no_args_is_help=True)
