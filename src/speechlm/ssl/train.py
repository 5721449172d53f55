"""``train_ssl(cfg)``: self-supervised pre-training (HuBERT, wav2vec 2.0, CPC) on the HF
``Trainer``, resumable, saved as a plain encoder (``HubertModel``, ``Wav2Vec2Model``,
``CPCModel``) without its training head.

Layout of ``output_dir``::

    config.json, model.safetensors   the trained encoder
    preprocessor_config.json         its feature extractor (16 kHz raw audio, not normalised)
    checkpoints/checkpoint-N/        Trainer checkpoints (safetensors, no pickle)
    labels/                          HuBERT: the targets' frame units (a token dataset)
    targets/                         HuBERT: the MFCC tokenizer, when none was given
    train_config.json, metrics.json  the settings and the loss curve

Running it again with the same settings resumes from the last complete checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from speechlm.errors import ConfigError
from speechlm.ssl.config import SAMPLE_RATE, SSLTrainConfig, encoder_config

logger = logging.getLogger("speechlm")

# keys that may differ on a resume: where things are, and how verbose it is
RELOCATABLE = ("manifest", "targets", "output_dir", "progress")
# a last logged loss under this is a degenerate solution, not learning: every objective here
# compares with distractors or many classes (wav2vec 2.0 reaches 0 when its codebook collapses
# and every distractor equals its target, measured with a layer-norm feature encoder)
COLLAPSED_LOSS = 1e-3


def _hubert_labels(cfg: SSLTrainConfig, out: Path, state: Any) -> tuple[Any, Any, Path]:
    """HuBERT's targets: (label dataset, unit tokenizer, its directory), made by rank 0 first
    (the other DDP ranks then read them)."""
    from speechlm.ssl.targets import LABELS_DIR, default_targets, label_dataset
    from speechlm.tokenizers import load_tokenizer

    targets = Path(cfg.targets) if cfg.targets is not None else None  # checked by train_ssl
    with state.main_process_first():
        targets = targets or default_targets(cfg.manifest, out)
        labels = label_dataset(cfg.manifest, targets, out / LABELS_DIR, cfg.progress)
    return labels, load_tokenizer(targets), targets


def _build(cfg: SSLTrainConfig, config: Any, tok: Any) -> tuple[Any, Any, list, dict]:
    """(training model, the encoder inside it, collator options, callbacks) of the objective."""
    if cfg.objective == "hubert":
        from speechlm.ssl.hubert import HubertForPreTraining

        model = HubertForPreTraining(config, tok.n_units, cfg.final_dim, cfg.logit_temperature)
        return model, model.hubert, [], {}
    if cfg.objective == "wav2vec2":
        from speechlm.ssl.wav2vec2 import GumbelAnnealing, Wav2Vec2Objective

        model = Wav2Vec2Objective(config)
        anneal = GumbelAnnealing(cfg.max_steps, cfg.gumbel_start, cfg.gumbel_end)
        return model, model.wav2vec2, [anneal], {"num_negatives": config.num_negatives}
    from speechlm.ssl.cpc import CPCForPreTraining

    model = CPCForPreTraining(config)
    return model, model.cpc, [], {"seed_negatives": True}


def train_ssl(cfg: SSLTrainConfig, callbacks: list | None = None) -> dict:
    """Pre-train as configured; returns the metrics written to ``output_dir/metrics.json``."""
    import numpy as np
    import torch
    from accelerate import PartialState
    from transformers import Wav2Vec2FeatureExtractor

    from speechlm.corpus.manifest import read_manifest
    from speechlm.ssl.data import CropDataset, WindowCollator
    from speechlm.ssl.targets import FrameGrid
    from speechlm.tokenizers.encoders import conv_frame_offset
    from speechlm.train.hardware import resolve_precision
    from speechlm.train.objectives import training_arguments
    from speechlm.train.run import check_resumed_config, last_complete_checkpoint
    from speechlm.train.trainer import SpeechLMTrainer

    out = Path(cfg.output_dir)
    cfg = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision))
    config = encoder_config(cfg.objective, cfg.model)
    # inputs and settings are checked before any work: the manifest, the targets, a resume
    utts = read_manifest(cfg.manifest)
    if cfg.targets is not None:
        from speechlm.ssl.targets import check_targets

        check_targets(cfg.targets)
    last = last_complete_checkpoint(out / "checkpoints")
    state = PartialState()
    if state.is_main_process:
        check_resumed_config(out, cfg, last, RELOCATABLE)
    labels, tok, targets = (_hubert_labels(cfg, out, state) if cfg.objective == "hubert"
                            else (None, None, None))

    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
    model, encoder, extra_callbacks, collate = _build(cfg, config, tok)
    hop = int(np.prod(config.conv_stride))

    def n_frames(n: int) -> int:
        return int(encoder._get_feat_extract_output_lengths(torch.tensor(n)))

    min_samples = int(cfg.min_seconds * SAMPLE_RATE)
    least = cfg.mask_length if cfg.span_prob > 0 else 2
    if n_frames(min_samples) < least:
        raise ConfigError(f"min_seconds: {cfg.min_seconds} s gives {n_frames(min_samples)} model "
                          f"frames, fewer than {least}"
                          + (" (mask_length)" if cfg.span_prob > 0 else ""))
    dataset = CropDataset(labels, utts, int(cfg.crop_seconds * SAMPLE_RATE), hop, min_samples,
                          cfg.seed)
    if len(dataset) == 0:
        raise ConfigError(f"{cfg.manifest}: no utterance of at least min_seconds "
                          f"({cfg.min_seconds} s)" + (" with labels" if labels else ""))
    if tok is not None:  # the model's frames and the targets' frames, to align them by time
        collate["frames"] = FrameGrid(SAMPLE_RATE / hop, conv_frame_offset(
            config.conv_kernel, config.conv_stride, SAMPLE_RATE))
        collate["grid"] = FrameGrid(tok.frame_rate, tok.frontend.frame_offset)
    collator = WindowCollator(n_frames, cfg.span_prob, cfg.mask_length, **collate)
    trainer = SpeechLMTrainer(model=model, args=training_arguments(cfg, has_eval=False),
                              train_dataset=dataset, data_collator=collator,
                              callbacks=[*extra_callbacks, *(callbacks or [])])
    trainer.train(resume_from_checkpoint=last)  # a finished run stays finished

    history = trainer.state.log_history
    metrics = {
        "objective": cfg.objective,
        "train_loss": [(h["step"], h["loss"]) for h in history if "loss" in h],
        "steps": trainer.state.global_step,
        "resumed_from": last,
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "n_units": tok.n_units if tok is not None else None,
        "targets": str(Path(targets).resolve()) if targets is not None else None,
        "utterances": len(dataset),
        "skipped_short": dataset.skipped,
        "precision": cfg.precision,
    }
    losses = metrics["train_loss"]
    metrics["collapsed"] = bool(losses) and losses[-1][1] < COLLAPSED_LOSS
    if metrics["collapsed"]:
        logger.warning("%s: the %s loss fell to %.2g, a collapsed solution rather than learning; "
                       "the encoder is not worth clustering (try a lower lr or the other "
                       "feature-encoder norm)", out, cfg.objective, losses[-1][1])
    if trainer.is_world_process_zero():
        encoder.save_pretrained(out)
        Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=False,
            # group-norm encoders take zero padding and no mask, as the tokenizer feeds them
            return_attention_mask=getattr(config, "feat_extract_norm", "layer") == "layer",
        ).save_pretrained(out)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
