"""``DialogueLM``: dGSLM's Dialogue Language Model (two-tower transformer with cross-attention).

Nguyen et al. 2022, "Generative Spoken Dialogue Language Modeling" (fairseq ``speech_dlm``).
Two channels of frame-rate units (one per speaker, not de-duplicated) go through one tower
whose weights both channels share: the same layers run on channel A and on channel B (here the
channels are stacked on the batch axis, ``(B, 2, L) -> (2B, L)``), so swapping the channels swaps
the outputs exactly. Every layer has causal self-attention within its channel; the top
``cross_layers`` layers (paper: 4 of 6) add a cross-channel attention block between
self-attention and the MLP, whose queries come from the channel and whose keys and values come
from the *other* channel's states after that layer's self-attention, with the same causal mask:
position ``t`` sees the other channel's positions ``<= t`` (fairseq passes the self-attention's
future mask to its ``cross_channel_attn``, diagonal included). Both channels' frames at ``t`` are
known before ``t + 1`` is predicted, so this leaks nothing.

Heads, per channel and shared: next-unit logits (tied to the input embedding by default, as
fairseq's ``--share-decoder-input-output-embed``) and a duration head, a scalar regression
(``Linear(hidden, 1)`` trained with L1 on frame counts, as fairseq's ``output_duration_prediction``
and criterion). Targets come from :mod:`speechlm.sequences.dialogue` (next units, the edge mask
``next != units``, delayed durations). The loss is the unit cross-entropy (only at edges when
``edge_only``) plus ``duration_weight`` times the duration L1, each a mean over the positions of
both channels pooled (a channel without edges in a batch, e.g. a long silence, then adds nothing
instead of a zero that would halve the other channel's loss).

With ``log_durations`` the head predicts the logarithm of the run length and the L1 is taken
between logarithms (the default, off, is fairseq's head, in frames). Both losses have the same
best prediction, the conditional median (a median commutes with a monotone map), and the same
gradient size into the trunk; what differs is how far the head's output must travel. Adam moves
a linear head's output by about ``lr`` times the L1 norm of its input per step, whatever the
loss, so from 0 a head in frames needs thousands of steps to predict a listener's silence (100
frames and more, beside speech runs of 2-3): fairseq's 250k updates get there, a few hundred CPU
steps do not (measured at the tiny scale: 18 frames predicted for silences of 90 after 300
steps). In log space the same targets lie within 0-5.6.

Why the blocks are written here: no stock ``transformers`` layer has cross-channel attention.
The hyper-parameters are a stock ``LlamaConfig`` (``backbone``), and the stock Llama pieces that
fit are reused as they are: ``LlamaRMSNorm``, ``LlamaMLP``, ``LlamaRotaryEmbedding`` and
``apply_rotary_pos_emb`` (rotary positions replace fairseq's sinusoidal ones; the cross-channel
block rotates its queries and keys too, so it sees the time offset between the channels).
Attention is ``torch``'s SDPA. Padding goes on the right only (causal attention keeps it
invisible to real positions); there is no attention mask.

Generation (:meth:`DialogueLM.generate`) steps both channels a frame at a time with a KV cache.
As dGSLM's ``MultichannelSequenceGenerator`` does with durations: when a channel starts a new
unit, the duration head's prediction at the run's first frame (delayed durations; at the edge
otherwise), rounded and at least 1, is how many frames that unit lasts: it is repeated without
sampling until then; the next frame after the run is sampled from the logits again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.models.llama.modeling_llama import (
    LlamaMLP,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
)
from transformers.utils import ModelOutput

from speechlm.errors import ConfigError
from speechlm.sequences.example import IGNORE

MODEL_TYPE = "speechlm_dialogue"
CHANNELS = 2


class DialogueLMConfig(PretrainedConfig):
    """A stock Llama config (``backbone``: sizes, heads, RoPE, vocabulary) plus dGSLM's settings."""

    model_type = MODEL_TYPE
    sub_configs_defaults = {"backbone": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    backbone: dict | PretrainedConfig | None = None
    cross_layers: int = 4  # upper layers with cross-channel attention (paper: 4 of 6)
    duration_weight: float = 1.0  # weight of the duration L1 (0: no duration loss or use)
    log_durations: bool = False  # the head predicts log run lengths, L1 in log space (above)
    edge_only: bool = True  # unit loss at edges only (fairseq's edge target) or everywhere
    delayed_duration: bool = True  # duration read at the run's first frame, not at the edge
    max_duration: int = 256  # frames; longer runs are capped (targets and generation)
    tie_word_embeddings: bool = True  # next-unit head shares the input embedding
    # the unit (an index into the unit range, not a vocabulary id) that a silent channel holds
    # in the training data; set by the ``dialogue`` objective from the token dataset, read where
    # a channel must be made silent (scoring a single-channel item, the cascaded baseline)
    silence_unit: int | None = None
    # how each channel was tokenised (``speechlm.tokenizers.dialogue``: segments, region_gap,
    # pad), also set by the objective, so a stereo prompt is tokenised as the training data was
    channel_tokens: dict | None = None

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        bb = self.backbone
        if bb.model_type != "llama":
            raise ConfigError(f"backbone.model_type: the dialogue LM takes a llama config (its "
                              f"layers are llama blocks), got {bb.model_type!r}")
        layers = bb.num_hidden_layers
        _check(self, "cross_layers", int, lambda v: 0 <= v <= layers,
               f"an integer in [0, num_hidden_layers={layers}]")
        _check(self, "duration_weight", int | float, lambda v: v >= 0, "a number >= 0")
        _check(self, "max_duration", int, lambda v: v >= 1, "an integer >= 1")
        for key in ("edge_only", "delayed_duration", "tie_word_embeddings", "log_durations"):
            _check(self, key, bool, lambda v: True, "true or false")
        if self.silence_unit is not None:
            _check(self, "silence_unit", int, lambda v: v >= 0, "an integer >= 0 (or null)")

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        """The backbone's config (what initialisers look up)."""
        return self.backbone


def _check(cfg: PretrainedConfig, key: str, kind: Any, ok: Callable[[Any], bool],
           what: str) -> None:
    """Raise ``ConfigError`` naming ``key`` unless its value is a ``kind`` (a bool is no number
    here) for which ``ok`` holds."""
    value = getattr(cfg, key)
    right_kind = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not (right_kind and ok(value)):
        raise ConfigError(f"{key}: must be {what}, got {value!r}")


# ---- the blocks -----------------------------------------------------------------------------
KV = tuple[torch.Tensor, torch.Tensor]  # keys, values: (2B, kv_heads, S, head_dim) each
Rotary = tuple[torch.Tensor, torch.Tensor]  # cos, sin: (1, L, head_dim) each


class Attention(nn.Module):
    """Llama-style attention of one set of states over another (itself, or the other channel)."""

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.dropout = config.attention_dropout
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, self.kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, self.kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.heads * self.head_dim, config.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, rotary: Rotary,
                past: KV | None) -> tuple[torch.Tensor, KV]:
        """Queries from ``x`` (N, L, H), keys/values from ``memory`` (N, L, H) after ``past``;
        causal: query ``i`` sees keys up to its own position."""
        n, length, _ = x.shape
        q = self.q_proj(x).view(n, length, self.heads, -1).transpose(1, 2)  # (N, h, L, d)
        k = self.k_proj(memory).view(n, length, self.kv_heads, -1).transpose(1, 2)  # (N, kv, L, d)
        v = self.v_proj(memory).view(n, length, self.kv_heads, -1).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, *rotary)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)  # (N, kv, S, d)
        total = k.shape[2]
        # query i sits at position total - length + i; a single new query sees everything
        mask = None if length == 1 else torch.ones(length, total, dtype=torch.bool,
                                                   device=x.device).tril(total - length)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0,
                                             enable_gqa=self.kv_heads != self.heads)  # (N, h, L, d)
        return self.o_proj(out.transpose(1, 2).reshape(n, length, -1)), (k, v)


