"""The ``expressive`` architecture: a causal LM over SpiRit-LM Expressive's merged sequence.

The model is any ``AutoModelForCausalLM`` (a plain HF checkpoint, as ``causal_lm``: built, warm
started and loaded the same way); it reads the ``expressive`` format, units with pitch and style
tokens merged by time (``speechlm.sequences.expressive``). What differs from ``causal_lm``:

- prompts are built at the streams' own rates (units' ``frame_rate``, ``pitch_rate``,
  ``style_rate``);
- ``score`` counts only the positions whose target is a unit. The zero-shot benchmarks compare
  utterances by their spoken content; how many pitch and style tokens an utterance has depends on
  its prosody (a lively reading has more), so counting them would rank a flat reading above a
  lively one with the same words, and would make scores incomparable with units-only models.
  Pitch and style tokens still condition every unit;
- ``generate`` samples units, pitch, style and EOS. ``max_new`` and ``min_new`` count units: a
  row stops at its ``max_new``-th unit (:class:`UnitBudget`) and cannot end before ``min_new``
  units (:class:`EosAfterUnits`). The continuation comes back with its units (de-duplicated,
  durations left to the vocoder) and its pitch and style streams re-expanded to their fixed
  rates (:func:`~speechlm.sequences.expressive.split_expressive`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from transformers import StoppingCriteria

from speechlm.errors import ConfigError
from speechlm.models.architecture import ARCHITECTURES
from speechlm.models.causal_lm import (
    AllowOnly,
    CausalLM,
    context_length,
    fit_context,
    left_padded,
    score_sequences,
)
from speechlm.sequences.example import TOKENS
from speechlm.sequences.expressive import (
    PITCH,
    PITCH_RATE,
    STYLE,
    STYLE_RATE,
    UNITS,
    expressive,
    split_expressive,
)

DEFAULT_RATES = {PITCH: PITCH_RATE, STYLE: STYLE_RATE}
SLACK = 1.5  # room for more pitch / style tokens per unit than the prompt's rates suggest


def _count_units(input_ids, start: int, units: tuple[int, int]):
    """(B,) unit tokens in each row of ``input_ids[:, start:]`` (what was generated)."""
    new = input_ids[:, start:]
    return ((new >= units[0]) & (new < units[0] + units[1])).sum(1)


class UnitBudget(StoppingCriteria):
    """Stops each row once it has generated its own budget of unit tokens."""

    def __init__(self, start: int, units: tuple[int, int], budget: list[int]) -> None:
        self.start, self.units, self.budget = start, units, budget

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        budget = torch.as_tensor(self.budget, device=input_ids.device)
        return _count_units(input_ids, self.start, self.units) >= budget  # (B,) done


class EosAfterUnits:
    """Logits processor: EOS gets -inf in a row that has generated fewer units than its floor."""

    def __init__(self, start: int, units: tuple[int, int], floor: list[int], eos_id: int) -> None:
        self.start, self.units, self.floor, self.eos_id = start, units, floor, eos_id

    def __call__(self, input_ids, scores):
        import torch

        floor = torch.as_tensor(self.floor, device=input_ids.device)
        early = _count_units(input_ids, self.start, self.units) < floor  # (B,)
        scores[early, self.eos_id] = float("-inf")
        return scores


def _frames_per_unit(streams: Any) -> float:
    """A prompt's mean unit duration in frames (1 without units)."""
    d = streams.durations
    return float(np.mean(d)) if d is not None and len(d) else 1.0


