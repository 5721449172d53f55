"""``vocoder``: what speaks the model's units, fitted or trained on the training split.

``kind: fallback`` fits the training-free vocoder (seconds); ``kind: envelope`` trains the
envelope vocoder (a network predicting the fallback synthesiser's parameters in context: minutes
on a CPU, intelligible); ``kind: hifigan`` trains the unit HiFi-GAN. The trained kinds take a
preset (``tiny`` for CPUs, ``paper`` for the published sizes) and overrides of its keys under
their own name (``hifigan: {max_steps: 1000}``, ``envelope: {max_steps: 2000}``), and resume
from their last checkpoint when interrupted. Output: ``RUN/vocoder/``, installed into
``RUN/model/vocoder`` (without training checkpoints) so that the model directory is
self-contained.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

from speechlm.config import Config, choice, mapping, positive
from speechlm.errors import ConfigError
from speechlm.recipes.stages import STAGES, RunContext, Stage
from speechlm.recipes.stages.corpus import TRAIN
from speechlm.recipes.stages.tokens import token_rate
from speechlm.vocoders.envelope.model import EnvelopeConfig
from speechlm.vocoders.envelope.model import preset as envelope_preset
from speechlm.vocoders.hifigan.config import PRESETS, HifiganConfig, preset

FROM_TOKENIZER = ("n_units", "frame_rate", "sample_rate")  # HiFi-GAN keys the tokenizer sets
POSITIVE = ("batch_size", "max_steps", "save_steps", "logging_steps", "segment_frames", "lr")


@dataclass
class VocoderConfig(Config):
    """``kind``; ``max_hours`` of audio used at most (default: 1 h fallback, 0.5 h envelope,
    10 h hifigan); for the trained kinds: ``preset`` (default tiny), key overrides under the
    kind's name and ``device`` (default: cuda when available)."""

    kind: str = choice("fallback", "fallback", "envelope", "hifigan")
    max_hours: float | None = positive(None)
    preset: str | None = choice(None, *PRESETS)
    hifigan: dict = mapping()
    envelope: dict = mapping()
    device: str | None = None

    def validate(self) -> None:
        if self.kind == "hifigan":
            self.hifigan_config()
        elif self.kind == "envelope":
            self.envelope_config()
        for key in ("preset", "device"):
            if getattr(self, key) and self.kind == "fallback":
                raise ConfigError(f"{key}: only for the trained kinds envelope and hifigan "
                                  f"(kind is {self.kind})")
        for key in ("hifigan", "envelope"):
            if getattr(self, key) and self.kind != key:
                raise ConfigError(f"{key}: only for kind {key} (kind is {self.kind})")

    def envelope_config(self) -> EnvelopeConfig:
        """The envelope preset with the ``envelope`` overrides (rates set from the tokens)."""
        for key in ("n_units", "frame_rate", "sample_rate", "n_f0_bins"):
            if key in self.envelope:
                raise ConfigError(f"envelope.{key}: set from the tokenizer; remove it")
        return envelope_preset(self.preset or "tiny", **self.envelope)

    def hifigan_config(self, rates: tuple[int, float] | None = None) -> HifiganConfig:
        """The preset with the overrides, at the tokens' (sample rate, frame rate) when given
        (else at the rate its upsampling implies: the tokenizer is checked when known)."""
        valid = [f.name for f in fields(HifiganConfig) if f.name not in FROM_TOKENIZER]
        for key, value in self.hifigan.items():
            if key in FROM_TOKENIZER:
                raise ConfigError(f"hifigan.{key}: set from the tokenizer; remove it")
            if key not in valid:
                raise ConfigError(f"hifigan.{key}: unknown key; valid keys: {', '.join(valid)}")
            if key in POSITIVE and isinstance(value, int | float) and not value > 0:
                raise ConfigError(f"hifigan.{key}: must be > 0, got {value!r}")
        name = self.preset or "tiny"
        try:
            if rates is None:
                ups = {**PRESETS[name], **self.hifigan}.get("upsample_rates") \
                    or HifiganConfig().upsample_rates
                rates = (16000, 16000 / math.prod(ups))
            return preset(name, **self.hifigan, sample_rate=rates[0], frame_rate=rates[1])
        except (ConfigError, TypeError, ZeroDivisionError) as e:
            raise ConfigError(f"hifigan: {e}") from None


def _max_hours(conf: VocoderConfig) -> dict:
    return {} if conf.max_hours is None else {"max_hours": conf.max_hours}


def _run_vocoder(ctx: RunContext, conf: VocoderConfig, d: Path) -> dict:
    manifest, tokenizer = ctx.dir("data") / TRAIN, ctx.dir("tokenizer")
    if conf.kind == "fallback":
        from speechlm.vocoders.fallback import fit_fallback_vocoder

        fit_fallback_vocoder(manifest, tokenizer, d, **_max_hours(conf))
        return {}
    import torch

    device = conf.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if conf.kind == "envelope":
        from speechlm.vocoders.envelope.train import train_envelope

        cfg = conf.envelope_config()
        train_envelope(manifest, tokenizer, d, cfg, device=device, **_max_hours(conf))
        return {"steps": cfg.max_steps}

    from speechlm.vocoders.hifigan.train import train_hifigan

    cfg = conf.hifigan_config()  # train_hifigan sets the tokenizer's rates and checks the hop
    train_hifigan(manifest, tokenizer, d, cfg, device=device, **_max_hours(conf))
    return {"steps": cfg.max_steps}


def _plan_vocoder(ctx: RunContext, conf: VocoderConfig) -> dict:
    if conf.kind == "fallback":
        return {"vocoder": "fallback (training-free)"}
    if conf.kind == "envelope":
        cfg = conf.envelope_config()
        return {"vocoder": f"envelope, preset {conf.preset or 'tiny'}, {cfg.max_steps} steps, "
                           f"batch {cfg.batch_size}"}
    rates = token_rate(ctx, ctx.conf("tokenizer"))
    cfg = conf.hifigan_config(rates)  # raises when its upsampling does not fit the tokens
    hop = math.prod(cfg.upsample_rates)
    fit = "matches the tokens" if rates else "tokens' hop unknown offline"
    return {"vocoder": f"hifigan, preset {conf.preset or 'tiny'}, {cfg.max_steps} steps, "
                       f"batch {cfg.batch_size}", "hop": f"{hop} samples ({fit})"}


def install_vocoder(ctx: RunContext, stage: str = "model") -> None:
    """Copy ``RUN/vocoder`` into the finished model directory ``RUN/<stage>`` when it lacks it
    (e.g. a model retrained after the vocoder was made); training checkpoints stay behind."""
    model = ctx.dir(stage)
    target = model / "vocoder"
    if not (model / ".done").exists() or target.exists():
        return
    tmp = target.with_name("vocoder.partial")  # a kill mid-copy leaves no half vocoder
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ctx.dir("vocoder"), tmp, ignore=shutil.ignore_patterns(".done", "checkpoints",
                                                                  "best.safetensors"))
    tmp.rename(target)


STAGES.add("vocoder", Stage(
    "vocoder", _run_vocoder, _plan_vocoder, config=VocoderConfig, needs=("data", "tokenizer"),
    after=("model",), finish=install_vocoder))
