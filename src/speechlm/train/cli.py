"""``speechlm train CONFIG.yaml [key=value ...]``."""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    config: Path = typer.Argument(..., help="YAML training config (keys: see docs/training.md)."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. max_steps=100 "
                                          "model.hidden_size=128"),
) -> None:
    """Train a speech LM from a YAML config; re-running resumes from the last checkpoint."""
    import json
    import os

    from speechlm.train import TrainConfig, run_training

    cfg = TrainConfig.from_yaml(config, overrides or [])
    metrics = run_training(cfg)
    _end_process_group()
    summary = {k: metrics.get(k) for k in ("steps", "final_train_loss", "final_eval_loss",
                                           "tokens_per_second", "parameters")}
    if int(os.environ.get("RANK", "0")) == 0:  # one summary line under torchrun
        typer.echo(json.dumps(summary))


def _end_process_group() -> None:
    """Under torchrun: wait for every rank, then close the process group.

    Rank 0 writes the model card after the others finish; a rank that exits with gloo still
    open aborts at interpreter shutdown ("terminate called without an active exception").
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