class Expressive(CausalLM):
    """A causal LM over merged unit, pitch and style tokens (SpiRit-LM Expressive)."""

    name = "expressive"
    speech_format = "expressive"

    def prompt(self, lm, streams, eos: bool = False):
        """One utterance's streams as an expressive example at the streams' own rates."""
        rates = {"frame_rate": streams.frame_rate, "pitch_rate": streams.pitch_rate,
                 "style_rate": streams.style_rate}
        row = {name: getattr(streams, name) for name in streams.names()}
        try:
            return expressive(row, lm.vocab, None, eos=eos,
                              **{k: float(v) for k, v in rates.items() if v is not None})
        except ValueError as e:  # e.g. a speech tokenizer that makes no prosody
            raise ConfigError(f"{lm.dir}: an expressive model reads units with durations, "
                              f"pitch and style; {e}") from None

    def score(self, lm, examples, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Summed and mean log-probability of the unit tokens after the first step: (N, 2)."""
        return score_sequences(lm.model, [e.streams[TOKENS] for e in examples],
                               batch_size=batch_size, progress=progress,
                               targets=lm.vocab.range(UNITS))

    def generate(self, lm, prompts, sampling, max_new, min_new=None) -> list[tuple[Any, bool]]:
        """Left-padded batched sampling of unit, pitch and style tokens (and EOS); see module doc.

        A row's token budget is its unit budget times the tokens per unit its prompt's rates
        allow (every pitch and style step a new token), with :data:`SLACK`; a row that spends it
        on pitch and style ends with fewer units than asked.
        """
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from speechlm.tokenizers.streams import Streams

        vocab, model = lm.vocab, lm.model
        exs = [self.prompt(lm, p) for p in prompts]
        room = max(math.ceil(n * SLACK * (1 + (_rate(p, PITCH) + _rate(p, STYLE))
                                          * _frames_per_unit(p) / p.frame_rate))
                   for p, n in zip(prompts, max_new, strict=True))
        context = context_length(model.config)
        ids = [fit_context(e.input_ids, context, room, i) for i, e in enumerate(exs)]
        input_ids, mask = left_padded(ids, vocab.pad_id)
        width = input_ids.shape[1]
        units = vocab.range(UNITS)
        allowed = [i for name in (UNITS, PITCH, STYLE)
                   for i in range(vocab.range(name)[0], sum(vocab.range(name)))]
        floors = list(min_new) if min_new else [0] * len(prompts)
        device = next(model.parameters()).device
        torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), do_sample=True,
                temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                max_new_tokens=room, use_cache=True,
                repetition_penalty=float(sampling.repetition_penalty),
                eos_token_id=vocab.eos_id, pad_token_id=vocab.pad_id,
                logits_processor=LogitsProcessorList([
                    AllowOnly([*allowed, vocab.eos_id]),
                    EosAfterUnits(width, units, floors, vocab.eos_id)]),
                stopping_criteria=StoppingCriteriaList([UnitBudget(width, units,
                                                                   list(max_new))]),
            )
        results = []
        for row, budget, prompt in zip(out[:, width:].cpu().numpy(), max_new, prompts,
                                       strict=True):
            is_unit = (row >= units[0]) & (row < units[0] + units[1])
            reached = np.flatnonzero(np.cumsum(is_unit) >= budget)
            row = row[: reached[0] + 1] if len(reached) else row  # through the budget's unit
            ends = np.flatnonzero(row == vocab.eos_id)
            row = row[: ends[0]] if len(ends) else row
            start = {name: int(getattr(prompt, name)[-1]) for name in (PITCH, STYLE)
                     if len(getattr(prompt, name))}  # in effect where the continuation starts
            values = split_expressive(row, vocab, _frames_per_unit(prompt), prompt.frame_rate,
                                      _rate(prompt, PITCH), _rate(prompt, STYLE), start)
            results.append((Streams(float(prompt.frame_rate), **values,
                                    pitch_rate=_rate(prompt, PITCH),
                                    style_rate=_rate(prompt, STYLE)), bool(len(ends))))
        return results


def _rate(streams: Any, name: str) -> float:
    """The prompt's pitch or style rate (the tokenizer's when the streams lack it)."""
    rate = getattr(streams, f"{name}_rate")
    return float(rate if rate is not None else DEFAULT_RATES[name])


ARCHITECTURES.add("expressive", Expressive())
