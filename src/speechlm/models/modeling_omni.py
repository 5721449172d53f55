"""LLaMA-Omni's speech-in, text-and-units-out model as one HF class on a stock causal LM.

Fang et al. 2024, "LLaMA-Omni: Seamless Speech Interaction with Large Language Models".

- **Speech adapter.** A speech encoder's continuous frames (``speech_feats`` (B, T, D), as
  :class:`~speechlm.tokenizers.continuous.ContinuousTokenizer` makes them) are grouped by
  ``stack`` = k consecutive frames (T padded with zero frames up to a multiple of k, so
  ``ceil(T / k)`` frames come out) and projected by Linear -> ReLU -> Linear into the LM's input
  embedding space.
- **LM.** Any ``AutoModelForCausalLM`` (``backbone`` config) reads ``BOS [Human] <speech>
  [Assistant] answer EOS`` (:func:`prompt_ids`). The speech slot is ``ceil(T / k)`` copies of
  ``speech_token_id``; their embeddings are replaced by the projected frames (LLaVA-style), so a
  batch needs no per-row splicing and generation is a plain KV-cache loop. The text loss is the
  HF ``labels`` convention (``IGNORE`` except on the answer and EOS).
- **CTC unit decoder.** The LM's last hidden states at the answer positions (those labelled:
  the answer tokens and EOS, as the LM reads them) are each repeated ``upsample`` = r times and
  read by a small *causal* stock decoder (``unit_layers`` layers of the backbone's type), whose
  head emits ``n_units`` units plus blank (id ``n_units``); the loss is CTC against the
  de-duplicated units of the spoken answer. Being causal, the decoder's output for a position
  never changes as later text arrives, which is what lets ``speechlm.generate.omni`` stream
  units while the text is still being written.

The total loss is ``text + unit_loss_weight * unit``. :meth:`OmniSpeechLM.from_backbone` starts
from a trained causal LM (e.g. ``load_speech_lm(dir).model``), whose weights it copies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
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
from speechlm.sequences.instruction import ASSISTANT, HUMAN
from speechlm.sequences.vocab import SPEECH_MARKER, SpeechVocab

OMNI_TYPE = "speechlm_omni"
MARKERS = (HUMAN, ASSISTANT, SPEECH_MARKER)  # what the template needs in the vocabulary


# ---- config -------------------------------------------------------------------------------------
class OmniConfig(PretrainedConfig):
    """The backbone LM's config, the adapter's and the unit decoder's sizes.

    ``unit_decoder`` (a stock config of the backbone's type) is derived from ``backbone`` and
    ``unit_layers`` when not given; its token embedding is never read (1 row).
    """

    model_type = OMNI_TYPE
    sub_configs_defaults = {
        "backbone": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
        "unit_decoder": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    backbone: dict | PretrainedConfig | None = None
    unit_decoder: dict | PretrainedConfig | None = None
    feat_dim: int = 80  # D of the speech frames
    stack: int = 5  # k frames concatenated into one LM input
    projector_dim: int = 2048  # hidden size of the two-layer projector
    speech_token_id: int | None = None  # the placeholder id of the speech slot
    n_units: int = 1000  # unit inventory of the spoken answer (blank is n_units)
    unit_layers: int = 2
    upsample: int = 25  # r decoder positions per answer position
    unit_loss_weight: float = 1.0

    def __post_init__(self, **kwargs) -> None:
        if self.unit_decoder is None and self.backbone is not None:
            b = self.backbone if isinstance(self.backbone, dict) else self.backbone.to_dict()
            # the decoder reads hidden states, so it only needs the backbone's layer shapes
            self.unit_decoder = {**b, "num_hidden_layers": self.unit_layers, "vocab_size": 1,
                                 "pad_token_id": None, "bos_token_id": None,
                                 "eos_token_id": None, "tie_word_embeddings": False}
        super().__post_init__(**kwargs)
        for key in ("feat_dim", "stack", "projector_dim", "n_units", "unit_layers", "upsample"):
            if int(getattr(self, key)) <= 0:
                raise ConfigError(f"{key}: must be positive, got {getattr(self, key)}")
        if self.backbone is not None and self.speech_token_id is not None and not (
                0 <= self.speech_token_id < self.backbone.vocab_size):
            raise ConfigError(f"speech_token_id: {self.speech_token_id} is not an id of the "
                              f"backbone's {self.backbone.vocab_size}")

    @property
    def blank_id(self) -> int:
        """The CTC blank: the unit head's last class."""
        return self.n_units

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        """The backbone's config (what caches and initialisers look up)."""
        return self.backbone


@dataclass
class OmniOutput(ModelOutput):
    """Total, text and unit losses; text logits (B, L, V); KV cache and last hidden states."""

    loss: torch.Tensor | None = None
    text_loss: torch.Tensor | None = None
    unit_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: Any = None
    hidden: torch.Tensor | None = None


# ---- adapter ------------------------------------------------------------------------------------
def stacked_length(n_frames: int, stack: int) -> int:
    """LM positions of ``n_frames`` speech frames grouped by ``stack``."""
    return math.ceil(n_frames / stack)


class SpeechAdapter(nn.Module):
    """k consecutive frames concatenated, then Linear -> ReLU -> Linear to the LM's width."""

    def __init__(self, feat_dim: int, stack: int, projector_dim: int, hidden: int) -> None:
        super().__init__()
        self.stack = stack
        self.proj = nn.Sequential(nn.Linear(feat_dim * stack, projector_dim), nn.ReLU(),
                                  nn.Linear(projector_dim, hidden))

    def forward(self, feats: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``feats`` (B, T, D), ``mask`` (B, T) -> (B, ceil(T/k), H) and its mask; padded frames
        are zeroed first, so a row's output does not depend on the batch it is in."""
        b, t, d = feats.shape
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=feats.device)
        feats = torch.where(mask[..., None].bool(), feats, 0.0)
        pad = stacked_length(t, self.stack) * self.stack - t
        feats = F.pad(feats, (0, 0, 0, pad))  # (B, T', D), T' a multiple of k
        mask = F.pad(mask.bool(), (0, pad))
        x = feats.reshape(b, -1, self.stack * d)  # (B, T'/k, k*D)
        return self.proj(x), mask.reshape(b, -1, self.stack).any(-1)


# ---- model --------------------------------------------------------------------------------------
class OmniSpeechLM(AroundLM, PreTrainedModel):
    """Speech adapter + causal LM + streaming CTC unit decoder (see the module docstring)."""

    config_class = OmniConfig
    base_model_prefix = "omni"
    _supports_sdpa = True

    def __init__(self, config: OmniConfig) -> None:
        super().__init__(config)
        hidden = config.backbone.hidden_size
        self.lm = AutoModelForCausalLM.from_config(config.backbone)
        self.adapter = SpeechAdapter(config.feat_dim, config.stack, config.projector_dim, hidden)
        self.unit_decoder = AutoModel.from_config(config.unit_decoder)
        if config.unit_decoder.hidden_size != hidden:
            raise ConfigError(f"unit_decoder.hidden_size: {config.unit_decoder.hidden_size}, "
                              f"but the backbone's hidden states have {hidden}")
        # never read (the decoder gets hidden states): dropped, so DDP waits for no gradient
        self.unit_decoder.set_input_embeddings(None)
        self.unit_head = nn.Linear(hidden, config.n_units + 1)
        self._no_split_modules = self.lm._no_split_modules  # FSDP wraps backbone layers
        self.post_init()

    @classmethod
    def from_backbone(cls, backbone: PreTrainedModel, feat_dim: int, n_units: int,
                      speech_token_id: int, seed: int = 0, **adapter_kwargs: Any
                      ) -> OmniSpeechLM:
        """A new adapter and unit decoder on a trained causal LM, whose weights are copied.

        ``adapter_kwargs``: further :class:`OmniConfig` keys (``stack``, ``projector_dim``,
        ``unit_layers``, ``upsample``, ``unit_loss_weight``, ``unit_decoder``).
        """
        config = OmniConfig(backbone=backbone.config.to_dict(), feat_dim=feat_dim,
                            n_units=n_units, speech_token_id=speech_token_id, **adapter_kwargs)
        return cls.around(backbone, config, seed)

    # ---- pieces the training forward and generation share -----------------------------------
    def embed(self, input_ids: torch.Tensor, speech_feats: torch.Tensor | None = None,
              speech_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings (B, L, H) with the speech slot's placeholders replaced, in order, by
        each row's projected frames (a row must have exactly as many as it has frames)."""
        emb = self.get_input_embeddings()(input_ids)
        if speech_feats is None:
            return emb
        if self.config.speech_token_id is None:
            raise ConfigError("speech_token_id: required to read speech (the slot's id)")
        frames, fmask = self.adapter(speech_feats.to(emb.dtype), speech_mask)
        slots = input_ids == self.config.speech_token_id
        have, want = slots.sum(1), fmask.sum(1)
        if not torch.equal(have, want):
            raise ValueError(f"speech slots per row {have.tolist()} != stacked frames per row "
                             f"{want.tolist()} (a slot is ceil(T / {self.config.stack}) "
                             "placeholders)")
        # row-major order matches: the b-th row's valid frames fill its slots left to right
        # (under autocast the projector computes in bf16 while the embeddings stay fp32)
        return emb.masked_scatter(slots[..., None], frames[fmask].to(emb.dtype))

    def text_step(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                  cache: Any = None, use_cache: bool = False) -> OmniOutput:
        """The LM on embeddings: logits and the last hidden states (after the final norm)."""
        out = self.lm.base_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                 cache=cache, use_cache=use_cache)
        hidden = out.last_hidden_state  # (B, L, H)
        return OmniOutput(logits=self.lm.get_output_embeddings()(hidden), hidden=hidden,
                          cache=out.cache if use_cache else None)

    def unit_logits(self, states: torch.Tensor, mask: torch.Tensor | None = None,
                    cache: Any = None) -> torch.Tensor:
        """Answer hidden states (B, N, H) -> unit logits (B, N*r, n_units + 1); ``mask`` (B, N)
        marks real states; ``cache`` continues a previous call (streaming, batch of one)."""
        r = self.config.upsample
        x = states.repeat_interleave(r, dim=1)  # (B, N*r, H)
        m = None if mask is None else mask.repeat_interleave(r, dim=1).long()
        out = self.unit_decoder(inputs_embeds=x, attention_mask=m, cache=cache,
                                use_cache=cache is not None)
        return self.unit_head(out.last_hidden_state)

    # ---- training forward -------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                speech_feats: torch.Tensor | None = None,
                speech_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                unit_targets: torch.Tensor | None = None,
                unit_lengths: torch.Tensor | None = None) -> OmniOutput:
        """``input_ids`` (B, L) with the speech slots; ``speech_feats`` (B, T, D) and
        ``speech_mask`` (B, T); ``labels`` (B, L) ids or ``IGNORE`` (t predicts t + 1; the
        labelled positions feed the unit decoder); ``unit_targets`` (B, S) units (padding
        anywhere past ``unit_lengths`` (B,)). Losses are computed for what is given."""
        out = self.text_step(self.embed(input_ids, speech_feats, speech_mask), attention_mask)
        text_loss = unit_loss = None
        if labels is not None:
            text_loss = _mean_ce(out.logits[:, :-1], labels[:, 1:])
        if unit_targets is not None:
            if labels is None:
                raise ValueError("unit_targets need labels (they mark the answer positions)")
            unit_loss = self.ctc_loss(out.hidden, labels != IGNORE, unit_targets, unit_lengths)
        parts = [x for x in (text_loss, None if unit_loss is None
                             else self.config.unit_loss_weight * unit_loss) if x is not None]
        return OmniOutput(loss=sum(parts) if parts else None, text_loss=text_loss,
                          unit_loss=unit_loss, logits=out.logits)

    def ctc_loss(self, hidden: torch.Tensor, answer: torch.Tensor, targets: torch.Tensor,
                 lengths: torch.Tensor | None = None) -> torch.Tensor:
        """CTC of the unit decoder over each row's ``answer`` (B, L) hidden states, upsampled,
        against ``targets`` (B, S) (mean over rows of the per-unit loss)."""
        states, mask = gather_rows(hidden, answer)  # (B, N, H), (B, N)
        logp = self.unit_logits(states, mask).float().log_softmax(-1)  # (B, N*r, C)
        if lengths is None:
            lengths = torch.full((targets.shape[0],), targets.shape[1], device=targets.device)
        # zero_infinity: an answer too short for its units (N*r < S) adds nothing, not inf
        return F.ctc_loss(logp.transpose(0, 1), targets, mask.sum(1) * self.config.upsample,
                          lengths, blank=self.config.blank_id, zero_infinity=True)