def swap_channels(x: torch.Tensor) -> torch.Tensor:
    """(2B, ...) rows ordered (b, channel) -> each row replaced by its other channel's row."""
    return x.view(-1, CHANNELS, *x.shape[1:]).flip(1).reshape(x.shape)


@dataclass
class LayerCache:
    """One layer's keys and values: self-attention's, and cross-attention's (the other channel's
    states, already swapped into the querying channel's rows)."""

    self_kv: KV | None = None
    cross_kv: KV | None = None


@dataclass
class DialogueCache:
    """Every layer's keys and values for both channels, and how many positions they hold."""

    layers: list[LayerCache] = field(default_factory=list)
    length: int = 0


class DialogueLayer(nn.Module):
    """Pre-norm block: self-attention, [cross-channel attention], MLP; each with a residual."""

    def __init__(self, config: PretrainedConfig, cross: bool) -> None:
        super().__init__()
        eps = config.rms_norm_eps
        self.self_norm = LlamaRMSNorm(config.hidden_size, eps=eps)
        self.self_attn = Attention(config)
        self.cross_norm = LlamaRMSNorm(config.hidden_size, eps=eps) if cross else None
        self.cross_attn = Attention(config) if cross else None
        self.mlp_norm = LlamaRMSNorm(config.hidden_size, eps=eps)
        self.mlp = LlamaMLP(config)

    def forward(self, x: torch.Tensor, rotary: Rotary,
                past: LayerCache) -> tuple[torch.Tensor, LayerCache]:
        """``x`` (2B, L, H), channels interleaved per batch item -> same shape, new cache."""
        h = self.self_norm(x)
        out, self_kv = self.self_attn(h, h, rotary, past.self_kv)
        x = x + out
        cross_kv = None
        if self.cross_attn is not None:
            # the other channel's states after this layer's self-attention, as fairseq; normalised
            # here for keys/values too (fairseq's pre-norm variant feeds them un-normalised)
            h = self.cross_norm(x)
            out, cross_kv = self.cross_attn(h, swap_channels(h), rotary, past.cross_kv)
            x = x + out
        return x + self.mlp(self.mlp_norm(x)), LayerCache(self_kv, cross_kv)


