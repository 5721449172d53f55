"""CPC (Contrastive Predictive Coding, van den Oord et al. 2018) as a ``transformers`` model.

GSLM's first encoder: a strided conv stack turns 16 kHz audio into 100 Hz frames ``z``, causal
LSTM layers summarise the past into ``c``, and from ``c_t`` one linear predictor per step ``k``
(1..12) must pick ``z_{t+k}`` out of negatives drawn from the same window (InfoNCE). The
sizes are those of the Libri-light CPC baseline (Rivière et al. 2020): 256 channels, kernels
10, 8, 4, 4, 4 and strides 5, 4, 2, 2, 2, channel normalisation, 128 negatives; its predictor is
a transformer layer where the original paper's, kept here, is linear.

``CPCModel`` is registered with ``AutoConfig``/``AutoModel`` under ``model_type:
speechlm_cpc``, so a trained encoder is a plain HF folder (config.json + model.safetensors) that
``AutoModel.from_pretrained`` and the ``cpc`` tokenizer kind load once this module is imported.
Its ``hidden_states`` are ``(z, c_1, .., c_L)``: layer 0 is the conv output, layer ``l`` the
``l``-th LSTM layer's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

MODEL_TYPE = "speechlm_cpc"


class CPCConfig(PretrainedConfig):
    """Sizes of a CPC encoder and its predictor (``num_hidden_layers``: LSTM layers)."""

    model_type = MODEL_TYPE

    def __init__(self, hidden_size: int = 256, num_hidden_layers: int = 2,
                 conv_kernel: list[int] | tuple[int, ...] = (10, 8, 4, 4, 4),
                 conv_stride: list[int] | tuple[int, ...] = (5, 4, 2, 2, 2),
                 prediction_steps: int = 12, num_negatives: int = 128,
                 initializer_range: float = 0.02, **kwargs) -> None:
        super().__init__(**kwargs)
        if len(conv_kernel) != len(conv_stride):
            raise ValueError(f"conv_kernel ({len(conv_kernel)} layers) and conv_stride "
                             f"({len(conv_stride)}) must have the same length")
        self.hidden_size, self.num_hidden_layers = hidden_size, num_hidden_layers
        self.conv_kernel, self.conv_stride = list(conv_kernel), list(conv_stride)
        self.prediction_steps, self.num_negatives = prediction_steps, num_negatives
        self.initializer_range = initializer_range


class ChannelNorm(nn.Module):
    """Normalise each frame over its channels (CPC2's ``ChannelNorm``): (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class CPCPreTrainedModel(PreTrainedModel):
    config_class = CPCConfig
    base_model_prefix = "cpc"
    main_input_name = "input_values"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv1d):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class CPCModel(CPCPreTrainedModel):
    """Audio (B, L) -> ``last_hidden_state`` (B, T, H): the top LSTM layer's context vectors.

    Everything is causal or local (convs without padding, per-frame norms, forward LSTMs), so
    zero padding after a waveform changes none of its frames: ``attention_mask`` is accepted
    (as other encoders take one) and needs no use.
    """

    def __init__(self, config: CPCConfig) -> None:
        super().__init__(config)
        h = config.hidden_size
        layers: list[nn.Module] = []
        for i, (k, s) in enumerate(zip(config.conv_kernel, config.conv_stride, strict=True)):
            layers += [nn.Conv1d(1 if i == 0 else h, h, k, stride=s), ChannelNorm(h), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        # one module per layer: each layer's output is a hidden state a tokenizer can read
        self.context = nn.ModuleList(nn.LSTM(h, h, batch_first=True)
                                     for _ in range(config.num_hidden_layers))
        self.post_init()

    def _get_feat_extract_output_lengths(self, lengths: torch.Tensor | int) -> torch.Tensor:
        """Frames of an input of ``lengths`` samples (unpadded convs)."""
        lengths = torch.as_tensor(lengths)
        for k, s in zip(self.config.conv_kernel, self.config.conv_stride, strict=True):
            lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
        return lengths.clamp_min(0)

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, **kwargs) -> BaseModelOutput:
        z = self.encoder(input_values[:, None]).transpose(1, 2)  # (B, T, H)
        states = [z]
        for lstm in self.context:
            states.append(lstm(states[-1])[0])
        return BaseModelOutput(last_hidden_state=states[-1],
                               hidden_states=tuple(states) if output_hidden_states else None)


@dataclass
class CPCPreTrainingOutput(ModelOutput):
    """``loss``: InfoNCE averaged over steps and frames; ``accuracy``: share of frames (over
    all ``k``) where the true future frame scores highest."""

    loss: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None


class CPCForPreTraining(CPCPreTrainedModel):
    """``CPCModel`` + one linear predictor per future step; only ``self.cpc`` is kept."""

    def __init__(self, config: CPCConfig) -> None:
        super().__init__(config)
        self.cpc = CPCModel(config)
        h = config.hidden_size
        self.predictors = nn.ModuleList(nn.Linear(h, h) for _ in range(config.prediction_steps))
        self.post_init()

    def forward(self, input_values: torch.Tensor, negative_seed: torch.Tensor | None = None,
                **kwargs) -> CPCPreTrainingOutput:
        """input_values: (B, L) equal-length windows; ``negative_seed`` seeds the negatives.

        For each step k, ``c_t`` predicts ``z_{t+k}``; the candidates are the true frame and
        ``num_negatives`` frames drawn uniformly (with replacement) from the same window, which
        at this scale is also the same speaker, as CPC2 samples them.
        """
        out = self.cpc(input_values, output_hidden_states=True)
        z, c = out.hidden_states[0], out.last_hidden_state  # (B, T, H) each
        b, t, _ = z.shape
        n = self.config.num_negatives
        gen = None
        if negative_seed is not None:
            gen = torch.Generator().manual_seed(int(negative_seed))
        losses, correct, count = [], 0, 0
        for k, predictor in enumerate(self.predictors, start=1):
            if t <= k:
                break
            scores = predictor(c[:, : t - k]) @ z.transpose(1, 2)  # (B, T-k, T)
            pos = scores.diagonal(offset=k, dim1=1, dim2=2)[..., None]  # (B, T-k, 1)
            idx = torch.randint(0, t, (b, t - k, n), generator=gen).to(scores.device)
            neg = scores.gather(2, idx)  # (B, T-k, N)
            # a drawn negative that is the true frame itself is no negative: mask it out
            neg = neg.masked_fill(idx == torch.arange(k, t, device=idx.device)[:, None], -1e4)
            logits = torch.cat([pos, neg], dim=-1).float()  # (B, T-k, 1+N), the true one first
            losses.append(F.cross_entropy(logits.flatten(0, 1), logits.new_zeros(
                b * (t - k), dtype=torch.long), reduction="sum"))
            correct += int((logits.argmax(-1) == 0).sum())
            count += b * (t - k)
        if not losses:
            raise ValueError(f"windows of {t} frames are too short to predict even one step")
        loss = torch.stack(losses).sum() / count
        return CPCPreTrainingOutput(loss=loss, accuracy=torch.tensor(correct / count))


AutoConfig.register(MODEL_TYPE, CPCConfig)
AutoModel.register(CPCConfig, CPCModel)
