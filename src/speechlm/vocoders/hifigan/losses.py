"""HiFi-GAN losses: log-mel L1, feature matching, least-squares adversarial, duration MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MelSpectrogram(nn.Module):
    """Log-mel (natural log, clamped) of (B, 1, T) audio; HiFi-GAN's loss features."""

    def __init__(self, sample_rate: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80):
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        fb = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels,
                             min_frequency=0.0, max_frequency=sample_rate / 2,
                             sampling_rate=sample_rate, norm="slaney", mel_scale="slaney")
        self.register_buffer("fb", torch.from_numpy(fb).float(), persistent=False)  # (F, M)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.n_fft, self.hop = n_fft, hop

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wav.squeeze(1), self.n_fft, self.hop, window=self.window,
                          center=True, return_complex=True).abs()  # (B, F, frames)
        return torch.log(torch.clamp(spec.transpose(1, 2) @ self.fb, min=1e-5))


def feature_matching(real: list[list[torch.Tensor]],
                     fake: list[list[torch.Tensor]]) -> torch.Tensor:
    return sum(F.l1_loss(f, r.detach()) for rs, fs in zip(real, fake, strict=True)
               for r, f in zip(rs, fs, strict=True))


def generator_adversarial(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    return sum(torch.mean((1 - f) ** 2) for f in fake_logits)


def discriminator_loss(real_logits: list[torch.Tensor],
                       fake_logits: list[torch.Tensor]) -> torch.Tensor:
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f**2)
               for r, f in zip(real_logits, fake_logits, strict=True))
