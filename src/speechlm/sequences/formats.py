"""Sequence formats: pure functions from one token-dataset row to ``input_ids`` + ``labels``.

A row is a mapping with the token-dataset columns (``units``, ``durations``, ``words``, ``text``;
see docs/contracts.md). Every sequence starts with BOS and ends with EOS; each modality span starts
with its marker (``[SPEECH]`` or ``[TEXT]``). Labels equal the inputs: the model is trained on
every token (the causal shift happens inside the HF model).

| name          | layout                                             | used by               |
| ------------- | -------------------------------------------------- | --------------------- |
| speech_only   | BOS [SPEECH] u1..un EOS                            | GSLM, TWIST           |
| text_only     | BOS [TEXT] t1..tm EOS                              | text replay           |
| speech_text   | BOS [SPEECH] u.. [TEXT] t.. EOS                    | SpiRit-LM (ASR-like)  |
| text_speech   | BOS [TEXT] t.. [SPEECH] u.. EOS                    | SpiRit-LM (TTS-like)  |
| interleaved   | BOS [TEXT] w1 w2 [SPEECH] u(w3) u(w4) [TEXT] ... EOS | SUTLM, SpiRit-LM    |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from speechlm.errors import ConfigError
from speechlm.sequences.vocab import SpeechVocab


@dataclass
class Sequence:
    """One training sequence: ``input_ids`` and ``labels`` of equal length (-100 = no loss)."""

    input_ids: list[int]
    labels: list[int]


def _seq(ids: list[int]) -> Sequence:
    return Sequence(input_ids=ids, labels=list(ids))


def _units(row: Mapping, vocab: SpeechVocab) -> list[int]:
    return vocab.units_to_ids(row["units"]).tolist()


def speech_only(row: Mapping, vocab: SpeechVocab) -> Sequence:
    """``BOS [SPEECH] units EOS``."""
    return _seq([vocab.bos_id, vocab.speech_id, *_units(row, vocab), vocab.eos_id])


def text_only(row: Mapping, vocab: SpeechVocab) -> Sequence:
    """``BOS [TEXT] text EOS``."""
    return _seq([vocab.bos_id, vocab.text_id, *vocab.text_to_ids(row["text"]), vocab.eos_id])


def speech_text(row: Mapping, vocab: SpeechVocab) -> Sequence:
    """``BOS [SPEECH] units [TEXT] text EOS``: speech followed by its transcript."""
    return _seq([vocab.bos_id, vocab.speech_id, *_units(row, vocab), vocab.text_id,
                 *vocab.text_to_ids(row["text"]), vocab.eos_id])


def text_speech(row: Mapping, vocab: SpeechVocab) -> Sequence:
    """``BOS [TEXT] text [SPEECH] units EOS``: a transcript followed by its speech."""
    return _seq([vocab.bos_id, vocab.text_id, *vocab.text_to_ids(row["text"]), vocab.speech_id,
                 *_units(row, vocab), vocab.eos_id])


def word_unit_spans(words, durations, frame_rate: float) -> list[tuple[int, int]]:
    """Split the unit sequence at word starts: ``[(first_unit, end_unit)]`` per word.

    Unit ``k`` starts at ``sum(durations[:k]) / frame_rate`` seconds; it belongs to the last word
    that starts at or before that time (units before the first word go to the first word), so
    every span boundary is a word start and spans tile the whole unit sequence.
    """
    starts = np.concatenate([[0], np.cumsum(np.asarray(durations, dtype=np.int64))[:-1]])
    unit_times = starts / float(frame_rate)
    word_starts = np.asarray([w["start"] for w in words], dtype=np.float64)
    # first unit whose start time is >= each word start (word 0 takes everything before it)
    cuts = np.searchsorted(unit_times, word_starts - 1e-9, side="left")
    cuts[0] = 0
    cuts = np.maximum.accumulate(cuts)
    ends = np.append(cuts[1:], len(unit_times))
    return [(int(a), int(b)) for a, b in zip(cuts, ends, strict=True)]


def interleaved(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator, p_switch: float = 0.3,
                frame_rate: float = 50.0) -> Sequence:
    """Word-level interleaving: start in a random modality and switch at word boundaries.

    After each word the modality flips with probability ``p_switch``; a text span is the
    tokenised words joined by spaces, a speech span is the units of those words (see
    :func:`word_unit_spans`); each span starts with its marker. Rows without word alignments
    fall back to :func:`speech_only`.
    """
    words = row.get("words")
    if not words:
        return speech_only(row, vocab)
    spans = word_unit_spans(words, row["durations"], frame_rate)
    units = vocab.units_to_ids(row["units"])
    speech = bool(rng.random() < 0.5)
    flips = rng.random(len(words)) < p_switch
    ids = [vocab.bos_id]
    group: list[int] = []  # word indices of the current span

    def flush() -> None:
        if not group:
            return
        if speech:
            ids.append(vocab.speech_id)
            ids.extend(units[spans[group[0]][0]:spans[group[-1]][1]].tolist())
        else:
            ids.append(vocab.text_id)
            ids.extend(vocab.text_to_ids(" ".join(words[i]["label"] for i in group)))
        group.clear()

    for i in range(len(words)):
        if i > 0 and flips[i]:
            flush()
            speech = not speech
        group.append(i)
    flush()
    ids.append(vocab.eos_id)
    return _seq(ids)


FORMATS: dict[str, Callable[..., Sequence]] = {
    "speech_only": speech_only,
    "text_only": text_only,
    "speech_text": speech_text,
    "text_speech": text_speech,
    "interleaved": interleaved,
}
TEXT_FORMATS = {"text_only", "speech_text", "text_speech", "interleaved"}


def check_formats(formats: Mapping[str, float]) -> None:
    """Raise a ``ConfigError`` naming the key when a format name or ratio is invalid."""
    if not formats:
        raise ConfigError("formats: give at least one format, e.g. {speech_only: 1.0}")
    for name, ratio in formats.items():
        if name not in FORMATS:
            raise ConfigError(f"formats.{name}: unknown format; valid: {', '.join(FORMATS)}")
        if not isinstance(ratio, int | float) or ratio < 0:
            raise ConfigError(f"formats.{name}: ratio must be a non-negative number, got {ratio!r}")
    if sum(formats.values()) <= 0:
        raise ConfigError("formats: ratios sum to zero")


def make_sequence(row: Mapping, vocab: SpeechVocab, formats: Mapping[str, float], seed: int,
                  index: int, frame_rate: float, p_switch: float = 0.3) -> Sequence:
    """Pick a format for row ``index`` by the ratios and apply it.

    The choice and the interleaving draws depend only on ``(seed, index)``, so the same row gets
    the same sequence in every process and after a resume.
    """
    rng = np.random.default_rng([seed, index])
    names = list(formats)
    weights = np.asarray([formats[n] for n in names], dtype=np.float64)
    name = names[0]
    if len(names) > 1:
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    if name == "interleaved":
        return interleaved(row, vocab, rng, p_switch=p_switch, frame_rate=frame_rate)
    return FORMATS[name](row, vocab)
