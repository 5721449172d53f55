"""The unit-to-envelope network: units in context -> spectral envelope, F0 and voicing per frame.

Speech resynthesis (Polyak et al. 2021) maps units (+F0, +speaker) to a waveform with HiFi-GAN,
which needs days of GPU time to become intelligible. This network predicts the *parameters* of
the fallback's source-filter synthesiser instead (a cepstral envelope, log-F0, voicing), which a
few thousand CPU steps learn: the fallback's per-unit means cannot model coarticulation, a
convolution over the neighbouring frames can. Copy synthesis through the same synthesiser (the
true envelope and F0 of the original) scores the original's WER (docs/vocoders.md), so the
synthesiser is not what limits intelligibility; the prediction is.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from speechlm.config import Config, at_least, choice, fraction, positive
from speechlm.errors import ConfigError
from speechlm.speaker import EMBEDDING_DIM
from speechlm.vocoders import dsp


@dataclasses.dataclass
class EnvelopeConfig(Config):
    """Network sizes and training settings (``n_units``, rates and F0 bins come from the tokens).

    ``dilations`` lists one residual convolution block per entry; the receptive field is
    ``1 + (kernel - 1) * sum(dilations)`` frames.
    """

    n_units: int = positive(100)
    frame_rate: float = positive(50.0)
    sample_rate: int = positive(16000)
    n_f0_bins: int = at_least(0, 0)  # > 0: the tokens carry pGSLM F0 bins, embedded as input
    voice: bool = True  # condition on the d-vector of a voice (speechlm.speaker), as Polyak et al.
    unit_dim: int = positive(128)
    channels: int = positive(256)
    kernel: int = positive(5)
    dilations: list = dataclasses.field(default_factory=lambda: [1, 2, 4, 1, 2, 4])
    dropout: float = at_least(0.0, 0.1)
    # training
    segment_frames: int = positive(128)
    batch_size: int = positive(16)
    lr: float = positive(2e-3)
    warmup_steps: int = at_least(0, 200)
    # short and annealed: on held-out voices 500 steps on 0.5 h gave resynthesis WER 1.34x the
    # original's, 2000 on 2 h 1.42x and 3000 on 4 h 1.55x (docs/vocoders.md): longer runs fit
    # the training voices better and new ones worse
    max_steps: int = positive(500)
    save_steps: int = positive(250)
    logging_steps: int = positive(50)
    valid_fraction: float = fraction(0.05)
    seed: int = 0
    # auto: bf16 autocast where the hardware computes it natively (speechlm.train.hardware);
    # 1.5-1.7x faster steps on an AVX512-BF16 CPU, same resynthesis figures (docs/vocoders.md)
    precision: str = choice("auto", "auto", "fp32", "bf16")

    def validate(self) -> None:
        if self.kernel % 2 == 0:
            raise ConfigError(f"kernel: must be odd (centred convolutions), got {self.kernel}")
        if not self.dilations or not all(isinstance(d, int) and d > 0 for d in self.dilations):
            raise ConfigError(f"dilations: a non-empty list of positive ints, got {self.dilations}")


# A size that trains in minutes on two CPU cores; "paper" is the same network trained longer,
# wider and on more audio (there is no published setting for this vocoder).
PRESETS: dict[str, dict] = {
    "tiny": {},
    "paper": {"channels": 512, "max_steps": 50_000, "batch_size": 32, "save_steps": 2000},
}


def preset(name: str, **overrides) -> EnvelopeConfig:
    """A named preset with overrides, validated."""
    if name not in PRESETS:
        raise ConfigError(f"envelope preset '{name}' is unknown; valid: {sorted(PRESETS)}")
    return EnvelopeConfig.from_dict({**PRESETS[name], **overrides}, prefix="envelope.")


N_CEP = dsp.LIFTER  # the envelope keeps exactly these cepstral coefficients (see dsp.log_envelope)


def envelope_to_cepstrum(log_env: np.ndarray) -> np.ndarray:
    """(N, n_fft/2+1) liftered log envelopes -> their (N, N_CEP) real cepstra (lossless)."""
    n_fft = 2 * (log_env.shape[1] - 1)
    return np.fft.irfft(log_env, n=n_fft, axis=1)[:, :N_CEP].astype(np.float32)


def cepstrum_basis(n_bins: int) -> torch.Tensor:
    """(N_CEP, n_bins) matrix M with ``log_env = cep @ M`` for a symmetric liftered cepstrum."""
    n_fft = 2 * (n_bins - 1)
    k = np.arange(n_bins)[None, :]
    n = np.arange(N_CEP)[:, None]
    basis = np.cos(2 * np.pi * n * k / n_fft) * np.where(n == 0, 1.0, 2.0)
    return torch.from_numpy(basis.astype(np.float32))


# Parseval: the mean squared log-envelope error over bins is c0^2 + 2 * sum(c_n^2) over the
# cepstrum, so a cepstral loss with these weights is the envelope loss at 1/9 the cost.
CEP_WEIGHTS = torch.tensor([1.0] + [2.0] * (N_CEP - 1))


class ResidualConv(nn.Module):
    """LayerNorm -> dilated conv -> GELU -> 1x1 conv -> dropout, added to the input."""

    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation,
                              padding=dilation * (kernel - 1) // 2)
        self.proj = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        h = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return x + self.drop(self.proj(nn.functional.gelu(self.conv(h))))


class EnvelopeNet(nn.Module):
    """Frame units (+ position in the unit, + F0 bins) -> cepstrum, normalised log-F0, voicing."""

    def __init__(self, cfg: EnvelopeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.units = nn.Embedding(cfg.n_units + 1, cfg.unit_dim)  # the last row pads crops
        self.f0 = nn.Embedding(cfg.n_f0_bins + 1, cfg.unit_dim) if cfg.n_f0_bins else None
        self.voice = nn.Linear(EMBEDDING_DIM, cfg.unit_dim) if cfg.voice else None
        self.inp = nn.Conv1d(cfg.unit_dim + 2, cfg.channels, 1)
        self.blocks = nn.ModuleList(ResidualConv(cfg.channels, cfg.kernel, d, cfg.dropout)
                                    for d in cfg.dilations)
        self.norm = nn.LayerNorm(cfg.channels)
        self.out = nn.Linear(cfg.channels, N_CEP + 2)
        # statistics of the training targets, saved with the weights
        self.register_buffer("cep_mean", torch.zeros(N_CEP))
        self.register_buffer("cep_std", torch.ones(N_CEP))
        self.register_buffer("lf0_mean", torch.tensor(np.log(120.0), dtype=torch.float32))
        self.register_buffer("lf0_std", torch.tensor(0.25))
        self.register_buffer("voice_mean", torch.zeros(EMBEDDING_DIM))  # voice when none given

    def forward(self, units: torch.Tensor, position: torch.Tensor,
                f0_bins: torch.Tensor | None = None,
                voice: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) units, (B, T, 2) position features, optional (B, T) F0 bins and (B, 256)
        d-vectors (default: the training voices' mean) -> (B, T, N_CEP + 2) normalised outputs."""
        x = self.units(units)
        if self.f0 is not None and f0_bins is not None:
            x = x + self.f0(f0_bins.clamp(0, self.cfg.n_f0_bins))
        if self.voice is not None:
            if voice is None:
                voice = self.voice_mean.expand(len(units), -1)
            x = x + self.voice(voice)[:, None, :]
        h = self.inp(torch.cat([x, position], -1).transpose(1, 2))
        for block in self.blocks:
            h = block(h)
        return self.out(self.norm(h.transpose(1, 2)))

    def decode(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised outputs -> cepstrum (B, T, N_CEP), F0 in Hz (B, T), voicing in [0, 1]."""
        cep = y[..., :N_CEP] * self.cep_std + self.cep_mean
        f0 = torch.exp(y[..., N_CEP] * self.lf0_std + self.lf0_mean)
        return cep, f0, torch.sigmoid(y[..., N_CEP + 1])


def position_features(durations: np.ndarray) -> np.ndarray:
    """(T, 2) per frame: where it falls in its unit's run (0..1) and log of the run length.

    De-duplicated units lose the trajectory inside a run (a diphthong's glide, a stop's burst
    then release); these let the network place it.
    """
    durations = np.asarray(durations, dtype=np.int64)
    if durations.sum() == 0:
        return np.zeros((0, 2), np.float32)
    run = np.repeat(durations, durations)
    start = np.repeat(np.cumsum(durations) - durations, durations)
    offset = np.arange(int(durations.sum())) - start
    return np.stack([(offset + 0.5) / run, np.log(run)], 1).astype(np.float32)
