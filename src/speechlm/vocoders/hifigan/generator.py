"""The unit HiFi-GAN generator and its duration predictor (speech-resynthesis layout).

Units (+ F0 bins, + speaker) are embedded per token frame, then transposed convolutions upsample
the frame sequence by exactly the token hop, each followed by multi-receptive-field residual
blocks, as in HiFi-GAN V1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from speechlm.vocoders.hifigan.config import HifiganConfig

LRELU = 0.1


class ResBlock(nn.Module):
    """Dilated conv pairs with residual connections (HiFi-GAN ResBlock1)."""

    def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, dilation=d,
                                  padding=d * (kernel - 1) // 2)) for d in dilations)
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2))
            for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU)), LRELU))
        return x


class DurationPredictor(nn.Module):
    """log(1 + frames) of each de-duplicated unit from its neighbourhood of unit embeddings."""

    def __init__(self, in_dim: int, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_dim, channels, 3, padding=1)
        self.norm1 = nn.LayerNorm(channels)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)
        self.norm2 = nn.LayerNorm(channels)
        self.proj = nn.Linear(channels, 1)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, N, D) unit embeddings -> (B, N) predicted log(1 + duration)."""
        x = F.relu(self.conv1(emb.transpose(1, 2))).transpose(1, 2)  # (B, N, C)
        x = self.norm1(x)
        x = F.relu(self.conv2(x.transpose(1, 2))).transpose(1, 2)
        return self.proj(self.norm2(x)).squeeze(-1)


class UnitGenerator(nn.Module):
    """Frame-level units (+ F0 bins, + speaker) -> waveform of ``frames * hop`` samples."""

    def __init__(self, cfg: HifiganConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.unit_emb = nn.Embedding(cfg.n_units, cfg.unit_dim)
        in_dim = cfg.unit_dim
        self.f0_emb = nn.Embedding(cfg.n_f0_bins, cfg.f0_dim) if cfg.use_f0 else None
        in_dim += cfg.f0_dim if cfg.use_f0 else 0
        self.spk_emb = nn.Embedding(cfg.n_speakers, cfg.speaker_dim) if cfg.n_speakers else None
        in_dim += cfg.speaker_dim if cfg.n_speakers else 0
        self.duration = DurationPredictor(cfg.unit_dim, cfg.dur_channels)
        ch = cfg.upsample_channels
        self.conv_pre = weight_norm(nn.Conv1d(in_dim, ch, 7, padding=3))
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernels, strict=True)):
            c_in, c_out = ch // 2**i, ch // 2 ** (i + 1)
            self.ups.append(weight_norm(nn.ConvTranspose1d(c_in, c_out, k, u,
                                                           padding=(k - u) // 2)))
            self.blocks.append(nn.ModuleList(
                ResBlock(c_out, rk, rd)
                for rk, rd in zip(cfg.resblock_kernels, cfg.resblock_dilations, strict=True)))
        self.conv_post = weight_norm(nn.Conv1d(ch // 2 ** len(cfg.upsample_rates), 1, 7,
                                               padding=3))

    def condition(self, units: torch.Tensor, f0: torch.Tensor | None = None,
                  speaker: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) frame units [, (B, T) F0 bins, (B,) speakers] -> (B, D, T) conditioning."""
        parts = [self.unit_emb(units)]  # (B, T, unit_dim)
        if self.f0_emb is not None:
            f0 = torch.zeros_like(units) if f0 is None else f0
            parts.append(self.f0_emb(f0.clamp(0, self.cfg.n_f0_bins - 1)))
        if self.spk_emb is not None:
            if speaker is None:  # unknown speaker: the mean voice
                s = self.spk_emb.weight.mean(0).expand(units.shape[0], -1)
            else:
                s = self.spk_emb(speaker)
            parts.append(s[:, None, :].expand(-1, units.shape[1], -1))
        return torch.cat(parts, dim=-1).transpose(1, 2)

    def forward(self, units: torch.Tensor, f0: torch.Tensor | None = None,
                speaker: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) frame-level units -> (B, 1, T * hop) audio in [-1, 1]."""
        x = self.conv_pre(self.condition(units, f0, speaker))
        for up, blocks in zip(self.ups, self.blocks, strict=True):
            x = up(F.leaky_relu(x, LRELU))
            x = sum(b(x) for b in blocks) / len(blocks)
        return torch.tanh(self.conv_post(F.leaky_relu(x)))

    def predict_log_durations(self, units: torch.Tensor) -> torch.Tensor:
        """(B, N) de-duplicated units -> (B, N) predicted log(1 + frames)."""
        return self.duration(self.unit_emb(units))
