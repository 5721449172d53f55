"""Training of the envelope vocoder: frame regression, resumable, best step by held-out loss.

Layout of ``out_dir``: ``vocoder.json`` + ``weights.safetensors`` (the kept vocoder: the step with
the lowest held-out loss), ``durations/`` (the fallback vocoder fitted on the same frames: its
per-unit and per-pair mean run lengths predict durations of de-duplicated units),
``checkpoints/step-N/`` (weights, optimiser state read with ``weights_only=True``, state.json),
``log.jsonl`` and ``train_config.json``. Running again with the same ``out_dir`` resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from speechlm.errors import AudioError
from speechlm.vocoders import dsp
from speechlm.vocoders.base import begin_run, last_checkpoint
from speechlm.vocoders.envelope.model import (
    CEP_WEIGHTS,
    N_CEP,
    EnvelopeConfig,
    EnvelopeNet,
    envelope_to_cepstrum,
    position_features,
)


@dataclass
class Frames:
    """One utterance's frames: inputs (units, position, F0 bins) and analysed targets."""

    units: np.ndarray  # (T,) int64
    position: np.ndarray  # (T, 2)
    f0_bins: np.ndarray  # (T,) int64, zeros when the tokens carry no F0
    cep: np.ndarray  # (T, N_CEP)
    log_f0: np.ndarray  # (T,), 0 where unvoiced
    voiced: np.ndarray  # (T,) float 0/1
    voice: np.ndarray  # (EMBEDDING_DIM,) d-vector of the utterance (zeros when not used)


def analyse(examples: list, cfg: EnvelopeConfig, stats) -> list[Frames]:
    """Envelope and F0 of every token frame (the fallback's analysis), fed to ``stats`` too,
    and each utterance's d-vector when the network is conditioned on the voice."""
    from speechlm.progress import progress_bar
    from speechlm.speaker import EMBEDDING_DIM, voice_embedding

    sample_rate, frame_rate = cfg.sample_rate, cfg.frame_rate
    no_voice = np.zeros(EMBEDDING_DIM, np.float32)
    out = []
    for ex in progress_bar(examples, unit="utt", desc="analysing frames"):
        units = np.repeat(ex.units, ex.durations)
        centers = dsp.frame_centers(len(units), frame_rate, sample_rate)
        env = dsp.log_envelope(ex.wav, centers)
        f0 = dsp.f0_track(ex.wav, centers, sample_rate)
        stats.add_frames(ex.units, ex.durations, env, f0, ex.f0)
        bins = np.repeat(ex.f0, ex.durations) if ex.f0 is not None else np.zeros_like(units)
        voiced = f0 > 0
        voice = no_voice
        if cfg.voice:
            try:
                voice = voice_embedding(ex.wav, "training utterance", sample_rate, min_seconds=0)
            except AudioError:  # nothing left after silence trimming: the mean voice
                voice = None
        out.append(Frames(units, position_features(ex.durations), bins,
                          envelope_to_cepstrum(env),
                          np.where(voiced, np.log(np.maximum(f0, 1e-3)), 0.0).astype(np.float32),
                          voiced.astype(np.float32), voice))
    known = [f.voice for f in out if f.voice is not None]
    mean = np.mean(known, 0).astype(np.float32) if known else no_voice
    for f in out:
        if f.voice is None:
            f.voice = mean
    return out


def split(frames: list[Frames], speakers: list[int], fraction: float, seed: int
          ) -> tuple[list[Frames], list[Frames], str]:
    """Train and held-out utterances for choosing the kept step, and how they were split.

    The vocoder must speak for voices it never heard, so with enough known speakers (4+) a
    ``fraction`` of the *speakers* is held out; otherwise a fraction of the utterances.
    """
    rng = np.random.default_rng(seed)
    voices = sorted(set(speakers))
    if len(voices) >= 4:
        held = set(rng.permutation(voices)[:max(1, int(round(fraction * len(voices))))].tolist())
        valid = [i for i, s in enumerate(speakers) if s in held]
        how = "speaker"
    else:
        order = rng.permutation(len(frames))
        valid = order[:max(1, int(round(fraction * len(frames))))].tolist() \
            if len(frames) > 1 else []
        how = "utterance"
    held_out = set(valid)
    return ([f for i, f in enumerate(frames) if i not in held_out],
            [frames[i] for i in sorted(held_out)], how)


def batch(frames: list[Frames], pick: np.ndarray, seg: int, rng: np.random.Generator | None,
          pad_unit: int):
    """(B, seg) crops of the picked utterances (start 0 when ``rng`` is None) with a mask."""
    import torch

    b = len(pick)
    units = np.full((b, seg), pad_unit, np.int64)
    pos, bins = np.zeros((b, seg, 2), np.float32), np.zeros((b, seg), np.int64)
    cep, lf0 = np.zeros((b, seg, N_CEP), np.float32), np.zeros((b, seg), np.float32)
    voiced, mask = np.zeros((b, seg), np.float32), np.zeros((b, seg), np.float32)
    voice = np.stack([frames[i].voice for i in pick])
    for row, i in enumerate(pick):
        f = frames[i]
        start = 0 if rng is None else int(rng.integers(0, max(1, len(f.units) - seg + 1)))
        sl = slice(start, start + seg)
        n = len(f.units[sl])
        units[row, :n], pos[row, :n], bins[row, :n] = f.units[sl], f.position[sl], f.f0_bins[sl]
        cep[row, :n], lf0[row, :n], voiced[row, :n] = f.cep[sl], f.log_f0[sl], f.voiced[sl]
        mask[row, :n] = 1.0
    t = torch.from_numpy
    return t(units), t(pos), t(bins), t(voice), t(cep), t(lf0), t(voiced), t(mask)


def losses(net: EnvelopeNet, units, pos, bins, voice, cep, lf0, voiced, mask) -> dict:
    """Envelope MSE (cepstral, Parseval-weighted), voiced log-F0 MSE, voicing BCE; masked."""
    import torch.nn.functional as F

    y = net(units, pos, bins if net.f0 is not None else None, voice)
    cep_n = (cep - net.cep_mean) / net.cep_std
    w = CEP_WEIGHTS.to(y) * net.cep_std**2  # back to log-envelope units
    env = (((y[..., :N_CEP] - cep_n) ** 2 * w).sum(-1) * mask).sum() / mask.sum()
    vm = voiced * mask
    lf0_n = (lf0 - net.lf0_mean) / net.lf0_std
    f0 = ((y[..., N_CEP] - lf0_n) ** 2 * vm).sum() / vm.sum().clamp(min=1.0)
    vuv = (F.binary_cross_entropy_with_logits(y[..., N_CEP + 1], voiced, reduction="none")
           * mask).sum() / mask.sum()
    return {"loss": env + f0 + vuv, "env_mse": env, "f0_mse": f0, "vuv_bce": vuv}


def set_statistics(net: EnvelopeNet, frames: list[Frames]) -> None:
    """Normalise outputs by the training targets' mean and spread (stored as buffers)."""
    import torch

    cep = np.concatenate([f.cep for f in frames])
    lf0 = np.concatenate([f.log_f0[f.voiced > 0] for f in frames])
    net.voice_mean.copy_(torch.from_numpy(np.mean([f.voice for f in frames], 0)))
    net.cep_mean.copy_(torch.from_numpy(cep.mean(0)))
    net.cep_std.copy_(torch.from_numpy(cep.std(0) + 1e-3))
    if len(lf0) > 1:
        net.lf0_mean.fill_(float(lf0.mean()))
        net.lf0_std.fill_(float(lf0.std() + 1e-3))


def validation_loss(net: EnvelopeNet, frames: list[Frames], seg: int, pad_unit: int) -> float:
    """Frame-weighted total loss over whole held-out utterances (in ``seg``-frame windows)."""
    import torch

    net.eval()
    total, weight = 0.0, 0.0
    with torch.inference_mode():
        for f in frames:
            for start in range(0, len(f.units), seg):
                part = Frames(*(a[start:start + seg] for a in (
                    f.units, f.position, f.f0_bins, f.cep, f.log_f0, f.voiced)), f.voice)
                n = len(part.units)
                total += float(losses(net, *batch([part], np.array([0]), n, None, pad_unit))
                               ["loss"]) * n
                weight += n
    net.train()
    return total / max(weight, 1.0)