# ---- the model ------------------------------------------------------------------------------
@dataclass
class DialogueLMOutput(ModelOutput):
    """Loss (units + weighted durations), its parts, per-channel outputs and the KV cache.

    ``logits``: (B, 2, L, V) next-unit logits; ``durations``: (B, 2, L) predicted frames.
    """

    loss: torch.Tensor | None = None
    unit_loss: torch.Tensor | None = None
    duration_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    durations: torch.Tensor | None = None
    cache: DialogueCache | None = None


class DialogueLM(PreTrainedModel):
    """Shared-weight two-channel transformer with cross-channel attention in its top layers."""

    config_class = DialogueLMConfig
    base_model_prefix = "dialogue"
    _supports_sdpa = True
    _no_split_modules = ["DialogueLayer"]  # FSDP wraps layers
    _tied_weights_keys = {"lm_head.weight": "embed_tokens.weight"}

    def __init__(self, config: DialogueLMConfig) -> None:
        super().__init__(config)
        bb = config.backbone
        self.embed_tokens = nn.Embedding(bb.vocab_size, bb.hidden_size, bb.pad_token_id)
        first_cross = bb.num_hidden_layers - config.cross_layers
        self.layers = nn.ModuleList([DialogueLayer(bb, cross=i >= first_cross)
                                     for i in range(bb.num_hidden_layers)])
        self.norm = LlamaRMSNorm(bb.hidden_size, eps=bb.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(bb)
        self.lm_head = nn.Linear(bb.hidden_size, bb.vocab_size, bias=False)
        self.duration_head = nn.Linear(bb.hidden_size, 1)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def forward(self, units: torch.Tensor, next_units: torch.Tensor | None = None,
                durations: torch.Tensor | None = None, cache: DialogueCache | None = None,
                use_cache: bool = False) -> DialogueLMOutput:
        """``units`` (B, 2, L) ids (after ``cache``'s positions); with ``next_units`` (B, 2, L)
        (:data:`IGNORE` where none) and optionally ``durations`` (B, 2, L) (0 where none), the
        loss (see the module docstring)."""
        b, channels, length = units.shape
        if channels != CHANNELS:
            raise ValueError(f"units must be (batch, 2, length), got {tuple(units.shape)}")
        past = cache.length if cache is not None else 0
        x = self.embed_tokens(units.reshape(b * CHANNELS, length))  # (2B, L, H)
        positions = torch.arange(past, past + length, device=units.device)[None]  # (1, L)
        rotary = self.rotary_emb(x, positions)  # cos, sin: (1, L, head_dim)
        layer_caches = []
        for i, layer in enumerate(self.layers):
            x, lc = layer(x, rotary, cache.layers[i] if cache is not None else LayerCache())
            layer_caches.append(lc)
        h = self.norm(x)  # (2B, L, H)
        logits = self.lm_head(h).view(b, CHANNELS, length, -1)  # (B, 2, L, V)
        raw = self.duration_head(h).view(b, CHANNELS, length)  # (B, 2, L): frames, or log frames
        if self.config.log_durations:  # frames, capped where generation caps them anyway
            predicted = raw.float().clamp(max=math.log(self.config.max_duration)).exp()
        else:
            predicted = raw
        out = DialogueLMOutput(logits=logits, durations=predicted,
                               cache=DialogueCache(layer_caches, past + length)
                               if use_cache else None)
        if next_units is not None:
            out.unit_loss = self.unit_loss(logits, units, next_units)
            out.loss = out.unit_loss
            if durations is not None:
                out.duration_loss = duration_loss(raw, durations, self.config.log_durations)
                out.loss = out.loss + self.config.duration_weight * out.duration_loss
        return out

    def unit_loss(self, logits: torch.Tensor, units: torch.Tensor,
                  next_units: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the next unit, pooled over both channels' kept positions (edges only
        when ``edge_only``: where the next unit differs from the current one)."""
        keep = next_units != IGNORE  # (B, 2, L)
        if self.config.edge_only:
            keep &= next_units != units
        per = F.cross_entropy(logits.float().flatten(0, 2), next_units.flatten().clamp(min=0),
                              reduction="none").view_as(keep)  # (B, 2, L)
        return (per * keep).sum() / keep.sum().clamp(min=1)

    # ---- generation -----------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompt_a: Sequence[int] | np.ndarray, prompt_b: Sequence[int] | np.ndarray,
                 n_frames: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
                 fixed_channel: int | None = None, allowed: Sequence[int] | None = None,
                 use_durations: bool | None = None) -> np.ndarray:
        """Continue a dialogue by ``n_frames`` frames on both channels: (2, n_frames) ids.

        Prompts are vocabulary ids without BOS (it is prepended), one per channel, of one length
        ``P`` (``P = 0``: start from BOS). With ``fixed_channel`` (0: A, 1: B) that channel is not
        sampled but read from its prompt, which then holds ``P + n_frames`` ids (the "no live
        user" mode: the given channel's future frames are known). Only ``allowed`` ids are
        sampled (default: every id but BOS, EOS and padding). ``use_durations`` (default: when
        the model trains its duration head, ``duration_weight > 0``): a new unit lasts the
        predicted number of frames (see the module docstring); otherwise every frame is sampled.
        Sampling: ``temperature``, ``top_k`` (0: all), a seeded generator (same seed, same
        output). The cache grows with the dialogue (no sliding window): keep
        ``P + n_frames`` within the positions the model was trained on.
        """
        from speechlm.models.multistream import sample

        device = self.device
        prompts = [np.asarray(prompt_a, dtype=np.int64), np.asarray(prompt_b, dtype=np.int64)]
        if fixed_channel not in (None, 0, 1):
            raise ValueError(f"fixed_channel must be None, 0 or 1, got {fixed_channel!r}")
        free = [c for c in range(CHANNELS) if c != fixed_channel]
        n_prompt = len(prompts[free[0]])
        given = None
        if fixed_channel is not None:
            given = prompts[fixed_channel]
            if len(given) != n_prompt + n_frames:
                raise ValueError(f"the fixed channel {fixed_channel} needs the prompt's "
                                 f"{n_prompt} frames plus the {n_frames} to generate, got "
                                 f"{len(given)}")
            prompts[fixed_channel] = given[:n_prompt]
        elif len(prompts[0]) != len(prompts[1]):
            raise ValueError(f"the channels' prompts must be frame-aligned, got {len(prompts[0])} "
                             f"and {len(prompts[1])} frames")
        use_durations = self.config.duration_weight > 0 if use_durations is None else use_durations
        bb = self.config.backbone
        mask = torch.full((bb.vocab_size,), float("-inf"))
        if allowed is None:
            allowed = [i for i in range(bb.vocab_size)
                       if i not in (bb.bos_token_id, bb.eos_token_id, bb.pad_token_id)]
        mask[list(allowed)] = 0.0
        gen = torch.Generator().manual_seed(seed)

        seq = np.concatenate([np.full((CHANNELS, 1), bb.bos_token_id), np.stack(prompts)], 1)
        out = self(torch.as_tensor(seq, device=device)[None], use_cache=True)
        durations = out.durations[0].float().cpu()  # (2, P + 1)
        left = [self._frames_left(seq[c], durations[c]) if use_durations else 0
                for c in range(CHANNELS)]  # frames still to copy of each channel's current run
        prev = seq[:, -1].copy()  # (2,) last frame of each channel
        new = np.zeros((CHANNELS, n_frames), dtype=np.int64)
        for j in range(n_frames):
            logits = out.logits[0, :, -1].float().cpu() + mask  # (2, V)
            frame = prev.copy()
            for c in range(CHANNELS):
                if c == fixed_channel:
                    frame[c] = given[n_prompt + j]
                elif left[c] > 0:  # the current unit lasts on
                    left[c] -= 1
                else:
                    frame[c] = int(sample(logits[c:c + 1], temperature, gen, top_k)[0])
                    if use_durations and not self.config.delayed_duration and frame[c] != prev[c]:
                        left[c] = self._duration(out.durations[0, c, -1]) - 1  # read at the edge
            new[:, j] = frame
            if j == n_frames - 1:
                break
            out = self(torch.as_tensor(frame, device=device).view(1, CHANNELS, 1),
                       cache=out.cache, use_cache=True)
            if use_durations and self.config.delayed_duration:
                for c in free:  # a new run starts here: its length is read at its first frame
                    if frame[c] != prev[c]:
                        left[c] = self._duration(out.durations[0, c, 0]) - 1
            prev = frame
        return new

    def _duration(self, predicted: torch.Tensor) -> int:
        """A predicted duration as frames: rounded, in [1, max_duration]."""
        return int(min(max(round(float(predicted)), 1), self.config.max_duration))

    def _frames_left(self, seq: np.ndarray, durations: torch.Tensor) -> int:
        """Frames the run that ends the prompt ``seq`` (BOS first) has still to last, from the
        duration predicted where it started (0 when the prompt is only BOS)."""
        if len(seq) < 2:
            return 0
        changes = np.flatnonzero(seq[1:] != seq[:-1]) + 1  # run starts after BOS
        start = int(changes[-1])
        read = start if self.config.delayed_duration else start - 1
        return max(self._duration(durations[read]) - (len(seq) - start), 0)


def duration_loss(predicted: torch.Tensor, target: torch.Tensor,
                  log: bool = False) -> torch.Tensor:
    """L1 where ``target > 0`` (in frames, or between logarithms with ``log``: ``predicted`` is
    then the log length), pooled over both channels (0 when there is none)."""
    keep = target > 0  # (B, 2, L)
    goal = target.float().clamp(min=1).log() if log else target.float()
    per = (predicted.float() - goal).abs()
    return (per * keep).sum() / keep.sum().clamp(min=1)


AutoConfig.register(MODEL_TYPE, DialogueLMConfig, exist_ok=True)
AutoModel.register(DialogueLMConfig, DialogueLM, exist_ok=True)
