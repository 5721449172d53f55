"""``speechlm vocoder ...``: fit the training-free fallback, train the envelope vocoder or the
unit HiFi-GAN."""

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
    kind: str = typer.Option("hifigan", "--kind", help="hifigan (units -> waveform, GAN; paper "
                             "scale, GPU) or envelope (units -> source-filter parameters; "
                             "intelligible after minutes on a CPU)."),
    preset: str = typer.Option("tiny", "--preset", help="tiny (CPU, minutes) or paper."),
    max_hours: float = typer.Option(None, "--max-hours",
                                    help="Audio used at most (hours; default 10 hifigan, "
                                    "0.5 envelope)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    overrides: list[str] = typer.Argument(None, help="key=value config overrides (JSON values)."),
) -> None:
    """Train a unit vocoder: units [+F0, +speaker] -> audio, with durations for de-duplicated
    units. Progress is shown; run the same command again to resume."""
    from speechlm.errors import ConfigError

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
    if kind == "envelope":
        from speechlm.vocoders.envelope.model import preset as envelope_preset
        from speechlm.vocoders.envelope.train import train_envelope

        d = train_envelope(manifest, tokenizer, out, envelope_preset(preset, **kv),
                           max_hours=0.5 if max_hours is None else max_hours, device=device)
    elif kind == "hifigan":
        from speechlm.vocoders.hifigan.config import preset as make_preset
        from speechlm.vocoders.hifigan.train import train_hifigan

        d = train_hifigan(manifest, tokenizer, out, make_preset(preset, **kv),
                          max_hours=10.0 if max_hours is None else max_hours, device=device)
    else:
        raise ConfigError(f"--kind: '{kind}' is not a trainable vocoder; valid: envelope, hifigan")
    typer.echo(json.dumps({"out": str(d), "log": str(d / "log.jsonl")}))
