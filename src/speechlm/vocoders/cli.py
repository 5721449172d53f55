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


@vocoder_app.command("train")
def train(
    manifest: Path = typer.Option(..., "--manifest", help="Training manifest (audio + text)."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="Tokenizer dir (or a model dir)."),
    out: Path = typer.Option(..., "--out", help="Vocoder directory (resumes if it holds a run)."),
    preset: str = typer.Option("tiny", "--preset", help="tiny (CPU, minutes) or paper."),
    max_hours: float = typer.Option(10.0, "--max-hours", help="Audio used at most (hours)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    overrides: list[str] = typer.Argument(None, help="key=value config overrides (JSON values)."),
) -> None:
    """Train the unit HiFi-GAN (units [+F0, +speaker] -> audio, with a duration predictor)."""
    from speechlm.errors import ConfigError
    from speechlm.vocoders.hifigan.config import preset as make_preset
    from speechlm.vocoders.hifigan.train import train_hifigan

    kv = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value")
        key, value = item.split("=", 1)
        try:
            kv[key] = json.loads(value)
        except json.JSONDecodeError:
            kv[key] = value
    if (tokenizer / "speech_tokenizer").is_dir():
        tokenizer = tokenizer / "speech_tokenizer"
    d = train_hifigan(manifest, tokenizer, out, make_preset(preset, **kv), max_hours=max_hours,
                      device=device)
    typer.echo(json.dumps({"out": str(d), "log": str(d / "log.jsonl")}))
