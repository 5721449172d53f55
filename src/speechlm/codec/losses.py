"""The codec's reconstruction loss: log-mel L1 over several resolutions (DAC, EnCodec)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from speechlm.vocoders.hifigan.losses import MelSpectrogram


class MultiScaleMelLoss(nn.Module):
    """Sum over ``scales`` ([n_fft, hop, n_mels] each) of the mean L1 distance between the
    log-mel spectrograms of (B, 1, L) ``fake`` and ``real`` audio."""

    def __init__(self, sample_rate: int, scales: list[list[int]]) -> None:
        super().__init__()
        self.mels = nn.ModuleList(MelSpectrogram(sample_rate, n_fft, hop, n_mels)
                                  for n_fft, hop, n_mels in scales)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return sum(F.l1_loss(mel(fake), mel(real)) for mel in self.mels)
