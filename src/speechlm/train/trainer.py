"""The HF ``Trainer`` as speechlm uses it: one subclass change (a mixin) and callbacks."""

from __future__ import annotations

import time
from pathlib import Path

from transformers import Trainer, TrainerCallback

TRAINING_ARGS_BIN = "training_args.bin"


class NoPickleMixin:
    """Put first in the bases of any ``Trainer`` (stock or TRL): its checkpoints hold no pickle.

    The stock ``_save`` pickles ``TrainingArguments`` (or a TRL config) into
    ``training_args.bin``; nothing reads it back on resume, so it is replaced by
    ``training_args.json``. Optimizer, scheduler and RNG states stay as the Trainer writes them
    and are read with ``torch.load(weights_only=True)``.
    """

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        out = Path(output_dir or self.args.output_dir)
        if self.args.should_save:
            (out / TRAINING_ARGS_BIN).unlink(missing_ok=True)
            (out / "training_args.json").write_text(self.args.to_json_string())


class SpeechLMTrainer(NoPickleMixin, Trainer):
    """The stock Trainer, except that checkpoints hold no pickle (:class:`NoPickleMixin`)."""


class ThroughputCallback(TrainerCallback):
    """Measures optimizer steps and tokens per second of wall time for this process's run."""

    def __init__(self, tokens_per_step: int):
        self.tokens_per_step = tokens_per_step
        self.t0 = 0.0
        self.step0 = 0
        self.result: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()
        self.step0 = state.global_step

    def on_train_end(self, args, state, control, **kwargs):
        elapsed = time.perf_counter() - self.t0
        steps = state.global_step - self.step0
        self.result = {
            "steps_this_run": steps,
            "seconds_this_run": elapsed,
            "tokens_per_second": steps * self.tokens_per_step / elapsed if elapsed > 0 else 0.0,
        }


class StopAfterSave(TrainerCallback):
    """Kills the process right after checkpoint ``step`` is written (tests a crash + resume)."""

    def __init__(self, step: int, exit_code: int = 137):
        self.step = step
        self.exit_code = exit_code

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            import os

            os._exit(self.exit_code)  # no cleanup, like SIGKILL
