"""``run_training(cfg)``: vocabulary and model (by init), the objective's data and trainer, train,
write the model directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from speechlm.config import Config
from speechlm.errors import ConfigError
from speechlm.models.architecture import Architecture, get_architecture
from speechlm.models.causal_lm import CausalLM
from speechlm.sequences.formats import FormatUse, check_formats, format_tokens
from speechlm.sequences.vocab import SpeechVocab, with_default_markers
from speechlm.train.config import TrainConfig
from speechlm.train.hardware import resolve_precision


def _data_ranges(info: dict, names: list[str], data: str) -> dict[str, int]:
    """Sizes of the vocabulary ranges the formats need, from the token dataset's info
    (``read_info``: pitch and style sizes come from its tokenizer)."""
    from speechlm.sequences.formats import CODECS, inventory_sizes

    # codec formats read codebooks, not units: their vocabulary has no unit range
    sizes = {} if CODECS in names and "units" not in names else {"units": int(info["n_units"])}
    for name in names:
        if name in ("units", "text"):
            continue
        if name in (fixed := inventory_sizes()):
            sizes[name] = fixed[name]
            continue
        if name == CODECS:
            if not info.get("n_codebooks"):
                raise ConfigError(f"formats: need codec tokens but {Path(data) / 'info.json'} "
                                  "was not tokenised by a codec (tokenizer kind encodec, mimi "
                                  "or dac)")
            size = int(info.get("codebook_size", info["n_units"]))  # joined: units + codes
            sizes.update({f"codec{k}": size for k in range(int(info["n_codebooks"]))})
            continue
        if f"n_{name}" not in info:
            raise ConfigError(f"formats: need '{name}' tokens but {Path(data) / 'info.json'} has "
                              f"no n_{name} (tokenise with a tokenizer that makes them: pitch "
                              "and style need its `prosody` option)")
        sizes[name] = int(info[f"n_{name}"])
    return sizes


def build_model(cfg: TrainConfig, info: dict, uses: list[FormatUse]
                ) -> tuple[Architecture, Any, SpeechVocab, dict[str, Any]]:
    """(architecture, model, vocabulary, init record) for ``cfg.init``."""
    from speechlm.models.init import from_model_init, warm_init

    format_markers, range_names = format_tokens(uses)
    markers = with_default_markers(format_markers)
    ranges = _data_ranges(info, range_names, cfg.data)
    if cfg.init == "from_model":
        try:  # only what the formats need is appended to the model's own vocabulary
            lm, vocab, init_info = from_model_init(cfg.init_from, format_markers, ranges,
                                                   seed=cfg.seed)
        except ConfigError as e:
            raise ConfigError(f"init_from: {cfg.init_from} does not fit data {cfg.data}: "
                              f"{e}") from None
        _check_same_tokenizer(info["tokenizer"], lm, cfg)
        init_info["tokenizers"] = {role: str(lm.dir / rel)
                                   for role, rel in lm.meta["tokenizers"].items()}
        return lm.architecture, lm.model, vocab, {"init": "from_model", **init_info}
    arch = get_architecture(cfg.architecture)
    if cfg.init == "warm":
        if not isinstance(arch, CausalLM):
            raise ConfigError(f"init: warm start needs a causal-LM architecture (causal_lm, "
                              f"expressive: a text LM), not {arch.name}")
        model, vocab, init_info = warm_init(cfg.init_from, cfg.vocab_mode, ranges["units"],
                                            seed=cfg.seed, markers=tuple(markers),
                                            n_pitch=ranges.get("pitch", 0),
                                            n_style=ranges.get("style", 0),
                                            new_rows=cfg.new_rows)
        return arch, model, vocab, {"init": "warm", **init_info}
    vocab = SpeechVocab.build(ranges, markers)
    model = arch.build(cfg.model, vocab, seed=cfg.seed)
    return arch, model, vocab, {"init": "cold", "model_type": cfg.model.get("model_type")}


def _check_same_tokenizer(data_tokenizer: str, lm: Any, cfg: TrainConfig) -> None:
    """Fine-tuning data must be tokenised by the speech tokenizer the model was trained on."""
    import filecmp

    own = lm.dir / lm.meta["tokenizers"].get("speech", "speech_tokenizer")
    cmp = filecmp.dircmp(data_tokenizer, own)
    same = not (cmp.left_only or cmp.right_only) and all(
        filecmp.cmp(Path(data_tokenizer) / f, own / f, shallow=False) for f in cmp.common_files)
    if not same:
        raise ConfigError(f"data: {cfg.data} was tokenised by {data_tokenizer}, not by the "
                          f"speech tokenizer of init_from ({own}); tokenise it with "
                          f"`speechlm tokenize --tokenizer {own}`")


def run_training(cfg: TrainConfig, callbacks: list | None = None) -> dict:
    """Train as configured; resume from the last checkpoint under ``output_dir`` if any.

    Returns the metrics written to ``output_dir/metrics.json``.
    """
    from speechlm.models.speech_lm import write_model_meta
    from speechlm.train.data import read_info
    from speechlm.train.objectives import get_objective
    from speechlm.train.plot import plot_losses
    from speechlm.train.trainer import FreezeBody, ThroughputCallback

    out = Path(cfg.output_dir)
    info = read_info(cfg.data)
    speech_tok = info.get("tokenizer")
    if not speech_tok or not Path(speech_tok).is_dir():
        raise ConfigError(f"{Path(cfg.data) / 'info.json'}: key 'tokenizer' must name the speech "
                          f"tokenizer directory (got {speech_tok!r})")
    uses = cfg.format_uses()
    cfg = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision))
    # an objective may train its own model class around a trained model (omni, spectron)
    own = get_objective(cfg.objective) if cfg.objective else None
    built = own.build(cfg, info) if own is not None else None

    def start_model() -> tuple[Architecture, Any, SpeechVocab, dict[str, Any]]:
        """The model training starts from (built again, seeded: the same weights)."""
        return (own.build(cfg, info) if built is not None else None) or build_model(
            cfg, info, uses)

    arch, model, vocab, init_info = built or start_model()
    if built is None:
        check_formats(uses, vocab)
    objective = own or get_objective(arch.objective)
    objective.check(cfg, uses)
    train_ds, eval_ds = objective.datasets(cfg, vocab, model, uses,
                                           objective.eval_uses(arch, uses))
    cfg, epoch_steps = _cap_steps(cfg, len(train_ds))

    throughput = ThroughputCallback(cfg.batch_size * cfg.grad_accum * cfg.seq_len)
    cbs = [throughput, RelocatedCheckpoints(), *(callbacks or [])]
    if cfg.freeze_body_steps:
        cbs.append(FreezeBody(cfg.freeze_body_steps))
    if cfg.early_stopping_patience and eval_ds is not None:
        from transformers import EarlyStoppingCallback

        cbs.append(EarlyStoppingCallback(cfg.early_stopping_patience))
    rank0 = int(os.environ.get("RANK", "0")) == 0
    if rank0:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        cbs.append(TensorBoardCallback(SummaryWriter(log_dir=str(out / "tensorboard"))))
    trainer = objective.trainer(cfg, model, vocab, train_ds, eval_ds, cbs)
    world = trainer.args.world_size
    throughput.tokens_per_step *= world
    last = last_complete_checkpoint(out / "checkpoints")
    if trainer.is_world_process_zero():
        check_resumed_config(out, cfg, last)
    # a model that starts trained (warm, from_model) competes with its checkpoints for "best":
    # fine-tuning that never beats it on held-out data must not replace it (the weights are
    # still the starting ones here: a resume loads its checkpoint inside train())
    keep_start = cfg.init != "cold" and eval_ds is not None and cfg.keep == "best"
    start_eval = trainer.evaluate()["eval_loss"] if keep_start else None
    trainer.train(resume_from_checkpoint=last)
    step = trainer.state.global_step
    if eval_ds is not None and not any(h.get("step") == step and "eval_loss" in h
                                       for h in trainer.state.log_history):
        trainer.evaluate()  # the last step was not an eval step: evaluate the final model

    history = trainer.state.log_history
    train_loss = [(h["step"], h["loss"]) for h in history if "loss" in h]
    eval_loss = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    kept_step, kept_eval = step, (eval_loss[-1][1] if eval_loss else None)
    best = trainer.state.best_model_checkpoint
    if trainer.args.load_best_model_at_end and best:
        kept_step = int(Path(best).name.split("-")[-1])
        kept_eval = dict(eval_loss).get(kept_step, trainer.state.best_metric)
    if start_eval is not None and (kept_eval is None or start_eval <= kept_eval):
        trainer.model.load_state_dict(start_model()[1].state_dict())  # seeded
        kept_step, kept_eval = 0, start_eval
    trainer.save_model(str(out))
    metrics = {
        "train_loss": train_loss,
        "eval_loss": eval_loss,
        "final_train_loss": train_loss[-1][1] if train_loss else None,
        # the held-out loss of the model that was kept (the best one, unless keep: last)
        "final_eval_loss": kept_eval,
        "last_eval_loss": eval_loss[-1][1] if eval_loss else None,
        # held-out loss of the starting model (warm, from_model); kept_step 0 when it stayed best
        "start_eval_loss": start_eval,
        "kept_step": kept_step,
        "keep": cfg.keep if eval_ds is not None else "last",
        "stopped_early": step < cfg.max_steps,
        "max_steps": cfg.max_steps,
        "epochs": round(step / epoch_steps, 3),
        "precision": cfg.precision,
        "steps": step,
        "resumed_from": last,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_blocks": len(train_ds),
        "train_tokens_per_epoch": getattr(train_ds, "n_tokens", None),
        # examples longer than seq_len, left out (objectives that do not pack: codec)
        **({"too_long": train_ds.n_too_long} if hasattr(train_ds, "n_too_long") else {}),
        "processes": world,
        "objective": objective.name,
        **throughput.result,
        **objective.extra_metrics(trainer, train_ds, eval_ds, vocab, cfg),
    }
    if trainer.is_world_process_zero():
        meta = {"init": init_info, "objective": objective.name, "formats": cfg.formats,
                "seq_len": cfg.seq_len, "frame_rate": float(info["frame_rate"]),
                "train_config": cfg.to_dict(), **objective.extra_meta(cfg, info, model)}
        # a fine-tuned model keeps every speech tokenizer of the model it started from
        tokenizers = init_info.pop("tokenizers", None) or speech_tok
        write_model_meta(out, vocab, meta, tokenizers, architecture=arch.name)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_losses(train_loss, eval_loss, out / "loss.png",
                    title=f"{init_info['init']} init, {metrics['parameters'] / 1e6:.2f}M params",
                    kept_step=kept_step if eval_loss else None)
    return metrics


def _cap_steps(cfg: TrainConfig, n_blocks: int) -> tuple[TrainConfig, float]:
    """``cfg`` with ``max_steps`` capped at ``max_epochs`` passes over the data; steps/epoch.

    A capped run keeps the shape of the schedule it was given: warm-up, logging, evaluation and
    checkpoint intervals shrink by the same factor (so a small corpus is still evaluated as
    often per run, and the best checkpoint can be found).
    """
    import math

    from accelerate import PartialState

    per_step = cfg.batch_size * cfg.grad_accum * PartialState().num_processes
    epoch_steps = max(n_blocks / per_step, 1e-9)
    if cfg.max_epochs is None:
        return cfg, epoch_steps
    capped = max(1, min(cfg.max_steps, math.ceil(cfg.max_epochs * epoch_steps)))
    if capped == cfg.max_steps:
        return cfg, epoch_steps
    ratio = capped / cfg.max_steps

    def scale(steps: int) -> int:
        return max(1, round(steps * ratio))

    eval_steps = scale(cfg.eval_steps)
    save_steps = (eval_steps * (cfg.save_steps // cfg.eval_steps)
                  if cfg.save_steps % cfg.eval_steps == 0 else scale(cfg.save_steps))
    return dataclasses.replace(
        cfg, max_steps=capped, eval_steps=eval_steps, save_steps=save_steps,
        logging_steps=scale(cfg.logging_steps),
        warmup_steps=round(cfg.warmup_steps * ratio)), epoch_steps


class RelocatedCheckpoints(TrainerCallback):
    """Point the best-checkpoint record at this run's folder when the run directory moved.

    ``trainer_state.json`` stores ``best_model_checkpoint`` as the path it had when written; a
    run directory moved since then (and resumed) would look for the best model at the old place.
    """

    def on_train_begin(self, args, state, control, **kwargs):
        best = state.best_model_checkpoint
        if best and not Path(best).is_dir():
            here = Path(args.output_dir) / Path(best).name
            state.best_model_checkpoint = str(here) if here.is_dir() else None


RUN_CONFIG = "train_config.json"  # the settings the checkpoints under output_dir were made with
# keys that may differ on a resume: where things are (a moved run), and how verbose it is
RELOCATABLE = ("data", "eval_data", "output_dir", "init_from", "progress")


def check_resumed_config(out: Path, cfg: Config, last: str | None,
                         relocatable: tuple[str, ...] = RELOCATABLE) -> None:
    """Record the settings of a fresh run; refuse to resume checkpoints made with others.

    Resuming under a changed config would mix two trainings in one model and record the new
    config as if it had been used throughout. Keys in ``relocatable`` may differ.
    """
    from speechlm.config import describe_changes

    path = out / RUN_CONFIG
    now = {k: v for k, v in cfg.to_dict().items() if k not in relocatable}
    if last is not None and path.is_file():
        then = {k: v for k, v in json.loads(path.read_text()).items() if k not in relocatable}
        if then != now:
            raise ConfigError(f"{out}: the checkpoints there were made with other settings "
                              f"({describe_changes(then, now)}); use another output_dir, or "
                              "delete its checkpoints/ to start over")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg.to_dict(), indent=2))


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` in ``folder`` that was completely written, or None.

    The Trainer writes ``trainer_state.json`` last, so a job killed while saving leaves a folder
    without a readable one; that folder is skipped and the previous checkpoint is resumed.
    """
    found = []
    for d in Path(folder).glob("checkpoint-*"):
        try:
            json.loads((d / "trainer_state.json").read_text())
            found.append((int(d.name.split("-")[1]), d))
        except (OSError, ValueError, IndexError):
            continue
    return str(max(found)[1]) if found else None
