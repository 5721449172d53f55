"""Speech LM training: ``TrainConfig`` + ``run_training`` on the HF Trainer (DDP/FSDP: torchrun)."""

from speechlm.train.config import TrainConfig


def run_training(cfg: TrainConfig, callbacks: list | None = None) -> dict:
    """Train as configured (see :func:`speechlm.train.run.run_training`)."""
    from speechlm.train.run import run_training as _run

    return _run(cfg, callbacks)


__all__ = ["TrainConfig", "run_training"]
