"""The ``expressive`` format: SpiRit-LM Expressive's one sequence of unit, pitch and style tokens.

Every token gets a time (seconds from the start of the utterance):

- unit ``i`` (de-duplicated by the tokenizer) at ``sum(durations[:i]) / frame_rate``;
- pitch token ``j`` at ``j / pitch_rate`` (12.5 Hz), style token ``k`` at ``k / style_rate``
  (1 Hz); both streams are de-duplicated first: of a run of equal tokens only the first is kept,
  at its own time (a token holds until the next one).

The tokens are merged by time. At equal times style comes first, then pitch, then the unit (the
slower stream sets the context the faster one is read in); within a stream the order is kept::

    BOS [SPEECH] st3 pi12 u5 u9 u2 pi40 u7 ... EOS       (``eos=False``: the prompt form)

``st``/``pi``/``u`` are ids by offset into the vocabulary's ``style``, ``pitch`` and ``units``
ranges. With ``p_switch > 0`` a row with word alignments is interleaved with text at word
boundaries, drawn as in the ``interleaved`` format (same draws, same spans): a speech span holds
the merged tokens whose times fall in its words' time span (a word runs from its start to the
next word's start), a text span the words' text.

``frame_rate``, ``pitch_rate`` and ``style_rate`` are context parameters, filled from the token
dataset like ``interleaved``'s ``frame_rate``; the defaults are the rates
:class:`~speechlm.tokenizers.prosody.Prosody` writes. :func:`split_expressive` turns a generated
id sequence back into units and pitch / style streams at their fixed rates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from speechlm.errors import ConfigError
from speechlm.sequences.example import Example
from speechlm.sequences.formats import register_format, word_token_spans
from speechlm.sequences.vocab import SPEECH_MARKER, TEXT_MARKER, SpeechVocab

UNITS, PITCH, STYLE = "units", "pitch", "style"
TIE_ORDER = (STYLE, PITCH, UNITS)  # order of tokens with equal times
# Prosody's rates: F0_RATE / PITCH_WINDOW and F0_RATE / STYLE_WINDOW (not imported: torch)
PITCH_RATE, STYLE_RATE = 12.5, 1.0
EPS = 1e-9  # seconds: times this close are equal (they come from divisions of integers)


def dedup_times(values: Sequence[int], rate: float) -> tuple[np.ndarray, np.ndarray]:
    """A stream at ``rate`` Hz without consecutive repeats: ``(values, times)``, int64 and float64.

    Each kept token is the first of its run and keeps that position's time ``j / rate``.
    """
    import torch

    from speechlm.tokenizers.dedup import deduplicate

    kept, runs = deduplicate(torch.as_tensor(np.asarray(values, dtype=np.int64)))
    starts = runs.cumsum(0) - runs  # first position of each run
    return kept.numpy(), starts.numpy() / float(rate)


def merged_tokens(row: Mapping, vocab: SpeechVocab, frame_rate: float, pitch_rate: float,
                  style_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The row's unit, pitch and style ids merged by time: ``(ids, times)`` (see module doc)."""
    for name in (PITCH, STYLE):
        if row.get(name) is None:
            raise ValueError(f"the row has no '{name}' column; the expressive format needs pitch "
                             "and style tokens: tokenise with the tokenizer's `prosody` option on")
    if row.get("durations") is None:
        raise ValueError("the row has no 'durations' column; units are placed in time by their "
                         "durations")
    durations = np.asarray(row["durations"], dtype=np.int64)
    units = vocab.units_to_ids(row[UNITS])
    if len(durations) != len(units):
        raise ValueError(f"'durations' has {len(durations)} values for {len(units)} units")
    pitch, pitch_t = dedup_times(row[PITCH], pitch_rate)
    style, style_t = dedup_times(row[STYLE], style_rate)
    ids = np.concatenate([vocab.style_to_ids(style), vocab.pitch_to_ids(pitch), units])
    times = np.concatenate([style_t, pitch_t, (np.cumsum(durations) - durations) / frame_rate])
    rank = np.repeat(np.arange(len(TIE_ORDER)), [len(style), len(pitch), len(units)])
    order = np.lexsort((rank, times))  # by time, then TIE_ORDER; stable within a stream
    return ids[order], times[order]


