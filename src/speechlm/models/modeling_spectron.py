"""Spectron's spectrogram continuation as one HF class on a stock causal LM.

Nachmani et al. 2023, "Spoken Question Answering and Speech Continuation Using
Spectrogram-Powered LLM". The LM writes the prompt's transcript and a text continuation, then
continues the *spectrogram*: continuous log-mel frames from a regression head, no units.

- **Sequence.** ``[BOS transcript continuation SPEC] [frame 0 ... frame T-2]``: text positions
  embed their ids; frame positions embed ``prenet(frame)``. The hidden state at ``SPEC``
  predicts frame 0 and the one reading frame t predicts frame t + 1 (Tacotron's convention:
  the last frame is predicted, never read).
- **Pre-net.** Linear -> ReLU -> dropout -> Linear -> dropout (p = 0.5, as Tacotron 2 and
  Spectron): the bottleneck noise keeps the LM from copying its input frame forward.
- **Heads.** The LM's head gives text logits; at the frame positions a linear ``mel_head``
  predicts the next frame (``n_mels``) and ``stop_head`` a logit for "this frame is the last".
- **Loss.** Text cross-entropy where ``labels`` are set (the HF convention) + ``frame_weight`` *
  (L1 + L2 on the frames + L1 on their time deltas) + ``stop_weight`` * stop BCE, the frame
  terms on real frames only.
- **Scale.** Frames are log-mel from ``make_frontend("logmel", {"normalize": False, ...})``;
  the model normalises them per mel bin with ``mel_mean`` / ``mel_std`` from its config
  (:func:`mel_stats` of the training frames), so the regression sees unit-scale targets, and
  returns predictions in log-mel again.

A batch is ``input_ids`` left-padded (every row ends with ``SPEC`` in the same column) and
``frames`` right-padded; position ids follow the attention mask, so a row's outputs do not
depend on its padding. :meth:`SpectronLM.from_backbone` starts from a trained causal LM, whose
weights it copies; ``speechlm.generate.spectron`` decodes frames and vocodes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import ModelOutput

from speechlm.errors import ConfigError
from speechlm.models.modeling_valle import _mean_ce
from speechlm.models.wrapped_lm import AroundLM
from speechlm.sequences.example import IGNORE

SPECTRON_TYPE = "speechlm_spectron"
SPEC = "[SPEC]"  # the marker after which the spectrogram continues
MARKERS = (SPEC,)  # what the template needs in the vocabulary


# ---- config -------------------------------------------------------------------------------------
class SpectronConfig(PretrainedConfig):
    """The backbone LM's config, the pre-net's size, the frame statistics and loss weights.

    ``mel_mean`` / ``mel_std`` (``n_mels`` floats each, or None for 0 / 1) normalise frames.
    """

    model_type = SPECTRON_TYPE
    sub_configs_defaults = {"backbone": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    backbone: dict | PretrainedConfig | None = None
    n_mels: int = 80
    prenet_dim: int = 256
    prenet_dropout: float = 0.5
    spec_token_id: int | None = None
    mel_mean: list[float] | None = None
    mel_std: list[float] | None = None
    frame_weight: float = 1.0
    stop_weight: float = 1.0
    stop_pos_weight: float = 5.0  # one stop per utterance: weigh it up (ESPnet's Tacotron 2)

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        for key in ("n_mels", "prenet_dim"):
            if int(getattr(self, key)) <= 0:
                raise ConfigError(f"{key}: must be positive, got {getattr(self, key)}")
        if self.stop_pos_weight <= 0:
            raise ConfigError(f"stop_pos_weight: must be positive, got {self.stop_pos_weight}")
        if not 0.0 <= self.prenet_dropout < 1.0:
            raise ConfigError(f"prenet_dropout: must be in [0, 1), got {self.prenet_dropout}")
        for key in ("mel_mean", "mel_std"):
            v = getattr(self, key)
            if v is not None and len(v) != self.n_mels:
                raise ConfigError(f"{key}: {len(v)} values for n_mels={self.n_mels}")
        if self.mel_std is not None and min(self.mel_std) <= 0:
            raise ConfigError("mel_std: every value must be positive")
        if self.backbone is not None and self.spec_token_id is not None and not (
                0 <= self.spec_token_id < self.backbone.vocab_size):
            raise ConfigError(f"spec_token_id: {self.spec_token_id} is not an id of the "
                              f"backbone's {self.backbone.vocab_size}")

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        """The backbone's config (what caches and initialisers look up)."""
        return self.backbone


@dataclass
class SpectronOutput(ModelOutput):
    """Losses (total, text, frame = L1 + L2 + delta L1, stop BCE); text logits (B, L, V);
    ``mel`` (B, T, n_mels) the predicted log-mel frames (denormalised) and ``stop_logits``
    (B, T), position t predicting frame t; the KV cache and last hidden states."""

    loss: torch.Tensor | None = None
    text_loss: torch.Tensor | None = None
    frame_loss: torch.Tensor | None = None
    stop_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    mel: torch.Tensor | None = None
    stop_logits: torch.Tensor | None = None
    cache: Any = None
    hidden: torch.Tensor | None = None


