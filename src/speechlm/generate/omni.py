"""LLaMA-Omni's answer: greedy text with a KV cache, and its units streamed as they are made.

After every ``chunk`` new text tokens, the hidden states the LM computed for them go through the
unit decoder (its own KV cache, so each position is decoded once); being causal, its labels for
those positions are final, and greedy CTC (:func:`~speechlm.models.modeling_omni.ctc_collapse`,
carrying the previous label across chunks) turns them into new units, handed to ``on_units`` so
a caller can vocode chunks while the text is still being written. The hidden state of a token is
the one computed when the LM reads it, EOS included, as in training.

The written-question path (``question=...``) puts the question's text ids in the speech slot,
for the written-vs-spoken agreement check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from speechlm.models.modeling_omni import OmniSpeechLM, ctc_collapse, prompt_ids, stacked_length
from speechlm.sequences.vocab import SpeechVocab


@dataclass
class UnitStream:
    """What the unit decoder carries between chunks: its KV cache, the last label (repeats across
    a chunk boundary collapse), the units so far and when the first ones came."""

    cache: Any
    blank: int
    prev: int | None = None
    units: list[int] = field(default_factory=list)
    first_at: float | None = None

    def push(self, model: OmniSpeechLM, states: torch.Tensor) -> list[int]:
        """New hidden states (1, n, H) -> the units they add (possibly none)."""
        labels = model.unit_logits(states, cache=self.cache)[0].argmax(-1).tolist()
        new = ctc_collapse(labels, self.blank, self.prev)
        self.prev = labels[-1] if labels else self.prev
        self.units += new
        return new


@torch.inference_mode()
def answer(model: OmniSpeechLM, vocab: SpeechVocab, feats: np.ndarray | None = None,
           question: str | None = None, max_new_tokens: int = 200, chunk: int = 1,
           on_units: Callable[[list[int]], None] | None = None) -> dict[str, Any]:
    """Answer a spoken question (``feats`` (T, D), the model's feature extractor's frames) or a
    written one (``question``): ``{"text", "units", "time_to_first_units_s", "seconds",
    "ids"}`` (``ids``: the text ids written, EOS included if it came).

    ``on_units(units)`` receives each non-empty batch of new units, every ``chunk`` text tokens
    and at the end; ``time_to_first_units_s`` is when the first came (None if none did).
    """
    from transformers import DynamicCache

    start = time.perf_counter()
    dev = model.device
    ids, speech = _prompt(model, vocab, feats, question)
    emb = model.embed(torch.tensor([ids], device=dev), speech)
    lm_cache = DynamicCache(config=model.config.backbone)
    stream = UnitStream(DynamicCache(config=model.config.unit_decoder), model.config.blank_id)
    out = model.text_step(emb, cache=lm_cache, use_cache=True)

    def emit(states: list[torch.Tensor]) -> None:
        new = stream.push(model, torch.cat(states, 1))
        if new:
            if stream.first_at is None:
                stream.first_at = time.perf_counter() - start
            if on_units is not None:
                on_units(new)

    written: list[int] = []  # EOS included, if it came
    pending: list[torch.Tensor] = []  # hidden states (1, 1, H) not yet through the decoder
    for _ in range(max_new_tokens):
        tok = int(out.logits[0, -1].argmax())
        emb = model.get_input_embeddings()(torch.tensor([[tok]], device=dev))
        out = model.text_step(emb, cache=lm_cache, use_cache=True)  # reads tok: its state
        pending.append(out.hidden)
        written.append(tok)
        if tok == vocab.eos_id:
            break
        if len(pending) >= chunk:
            emit(pending)
            pending = []
    if pending:
        emit(pending)
    return {"text": vocab.tokenizer.decode(written, skip_special_tokens=True),
            "units": stream.units, "time_to_first_units_s": stream.first_at,
            "seconds": time.perf_counter() - start, "ids": written}


def _prompt(model: OmniSpeechLM, vocab: SpeechVocab, feats: np.ndarray | None,
            question: str | None) -> tuple[list[int], torch.Tensor | None]:
    """The template's ids and the speech frames (1, T, D) (None for a written question)."""
    if (feats is None) == (question is None):
        raise ValueError("give the spoken question (feats) or the written one (question)")
    if feats is None:
        return prompt_ids(vocab, question_ids=vocab.text_to_ids(question)), None
    x = torch.as_tensor(np.asarray(feats, dtype=np.float32))[None].to(model.device)
    return prompt_ids(vocab, stacked_length(x.shape[1], model.config.stack)), x


@torch.inference_mode()
def answer_units(model: OmniSpeechLM, vocab: SpeechVocab, answer_ids: list[int],
                 feats: np.ndarray | None = None, question: str | None = None) -> list[int]:
    """The units of a known answer (``answer_ids``, EOS included if it ends so), decoded once
    from a single teacher-forced pass: what :func:`answer` streams, without streaming."""
    ids, speech = _prompt(model, vocab, feats, question)
    out = model.text_step(model.embed(torch.tensor([ids + list(answer_ids)],
                                                   device=model.device), speech))
    labels = model.unit_logits(out.hidden[:, len(ids):])[0].argmax(-1).tolist()
    return ctc_collapse(labels, model.config.blank_id)
