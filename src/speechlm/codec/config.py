"""``CodecTrainConfig``: the settings of ``speechlm codec train``, checked when built, with the
``tiny`` (CPU, minutes) and ``paper`` (DAC 16 kHz) presets."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from speechlm.config import Config, at_least, choice, mapping, positive
from speechlm.errors import ConfigError

SAMPLE_RATE = 16000  # DAC 16 kHz's; ``model.sampling_rate`` sets another (24000 for EnCodec's)

# Descript Audio Codec, 16 kHz model (descript/dac_16khz): 50 Hz frames (hop 320), 12 codebooks
# of 1024 8-d codes, quantizer dropout 0.5. ``model`` keys are laid over these.
DAC_16KHZ: dict[str, Any] = {
    "encoder_hidden_size": 64, "decoder_hidden_size": 1536, "downsampling_ratios": [2, 4, 5, 8],
    "n_codebooks": 12, "codebook_size": 1024, "codebook_dim": 8, "quantizer_dropout": 0.5,
    "sampling_rate": SAMPLE_RATE,
}
# DAC's multi-scale mel loss, at 16 kHz: (n_fft, hop, n_mels) per scale, window = n_fft
DAC_MEL_SCALES = [[32, 8, 5], [64, 16, 10], [128, 32, 20], [256, 64, 40], [512, 128, 80],
                  [1024, 256, 160], [2048, 512, 320]]


def dac_config(model: dict[str, Any], key: str = "model") -> Any:
    """The ``DacConfig`` of ``model`` keys over :data:`DAC_16KHZ`; an unknown key or a value of
    the wrong type is named (``model.n_codebook: unknown key ...``)."""
    from speechlm.config import check_hf_config

    if model.get("model_type", "dac") != "dac":
        raise ConfigError(f"{key}.model_type: the codec trainer trains 'dac' models, "
                          f"not '{model['model_type']}'")
    config = check_hf_config({**DAC_16KHZ, **model, "model_type": "dac"}, key)
    if not isinstance(config.sampling_rate, int) or config.sampling_rate < 8000:
        raise ConfigError(f"{key}.sampling_rate: an integer rate in Hz >= 8000, got "
                          f"{config.sampling_rate!r}")
    if config.n_codebooks < 1 or config.codebook_size < 2:
        raise ConfigError(f"{key}.n_codebooks/codebook_size: need >= 1 codebook of >= 2 codes")
    if config.codebook_size & (config.codebook_size - 1):
        raise ConfigError(f"{key}.codebook_size: must be a power of 2, got "
                          f"{config.codebook_size}")
    if not 0 <= config.quantizer_dropout <= 1:
        raise ConfigError(f"{key}.quantizer_dropout: a fraction of the batch in [0, 1], got "
                          f"{config.quantizer_dropout}")
    return config


@dataclass
class CodecTrainConfig(Config):
    """Settings of one codec training run (``speechlm codec train`` keys have these names).

    ``model`` holds ``DacConfig`` keys over DAC's 16 kHz model (:data:`DAC_16KHZ`). Each step
    trains on ``batch_size`` random crops of ``crop_seconds`` (rounded down to whole frames;
    shorter utterances are zero-padded) from at most ``max_hours`` of the manifest.

    The loss is ``lambda_mel`` x the L1 distance of log-mel spectrograms summed over
    ``mel_scales`` ([n_fft, hop, n_mels] each) + ``lambda_wav`` x the waveform L1 +
    ``lambda_vq`` x the model's own VQ loss (commitment x ``model.commitment_loss_weight`` +
    codebook x ``model.codebook_loss_weight``). No adversarial term: see ``train.py``.

    Adam(W) with ``lr`` and ``betas`` decays by ``lr_gamma`` every step (DAC: 1e-4, (0.8, 0.99),
    0.999996); gradients are clipped to ``max_grad_norm``. ``init``: ``dac`` (DAC's and HF's
    N(0, 0.02) convolutions) or ``torch`` (PyTorch's fan-in init, the decoder's last layer
    scaled by 0.1); ``weight_norm`` reparametrises every convolution as DAC does (folded back
    into plain weights in the saved codec). Every ``code_restart_steps`` steps
    (0: never, as DAC) the codes no quantizer picked since the last restart are set to random
    latents of the current batch, against codebook collapse in short runs.
    """

    manifest: str
    output_dir: str
    model: dict = mapping()
    crop_seconds: float = positive(0.38)
    batch_size: int = positive(72)
    max_hours: float = positive(1e4)
    max_steps: int = positive(400_000)
    lr: float = positive(1e-4)
    betas: list = dataclasses.field(default_factory=lambda: [0.8, 0.99])
    lr_gamma: float = positive(0.999996)
    max_grad_norm: float = positive(1000.0)
    mel_scales: list = dataclasses.field(default_factory=lambda: copy.deepcopy(DAC_MEL_SCALES))
    lambda_mel: float = at_least(0, 15.0)
    lambda_wav: float = at_least(0, 0.0)
    lambda_vq: float = at_least(0, 1.0)
    code_restart_steps: int = at_least(0, 0)
    weight_norm: bool = True
    init: str = choice("dac", "dac", "torch")
    save_steps: int = positive(5000)
    save_total_limit: int = positive(2)
    logging_steps: int = positive(100)
    seed: int = 0
    progress: bool = True

    def validate(self) -> None:
        config = self.dac_config()
        if self.crop_samples < 2 * config.hop_length:
            raise ConfigError(f"crop_seconds: {self.crop_seconds} s is under two codec frames "
                              f"({2 * config.hop_length / config.sampling_rate:g} s)")
        if not (len(self.betas) == 2 and all(isinstance(b, int | float) and 0 <= b < 1
                                             for b in self.betas)):
            raise ConfigError(f"betas: two numbers in [0, 1), got {self.betas!r}")
        if self.lr_gamma > 1:
            raise ConfigError(f"lr_gamma: the per-step decay must be <= 1, got {self.lr_gamma}")
        if not self.mel_scales:
            raise ConfigError("mel_scales: at least one [n_fft, hop, n_mels] scale")
        for s in self.mel_scales:
            if not (isinstance(s, list) and len(s) == 3 and all(
                    isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in s)):
                raise ConfigError(f"mel_scales: each scale is [n_fft, hop, n_mels] (positive "
                                  f"integers), got {s!r}")
            n_fft, hop, n_mels = s
            if hop > n_fft or n_mels > n_fft // 2 + 1:
                raise ConfigError(f"mel_scales: {s!r} needs hop <= n_fft and n_mels <= "
                                  "n_fft / 2 + 1")
        if self.lambda_mel == self.lambda_wav == 0:
            raise ConfigError("lambda_mel: with lambda_wav also 0 nothing trains the decoder")

    def dac_config(self) -> Any:
        """The ``DacConfig`` of the codec this run trains."""
        return dac_config(self.model)

    @property
    def crop_samples(self) -> int:
        """Samples per crop: ``crop_seconds`` rounded down to whole codec frames."""
        config = dac_config(self.model)
        hop = int(config.hop_length)
        return int(round(self.crop_seconds * config.sampling_rate)) // hop * hop

    @property
    def sample_rate(self) -> int:
        """The codec's audio rate (``model.sampling_rate``, DAC 16 kHz's by default)."""
        return int(dac_config(self.model).sampling_rate)


# DAC (Kumar et al. 2023), 16 kHz: the settings above are its defaults (the GAN phase aside).
PAPER: dict[str, Any] = {}

# Trains on one CPU thread at ~8 audio s/s: 50 Hz frames (hop 320), 8 codebooks of 1024 8-d
# codes, 1.8 M parameters; 0.64 s crops, batch 8; five mel scales (DAC's smallest add little at
# this size) plus a waveform L1 term. Three departures from DAC, each measured on this corpus:
# DAC's N(0, 0.02) init left the encoder output constant over time after 1000 steps (the
# decoder learnt an average spectrum, ~1% of the codes used), so PyTorch's fan-in init with a
# quiet output layer (without the 0.1 scale the output tanh saturated within 25 steps, at
# lr 5e-4 and at 2e-4; 2e-4 was kept, 5e-4 was not retried with it); dead codes are restarted
# every 20 steps (usage fell to ~1% of the codes without).
TINY: dict[str, Any] = {
    "model": {"encoder_hidden_size": 12, "decoder_hidden_size": 192, "n_codebooks": 8},
    "crop_seconds": 0.64, "batch_size": 8, "max_steps": 2500, "lr": 2e-4, "lr_gamma": 1.0,
    "max_grad_norm": 10.0, "init": "torch", "code_restart_steps": 20,
    "mel_scales": [[128, 32, 20], [256, 64, 40], [512, 128, 80], [1024, 256, 80],
                   [2048, 512, 80]],
    "lambda_wav": 1.0, "save_steps": 250, "logging_steps": 25,
}

PRESETS = {"tiny": TINY, "paper": PAPER}


def preset(name: str) -> dict[str, Any]:
    """A copy of the keys of a named preset (lay overrides over it, then ``from_dict``)."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown '{name}'; valid: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