@register_format("expressive", columns=(UNITS, "durations", PITCH, STYLE, "words"),
                 ranges=(UNITS, PITCH, STYLE), markers=(SPEECH_MARKER, TEXT_MARKER),
                 params={"eos": True, "p_switch": 0.0, "frame_rate": 50.0,
                         "pitch_rate": PITCH_RATE, "style_rate": STYLE_RATE},
                 context=("frame_rate", "pitch_rate", "style_rate"),
                 summary="units, pitch and style tokens merged by time (SpiRit-LM Expressive)",
                 needs={"words": "p_switch"})
def expressive(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None,
               eos: bool = True, p_switch: float = 0.0, frame_rate: float = 50.0,
               pitch_rate: float = PITCH_RATE, style_rate: float = STYLE_RATE) -> Example:
    """``BOS [SPEECH] merged EOS``, or interleaved with text when ``p_switch > 0`` (module doc).

    Rows without word alignments stay speech only. A row without ``pitch`` or ``style`` is a
    ``ValueError`` naming the column.
    """
    ids, times = merged_tokens(row, vocab, frame_rate, pitch_rate, style_rate)
    end = [vocab.eos_id] if eos else []
    words = row.get("words")
    if p_switch <= 0 or not words:
        return Example.single([vocab.bos_id, vocab.speech_id, *ids.tolist(), *end])
    if not vocab.has_text:
        raise ConfigError("formats.expressive.p_switch: interleaving needs text tokens; use "
                          "init=warm with vocab_mode=extend, or p_switch: 0")
    spans = word_token_spans(words, times)
    # the draws of ``interleaved``: a start modality, then a flip before each word but the first
    speech = bool(rng.random() < 0.5)
    flips = rng.random(len(words)) < p_switch
    flips[0] = False
    group = np.cumsum(flips)  # (n_words,) span index of each word
    out = [vocab.bos_id]
    for g in range(int(group[-1]) + 1):
        members = np.flatnonzero(group == g)
        if speech ^ bool(g % 2):  # modalities alternate from the drawn start
            out += [vocab.speech_id, *ids[spans[members[0]][0]:spans[members[-1]][1]].tolist()]
        else:
            out += [vocab.text_id,
                    *vocab.text_to_ids(" ".join(words[i]["label"] for i in members))]
    return Example.single(out + end)


def held(values: np.ndarray, times: np.ndarray, rate: float, seconds: float,
         first: int | None = None) -> np.ndarray:
    """Tokens at sorted ``times`` -> one token per ``1 / rate`` step over ``seconds``.

    Step ``j`` holds the last token at or before ``j / rate``; steps before the first token hold
    ``first`` (the value in effect where the sequence starts), or the first token without one.
    """
    n = max(int(np.ceil(seconds * rate - EPS)), 0)
    if first is None and not len(values):
        return np.zeros(0, dtype=np.int64)
    if not len(values):
        return np.full(n, first, dtype=np.int64)
    k = np.searchsorted(times, np.arange(n) / rate + EPS, side="right") - 1  # (n,)
    before = values[0] if first is None else first
    return np.where(k >= 0, values[np.maximum(k, 0)], before).astype(np.int64)


def split_expressive(ids: Sequence[int], vocab: SpeechVocab, frames_per_unit: float,
                     frame_rate: float, pitch_rate: float = PITCH_RATE,
                     style_rate: float = STYLE_RATE,
                     start: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Merged ids (of a generation) -> ``{"units", "pitch", "style"}`` value arrays.

    Units come back de-duplicated, as they were merged. A merged sequence keeps the order of
    the tokens, not their times, so times are estimated: every unit lasts ``frames_per_unit``
    frames (a generation passes its prompt's mean), and a pitch or style token takes the time of
    the unit after it (ties put it before that unit). Pitch and style are then laid out at their
    fixed rates over the units' time, each token held until the next one (:func:`held`), as the
    tokenizer writes them. ``start`` gives the pitch and style in effect where ``ids`` begin (a
    prompt's last ones). Ids of no range (markers, text, EOS) are dropped.
    """
    ids = np.asarray(ids, dtype=np.int64)
    offset, n = vocab.range(UNITS)
    is_unit = (ids >= offset) & (ids < offset + n)
    unit_seconds = frames_per_unit / frame_rate
    next_unit = np.cumsum(is_unit) - is_unit  # (len(ids),) units before each position
    seconds = int(is_unit.sum()) * unit_seconds
    out = {UNITS: ids[is_unit] - offset}
    for name, rate in ((PITCH, pitch_rate), (STYLE, style_rate)):
        offset, n = vocab.range(name)
        mine = (ids >= offset) & (ids < offset + n)
        out[name] = held(ids[mine] - offset, next_unit[mine] * unit_seconds, rate, seconds,
                         (start or {}).get(name))
    return out
