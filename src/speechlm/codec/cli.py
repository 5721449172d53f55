"""``speechlm codec train``: a DAC-style codec from a manifest (heavy imports stay inside)."""

from __future__ import annotations

from pathlib import Path

import typer

codec_app = typer.Typer(no_args_is_help=True)


@codec_app.command("train")
def train(
    manifest: Path = typer.Option(..., help="Manifest (JSONL) of the audio to train on."),
    out: Path = typer.Option(..., help="Output folder: the codec (config.json + "
                             "model.safetensors), with checkpoints/ and log.jsonl beside it. "
                             "Run the same command again to resume."),
    preset: str = typer.Option("tiny", help="tiny (one CPU thread, minutes) or paper (DAC "
                               "16 kHz: 12 codebooks, 400k steps)."),
    max_hours: float = typer.Option(None, help="Use at most this many hours of the manifest."),
    device: str = typer.Option("cpu", help="Torch device (cpu, cuda, cuda:1)."),
    overrides: list[str] = typer.Argument(None, help="key=value settings, e.g. max_steps=500 "
                                          "batch_size=16 model.n_codebooks=4 lambda_wav=0"),
) -> None:
    """Train a neural audio codec (DAC architecture, residual VQ); save it as a HF model folder.

    OUT loads like a hub checkpoint: tokenizer fit --kind dac --model OUT [--n-codebooks Q].
    """
    import json

    from speechlm.codec import CodecTrainConfig, train_codec
    from speechlm.codec import preset as preset_keys
    from speechlm.config import apply_overrides

    d = preset_keys(preset)
    d.update(manifest=str(manifest), output_dir=str(out))
    if max_hours is not None:
        d["max_hours"] = max_hours
    cfg = CodecTrainConfig.from_dict(apply_overrides(d, overrides or []))
    metrics = train_codec(cfg, device)
    losses = metrics["train_loss"]
    typer.echo(json.dumps({"out": str(out), "steps": metrics["steps"],
                           "final_train_loss": losses[-1][1] if losses else None,
                           "parameters": metrics["parameters"],
                           "unreadable": metrics["unreadable"]}))
