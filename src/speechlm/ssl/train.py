"""``train_hubert(cfg)``: HuBERT pre-training on the HF ``Trainer``, resumable, saved as a
plain ``HubertModel``.

Layout of ``output_dir``::

    config.json, model.safetensors   the trained ``HubertModel`` (no head)
    preprocessor_config.json         its feature extractor (16 kHz raw audio, not normalised)
    checkpoints/checkpoint-N/        Trainer checkpoints (safetensors, no pickle)
    labels/                          the targets' frame units (a token dataset)
    targets/                         the MFCC tokenizer, when none was given
    train_config.json, metrics.json  the settings and the loss curve

Running it again with the same settings resumes from the last complete checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from speechlm.errors import ConfigError
from speechlm.ssl.config import SAMPLE_RATE, HubertTrainConfig, hubert_config

# keys that may differ on a resume: where things are, and how verbose it is
RELOCATABLE = ("manifest", "targets", "output_dir", "progress")


def train_hubert(cfg: HubertTrainConfig, callbacks: list | None = None) -> dict:
    """Pre-train as configured; returns the metrics written to ``output_dir/metrics.json``."""
    import numpy as np
    import torch
    from accelerate import PartialState
    from transformers import Wav2Vec2FeatureExtractor

    from speechlm.corpus.manifest import read_manifest
    from speechlm.ssl.data import CropDataset, HubertCollator
    from speechlm.ssl.model import HubertForPreTraining
    from speechlm.ssl.targets import (
        LABELS_DIR,
        FrameGrid,
        check_targets,
        default_targets,
        label_dataset,
    )
    from speechlm.tokenizers import load_tokenizer
    from speechlm.tokenizers.encoders import conv_frame_offset
    from speechlm.train.hardware import resolve_precision
    from speechlm.train.objectives import training_arguments
    from speechlm.train.run import check_resumed_config, last_complete_checkpoint
    from speechlm.train.trainer import SpeechLMTrainer

    out = Path(cfg.output_dir)
    cfg = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision))
    config = hubert_config(cfg.model)
    # inputs and settings are checked before any work: the manifest, the targets, a resume
    utts = read_manifest(cfg.manifest)
    targets = check_targets(cfg.targets) if cfg.targets is not None else None
    last = last_complete_checkpoint(out / "checkpoints")
    state = PartialState()
    if state.is_main_process:
        check_resumed_config(out, cfg, last, RELOCATABLE)
    # rank 0 fits the targets and labels the corpus, the other ranks then read them (DDP)
    with state.main_process_first():
        targets = targets or default_targets(cfg.manifest, out)
        labels = label_dataset(cfg.manifest, targets, out / LABELS_DIR, cfg.progress)
    tok = load_tokenizer(targets)

    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
    model = HubertForPreTraining(config, tok.n_units, cfg.final_dim, cfg.logit_temperature)
    hop = int(np.prod(config.conv_stride))

    def n_frames(n: int) -> int:
        return int(model.hubert._get_feat_extract_output_lengths(torch.tensor(n)))

    min_samples = int(cfg.min_seconds * SAMPLE_RATE)
    if n_frames(min_samples) < cfg.mask_length:
        raise ConfigError(f"min_seconds: {cfg.min_seconds} s gives {n_frames(min_samples)} model "
                          f"frames, fewer than mask_length ({cfg.mask_length})")
    dataset = CropDataset(labels, utts, int(cfg.crop_seconds * SAMPLE_RATE), hop, min_samples,
                          cfg.seed)
    if len(dataset) == 0:
        raise ConfigError(f"{cfg.manifest}: no utterance of at least min_seconds "
                          f"({cfg.min_seconds} s) with labels")
    frames = FrameGrid(SAMPLE_RATE / hop,
                       conv_frame_offset(config.conv_kernel, config.conv_stride, SAMPLE_RATE))
    grid = FrameGrid(tok.frame_rate, tok.frontend.frame_offset)  # the targets' frames
    collator = HubertCollator(n_frames, frames, grid, cfg.mask_prob, cfg.mask_length)
    trainer = SpeechLMTrainer(model=model, args=training_arguments(cfg, has_eval=False),
                              train_dataset=dataset, data_collator=collator,
                              callbacks=callbacks)
    trainer.train(resume_from_checkpoint=last)  # a finished run stays finished

    history = trainer.state.log_history
    metrics = {
        "train_loss": [(h["step"], h["loss"]) for h in history if "loss" in h],
        "steps": trainer.state.global_step,
        "resumed_from": last,
        "parameters": sum(p.numel() for p in model.hubert.parameters()),
        "n_units": tok.n_units,
        "targets": str(Path(targets).resolve()),
        "utterances": len(dataset),
        "skipped_short": dataset.skipped,
        "precision": cfg.precision,
    }
    if trainer.is_world_process_zero():
        model.hubert.save_pretrained(out)
        Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=False,
            # group-norm encoders take zero padding and no mask, as the tokenizer feeds them
            return_attention_mask=config.feat_extract_norm == "layer").save_pretrained(out)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics

