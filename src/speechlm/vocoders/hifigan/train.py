"""Training loop of the unit HiFi-GAN: GAN steps on random crops, resumable checkpoints, logs.

Layout of ``out_dir``: ``vocoder.json`` + ``weights.safetensors`` (the final vocoder),
``checkpoints/step-N/`` (generator and discriminator safetensors, optimiser state loaded with
``weights_only=True``, ``state.json``), ``log.jsonl`` (one line per logging step) and
``train_config.json``. Running again with the same ``out_dir`` resumes from the last checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.vocoders.base import begin_run, last_checkpoint
from speechlm.vocoders.hifigan.config import HifiganConfig


@dataclass
class Example:
    """One utterance: de-duplicated units/durations (+ F0 bins), its audio and speaker index."""

    units: np.ndarray
    durations: np.ndarray
    f0: np.ndarray | None
    wav: np.ndarray
    speaker: int


def examples_from_manifest(manifest: str | Path, tokenizer_dir: str | Path,
                           max_hours: float = 10.0) -> tuple[list[Example], list[str], object]:
    """Tokenise (up to ``max_hours`` of) a manifest: examples, speaker names, the tokenizer."""
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.errors import AudioError
    from speechlm.progress import progress_bar
    from speechlm.tokenizers import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    sr, hop = int(tok.sample_rate), int(round(tok.sample_rate / tok.frame_rate))
    utts = read_manifest(manifest)
    speakers = sorted({u.speaker for u in utts if u.speaker})
    out, seconds = [], 0.0
    for u in progress_bar(utts, unit="utt", desc="tokenising"):
        if seconds > max_hours * 3600:
            break
        try:
            wav = load_audio(u.audio, sr, start=u.start, end=u.end)
        except AudioError:
            continue  # the same files fail in `speechlm tokenize`, which lists them
        s = tok.encode([wav], sr)[0]
        durs = s.durations if s.durations is not None else np.ones(len(s.units), np.int64)
        n = int(durs.sum()) * hop
        wav = np.pad(wav, (0, max(0, n - len(wav))))[:n]
        out.append(Example(s.units, durs, s.f0, wav,
                           speakers.index(u.speaker) if u.speaker in speakers else 0))
        seconds += len(wav) / sr
    if not out:
        raise SpeechLMError(f"{manifest}: no usable utterance to train the vocoder on")
    return out, speakers, tok


def _batch(examples: list[Example], cfg: HifiganConfig, rng: np.random.Generator):
    """Random crops: (B, T) frame units, (B, T) F0 bins or None, (B,) speakers, (B, 1, T*hop)."""
    import torch

    seg, hop = cfg.segment_frames, cfg.hop
    pick = rng.integers(0, len(examples), cfg.batch_size)
    units, f0s, wavs, spk = [], [], [], []
    for i in pick:
        ex = examples[i]
        frames = np.repeat(ex.units, ex.durations)
        bins = np.repeat(ex.f0, ex.durations) if ex.f0 is not None else np.zeros_like(frames)
        start = int(rng.integers(0, max(1, len(frames) - seg + 1)))
        f = np.pad(frames[start:start + seg], (0, max(0, seg - len(frames) + start)))
        b = np.pad(bins[start:start + seg], (0, max(0, seg - len(bins) + start)))
        w = ex.wav[start * hop:(start + seg) * hop]
        units.append(f)
        f0s.append(b)
        wavs.append(np.pad(w, (0, seg * hop - len(w))))
        spk.append(ex.speaker)
    return (torch.as_tensor(np.stack(units)), torch.as_tensor(np.stack(f0s)),
            torch.as_tensor(spk), torch.as_tensor(np.stack(wavs))[:, None, :])


def _duration_batch(examples: list[Example], pick: np.ndarray):
    """Padded (B, N) units, (B, N) log(1 + durations) and mask for the duration predictor."""
    import torch

    n = max(len(examples[i].units) for i in pick)
    units = torch.zeros(len(pick), n, dtype=torch.long)
    target = torch.zeros(len(pick), n)
    mask = torch.zeros(len(pick), n)
    for row, i in enumerate(pick):
        ex = examples[i]
        units[row, :len(ex.units)] = torch.as_tensor(ex.units)
        target[row, :len(ex.units)] = torch.log1p(torch.as_tensor(ex.durations, dtype=torch.float))
        mask[row, :len(ex.units)] = 1
    return units, target, mask


class Trainer:
    """Holds the generator, discriminators, optimisers and loss modules of one run."""

    def __init__(self, cfg: HifiganConfig, device: str = "cpu") -> None:
        import torch

        from speechlm.vocoders.hifigan.discriminators import Discriminators
        from speechlm.vocoders.hifigan.generator import UnitGenerator
        from speechlm.vocoders.hifigan.losses import MelSpectrogram

        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.gen = UnitGenerator(cfg)
        self.disc = Discriminators(cfg.mpd_periods, cfg.disc_channels)
        self.mel = MelSpectrogram(cfg.sample_rate, n_mels=cfg.n_mels)
        self.device = torch.device(device)
        for m in (self.gen, self.disc, self.mel):
            m.to(self.device)
        self.opt_g = torch.optim.AdamW(self.gen.parameters(), cfg.lr, betas=tuple(cfg.betas))
        self.opt_d = torch.optim.AdamW(self.disc.parameters(), cfg.lr, betas=tuple(cfg.betas))
        self.step = 0

    def train_step(self, units, f0, spk, wav, dur_batch) -> dict:
        """One discriminator and one generator update; returns the losses."""
        import torch
        import torch.nn.functional as F

        from speechlm.vocoders.hifigan import losses

        cfg = self.cfg
        units, f0, spk, wav = (t.to(self.device) for t in (units, f0, spk, wav))
        dur_batch = tuple(t.to(self.device) for t in dur_batch)
        fake = self.gen(units, f0 if cfg.use_f0 else None, spk if cfg.n_speakers else None)
        real_logits, _ = self.disc(wav)
        fake_logits, _ = self.disc(fake.detach())
        d_loss = losses.discriminator_loss(real_logits, fake_logits)
        self.opt_d.zero_grad()
        d_loss.backward()
        self.opt_d.step()

        real_logits, real_feats = self.disc(wav)
        fake_logits, fake_feats = self.disc(fake)
        mel = F.l1_loss(self.mel(fake), self.mel(wav))
        fm = losses.feature_matching(real_feats, fake_feats)
        adv = losses.generator_adversarial(fake_logits)
        d_units, d_target, d_mask = dur_batch
        pred = self.gen.predict_log_durations(d_units)
        dur = torch.sum((pred - d_target) ** 2 * d_mask) / d_mask.sum()
        g_loss = cfg.lambda_mel * mel + cfg.lambda_fm * fm + adv + cfg.lambda_dur * dur
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        self.step += 1
        values = {"g_loss": g_loss, "d_loss": d_loss, "mel_l1": mel, "fm": fm, "adv": adv,
                  "dur_mse": dur}
        return {"step": self.step, **{k: v.detach().item() for k, v in values.items()}}

    def save_checkpoint(self, d: Path) -> None:
        import torch
        from safetensors.torch import save_file

        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.gen.state_dict().items()},
                  str(d / "generator.safetensors"))
        save_file({k: v.contiguous() for k, v in self.disc.state_dict().items()},
                  str(d / "discriminator.safetensors"))
        # optimiser state: tensors + plain numbers only, read back with weights_only=True
        torch.save({"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()}, d / "optim.pt")
        (d / "state.json").write_text(json.dumps({"step": self.step}))

    def load_checkpoint(self, d: Path) -> None:
        import torch
        from safetensors.torch import load_file

        dev = str(self.device)
        self.gen.load_state_dict(load_file(str(d / "generator.safetensors"), device=dev))
        self.disc.load_state_dict(load_file(str(d / "discriminator.safetensors"), device=dev))
        opt = torch.load(d / "optim.pt", weights_only=True, map_location=self.device)
        self.opt_g.load_state_dict(opt["g"])
        self.opt_d.load_state_dict(opt["d"])
        self.step = json.loads((d / "state.json").read_text())["step"]


def train_hifigan(manifest: str | Path, tokenizer_dir: str | Path, out_dir: str | Path,
                  cfg: HifiganConfig | None = None, max_hours: float = 10.0,
                  device: str = "cpu") -> Path:
    """Train (or resume) a unit HiFi-GAN on a manifest's audio; returns the vocoder directory."""
    from dataclasses import replace

    from speechlm.progress import progress_bar
    from speechlm.vocoders.hifigan.vocoder import HifiganVocoder

    out = Path(out_dir)
    examples, speakers, tok = examples_from_manifest(manifest, tokenizer_dir, max_hours)
    cfg = cfg or HifiganConfig()
    n_f0 = int(max((ex.f0.max() for ex in examples if ex.f0 is not None), default=0)) + 1
    cfg = replace(cfg, n_units=int(tok.n_units), frame_rate=float(tok.frame_rate),
                  sample_rate=int(tok.sample_rate),
                  n_f0_bins=max(cfg.n_f0_bins, n_f0) if cfg.use_f0 else cfg.n_f0_bins,
                  n_speakers=len(speakers) if cfg.n_speakers else 0)
    cfg = HifiganConfig.from_dict(cfg.to_dict())  # re-validate with the tokenizer's rates
    begin_run(out, cfg.to_dict())
    trainer = Trainer(cfg, device)
    if (ckpt := last_checkpoint(out)) is not None:
        trainer.load_checkpoint(ckpt)
    rng = np.random.default_rng(cfg.seed + trainer.step)  # resumed runs draw fresh crops
    # an "epoch" = as many crops as the data holds; the lr decays once per epoch, as in HiFi-GAN
    frames = sum(int(ex.durations.sum()) for ex in examples)
    steps_per_epoch = max(1, frames // (cfg.segment_frames * cfg.batch_size))
    with open(out / "log.jsonl", "a") as log, progress_bar(
            total=cfg.max_steps, initial=trainer.step, unit="step", desc="hifigan") as bar:
        while trainer.step < cfg.max_steps:
            lr = cfg.lr * cfg.lr_decay ** (trainer.step // steps_per_epoch)
            for opt in (trainer.opt_g, trainer.opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr
            units, f0, spk, wav = _batch(examples, cfg, rng)
            dur = _duration_batch(examples, rng.integers(0, len(examples), cfg.batch_size))
            logs = trainer.train_step(units, f0, spk, wav, dur)
            bar.update(1)
            if trainer.step % cfg.logging_steps == 0 or trainer.step == cfg.max_steps:
                log.write(json.dumps(logs) + "\n")
                log.flush()
                bar.set_postfix(mel=f"{logs['mel_l1']:.3f}", d=f"{logs['d_loss']:.2f}")
            if trainer.step % cfg.save_steps == 0 or trainer.step == cfg.max_steps:
                trainer.save_checkpoint(out / "checkpoints" / f"step-{trainer.step}")
    HifiganVocoder(trainer.gen.cpu(), speakers if cfg.n_speakers else []).save(out)
    return out
