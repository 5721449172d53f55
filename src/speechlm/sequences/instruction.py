"""Formats for fine-tuning a speech LM: instructions with a masked prompt, preference pairs.

``speech_instruction`` (supervised fine-tuning): a spoken prompt and a spoken response in a
role template; the loss is taken on the response only, so the model learns to answer, not to
ask::

    BOS [Human] [SPEECH] prompt-units [Assistant] [SPEECH] response-units EOS
    mask: 0     0       0        0...           0           0        1...     1

``speech_preference`` (DPO): the prompt ``BOS [SPEECH] prompt-units`` and two continuations, the
chosen and the rejected one, each ending in EOS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from speechlm.sequences.example import Example
from speechlm.sequences.formats import register_format
from speechlm.sequences.vocab import SPEECH_MARKER, SpeechVocab

HUMAN = "[Human]"
ASSISTANT = "[Assistant]"


@dataclass
class PreferencePair:
    """A prompt and two continuations of it: the preferred one and the other."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


@register_format("speech_instruction", columns=("prompt_units", "units"),
                 markers=(HUMAN, ASSISTANT, SPEECH_MARKER), params={"eos": True},
                 summary="BOS [Human] [SPEECH] prompt [Assistant] [SPEECH] response EOS; "
                         "loss on the response")
def speech_instruction(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None,
                       eos: bool = True) -> Example:
    """A spoken instruction and its spoken answer; the loss mask covers the answer only."""
    speech = vocab.speech_id
    prompt = [vocab.bos_id, vocab.marker(HUMAN), speech,
              *vocab.units_to_ids(row["prompt_units"]).tolist(), vocab.marker(ASSISTANT), speech]
    answer = [*vocab.units_to_ids(row["units"]).tolist(), *([vocab.eos_id] if eos else [])]
    return Example.single(prompt + answer, [False] * len(prompt) + [True] * len(answer))


@register_format("speech_preference", columns=("prompt_units", "chosen_units", "rejected_units"),
                 markers=(SPEECH_MARKER,), output="pair",
                 summary="prompt BOS [SPEECH] units; chosen / rejected units + EOS")
def speech_preference(row: Mapping, vocab: SpeechVocab,
                      rng: np.random.Generator | None = None) -> PreferencePair:
    """A spoken prompt with a preferred and a dispreferred spoken continuation."""
    def cont(col: str) -> list[int]:
        return [*vocab.units_to_ids(row[col]).tolist(), vocab.eos_id]

    return PreferencePair(
        prompt=[vocab.bos_id, vocab.speech_id, *vocab.units_to_ids(row["prompt_units"]).tolist()],
        chosen=cont("chosen_units"), rejected=cont("rejected_units"))
