"""Training objectives: each brings its data, its collator and its trainer.

``TrainConfig.objective`` names one (default: the architecture's). An objective checks its
``objective_args`` and the formats it is given (``check``), turns a token dataset into training
and evaluation datasets (``datasets``) and builds the ``transformers.Trainer`` (or TRL trainer)
that trains on them (``trainer``). Registered objectives:

| name          | data                                          | trainer                      |
| ------------- | --------------------------------------------- | ---------------------------- |
| ``lm``        | packed single-stream blocks, loss on every token | ``SpeechLMTrainer``        |
| ``multistream`` | packed multi-stream blocks, a mask per stream | ``SpeechLMTrainer``         |
| ``sft``       | one example per row, loss on the response     | TRL ``SFTTrainer``           |
| ``dpo``       | prompt / chosen / rejected per row            | TRL ``DPOTrainer``           |
| ``dialogue``  | packed two-channel frame-unit blocks (dGSLM)  | ``SpeechLMTrainer``          |
| ``codec``     | one utterance per example (VALL-E AR / NAR, delay pattern) | ``SpeechLMTrainer`` |
| ``omni``      | question frames, text answer, its units (LLaMA-Omni) | ``SpeechLMTrainer`` |
| ``spectron``  | chain of modality ending in log-mel frames (Spectron) | ``SpeechLMTrainer`` |
| ``duplex``    | two-channel scenario windows: listen, speak, text | ``SpeechLMTrainer`` |
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speechlm.errors import ConfigError
from speechlm.registry import Registry
from speechlm.sequences.example import IGNORE, TOKENS

if TYPE_CHECKING:
    from speechlm.sequences.formats import FormatUse
    from speechlm.sequences.vocab import SpeechVocab
    from speechlm.train.config import TrainConfig

CACHE_DIR = "examples"  # under output_dir: formatted examples (memory-mapped Arrow)


class Objective(ABC):
    """What an objective provides; see the module docstring."""

    name: str = ""
    params: dict[str, Any] = {}  # objective_args and their defaults
    output: str = "example"  # the kind of record its formats must return
    streams: tuple[str, ...] | None = (TOKENS,)  # example streams it trains on (None: any)
    takes_formats: bool = True  # False: trains on data of its own, given no formats

    def check(self, cfg: TrainConfig, uses: Sequence[FormatUse]) -> None:
        """Refuse objective_args or formats this objective cannot use (names the key)."""
        for k in cfg.objective_args:
            if k not in self.params:
                raise ConfigError(f"objective_args.{k}: unknown for objective {self.name}; "
                                  f"valid: {', '.join(self.params) or 'none'}")
        for u in uses:
            if u.spec.output != self.output:
                raise ConfigError(f"formats.{u.spec.name}: makes {u.spec.output} records; "
                                  f"objective {self.name} trains on {self.output} formats")

    def eval_uses(self, arch: Any, uses: Sequence[FormatUse]) -> Sequence[FormatUse]:
        """Formats of the held-out loss (by default the training mix)."""
        return uses

    def args(self, cfg: TrainConfig) -> dict[str, Any]:
        """``objective_args`` with defaults filled in."""
        return {**self.params, **cfg.objective_args}

    def build(self, cfg: TrainConfig, info: dict) -> tuple[Any, Any, Any, dict] | None:
        """``(architecture, model, vocabulary, init record)`` for an objective that trains its
        own model class around a trained model (LLaMA-Omni, Spectron); None (the default): the
        architecture's model, as ``cfg.init`` says. The record's ``tokenizers`` are the model
        directory's speech tokenizers by role."""
        return None

    def extra_meta(self, cfg: TrainConfig, info: dict, model: Any) -> dict[str, Any]:
        """Keys this objective adds to the model directory's ``speechlm.json``."""
        return {}

    def extra_metrics(self, trainer: Any, train_ds: Any, eval_ds: Any, vocab: SpeechVocab,
                      cfg: TrainConfig) -> dict[str, Any]:
        """Figures this objective adds to ``metrics.json`` (after training)."""
        return {}

    @abstractmethod
    def datasets(self, cfg: TrainConfig, vocab: SpeechVocab, model: Any,
                 uses: Sequence[FormatUse], eval_uses: Sequence[FormatUse]) -> tuple[Any, Any]:
        """(train dataset, eval dataset or None) for ``cfg.data`` / ``cfg.eval_data``."""

    @abstractmethod
    def trainer(self, cfg: TrainConfig, model: Any, vocab: SpeechVocab, train_ds: Any,
                eval_ds: Any, callbacks: list) -> Any:
        """The trainer that trains ``model`` on the datasets."""


OBJECTIVES: Registry[Objective] = Registry(
    "objective", ("speechlm.train.objectives", "speechlm.train.multistream",
                  "speechlm.train.finetune", "speechlm.train.dialogue",
                  "speechlm.train.codec_lm", "speechlm.train.omni",
                  "speechlm.train.spectron", "speechlm.train.duplex"))