def train_envelope(manifest: str | Path, tokenizer_dir: str | Path, out_dir: str | Path,
                   cfg: EnvelopeConfig | None = None, max_hours: float = 0.5,
                   device: str = "cpu") -> Path:
    """Train (or resume) the envelope vocoder on a manifest's audio; returns its directory."""
    import torch
    from safetensors.torch import load_file, save_file

    from speechlm.progress import progress_bar
    from speechlm.vocoders.envelope.vocoder import EnvelopeVocoder
    from speechlm.vocoders.fallback import FallbackStats
    from speechlm.vocoders.hifigan.train import examples_from_manifest

    out = Path(out_dir)
    examples, _, tok = examples_from_manifest(manifest, tokenizer_dir, max_hours)
    n_f0 = int(max((ex.f0.max() for ex in examples if ex.f0 is not None), default=-1)) + 1
    cfg = cfg or EnvelopeConfig()
    cfg = EnvelopeConfig.from_dict(replace(
        cfg, n_units=int(tok.n_units), frame_rate=float(tok.frame_rate),
        sample_rate=int(tok.sample_rate), n_f0_bins=n_f0).to_dict(), prefix="envelope.")
    begin_run(out, cfg.to_dict())

    stats = FallbackStats(cfg.n_units, cfg.frame_rate, cfg.sample_rate)
    frames = analyse(examples, cfg, stats)
    durations = stats.finish()
    train, valid, split_by = split(frames, [ex.speaker for ex in examples], cfg.valid_fraction,
                                   cfg.seed)

    torch.manual_seed(cfg.seed)
    dev = torch.device(device)
    net = EnvelopeNet(cfg)
    set_statistics(net, train)
    net.to(dev)
    opt = torch.optim.AdamW(net.parameters(), cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_scale(cfg, s))
    step, best = 0, {"loss": float("inf"), "step": 0}
    if (ckpt := last_checkpoint(out)) is not None:
        net.load_state_dict(load_file(str(ckpt / "weights.safetensors"), device=str(dev)))
        o = torch.load(ckpt / "optim.pt", weights_only=True, map_location=dev)
        opt.load_state_dict(o["opt"])
        sched.load_state_dict(o["sched"])
        torch.set_rng_state(o["torch_rng"])  # dropout masks continue as if never stopped
        state = json.loads((ckpt / "state.json").read_text())
        step, best = state["step"], state["best"]
    rng = np.random.default_rng(cfg.seed)
    if step:
        rng.bit_generator.state = state["crop_rng"]  # and so do the crops
    pad = cfg.n_units
    audio_s = cfg.segment_frames * cfg.batch_size / cfg.frame_rate
    from speechlm.train.hardware import resolve_precision

    precision = resolve_precision(cfg.precision)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    import time

    with open(out / "log.jsonl", "a") as log, progress_bar(
            total=cfg.max_steps, initial=step, unit="step", desc="envelope vocoder") as bar:
        t0, sums = time.perf_counter(), {}
        while step < cfg.max_steps:
            pick = rng.integers(0, len(train), cfg.batch_size)
            parts = [t.to(dev) for t in batch(train, pick, cfg.segment_frames, rng, pad)]
            with autocast:  # the weights, optimizer and validation stay in fp32
                values = losses(net, *parts)
            opt.zero_grad()
            values["loss"].backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            # logged as means over the interval: one batch is noisy
            for k, v in {**{k: v.detach().item() for k, v in values.items()}, "_n": 1}.items():
                sums[k] = sums.get(k, 0.0) + v
            if step % cfg.logging_steps == 0 or step == cfg.max_steps:
                n = sums.pop("_n")
                row = {"step": step, **{k: round(v / n, 5) for k, v in sums.items()},
                       "lr": sched.get_last_lr()[0],
                       "audio_s_per_s": round(audio_s * n / (time.perf_counter() - t0), 1)}
                t0, sums = time.perf_counter(), {}
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{row['loss']:.3f}")
            if step % cfg.save_steps == 0 or step == cfg.max_steps:
                vloss = validation_loss(net, valid, cfg.segment_frames, pad) if valid else 0.0
                if vloss < best["loss"]:
                    best = {"loss": vloss, "step": step}
                    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
                              str(out / "best.safetensors"))
                log.write(json.dumps({"step": step, "valid_loss": round(vloss, 5)}) + "\n")
                log.flush()
                d = out / "checkpoints" / f"step-{step}"
                d.mkdir(parents=True, exist_ok=True)
                save_file({k: v.contiguous() for k, v in net.state_dict().items()},
                          str(d / "weights.safetensors"))
                torch.save({"opt": opt.state_dict(), "sched": sched.state_dict(),
                            "torch_rng": torch.get_rng_state()}, d / "optim.pt")
                (d / "state.json").write_text(json.dumps(
                    {"step": step, "best": best, "crop_rng": rng.bit_generator.state}))
    net.load_state_dict(load_file(str(out / "best.safetensors"), device=str(dev)))
    EnvelopeVocoder(net.cpu().eval(), durations).save(out, extra={
        "best_step": best["step"], "valid_loss": round(best["loss"], 5), "precision": precision,
        "train_utterances": len(train), "valid_utterances": len(valid), "valid_split": split_by})
    return out


def _lr_scale(cfg: EnvelopeConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 10% at ``max_steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * progress))
