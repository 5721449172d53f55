"""``speechlm ssl train``: HuBERT, wav2vec 2.0 or CPC pre-training from a manifest (heavy
imports stay inside)."""

from __future__ import annotations

from pathlib import Path

import typer

ssl_app = typer.Typer(no_args_is_help=True)


@ssl_app.command("train")
def train(
    manifest: Path = typer.Option(..., help="Manifest (JSONL) of the audio to pre-train on."),
    out: Path = typer.Option(..., help="Output folder: the encoder (config.json + "
                             "model.safetensors), with checkpoints/ (and labels/) beside it. "
                             "Run the same command again to resume."),
    objective: str = typer.Option(None, help="hubert (masked prediction of k-means units), "
                                  "wav2vec2 (contrastive over quantised features) or cpc "
                                  "(predict future frames). Default: hubert."),
    targets: Path = typer.Option(None, help="HuBERT: unit tokenizer whose frame units are the "
                                 "targets. "
                                 "Iteration 1: an MFCC one (default: fit MFCC, 100 units, on "
                                 "the manifest); iteration 2: `tokenizer fit --kind hubert "
                                 "--model ITER1_OUT --layer L`."),
    steps: int = typer.Option(None, help="Optimizer steps (max_steps; default 1000)."),
    batch_size: int = typer.Option(None, help="Windows per step and process (default 8)."),
    lr: float = typer.Option(None, help="Peak learning rate (default 5e-4)."),
    seed: int = typer.Option(None, help="Seed of the weights, windows and masks (default 0)."),
    model_config: Path = typer.Option(None, help="YAML or JSON file of the encoder's HF config "
                                      "keys (HubertConfig, Wav2Vec2Config, CPCConfig; default: "
                                      "the base model)."),
    overrides: list[str] = typer.Argument(None, help="key=value settings, e.g. mask_prob=0.65 "
                                          "crop_seconds=4 model.hidden_size=256 precision=fp32"),
) -> None:
    """Pre-train a speech encoder (HuBERT, wav2vec 2.0, CPC); save it as a HF model folder.

    OUT loads like a hub checkpoint: tokenizer fit --kind hubert|wav2vec2|cpc --model OUT
    --layer L (for HuBERT, also the targets of its next iteration).
    """
    import json
    import os

    from speechlm.config import apply_overrides, load_yaml
    from speechlm.errors import ConfigError
    from speechlm.ssl import SSLTrainConfig, train_ssl
    from speechlm.ssl.config import OBJECTIVES, encoder_config

    d: dict = {"manifest": str(manifest), "output_dir": str(out)}
    for key, value in (("objective", objective), ("targets", targets), ("max_steps", steps),
                       ("batch_size", batch_size), ("lr", lr), ("seed", seed)):
        if value is not None:
            d[key] = str(value) if isinstance(value, Path) else value
    if model_config is not None:
        d["model"] = load_yaml(model_config)
        kind = objective if objective in OBJECTIVES else "hubert"  # a bad one is named below
        try:
            encoder_config(kind, d["model"])
        except ConfigError as e:  # name the file the bad key is in
            raise ConfigError(f"{model_config}: {e}") from None
    cfg = SSLTrainConfig.from_dict(apply_overrides(d, overrides or []))
    metrics = train_ssl(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary line under torchrun
        losses = metrics["train_loss"]
        typer.echo(json.dumps({"out": str(out), "objective": metrics["objective"],
                               "steps": metrics["steps"],
                               "final_train_loss": losses[-1][1] if losses else None,
                               "n_units": metrics["n_units"],
                               "collapsed": metrics["collapsed"]}))
