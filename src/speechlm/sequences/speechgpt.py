"""SpeechGPT's instruction template (Zhang et al., 2023) as formats for the ``sft`` objective.

Every example is one turn of the template, the loss on the answer only (what follows the
``[SpeechGPT]`` role marker, up to and including ``<eoa>``)::

    [Human] instruction <eoh> [SpeechGPT] answer <eoa>

Speech sits between ``<sosp>`` and ``<eosp>`` as unit tokens; text is the text tokenizer's.
SpeechGPT trains in stages, and the formats follow them:

- stage 1, cross-modal instructions from ASR / TTS pairs (``units`` + ``text`` rows of a
  corpus): ``speechgpt_asr`` (speech in, its transcript out) and ``speechgpt_tts`` (text in,
  its speech out), each behind a short written task instruction;
- stage 2, chain-of-modality (``prompt_units``, ``prompt_text``, ``response_text``,
  ``response_units`` rows of :mod:`speechlm.corpus.instructions`): ``speechgpt_chain`` answers
  a spoken question by writing its transcript (``[tq]``), the text answer (``[ta]``) and then
  speaking it (``[ua]``); ``speechgpt_text_qa`` is the same turn for the written question
  (from ``[ta]`` on), which ties the spoken and the written question to one answer
  (AudioChatLLaMA's modality consistency, as data); ``speechgpt_direct`` is the baseline that
  answers speech with speech and writes nothing.

:func:`parse_answer` splits a generated answer back into its parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from speechlm.sequences.example import Example
from speechlm.sequences.formats import TEXT, register_format
from speechlm.sequences.instruction import HUMAN
from speechlm.sequences.vocab import SpeechVocab

ASSISTANT = "[SpeechGPT]"
EOH, EOA = "<eoh>", "<eoa>"
SOSP, EOSP = "<sosp>", "<eosp>"
TQ, TA, UA = "[tq]", "[ta]", "[ua]"
MARKERS = (HUMAN, ASSISTANT, EOH, EOA, SOSP, EOSP, TQ, TA, UA)
# the written task instructions of stage 1 (SpeechGPT draws them from a pool of paraphrases;
# one each keeps the tiny scale's text short)
ASR_INSTRUCTION = "write down what you hear"
TTS_INSTRUCTION = "say this sentence"


def _speech(vocab: SpeechVocab, units) -> list[int]:
    return [vocab.marker(SOSP), *vocab.units_to_ids(units).tolist(), vocab.marker(EOSP)]


def _turn(vocab: SpeechVocab, human: list[int], answer: list[int]) -> Example:
    """``BOS [Human] human <eoh> [SpeechGPT] answer <eoa>``, the loss on ``answer <eoa>``."""
    prompt = [vocab.bos_id, vocab.marker(HUMAN), *human, vocab.marker(EOH),
              vocab.marker(ASSISTANT)]
    reply = [*answer, vocab.marker(EOA)]
    return Example.single(prompt + reply, [False] * len(prompt) + [True] * len(reply))


def human_speech(vocab: SpeechVocab, units, instruction: str = "") -> list[int]:
    """The human turn for a spoken question (or a written instruction and speech)."""
    text = vocab.text_to_ids(instruction) if instruction else []
    return [*text, *_speech(vocab, units)]


def prompt_ids(vocab: SpeechVocab, human: list[int], answer_start: Sequence[int] = ()
               ) -> list[int]:
    """A generation prompt: the turn up to ``[SpeechGPT]``, then ``answer_start``."""
    return [vocab.bos_id, vocab.marker(HUMAN), *human, vocab.marker(EOH),
            vocab.marker(ASSISTANT), *answer_start]


def chain_answer(vocab: SpeechVocab, question_text: str, answer_text: str, answer_units
                 ) -> list[int]:
    """``[tq] question [ta] answer [ua] <sosp> units <eosp>`` (chain of modality)."""
    return [vocab.marker(TQ), *vocab.text_to_ids(question_text), *text_spoken_answer(
        vocab, answer_text, answer_units)]


def text_spoken_answer(vocab: SpeechVocab, answer_text: str, answer_units) -> list[int]:
    """``[ta] answer [ua] <sosp> units <eosp>``: the answer written, then spoken."""
    return [vocab.marker(TA), *vocab.text_to_ids(answer_text), vocab.marker(UA),
            *_speech(vocab, answer_units)]


@register_format("speechgpt_asr", columns=("units", "text"), ranges=("units", TEXT),
                 markers=MARKERS, summary="[Human] instruction <sosp> units <eosp> <eoh> "
                                          "[SpeechGPT] text <eoa>; loss on the answer",
                 needs={"text": None})
def speechgpt_asr(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None
                  ) -> Example:
    """Stage 1: speech in, its transcript out."""
    return _turn(vocab, human_speech(vocab, row["units"], ASR_INSTRUCTION),
                 vocab.text_to_ids(row["text"]))


@register_format("speechgpt_tts", columns=("units", "text"), ranges=("units", TEXT),
                 markers=MARKERS, summary="[Human] instruction text <eoh> [SpeechGPT] <sosp> "
                                          "units <eosp> <eoa>; loss on the answer",
                 needs={"text": None})
def speechgpt_tts(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None
                  ) -> Example:
    """Stage 1: text in, its speech out."""
    return _turn(vocab, vocab.text_to_ids(f"{TTS_INSTRUCTION} {row['text']}"),
                 _speech(vocab, row["units"]))


@register_format("speechgpt_chain",
                 columns=("prompt_units", "prompt_text", "response_text", "response_units"),
                 ranges=("units", TEXT), markers=MARKERS,
                 summary="[Human] <sosp> question <eosp> <eoh> [SpeechGPT] [tq] question [ta] "
                         "answer [ua] <sosp> answer units <eosp> <eoa>; loss on the answer")
def speechgpt_chain(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None
                    ) -> Example:
    """Stage 2: a spoken question answered through text (chain of modality)."""
    return _turn(vocab, human_speech(vocab, row["prompt_units"]),
                 chain_answer(vocab, row["prompt_text"], row["response_text"],
                              row["response_units"]))


@register_format("speechgpt_text_qa", columns=("prompt_text", "response_text", "response_units"),
                 ranges=("units", TEXT), markers=MARKERS,
                 summary="[Human] question <eoh> [SpeechGPT] [ta] answer [ua] <sosp> answer "
                         "units <eosp> <eoa>; loss on the answer")
def speechgpt_text_qa(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None
                      ) -> Example:
    """Stage 2: the written question, answered as the spoken one is."""
    return _turn(vocab, vocab.text_to_ids(row["prompt_text"]),
                 text_spoken_answer(vocab, row["response_text"], row["response_units"]))


@register_format("speechgpt_direct", columns=("prompt_units", "response_units"),
                 ranges=("units",), markers=MARKERS,
                 summary="[Human] <sosp> question <eosp> <eoh> [SpeechGPT] <sosp> answer units "
                         "<eosp> <eoa>; loss on the answer")
def speechgpt_direct(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None
                     ) -> Example:
    """The baseline: a spoken question answered in speech, with no text in between."""
    return _turn(vocab, human_speech(vocab, row["prompt_units"]),
                 _speech(vocab, row["response_units"]))


@dataclass
class Answer:
    """A generated answer split into its parts (empty where the model wrote none)."""

    question_text: str = ""
    text: str = ""
    units: list[int] | None = None


def parse_answer(vocab: SpeechVocab, ids: Sequence[int]) -> Answer:
    """The parts of an answer's ids (what follows ``[SpeechGPT]``): text after ``[tq]`` and
    ``[ta]``, units between ``<sosp>`` and ``<eosp>`` (or the end); ``<eoa>`` ends it."""
    marks = {vocab.marker(m): m for m in MARKERS}
    parts: dict[str, list[int]] = {TQ: [], TA: [], SOSP: []}
    where: str | None = TA  # text before any marker is the answer (a written answer)
    for i in map(int, ids):
        m = marks.get(i)
        if m == EOA or i == vocab.eos_id:
            break
        if m in parts:
            where = m
        elif m is not None:  # <eosp>, [ua], a role marker: what follows is none of the parts
            where = None
        elif where is not None:
            parts[where].append(i)
    n_text = vocab.layout.n_text

    def text(part: list[int]) -> str:
        return vocab.tokenizer.decode([i for i in part if i < n_text],
                                      skip_special_tokens=True).strip()

    return Answer(question_text=text(parts[TQ]), text=text(parts[TA]),
                  units=vocab.ids_to_units(parts[SOSP]).tolist())