def get_objective(name: str) -> Objective:
    """The registered objective ``name`` (a miss lists the valid names)."""
    return OBJECTIVES.get(name, key="objective")


def speech_lm_trainer(cfg: TrainConfig, model: Any, vocab: SpeechVocab, train_ds: Any,
                      eval_ds: Any, callbacks: list, collate: Any,
                      label_names: list[str] | None = None) -> Any:
    """The shared ``SpeechLMTrainer`` on the datasets with ``collate``; ``label_names`` name the
    batch keys that hold targets when the model takes no ``labels`` (so that the Trainer
    computes held-out losses)."""
    from speechlm.train.trainer import SpeechLMTrainer

    extra = {} if label_names is None else {"label_names": label_names}
    args = training_arguments(cfg, eval_ds is not None, **extra, **fsdp_arguments(cfg, model))
    return SpeechLMTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                           data_collator=collate, processing_class=vocab.tokenizer,
                           callbacks=callbacks)


def training_arguments(cfg: TrainConfig, has_eval: bool, args_class: Any = None,
                       **extra: Any) -> Any:
    """The ``TrainingArguments`` (or a TRL config class) every objective shares.

    ``cfg`` is a ``TrainConfig`` or any config with its trainer keys (``speechlm ssl train``'s);
    ``eval_steps`` and ``keep`` are read only with ``has_eval``.
    """
    import torch
    from transformers import TrainingArguments

    cls = args_class or TrainingArguments
    keep_best = has_eval and cfg.keep == "best"
    return cls(
        output_dir=str(Path(cfg.output_dir) / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_steps=cfg.max_steps,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        bf16=cfg.precision == "bf16",  # run_training resolves "auto" first
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        # at least 2 with a kept best: at limit 1 the Trainer ends by deleting every checkpoint
        # but the best, so a finished run started again would train on from the best one
        save_total_limit=max(cfg.save_total_limit, 2) if keep_best else cfg.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps if has_eval else None,
        # the kept model is the checkpoint with the lowest held-out loss, not the last one
        load_best_model_at_end=keep_best,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        prediction_loss_only=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        disable_tqdm=not cfg.progress,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,
        torch_compile=cfg.torch_compile,
        **extra,
    )


def fsdp_arguments(cfg: TrainConfig, model: Any) -> dict[str, Any]:
    """FSDP settings: full sharding, one FSDP unit per transformer layer."""
    if not cfg.fsdp:
        return {}
    layer_cls = getattr(model, "_no_split_modules", None) or []
    return {"fsdp": True, "fsdp_config": {"transformer_layer_cls_to_wrap": list(layer_cls)}}


def block_datasets(cfg: TrainConfig, vocab: SpeechVocab, uses: Sequence[FormatUse],
                   eval_uses: Sequence[FormatUse], wrap: Any = None) -> tuple[Any, Any]:
    """Packed blocks of ``cfg.data`` (and ``cfg.eval_data``), built once by the main process;
    ``wrap(examples, seq_len, key=...)`` serves them another way (default: ``BlockDataset``)."""
    from accelerate import PartialState

    from speechlm.train.data import BlockDataset, format_examples

    wrap = wrap or BlockDataset
    cache = Path(cfg.output_dir) / CACHE_DIR
    # rank 0 writes the Arrow files, the other ranks then read them (DDP / FSDP)
    with PartialState().main_process_first():
        train = wrap(format_examples(cfg.data, vocab, uses, cfg.seed, cache,
                                     progress=cfg.progress), cfg.seq_len)
        evald = None
        if cfg.eval_data:
            evald = wrap(format_examples(cfg.eval_data, vocab, eval_uses, cfg.seed, cache,
                                         key="eval_data", progress=cfg.progress),
                         cfg.seq_len, key="eval_data")
    return train, evald


def lm_collate(items: list[dict]) -> dict[str, Any]:
    """Blocks of the ``tokens`` stream -> ``input_ids`` and ``labels`` (-100 without loss)."""
    import torch

    ids = np.stack([it["streams"][TOKENS] for it in items]).astype(np.int64)
    mask = np.stack([it["masks"][TOKENS] for it in items])
    return {"input_ids": torch.from_numpy(ids),
            "labels": torch.from_numpy(np.where(mask, ids, IGNORE))}


class NextToken(Objective):
    """Next-token prediction on packed single-stream blocks (GSLM, TWIST, SpiRit-LM)."""

    name = "lm"

    def eval_uses(self, arch, uses):
        """Speech alone, as the zero-shot benchmarks see it."""
        from speechlm.sequences.formats import parse_formats

        return parse_formats({arch.speech_format: 1.0})

    def datasets(self, cfg, vocab, model, uses, eval_uses):
        return block_datasets(cfg, vocab, uses, eval_uses)

    def trainer(self, cfg, model, vocab, train_ds, eval_ds, callbacks):
        return speech_lm_trainer(cfg, model, vocab, train_ds, eval_ds, callbacks, lm_collate)


OBJECTIVES.add("lm", NextToken())
