"""Cross-modal continuation, SpiRit-LM's S->T, T->S and T->T, for models whose vocabulary holds
text (``vocab_mode: extend``, trained with interleaved speech and text).

A prompt is an id prefix: spoken (``speech_prefix``: the model's own speech example, no EOS) or
written (``text_prefix``: ``BOS [TEXT] words``). The continuation switches modality by its
marker, as in interleaved training: ``[TEXT]`` then text tokens (``continue_as_text``), or
``[SPEECH]`` then speech tokens (``continue_as_speech``: units, plus pitch and style tokens when
the vocabulary has them, as the ``expressive`` format writes them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from speechlm.errors import ConfigError
from speechlm.models.causal_lm import sample_ids

SPEECH_RANGES = ("units", "pitch", "style")  # what a speech span may hold
DIRECTIONS = ("S->S", "S->T", "T->S", "T->T")  # prompt modality -> continuation modality


def check_directions(directions: Any) -> list[str]:
    """``directions`` as a list of :data:`DIRECTIONS`; anything else is a ConfigError naming
    the valid ones (the evaluations' arguments and the recipe stages' ``directions`` key)."""
    if (isinstance(directions, str) or not isinstance(directions, Sequence) or not directions
            or not set(directions) <= set(DIRECTIONS)):
        raise ConfigError(f"directions: expected a list of directions, got {directions!r}; "
                          f"valid: {', '.join(DIRECTIONS)}")
    return list(directions)


def check_text_vocab(lm: Any) -> None:
    """Refuse a model without text tokens, naming what would give it some."""
    if not lm.vocab.has_text:
        raise ConfigError(f"{lm.dir}: cross-modal continuation needs a vocabulary with text "
                          "tokens (train with init: warm, vocab_mode: extend and an interleaved "
                          "format)")


def text_token_ids(vocab: Any) -> list[int]:
    """Ids of the text tokenizer's own tokens, its special tokens excepted."""
    special = set(vocab.tokenizer.all_special_ids)
    return [i for i in range(vocab.layout.n_text) if i not in special]


def text_prefix(lm: Any, text: str) -> list[int]:
    """``BOS [TEXT] text``: a written prompt."""
    check_text_vocab(lm)
    return [lm.vocab.bos_id, lm.vocab.text_id, *lm.vocab.text_to_ids(text)]


def speech_prefix(lm: Any, streams: Any) -> list[int]:
    """A spoken prompt: the model's speech example of ``streams`` without EOS."""
    return list(lm.speech_example(streams).input_ids)


def continue_as_text(lm: Any, prefixes: Sequence[Sequence[int]], sampling: Any,
                     max_tokens: int) -> list[str]:
    """``[TEXT]`` and up to ``max_tokens`` sampled text tokens after each prefix, decoded."""
    check_text_vocab(lm)
    vocab = lm.vocab
    rows = sample_ids(lm.model, [[*p, vocab.text_id] for p in prefixes], vocab,
                      text_token_ids(vocab), sampling, max_tokens)
    return [vocab.tokenizer.decode(_until_eos(row, vocab.eos_id), skip_special_tokens=True)
            .strip() for row in rows]


def continue_as_speech(lm: Any, prefixes: Sequence[Sequence[int]], sampling: Any,
                       max_tokens: int, frames_per_unit: float = 2.0,
                       frame_rate: float | None = None,
                       rates: dict[str, float] | None = None) -> list[Any]:
    """``[SPEECH]`` and up to ``max_tokens`` sampled speech tokens after each prefix: Streams.

    Units come back de-duplicated (durations left to the vocoder); with pitch and style tokens
    in the vocabulary, those streams too, laid out at their rates with units of
    ``frames_per_unit`` frames (:func:`~speechlm.sequences.expressive.split_expressive`). The
    frame rate and the pitch / style rates are the speech tokenizer's unless given.
    """
    from speechlm.sequences.expressive import split_expressive
    from speechlm.tokenizers.streams import Streams

    check_text_vocab(lm)
    vocab = lm.vocab
    if frame_rate is None or rates is None:
        tok = lm.speech_tokenizer
        frame_rate = float(tok.frame_rate if frame_rate is None else frame_rate)
        prosody = getattr(tok, "prosody", None)
        rates = rates if rates is not None else {} if prosody is None else {
            k: v for k, v in prosody.to_dict().items() if k in ("pitch_rate", "style_rate")}
    names = [n for n in SPEECH_RANGES if vocab.has_range(n)]
    allowed = [i for n in names for i in range(vocab.range(n)[0], sum(vocab.range(n)))]
    rows = sample_ids(lm.model, [[*p, vocab.speech_id] for p in prefixes], vocab, allowed,
                      sampling, max_tokens)
    out = []
    for row in rows:
        ids = _until_eos(row, vocab.eos_id)
        if "pitch" in names:
            out.append(Streams(frame_rate, **split_expressive(ids, vocab, frames_per_unit,
                                                              frame_rate, **rates), **rates))
        else:
            out.append(Streams(frame_rate, units=vocab.ids_to_units(ids)))
    return out


def _until_eos(row: np.ndarray, eos_id: int) -> np.ndarray:
    ends = np.flatnonzero(row == eos_id)
    return row[: ends[0]] if len(ends) else row
