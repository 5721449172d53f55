"""HiFi-GAN configuration: a validated dataclass, with the tiny (CPU) and paper presets."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from speechlm.errors import ConfigError


@dataclass
class HifiganConfig:
    """Generator/discriminator sizes and training settings.

    ``upsample_rates`` must multiply to the token hop (sample_rate / frame_rate), so that every
    token frame becomes exactly one hop of audio.
    """

    n_units: int = 100
    frame_rate: float = 50.0
    sample_rate: int = 16000
    unit_dim: int = 128
    use_f0: bool = False  # condition on the tokenizer's per-unit F0 bins (pGSLM streams)
    n_f0_bins: int = 0
    f0_dim: int = 32
    n_speakers: int = 0  # 0: no speaker conditioning
    speaker_dim: int = 64
    upsample_rates: list[int] = field(default_factory=lambda: [5, 4, 4, 2, 2])
    upsample_kernels: list[int] = field(default_factory=lambda: [11, 8, 8, 4, 4])
    upsample_channels: int = 512
    resblock_kernels: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilations: list[list[int]] = field(
        default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]])
    disc_channels: int = 32  # first conv width of each discriminator (doubles per layer, capped)
    mpd_periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    dur_channels: int = 128
    # training
    segment_frames: int = 32  # token frames per training crop (0.64 s at 50 Hz)
    batch_size: int = 16
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    lr_decay: float = 0.999
    max_steps: int = 400_000
    save_steps: int = 5000
    logging_steps: int = 100
    lambda_mel: float = 45.0
    lambda_fm: float = 2.0
    lambda_dur: float = 1.0
    seed: int = 0
    n_mels: int = 80

    def __post_init__(self) -> None:
        hop = self.sample_rate / self.frame_rate
        if abs(math.prod(self.upsample_rates) - hop) > 1e-6:
            raise ConfigError(f"upsample_rates: product {math.prod(self.upsample_rates)} must "
                              f"equal the token hop sample_rate/frame_rate = {hop:g}")
        if len(self.upsample_kernels) != len(self.upsample_rates):
            raise ConfigError("upsample_kernels: needs one kernel per upsample rate")
        for k, u in zip(self.upsample_kernels, self.upsample_rates, strict=True):
            if (k - u) % 2:
                raise ConfigError(f"upsample_kernels: kernel {k} - rate {u} must be even "
                                  "(the output is then exactly rate x the input)")
        if len(self.resblock_dilations) != len(self.resblock_kernels):
            raise ConfigError("resblock_dilations: needs one dilation list per resblock kernel")
        if self.use_f0 and self.n_f0_bins < 2:
            raise ConfigError("n_f0_bins: use_f0 needs the tokenizer's number of F0 bins (>= 2)")

    @property
    def hop(self) -> int:
        return int(round(self.sample_rate / self.frame_rate))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HifiganConfig:
        """Build from a dict; unknown keys and wrong types are named."""
        known = {f.name for f in fields(cls)}
        defaults = cls()
        for k, v in d.items():
            if k not in known:
                raise ConfigError(f"hifigan config: unknown key '{k}'; known: {sorted(known)}")
            default = getattr(defaults, k)
            if isinstance(default, bool) != isinstance(v, bool) or (
                    isinstance(default, int | float) and not isinstance(v, int | float)) or (
                    isinstance(default, list) and not isinstance(v, list)):
                raise ConfigError(f"hifigan config: key '{k}' has type {type(v).__name__}, "
                                  f"expected {type(default).__name__}")
        return cls(**d)


# A tiny generator that trains on two CPU cores in minutes (audio quality is not the point).
TINY = {"unit_dim": 64, "upsample_channels": 64, "resblock_kernels": [3],
        "resblock_dilations": [[1, 3]], "disc_channels": 4, "mpd_periods": [2, 3, 5],
        "dur_channels": 32, "segment_frames": 16, "batch_size": 4, "max_steps": 200,
        "save_steps": 100, "logging_steps": 10, "lr_decay": 1.0}

# speech-resynthesis (Polyak et al. 2021) / GSLM unit HiFi-GAN: HiFi-GAN V1 sizes, 128-d unit
# embeddings, 400k steps, batch 16, Adam(0.8, 0.99) lr 2e-4 decayed 0.999 per epoch.
PAPER: dict = {}

PRESETS = {"tiny": TINY, "paper": PAPER}


def preset(name: str, **overrides) -> HifiganConfig:
    """A named preset with overrides applied (both validated)."""
    if name not in PRESETS:
        raise ConfigError(f"hifigan preset '{name}' is unknown; valid: {sorted(PRESETS)}")
    return HifiganConfig.from_dict({**PRESETS[name], **overrides})