# ---- pre-net ------------------------------------------------------------------------------------
class Prenet(nn.Module):
    """Linear -> ReLU -> dropout -> Linear -> dropout, from a frame to the LM's width."""

    def __init__(self, n_mels: int, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n_mels, dim), nn.Linear(dim, hidden)
        self.p = dropout

    def forward(self, x: torch.Tensor, dropout: bool | None = None) -> torch.Tensor:
        """``x`` (..., n_mels) normalised frames -> (..., H); ``dropout`` forces it on or off
        (default: in training only; Tacotron 2 keeps it on when synthesising too)."""
        on = self.training if dropout is None else dropout
        x = F.dropout(F.relu(self.fc1(x)), self.p, training=on)
        return F.dropout(self.fc2(x), self.p, training=on)


# ---- model --------------------------------------------------------------------------------------
class SpectronLM(AroundLM, PreTrainedModel):
    """Causal LM + frame pre-net + frame and stop heads (see the module docstring)."""

    config_class = SpectronConfig
    base_model_prefix = "spectron"
    _supports_sdpa = True

    def __init__(self, config: SpectronConfig) -> None:
        super().__init__(config)
        hidden, m = config.backbone.hidden_size, config.n_mels
        self.lm = AutoModelForCausalLM.from_config(config.backbone)
        self.prenet = Prenet(m, config.prenet_dim, hidden, config.prenet_dropout)
        self.mel_head = nn.Linear(hidden, m)
        self.stop_head = nn.Linear(hidden, 1)
        self._no_split_modules = self.lm._no_split_modules  # FSDP wraps backbone layers
        self.post_init()

    @classmethod
    def from_backbone(cls, backbone: PreTrainedModel, n_mels: int, spec_token_id: int,
                      mel_mean: Sequence[float] | None = None,
                      mel_std: Sequence[float] | None = None, seed: int = 0,
                      **kwargs: Any) -> SpectronLM:
        """A new pre-net and heads on a trained causal LM, whose weights are copied.

        ``kwargs``: further :class:`SpectronConfig` keys (``prenet_dim``, ``prenet_dropout``,
        ``frame_weight``, ``stop_weight``, ``stop_pos_weight``).
        """
        config = SpectronConfig(
            backbone=backbone.config.to_dict(), n_mels=n_mels, spec_token_id=spec_token_id,
            mel_mean=None if mel_mean is None else [float(v) for v in mel_mean],
            mel_std=None if mel_std is None else [float(v) for v in mel_std], **kwargs)
        return cls.around(backbone, config, seed)

    # ---- pieces the training forward and generation share -----------------------------------
    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # read from the config each call, not kept as buffers: the config is the one copy, and
        # from_pretrained's meta-device loading never has to restore them
        c = self.config
        mean = torch.zeros(c.n_mels) if c.mel_mean is None else torch.tensor(c.mel_mean)
        std = torch.ones(c.n_mels) if c.mel_std is None else torch.tensor(c.mel_std)
        return mean.to(device), std.to(device)

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (..., n_mels) -> the model's unit scale."""
        mean, std = self._stats(mel.device)
        return (mel.float() - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The model's scale (..., n_mels) -> log-mel."""
        mean, std = self._stats(x.device)
        return x.float() * std + mean

    def states(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
               position_ids: torch.Tensor | None = None, cache: Any = None,
               use_cache: bool = False) -> tuple[torch.Tensor, Any]:
        """The LM on embeddings (B, L, H): last hidden states (after the final norm), cache."""
        out = self.lm.base_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                 position_ids=position_ids, cache=cache, use_cache=use_cache)
        return out.last_hidden_state, (out.cache if use_cache else None)

    def frame_heads(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states (B, T, H) -> next frames (B, T, n_mels), normalised, and stop logits
        (B, T)."""
        return self.mel_head(hidden).float(), self.stop_head(hidden)[..., 0].float()

    # ---- training forward -------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, frames: torch.Tensor | None = None,
                frame_mask: torch.Tensor | None = None) -> SpectronOutput:
        """``input_ids`` (B, L) left-padded, each row ending with ``SPEC``; ``labels`` (B, L)
        ids or ``IGNORE`` (t predicts t + 1); ``frames`` (B, T, n_mels) log-mel, right-padded,
        ``frame_mask`` (B, T). Losses are computed for what is given."""
        b, n = input_ids.shape
        emb = self.get_input_embeddings()(input_ids)  # (B, L, H)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.long()
        x = None
        if frames is not None:
            if self.config.spec_token_id is None or not bool(
                    (input_ids[:, -1] == self.config.spec_token_id).all()):
                raise ValueError("frames need every row of input_ids to end with the SPEC "
                                 f"marker (id {self.config.spec_token_id}): left-pad the text")
            if frame_mask is None:
                frame_mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
            x = self.normalize(frames)  # (B, T, M)
            # padded frames are zeroed, so garbage there never reaches a real position's loss
            x = torch.where(frame_mask[..., None].bool(), x, 0.0)
            read = self.prenet(x[:, :-1].to(emb.dtype))  # (B, T-1, H): the last is never read
            emb = torch.cat([emb, read.to(emb.dtype)], 1)  # (B, L + T - 1, H)
            mask = torch.cat([mask, frame_mask[:, :-1].long()], 1)
        positions = (mask.cumsum(1) - 1).clamp(min=0)  # left padding: the first real one is 0
        hidden, _ = self.states(emb, mask, positions)
        logits = self.lm.get_output_embeddings()(hidden[:, :n])
        out = SpectronOutput(logits=logits, hidden=hidden)
        parts = []
        if labels is not None:
            out.text_loss = _mean_ce(logits[:, :-1], labels[:, 1:])
            parts.append(out.text_loss)
        if x is not None:
            pred, stop = self.frame_heads(hidden[:, n - 1:])  # (B, T, M), (B, T): from SPEC on
            out.mel, out.stop_logits = self.denormalize(pred), stop
            out.frame_loss, out.stop_loss = frame_losses(pred, stop, x, frame_mask.bool(),
                                                         self.config.stop_pos_weight)
            parts += [self.config.frame_weight * out.frame_loss,
                      self.config.stop_weight * out.stop_loss]
        out.loss = sum(parts) if parts else None
        return out


def frame_losses(pred: torch.Tensor, stop: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor, stop_pos_weight: float = 1.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression and stop losses over the real frames of ``mask`` (B, T): ``pred``, ``target``
    (B, T, M) normalised frames, ``stop`` (B, T) logits, the last real frame of a row the only
    stop (its BCE term weighted by ``stop_pos_weight``). Returns (L1 + L2 + L1 of the time
    deltas, BCE), each a mean over real frames."""
    err = pred.float() - target.float()
    keep = err[mask]  # (N, M): boolean selection, so padding (even NaN) adds nothing
    regression = keep.abs().mean() + keep.square().mean()
    both = mask[:, 1:] & mask[:, :-1]  # (B, T-1): deltas between two real frames
    if bool(both.any()):
        regression = regression + err.diff(dim=1)[both].abs().mean()
    last = torch.arange(mask.shape[1], device=mask.device)[None] == mask.sum(1, keepdim=True) - 1
    stop_loss = F.binary_cross_entropy_with_logits(
        stop.float()[mask], last[mask].float(),
        pos_weight=torch.tensor(stop_pos_weight, device=stop.device))
    return regression, stop_loss


def mel_stats(frames: Iterable[np.ndarray | torch.Tensor]) -> tuple[list[float], list[float]]:
    """Per-bin mean and standard deviation of log-mel frames ((T, M) each), for the config."""
    x = torch.cat([torch.as_tensor(np.asarray(f), dtype=torch.float64) for f in frames])
    return x.mean(0).tolist(), x.std(0, unbiased=False).clamp(min=1e-5).tolist()


# ---- examples -----------------------------------------------------------------------------------
def spectron_example(vocab: Any, prompt_text: str, response_text: str,
                     frames: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """``BOS transcript continuation SPEC`` (``input_ids``, labels on all but BOS, so the LM
    learns to write both and when to switch) and the continuation's log-mel ``frames``
    (T, M) float32."""
    ids = [vocab.bos_id, *vocab.text_to_ids(prompt_text), *vocab.text_to_ids(response_text),
           vocab.marker(SPEC)]
    return {"input_ids": ids, "labels": [IGNORE, *ids[1:]],
            "frames": np.asarray(frames, dtype=np.float32)}


def spectron_collate(pad_id: int):
    """Examples of :func:`spectron_example` -> the batch ``SpectronLM.forward`` takes: text
    left-padded (``pad_id`` / ``IGNORE``, so ``SPEC`` shares the last column), frames
    right-padded with zeros and ``frame_mask``."""

    def fn(items: list[dict]) -> dict[str, torch.Tensor]:
        b = len(items)
        n = max(len(it["input_ids"]) for it in items)
        t = max(len(it["frames"]) for it in items)
        ids = torch.full((b, n), pad_id, dtype=torch.long)
        labels = torch.full((b, n), IGNORE, dtype=torch.long)
        attn = torch.zeros(b, n, dtype=torch.long)
        frames = torch.zeros(b, t, items[0]["frames"].shape[1])
        fmask = torch.zeros(b, t, dtype=torch.bool)
        for i, it in enumerate(items):
            k, f = len(it["input_ids"]), len(it["frames"])
            ids[i, n - k:] = torch.as_tensor(it["input_ids"])
            labels[i, n - k:] = torch.as_tensor(it["labels"])
            attn[i, n - k:] = 1
            frames[i, :f] = torch.as_tensor(it["frames"])
            fmask[i, :f] = True
        return {"input_ids": ids, "attention_mask": attn, "labels": labels, "frames": frames,
                "frame_mask": fmask}

    return fn


AutoConfig.register(SPECTRON_TYPE, SpectronConfig, exist_ok=True)
AutoModel.register(SpectronConfig, SpectronLM, exist_ok=True)
