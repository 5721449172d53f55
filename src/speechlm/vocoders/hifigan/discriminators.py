"""HiFi-GAN's multi-period and multi-scale discriminators; each returns logits and features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

LRELU = 0.1
Outputs = tuple[list[torch.Tensor], list[list[torch.Tensor]]]  # logits, feature maps per disc


class PeriodDiscriminator(nn.Module):
    """Audio folded into (T / p, p) columns, judged with 2-D convolutions along time."""

    def __init__(self, period: int, width: int) -> None:
        super().__init__()
        self.period = period
        chans = [1, width, width * 4, width * 16, width * 32, width * 32]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3 if i < 4 else 1, 1),
                                  padding=(2, 0))) for i in range(5))
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x = x.view(b, c, -1, self.period)  # (B, 1, T/p, p)
        return _conv_stack(self.convs, self.post, x)


class ScaleDiscriminator(nn.Module):
    """Grouped 1-D convolutions over raw (or average-pooled) audio."""

    def __init__(self, width: int, spectral: bool = False) -> None:
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        w = width * 4
        specs = [(1, w, 15, 1, 1), (w, w, 41, 2, 4), (w, 2 * w, 41, 2, 16),
                 (2 * w, 4 * w, 41, 4, 16), (4 * w, 4 * w, 41, 4, 16), (4 * w, 4 * w, 5, 1, 1)]
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(i, o, k, s, groups=g, padding=k // 2)) for i, o, k, s, g in specs)
        self.post = norm(nn.Conv1d(4 * w, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.post, x)


class Discriminators(nn.Module):
    """MPD (one per period) + MSD (raw, x2 and x4 average-pooled audio)."""

    def __init__(self, periods: list[int], width: int) -> None:
        super().__init__()
        self.mpd = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)
        self.msd = nn.ModuleList([ScaleDiscriminator(width, spectral=True),
                                  ScaleDiscriminator(width), ScaleDiscriminator(width)])
        self.pools = nn.ModuleList([nn.Identity(), nn.AvgPool1d(4, 2, padding=2),
                                    nn.Sequential(nn.AvgPool1d(4, 2, padding=2),
                                                  nn.AvgPool1d(4, 2, padding=2))])

    def forward(self, x: torch.Tensor) -> Outputs:
        logits, feats = [], []
        for d in self.mpd:
            lo, fe = d(x)
            logits.append(lo)
            feats.append(fe)
        for d, pool in zip(self.msd, self.pools, strict=True):
            lo, fe = d(pool(x))
            logits.append(lo)
            feats.append(fe)
        return logits, feats


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack then the output conv; returns (flat logits, every layer's output)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats
