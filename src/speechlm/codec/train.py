"""``train_codec(cfg)``: a DAC-style neural codec (``transformers.DacModel``: conv encoder,
residual VQ with quantizer dropout, conv decoder) trained on random crops of a manifest's audio.

Layout of ``output_dir``::

    config.json, model.safetensors   the codec: `tokenizer fit --kind dac --model OUTPUT_DIR`
    checkpoints/step-N/              model.safetensors, optim.pt (loaded with weights_only=True),
                                     state.json (step, torch RNG state; written last)
    train_config.json, log.jsonl     the settings; per logging step, the losses averaged
                                     over the steps since the last line
    errors.jsonl, metrics.json       unreadable files skipped; the run's summary

Running it again with the same settings resumes from the last complete checkpoint, and gives the
weights an uninterrupted run gives: step N's crops are a function of (seed, N) alone, and the
quantizer-dropout draws come from the torch RNG state saved with the checkpoint.

No adversarial phase: DAC/EnCodec add discriminators for perceptual sharpness, but on one CPU
thread a GAN step (discriminator update + adversarial and feature-matching backward) on the tiny
preset's batch (8 x 0.64 s) took 1.2 s with even the tiny HiFi-GAN discriminators of
``speechlm.vocoders.hifigan.discriminators`` (periods 2, 3, 5; width 4), and 20 s with the
HiFi-GAN V1 ones, against 0.65 s for the whole codec step: a GAN phase would cut the steps of a
25-minute budget to a third while the mel loss is still far from converged, so it was left out
(its quality gain was not measured).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.codec.config import CodecTrainConfig
from speechlm.errors import SpeechLMError

# keys that may differ on a resume: where things are, how verbose, how long the run is
RELOCATABLE = ("manifest", "output_dir", "progress", "max_steps", "save_steps",
               "logging_steps", "save_total_limit")
CHECKPOINTS = "checkpoints"


def usable_utterances(cfg: CodecTrainConfig, out: Path) -> list:
    """The manifest's utterances (at most ``max_hours``) whose audio reads; the others are
    listed in ``out/errors.jsonl`` (``{"id", "audio", "error"}``)."""
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.errors import AudioError
    from speechlm.progress import progress_bar

    kept, errors, seconds = [], [], 0.0
    for u in progress_bar(read_manifest(cfg.manifest), unit="utt", desc="checking audio",
                          disable=not cfg.progress):
        if seconds >= cfg.max_hours * 3600:
            break
        try:
            seconds += len(load_audio(u.audio, cfg.sample_rate, start=u.start, end=u.end)) / \
                cfg.sample_rate
        except AudioError as e:
            errors.append({"id": u.id, "audio": u.audio, "error": str(e)})
            continue
        kept.append(u)
    (out / "errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in errors))
    if not kept:
        raise SpeechLMError(f"{cfg.manifest}: no usable audio to train the codec on "
                            f"({len(errors)} unreadable file(s), listed in "
                            f"{out / 'errors.jsonl'})")
    return kept


def crop_batch(dataset: Any, cfg: CodecTrainConfig, step: int) -> np.ndarray:
    """Step ``step``'s (B, 1, L) crops: utterances and windows drawn from (seed, step) alone;
    crops shorter than L (short utterances) are zero-padded."""
    rng = np.random.default_rng([cfg.seed, step])
    dataset.set_epoch(step)  # the window of item i at step s is a function of (seed, s, i)
    batch = np.zeros((cfg.batch_size, 1, dataset.crop), np.float32)
    for row, i in enumerate(rng.integers(0, len(dataset), cfg.batch_size)):
        wav = dataset[int(i)]["wav"]
        batch[row, 0, :len(wav)] = wav
    return batch


class CodecTrainer:
    """The codec, its loss modules and optimiser, and the step counter of one run."""

    def __init__(self, cfg: CodecTrainConfig, device: str = "cpu") -> None:
        import torch
        from transformers import DacModel

        from speechlm.codec.losses import MultiScaleMelLoss

        torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
        self.cfg, self.device = cfg, torch.device(device)
        self.model = DacModel(cfg.dac_config()).to(self.device)
        if cfg.init == "torch":  # PyTorch's fan-in init: DAC's N(0, 0.02) starves a short run
            for m in self.model.modules():
                if isinstance(m, torch.nn.Conv1d | torch.nn.ConvTranspose1d | torch.nn.Embedding):
                    m.reset_parameters()
            with torch.no_grad():  # start quiet: a loud start saturates the output tanh
                self.model.decoder.conv2.weight.mul_(0.1)
        if cfg.weight_norm:
            self.model.apply_weight_norm()  # DAC's: every conv as g * v / |v|
        self.mel = MultiScaleMelLoss(cfg.sample_rate, cfg.mel_scales).to(self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), cfg.lr, betas=tuple(cfg.betas))
        self.step = 0
        q = self.model.config
        # (K, N) codes used since the last dead-code restart / the last log line
        self.used = torch.zeros(q.n_codebooks, q.codebook_size, dtype=torch.bool)
        self.used_log = torch.zeros_like(self.used)

    def train_step(self, wav: np.ndarray) -> dict:
        """One update on (B, 1, L) audio; returns the losses."""
        import torch
        import torch.nn.functional as F

        cfg = self.cfg
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * cfg.lr_gamma ** self.step
        real = torch.from_numpy(wav).to(self.device)  # (B, 1, L)
        self.model.train()
        out = self.model(real)
        fake = out.audio_values[:, None]  # (B, 1, L'): L' = L - 8 with DAC's odd stride 5
        real = real[..., :fake.shape[-1]]
        mel = self.mel(fake, real)
        wav_l1 = F.l1_loss(fake, real)
        vq = out.loss.mean()  # (B,) commitment + codebook losses, dropped codebooks masked
        loss = cfg.lambda_mel * mel + cfg.lambda_wav * wav_l1 + cfg.lambda_vq * vq
        self.opt.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.opt.step()
        self.step += 1
        codes = out.audio_codes.detach().cpu()  # (B, K, T)
        for used in (self.used, self.used_log):
            used.scatter_(1, codes.permute(1, 0, 2).reshape(codes.shape[1], -1), True)
        if cfg.code_restart_steps and self.step % cfg.code_restart_steps == 0:
            self.restart_dead_codes(out.projected_latents.detach())
        values = {"loss": loss, "mel_l1": mel, "wav_l1": wav_l1, "vq": vq,
                  "grad_norm": grad_norm}
        return {k: round(float(v.detach()), 6) for k, v in values.items()}

    def restart_dead_codes(self, latents) -> None:
        """Set each code unused since the last restart to a random latent of the batch that
        its quantizer saw (SoundStream, Jukebox): a collapsed codebook keeps few live codes.

        ``latents``: (B, K * D, T), the in-projected residual of each quantizer.
        """
        import torch

        d = self.model.config.codebook_dim
        for k, quantizer in enumerate(self.model.quantizer.quantizers):
            dead = (~self.used[k]).nonzero().squeeze(1)
            if len(dead):
                pool = latents[:, k * d:(k + 1) * d].permute(0, 2, 1).reshape(-1, d)  # (B*T, D)
                pick = torch.randint(0, len(pool), (len(dead),))
                with torch.no_grad():
                    quantizer.codebook.weight[dead.to(self.device)] = pool[pick.to(self.device)]
        self.used.zero_()

    def code_usage(self) -> list[float]:
        """Per codebook, the fraction of its codes used since the last call (then reset)."""
        usage = self.used_log.float().mean(1).tolist()
        self.used_log.zero_()
        return [round(u, 4) for u in usage]

    def plain_model(self) -> Any:
        """The codec without weight-norm parametrisations (what ``DacModel`` loads), on CPU."""
        from torch.nn.utils import parametrize

        model = self.model.cpu().eval()
        for m in model.modules():
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight")
        return model

    def save_checkpoint(self, d: Path) -> None:
        import torch
        from safetensors.torch import save_file

        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()},
                  str(d / "model.safetensors"))
        # optimiser state: tensors + plain numbers only, read back with weights_only=True
        torch.save({"optim": self.opt.state_dict(), "used": self.used}, d / "optim.pt")
        state = {"step": self.step, "torch_rng_state": torch.get_rng_state().tolist()}
        (d / "state.json").write_text(json.dumps(state))  # last: marks the folder complete

    def load_checkpoint(self, d: Path) -> None:
        import torch
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(str(d / "model.safetensors"),
                                             device=str(self.device)))
        saved = torch.load(d / "optim.pt", weights_only=True, map_location=self.device)
        self.opt.load_state_dict(saved["optim"])
        self.used = saved["used"].cpu()
        state = json.loads((d / "state.json").read_text())
        self.step = int(state["step"])
        torch.set_rng_state(torch.tensor(state["torch_rng_state"], dtype=torch.uint8))


def checkpoints(out: Path) -> list[Path]:
    """The complete ``step-N`` checkpoints under ``out``, oldest first."""
    found = []
    for d in (out / CHECKPOINTS).glob("step-*"):
        try:
            found.append((int(json.loads((d / "state.json").read_text())["step"]), d))
        except (OSError, ValueError, KeyError):
            continue  # killed while saving: the previous one is resumed
    return [d for _, d in sorted(found)]


def train_codec(cfg: CodecTrainConfig, device: str = "cpu") -> dict:
    """Train (or resume) as configured; returns the metrics written to ``metrics.json``."""
    from speechlm.progress import progress_bar
    from speechlm.ssl.data import CropDataset
    from speechlm.train.run import check_resumed_config

    out = Path(cfg.output_dir)
    found = checkpoints(out)
    check_resumed_config(out, cfg, str(found[-1]) if found else None, RELOCATABLE)
    utts = usable_utterances(cfg, out)
    trainer = CodecTrainer(cfg, device)
    hop = int(trainer.model.config.hop_length)
    dataset = CropDataset(None, utts, cfg.crop_samples, hop, min_samples=hop, seed=cfg.seed,
                          sample_rate=cfg.sample_rate)
    if found:
        trainer.load_checkpoint(found[-1])
    seconds_per_step = cfg.batch_size * cfg.crop_samples / cfg.sample_rate
    t0, first, window = time.perf_counter(), trainer.step, []  # log lines: window means
    with open(out / "log.jsonl", "a") as log, progress_bar(
            total=cfg.max_steps, initial=trainer.step, unit="step", desc="codec",
            disable=not cfg.progress) as bar:
        while trainer.step < cfg.max_steps:
            logs = trainer.train_step(crop_batch(dataset, cfg, trainer.step))
            window.append(logs)
            bar.update(1)
            last = trainer.step == cfg.max_steps
            if trainer.step % cfg.logging_steps == 0 or last:
                took = time.perf_counter() - t0
                means = {k: round(float(np.mean([w[k] for w in window])), 6) for k in logs}
                window = []
                log.write(json.dumps({
                    "step": trainer.step, **means, "lr": cfg.lr * cfg.lr_gamma ** trainer.step,
                    "code_usage": trainer.code_usage(),
                    "audio_s_per_s": round((trainer.step - first) * seconds_per_step / took, 3),
                    "elapsed_s": round(took, 1)}) + "\n")
                log.flush()
                t0, first, window = time.perf_counter(), trainer.step, []  # log lines: window means
                bar.set_postfix(mel=f"{logs['mel_l1']:.3f}", vq=f"{logs['vq']:.3f}")
            if trainer.step % cfg.save_steps == 0 or last:
                trainer.save_checkpoint(out / CHECKPOINTS / f"step-{trainer.step}")
                for old in checkpoints(out)[:-cfg.save_total_limit]:
                    shutil.rmtree(old)
    trainer.plain_model().save_pretrained(out)
    metrics = {"steps": trainer.step, "resumed_from": str(found[-1]) if found else None,
               "parameters": sum(p.numel() for p in trainer.model.parameters()),
               "utterances": len(dataset), "unreadable": sum(1 for _ in open(
                   out / "errors.jsonl")),
               "train_loss": [(r["step"], r["loss"]) for r in read_log(out)]}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def read_log(out: Path) -> list[dict]:
    """The lines of ``out/log.jsonl`` (a resumed run's repeated steps: the newest kept)."""
    rows: dict[int, dict] = {}
    path = Path(out) / "log.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["step"]] = row
    return [rows[s] for s in sorted(rows)]
