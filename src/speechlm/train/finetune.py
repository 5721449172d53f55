"""Fine-tuning objectives on TRL's trainers: ``sft`` (prompt-masked) and ``dpo`` (preferences).

Both train on one example (or pair) per row of the token dataset, not on ``lm``'s packed
blocks, and usually start from a trained model (``init: from_model``). Formats stay pure
functions; the objectives only turn their output into the pre-tokenised rows TRL accepts:

- ``sft``: each example of an example format (``speech_instruction``) becomes ``input_ids`` and
  ``completion_mask``, the format's loss mask. With ``completion_only_loss`` TRL's
  ``SFTTrainer`` makes ``labels`` -100 wherever the mask is False (the prompt), truncates to
  ``seq_len`` (its ``max_length``), drops rows left without a loss position and pads per batch
  (or, with ``packing: true``, packs whole examples into rows of ``seq_len``).
- ``dpo``: each pair of a pair format (``speech_preference``) becomes ``prompt_ids``,
  ``chosen_ids`` and ``rejected_ids``, the layout TRL's ``DPOTrainer`` collates. Its
  ``_prepare_dataset`` tokenises text, so :class:`SpeechDPOTrainer` overrides only that step to
  let ids through. The reference model is a frozen copy of the starting model (after any
  vocabulary extension), so it is never reloaded from a path whose vocabulary is smaller.

Both trainers carry :class:`~speechlm.train.trainer.SpeechTrainerMixin` (checkpoints without pickle)
and resume from ``output_dir/checkpoints`` like ``lm``. The formatted rows are memory-mapped
Arrow files under ``output_dir/examples``, built once by the main process.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speechlm.errors import ConfigError
from speechlm.sequences.example import TOKENS
from speechlm.train.data import PAIR_COLUMNS
from speechlm.train.objectives import (
    CACHE_DIR,
    OBJECTIVES,
    Objective,
    fsdp_arguments,
    training_arguments,
)

if TYPE_CHECKING:
    from speechlm.sequences.formats import FormatUse
    from speechlm.sequences.vocab import SpeechVocab
    from speechlm.train.config import TrainConfig



# ---- data: token dataset -> TRL's pre-tokenised rows ---------------------------------------
def sft_examples(data_dir: str | Path, vocab: SpeechVocab, uses: Sequence[FormatUse], seed: int,
                 cache_dir: str | Path, key: str = "data", progress: bool = True):
    """One row per example: ``input_ids`` and ``completion_mask`` (True where loss is taken)."""
    from speechlm.train.data import MASK, STEPS, STREAM, format_examples

    examples = format_examples(data_dir, vocab, uses, seed, cache_dir, key=key, progress=progress)
    streams = [c[len(STREAM):] for c in examples.column_names if c.startswith(STREAM)]
    if streams != [TOKENS]:
        raise ConfigError(f"formats: objective sft trains on single-stream ({TOKENS}) examples; "
                          f"the formats made streams {', '.join(streams)}")
    _check_rows(examples, key, data_dir)
    # renaming and dropping columns rewrites nothing: the rows stay in the memory-mapped file
    return examples.rename_columns({STREAM + TOKENS: "input_ids",
                                    MASK + TOKENS: "completion_mask"}).remove_columns(STEPS)


def preference_pairs(data_dir: str | Path, vocab: SpeechVocab, uses: Sequence[FormatUse],
                     seed: int, cache_dir: str | Path, key: str = "data", progress: bool = True):
    """One row per pair: ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` (memory-mapped Arrow)."""
    from speechlm.train.data import format_examples

    pairs = format_examples(data_dir, vocab, uses, seed, cache_dir, key=key, progress=progress)
    _check_rows(pairs, key, data_dir)
    return pairs


def _check_rows(ds, key: str, data_dir: str | Path) -> None:
    if len(ds) == 0:
        raise ConfigError(f"{key}: no examples ({data_dir} is empty)")


def _splits(cfg: TrainConfig, make: Callable[..., Any], uses: Sequence[FormatUse],
            eval_uses: Sequence[FormatUse]) -> tuple[Any, Any]:
    """``make(data_dir, key, uses)`` for ``data`` and ``eval_data``, written by the main process."""
    from accelerate import PartialState

    # rank 0 writes the Arrow files, the other ranks then read them (DDP / FSDP)
    with PartialState().main_process_first():
        train = make(cfg.data, "data", uses)
        evald = make(cfg.eval_data, "eval_data", eval_uses) if cfg.eval_data else None
    return train, evald


def _check_bool(args: dict[str, Any], name: str) -> None:
    if not isinstance(args[name], bool):
        raise ConfigError(f"objective_args.{name}: must be true or false, got {args[name]!r}")


def _frozen_copy(model: Any) -> Any:
    """A copy of ``model`` in eval mode with no parameter requiring gradients."""
    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref


# ---- the trainers: TRL's, with no pickle in checkpoints ------------------------------------
@functools.cache
def trainer_classes() -> tuple[type, type]:
    """``(SpeechSFTTrainer, SpeechDPOTrainer)``, defined on first use.

    Importing TRL's trainers takes seconds; importing this module (as validating a config does)
    must not.
    """
    from trl import DPOTrainer, SFTTrainer

    from speechlm.train.trainer import SpeechTrainerMixin

    class SpeechSFTTrainer(SpeechTrainerMixin, SFTTrainer):
        """TRL's ``SFTTrainer``; checkpoints hold ``training_args.json``, not a pickle."""

    class SpeechDPOTrainer(SpeechTrainerMixin, DPOTrainer):
        """TRL's ``DPOTrainer`` on pre-tokenised pairs; checkpoints hold no pickle."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            """Pass ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` rows through.

            TRL's preparation extracts, EOS-terminates and tokenises text prompts; ids from a
            pair format are final. Its one filter is kept: a prompt that fills ``max_length``
            leaves no completion token to compare.
            """
            if not set(PAIR_COLUMNS) <= set(dataset.column_names or ()):
                return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if args.max_length is None:
                return dataset
            limit = args.max_length
            return dataset.filter(lambda prompts: [len(p) < limit for p in prompts],
                                  input_columns=["prompt_ids"], batched=True,
                                  desc=f"Dropping fully truncated {dataset_name} pairs")

    return SpeechSFTTrainer, SpeechDPOTrainer


# ---- the objectives ------------------------------------------------------------------------
class SupervisedFineTuning(Objective):
    """Next-token loss on the response only (instruction tuning), through TRL's SFTTrainer.

    ``objective_args``: ``packing`` (default false: one example per row, padded per batch;
    true: TRL's best-fit packing of whole examples into ``seq_len`` rows, kept apart by their
    position ids).
    """

    name = "sft"
    params = {"packing": False}

    def check(self, cfg, uses):
        super().check(cfg, uses)
        _check_bool(self.args(cfg), "packing")

    def datasets(self, cfg, vocab, model, uses, eval_uses):
        cache = Path(cfg.output_dir) / CACHE_DIR
        return _splits(cfg, lambda data, key, u: sft_examples(
            data, vocab, u, cfg.seed, cache, key=key, progress=cfg.progress), uses, eval_uses)

    def trainer(self, cfg, model, vocab, train_ds, eval_ds, callbacks):
        from trl import SFTConfig

        sft_trainer, _ = trainer_classes()
        args = training_arguments(
            cfg, eval_ds is not None, args_class=SFTConfig, max_length=cfg.seq_len,
            completion_only_loss=True, packing=self.args(cfg)["packing"],
            # TRL turns activation checkpointing on by default; lm leaves it off, so do these
            activation_checkpointing=False, **fsdp_arguments(cfg, model))
        return sft_trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                           processing_class=vocab.tokenizer, callbacks=callbacks)


class PreferenceOptimisation(Objective):
    """Direct preference optimisation (DPO) on prompt / chosen / rejected ids, TRL's DPOTrainer.

    ``objective_args``: ``beta`` (default 0.1, as slamkit: how far the policy may move from the
    reference), ``precompute_ref_log_probs`` (default false; true scores every pair with the
    reference model once before training and keeps no reference model in memory).
    """

    name = "dpo"
    params = {"beta": 0.1, "precompute_ref_log_probs": False}
    output = "pair"

    def check(self, cfg, uses):
        super().check(cfg, uses)
        args = self.args(cfg)
        beta = args["beta"]
        if isinstance(beta, bool) or not isinstance(beta, int | float) or beta <= 0:
            raise ConfigError(f"objective_args.beta: must be a positive number, got {beta!r}")
        _check_bool(args, "precompute_ref_log_probs")

    def datasets(self, cfg, vocab, model, uses, eval_uses):
        cache = Path(cfg.output_dir) / CACHE_DIR
        return _splits(cfg, lambda data, key, u: preference_pairs(
            data, vocab, u, cfg.seed, cache, key=key, progress=cfg.progress), uses, eval_uses)

    def trainer(self, cfg, model, vocab, train_ds, eval_ds, callbacks):
        from trl import DPOConfig

        _, dpo_trainer = trainer_classes()
        a = self.args(cfg)
        args = training_arguments(
            cfg, eval_ds is not None, args_class=DPOConfig, beta=float(a["beta"]),
            max_length=cfg.seq_len, precompute_ref_log_probs=a["precompute_ref_log_probs"],
            activation_checkpointing=False, **fsdp_arguments(cfg, model))
        # With precomputed scores TRL takes them from the policy before its first step and
        # keeps no reference. Otherwise, and always under FSDP, it gets a frozen copy: left
        # without one, TRL reloads the model from its path, whose vocabulary lacks the markers
        # that init: from_model may have added.
        precompute = a["precompute_ref_log_probs"] and not cfg.fsdp
        ref = None if precompute else _frozen_copy(model)
        return dpo_trainer(model=model, ref_model=ref, args=args, train_dataset=train_ds,
                           eval_dataset=eval_ds, processing_class=vocab.tokenizer,
                           callbacks=callbacks)


OBJECTIVES.add("sft", SupervisedFineTuning())
OBJECTIVES.add("dpo", PreferenceOptimisation())
