"""The HF ``Trainer`` as speechlm uses it: one subclass change (a mixin) and callbacks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback

TRAINING_ARGS_BIN = "training_args.bin"
STATE_FILE = "trainer_state.json"  # the Trainer's own record in each checkpoint


class SpeechTrainerMixin:
    """Put first in the bases of any ``Trainer`` (stock or TRL): its checkpoints hold no pickle,
    and a finished run started again stays finished.

    The stock ``_save`` pickles ``TrainingArguments`` (or a TRL config) into
    ``training_args.bin``; nothing reads it back on resume, so it is replaced by
    ``training_args.json``. Optimizer, scheduler and RNG states stay as the Trainer writes them
    and are read with ``torch.load(weights_only=True)``.

    ``train(resume_from_checkpoint=C)`` from the checkpoint a run ended on (``max_steps``
    reached, or an early stop) does not train: the stock loop takes one more step before it
    checks ``max_steps`` (transformers 5) and forgets an early stop. It loads the state and the
    kept model instead (the best checkpoint with ``load_best_model_at_end``, else ``C``).
    """

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        drop_foreign_token_ids(self.model)
        super()._save(output_dir, state_dict)
        out = Path(output_dir or self.args.output_dir)
        if self.args.should_save:
            (out / TRAINING_ARGS_BIN).unlink(missing_ok=True)
            (out / "training_args.json").write_text(self.args.to_json_string())


    def train(self, resume_from_checkpoint: str | None = None, **kwargs: Any) -> Any:
        if resume_from_checkpoint is None or not run_finished(resume_from_checkpoint):
            return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        from transformers import TrainerState
        from transformers.trainer_utils import TrainOutput

        self.state = TrainerState.load_from_json(str(Path(resume_from_checkpoint) / STATE_FILE))
        # the callbacks see a run of no steps (a moved run's best checkpoint is found again)
        self.control = self.callback_handler.on_train_begin(self.args, self.state, self.control)
        best = self.state.best_model_checkpoint
        kept = best if self.args.load_best_model_at_end and best else resume_from_checkpoint
        self._load_from_checkpoint(kept)
        self.control = self.callback_handler.on_train_end(self.args, self.state, self.control)
        return TrainOutput(self.state.global_step, 0.0, {})


def drop_foreign_token_ids(model: Any) -> None:
    """Clear special ids that lie outside the model's token table.

    ``Trainer.train`` copies the tokenizer's pad/BOS/EOS ids into the model's text config. A
    backbone whose table is not the tokenizer's (the duplex LM reads embeddings through a one-row
    table) then holds ids it cannot have, and transformers warns on every save and load.
    """
    text = getattr(getattr(model, "config", None), "get_text_config", lambda: None)()
    size = getattr(text, "vocab_size", None)
    if size is None:
        return
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(text, name, None)
        if isinstance(value, int) and not 0 <= value < size:
            setattr(text, name, None)


class FreezeBody(TrainerCallback):
    """For the first ``steps`` optimizer steps only the token embeddings and the output layer
    learn: a warm-started body is not disturbed while the new rows are still random.

    The body's gradients are dropped just before the optimizer step (a parameter without a
    gradient is skipped by AdamW: no update, no weight decay, no moment change), so the body's
    optimizer state starts when it is released, as it would for a later-added parameter group.
    """

    def __init__(self, steps: int):
        self.steps = steps

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if state.global_step >= self.steps or model is None:
            return
        keep = {id(model.get_input_embeddings().weight)}
        out = model.get_output_embeddings()
        if out is not None:
            keep.add(id(out.weight))
        for p in model.parameters():
            if id(p) not in keep:
                p.grad = None


def run_finished(checkpoint: str | Path) -> bool:
    """Whether the run had ended (``max_steps`` or an early stop) when ``checkpoint`` was saved."""
    import json

    state = json.loads((Path(checkpoint) / STATE_FILE).read_text())
    control = state.get("stateful_callbacks", {}).get("TrainerControl", {}).get("args", {})
    return bool(control.get("should_training_stop")) or (
        0 < state.get("max_steps", 0) <= state.get("global_step", 0))


class SpeechLMTrainer(SpeechTrainerMixin, Trainer):
    """The stock Trainer, except that checkpoints hold no pickle (:class:`SpeechTrainerMixin`)."""


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


class SimulatedCrash(RuntimeError):
    """What :class:`StopAfterSave` raises with ``in_process``."""


class StopAfterSave(TrainerCallback):
    """Ends the run right after checkpoint ``step`` is written (tests a crash + resume): kills
    the process, or with ``in_process`` raises :class:`SimulatedCrash` (a kill's stand-in)."""

    def __init__(self, step: int, exit_code: int = 137, in_process: bool = False):
        self.step = step
        self.exit_code = exit_code
        self.in_process = in_process

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            if self.in_process:
                raise SimulatedCrash(f"crash after checkpoint {self.step}")
            import os

            os._exit(self.exit_code)  # no cleanup, like SIGKILL
