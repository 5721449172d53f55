"""``speechlm vocoder ...``: fit the training-free fallback, train the unit HiFi-GAN."""

from __future__ import annotations

import json
from pathlib import Path

import typer

vocoder_app = typer.Typer(no_args_is_help=True)


@vocoder_app.command("fit-fallback")
def fit_fallback(
    manifest: Path = typer.Option(..., "--manifest", help="Training manifest (audio to average)."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="Tokenizer dir (or a model dir)."),
    out: Path = typer.Option(..., "--out", help="Vocoder directory to write (e.g. MODEL/vocoder)."),
    max_hours: float = typer.Option(1.0, "--max-hours", help="Audio used at most (hours)."),
) -> None:
    """Fit the training-free fallback vocoder (per-unit mean spectra, source-filter synthesis)."""
    from speechlm.vocoders.fallback import fit_fallback_vocoder

    if (tokenizer / "speech_tokenizer").is_dir():  # a model directory was given
        tokenizer = tokenizer / "speech_tokenizer"
    d = fit_fallback_vocoder(manifest, tokenizer, out, max_hours=max_hours)
    typer.echo(json.dumps(json.loads((d / "vocoder.json").read_text())))