def gather_rows(x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``keep`` (B, L) positions of ``x`` (B, L, H), left-aligned per row: (B, N, H) and its
    mask (B, N), N the most any row keeps."""
    rows = [x[b, keep[b]] for b in range(x.shape[0])]
    out = pad_sequence(rows, batch_first=True)
    n = keep.sum(1)
    return out, torch.arange(out.shape[1], device=x.device)[None] < n[:, None]


def ctc_collapse(labels: Sequence[int], blank: int, prev: int | None = None) -> list[int]:
    """Greedy CTC decoding: repeats collapsed, blanks dropped; ``prev`` is the label before
    ``labels`` (a stream's previous chunk), so a unit spanning two chunks is emitted once."""
    out = []
    for lab in labels:
        if lab != blank and lab != prev:
            out.append(int(lab))
        prev = lab
    return out


# ---- the template -------------------------------------------------------------------------------
def prompt_ids(vocab: SpeechVocab, n_frames: int | None = None,
               question_ids: Sequence[int] = ()) -> list[int]:
    """``BOS [Human] <slot> [Assistant]``: the slot is ``n_frames`` speech placeholders
    (``[SPEECH]``), or without ``n_frames`` the written question's ids (the text path)."""
    slot = [vocab.speech_id] * n_frames if n_frames is not None else list(question_ids)
    return [vocab.bos_id, vocab.marker(HUMAN), *slot, vocab.marker(ASSISTANT)]


AutoConfig.register(OMNI_TYPE, OmniConfig, exist_ok=True)
AutoModel.register(OmniConfig, OmniSpeechLM, exist_ok=True)
