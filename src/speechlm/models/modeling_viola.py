"""VioLA's one codec LM for ASR, speech and text translation, and TTS, as a HF class.

Wang et al. 2023. The examples are :mod:`speechlm.sequences.viola`'s: ``codes`` (K, L) and
``kinds`` (L,). :class:`Viola` is a stock causal decoder (``AutoModel`` of ``backbone``, Llama
by default) that reads, at each position, row 0's embedding (tokens, and the codebook-0 codes it
writes for TTS) or, at input speech frames, the sum of the K codebooks' embeddings (VioLA's
pre-net for speech input), and predicts the next row-0 id with one head over the whole
vocabulary. :meth:`Viola.continue_task` decodes one task's output with the ids the task may write
(characters or codebook-0 codes, and EOS), greedily or by sampling; TTS fills the other
codebooks with VALL-E's NAR (``speechlm.generate.viola``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from speechlm.errors import ConfigError
from speechlm.models.modeling_valle import (
    CodecLMBase,
    CodecLMConfig,
    CodecLMOutput,
    _backbone,
    _mean_ce,
    draw,
)
from speechlm.sequences.example import IGNORE
from speechlm.sequences.valle import PAD, PROMPT, TARGET, TOKEN
from speechlm.sequences.viola import ViolaLayout, source_ids

VIOLA_TYPE = "speechlm_viola"


class ViolaConfig(CodecLMConfig):
    """A stock backbone config plus the ids (``layout``: :meth:`ViolaLayout.to_dict`)."""

    model_type = VIOLA_TYPE

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.layout is not None and self.viola_layout.max_id >= self.backbone.vocab_size:
            raise ConfigError(f"backbone.vocab_size: {self.backbone.vocab_size} ids, but the "
                              f"layout uses id {self.viola_layout.max_id}")

    @property
    def viola_layout(self) -> ViolaLayout:
        if self.layout is None:
            raise ConfigError("layout: required (ViolaLayout.from_vocab(vocab).to_dict())")
        return ViolaLayout.from_dict(self.layout)


class Viola(CodecLMBase):
    """Causal decoder over VioLA's task sequences; one head over the vocabulary."""

    config_class = ViolaConfig

    def __init__(self, config: ViolaConfig) -> None:
        super().__init__(config)
        self.viola = config.viola_layout
        self.head = nn.Linear(config.backbone.hidden_size, config.backbone.vocab_size,
                              bias=False)
        self.post_init()

    def forward(self, codes: torch.Tensor, kinds: torch.Tensor,
                loss_mask: torch.Tensor | None = None, cache: Any = None,
                use_cache: bool = False) -> CodecLMOutput:
        """``codes`` (B, K, L), ``kinds`` (B, L); logits (B, L, V); the loss is next-token
        cross-entropy on row 0 where ``loss_mask`` (B, K, L) row 0 is True (step t predicts
        t + 1). Stepping with a cache is for a batch of one."""
        row = torch.arange(self.layout.n_codebooks, device=codes.device)[None, :, None]
        kind = kinds[:, None]  # (B, 1, L)
        use = (kind == PROMPT) | (((kind == TOKEN) | (kind == TARGET)) & (row == 0))
        mask = (kinds != PAD).long() if cache is None else None
        out = self.backbone(inputs_embeds=self.embed_rows(codes, use), attention_mask=mask,
                            cache=cache, use_cache=use_cache)
        logits = self.head(out.last_hidden_state)
        loss = None
        if loss_mask is not None:
            target = torch.where(loss_mask[:, 0, 1:], codes[:, 0, 1:], IGNORE)
            loss = _mean_ce(logits[:, :-1], target)
        return CodecLMOutput(loss=loss, logits=logits, cache=out.cache if use_cache else None)

    @torch.inference_mode()
    def continue_task(self, task: str, source: str, target: str, text=(), frames=None,
                      prefix=(), max_new: int = 200, min_new: int = 0, temperature: float = 0.0,
                      top_k: int = 0, generator: torch.Generator | None = None) -> list[int]:
        """The task's output after its prompt (:func:`~speechlm.sequences.viola.source_ids`):
        character indices (asr, st, mt) or codebook-0 codes (tts), without EOS. ``prefix``:
        output values forced first (a TTS prompt's codebook 0, not returned). Temperature 0 is
        greedy; EOS is masked before ``min_new`` and implied at ``max_new``."""
        lay = self.viola
        codes, kinds = source_ids(task, lay, source, target, text, frames)
        k = codes.shape[0]
        allowed = torch.as_tensor(lay.output_ids(task))
        offset = lay.base.books.offsets[0] if task == "tts" else lay.char_offset
        new_kind = TARGET if task == "tts" else TOKEN
        codes_t = torch.from_numpy(codes)[None].to(self.device)
        kinds_t = torch.from_numpy(kinds)[None].to(self.device)
        forced = [int(v) + offset for v in prefix]
        if forced:
            tail = torch.full((1, k, len(forced)), lay.base.pad_id, dtype=torch.long)
            tail[0, 0] = torch.tensor(forced)
            codes_t = torch.cat([codes_t, tail.to(self.device)], 2)
            kinds_t = torch.cat([kinds_t, torch.full((1, len(forced)), new_kind,
                                                     device=self.device)], 1)
        out = self(codes_t, kinds_t, use_cache=True)
        values: list[int] = []
        for n in range(max_new + 1):
            logits = out.logits[0, -1].float()[allowed.to(self.device)].clone()
            if n < min_new:
                logits[-1] = float("-inf")  # EOS is the last allowed id
            j = len(allowed) - 1 if n == max_new else draw(logits, temperature, top_k,
                                                             generator)
            if j == len(allowed) - 1:
                break
            values.append(int(allowed[j]) - offset)
            step = torch.full((1, k, 1), lay.base.pad_id, dtype=torch.long, device=self.device)
            step[0, 0, 0] = int(allowed[j])
            out = self(step, torch.tensor([[new_kind]], device=self.device), cache=out.cache,
                       use_cache=True)
        return values


def build_viola(backbone: Mapping[str, Any], layout: ViolaLayout, vocab_size: int,
                seed: int = 0) -> Viola:
    """A randomly initialised :class:`Viola` over a vocabulary of ``vocab_size`` ids."""
    torch.manual_seed(seed)
    return Viola(ViolaConfig(backbone=_backbone(backbone, layout.base, vocab_size),
                             layout=layout.to_dict()))


AutoConfig.register(VIOLA_TYPE, ViolaConfig, exist_ok=True)
AutoModel.register(ViolaConfig, Viola, exist_ok=True)
