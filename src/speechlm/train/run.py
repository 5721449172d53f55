"""``run_training(cfg)``: build vocabulary, model and packed data, train, write the model dir."""

from __future__ import annotations

import json
import os
from pathlib import Path

from speechlm.errors import ConfigError
from speechlm.sequences.formats import TEXT_FORMATS
from speechlm.sequences.vocab import SpeechVocab
from speechlm.train.config import TrainConfig


def _build_model(cfg: TrainConfig, n_units: int):
    from speechlm.models.init import cold_init, warm_init

    if cfg.init == "cold":
        vocab = SpeechVocab.speech_only(n_units)
        model = cold_init(cfg.model, vocab, seed=cfg.seed)
        return model, vocab, {"init": "cold", "model_type": cfg.model.get("model_type")}
    model, vocab, info = warm_init(cfg.init_from, cfg.vocab_mode, n_units, seed=cfg.seed)
    return model, vocab, {"init": "warm", **info}


def _fsdp_args(cfg: TrainConfig, model) -> dict:
    if not cfg.fsdp:
        return {}
    layer_cls = getattr(model, "_no_split_modules", None) or []
    # full sharding, one FSDP unit per transformer layer
    return {"fsdp": True, "fsdp_config": {"transformer_layer_cls_to_wrap": list(layer_cls)}}


def run_training(cfg: TrainConfig, callbacks: list | None = None) -> dict:
    """Train as configured; resume from the last checkpoint under ``output_dir`` if any.

    Returns the metrics written to ``output_dir/metrics.json``.
    """
    import torch
    from transformers import TrainingArguments, default_data_collator

    from speechlm.models.speech_lm import write_model_meta
    from speechlm.train.data import build_blocks, read_info
    from speechlm.train.plot import plot_losses
    from speechlm.train.trainer import SpeechLMTrainer, ThroughputCallback

    out = Path(cfg.output_dir)
    info = read_info(cfg.data)
    speech_tok = info.get("tokenizer")
    if not speech_tok or not Path(speech_tok).is_dir():
        raise ConfigError(f"{Path(cfg.data) / 'info.json'}: key 'tokenizer' must name the speech "
                          f"tokenizer directory (got {speech_tok!r})")
    model, vocab, init_info = _build_model(cfg, int(info["n_units"]))
    for name in cfg.formats:
        if name in TEXT_FORMATS and cfg.formats[name] > 0 and not vocab.has_text:
            raise ConfigError(f"formats.{name}: needs text tokens; use init=warm with "
                              "vocab_mode=extend")
    train_ds = build_blocks(cfg.data, vocab, cfg.formats, cfg.seq_len, cfg.seed, cfg.p_switch)
    eval_ds = None
    if cfg.eval_data:
        eval_ds = build_blocks(cfg.eval_data, vocab, {"speech_only": 1.0}, cfg.seq_len, cfg.seed,
                               key="eval_data")

    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_steps=cfg.max_steps,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        bf16=cfg.precision == "bf16",
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if eval_ds is not None else "no",
        eval_steps=cfg.eval_steps,
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
        **_fsdp_args(cfg, model),
    )
    world = args.world_size
    throughput = ThroughputCallback(cfg.batch_size * cfg.grad_accum * world * cfg.seq_len)
    cbs = [throughput, *(callbacks or [])]
    rank0 = int(os.environ.get("RANK", "0")) == 0
    if rank0:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        cbs.append(TensorBoardCallback(SummaryWriter(log_dir=str(out / "tensorboard"))))
    trainer = SpeechLMTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
        data_collator=default_data_collator, processing_class=vocab.tokenizer, callbacks=cbs,
    )
    last = last_complete_checkpoint(out / "checkpoints")
    trainer.train(resume_from_checkpoint=last)
    step = trainer.state.global_step
    if eval_ds is not None and not any(h.get("step") == step and "eval_loss" in h
                                       for h in trainer.state.log_history):
        trainer.evaluate()  # the last step was not an eval step: evaluate the final model
    trainer.save_model(str(out))

    history = trainer.state.log_history
    train_loss = [(h["step"], h["loss"]) for h in history if "loss" in h]
    eval_loss = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    final_eval = {"eval_loss": eval_loss[-1][1]} if eval_loss else {}
    metrics = {
        "train_loss": train_loss,
        "eval_loss": eval_loss,
        "final_train_loss": train_loss[-1][1] if train_loss else None,
        "final_eval_loss": final_eval.get("eval_loss"),
        "steps": trainer.state.global_step,
        "resumed_from": last,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_blocks": len(train_ds),
        "train_tokens_per_epoch": train_ds.n_tokens,
        "processes": world,
        **throughput.result,
    }
    if trainer.is_world_process_zero():
        meta = {"init": init_info, "formats": cfg.formats, "seq_len": cfg.seq_len,
                "frame_rate": float(info["frame_rate"]), "data": str(cfg.data),
                "train_config": cfg.to_dict()}
        write_model_meta(out, vocab, meta, speech_tok)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_losses(train_loss, eval_loss, out / "loss.png",
                    title=f"{init_info['init']} init, {metrics['parameters'] / 1e6:.2f}M params")
    return metrics


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` in ``folder`` that was completely written, or None.

    The Trainer writes ``trainer_state.json`` last, so a job killed while saving leaves a folder
    without a readable one; that folder is skipped and the previous checkpoint is resumed.
    """
    import json

    found = []
    for d in Path(folder).glob("checkpoint-*"):
        try:
            json.loads((d / "trainer_state.json").read_text())
            found.append((int(d.name.split("-")[1]), d))
        except (OSError, ValueError, IndexError):
            continue
    return str(max(found)[1]) if found else None
