"""The ``multistream`` format: units with aligned per-unit streams (pGSLM's MS-TLM input).

One token row becomes parallel streams of one length, each with its own loss mask::

    step       0     1         2     3     ...  n+1    n+2
    units      BOS   [SPEECH]  u1    u2    ...  un     EOS      (vocabulary ids)
    durations  -     -         d1    d2    ...  dn     -        (frames per unit)
    f0         -     -         f1    f2    ...  fn     -        (quantised log-F0 bin, 0 unvoiced)

``-`` is :data:`NO_VALUE` (-1), masked out. Each stream named in ``delays`` (units are never
delayed: the other streams are shifted against them) is then shifted right with
:func:`~speechlm.sequences.example.delay`, so with ``{"durations": 1, "f0": 1}`` the model reads
unit ``k`` before it predicts that unit's duration and F0. A stream is kept as the raw column
values (durations are not capped here, F0 is not re-binned): how a value becomes a class or a
number is the model's business (``speechlm.models.modeling_multistream``).

Delays live in one place, the model config (``model.streams.<name>.delay``): the ``multistream``
objective passes them to this format, and the architecture builds prompts (for scoring and
generation) with them. Without ``delays`` every stream the row has is delayed by 1 (pGSLM).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from speechlm.sequences.example import Example, delay
from speechlm.sequences.formats import register_format
from speechlm.sequences.vocab import SPEECH_MARKER, SpeechVocab

UNITS = "units"
NO_VALUE = -1  # a step where a stream has no value (BOS, [SPEECH], EOS, delay padding)
STREAM_COLUMNS = ("durations", "f0")  # per-unit token-dataset columns a stream can come from
DEFAULT_DELAY = 1  # pGSLM delays durations and F0 by one step
PREFIX = 2  # BOS and [SPEECH]: steps before the first unit, where other streams have no value


@register_format("multistream", columns=(UNITS, "durations"), markers=(SPEECH_MARKER,),
                 params={"eos": True, "delays": None},
                 summary="units with aligned per-unit streams (durations, f0), delayed")
def multistream(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None,
                eos: bool = True, delays: Mapping[str, int] | None = None) -> Example:
    """``BOS [SPEECH] units EOS`` with aligned streams, shifted by ``delays`` (see module doc).

    ``delays`` names the streams to carry besides units and their delays; ``None`` means every
    stream of :data:`STREAM_COLUMNS` the row has, delayed by :data:`DEFAULT_DELAY`. The
    ``multistream`` objective always passes the model's. ``eos=False`` gives the prompt form.
    """
    if delays is None:
        delays = {n: DEFAULT_DELAY for n in STREAM_COLUMNS if row.get(n) is not None}
    if UNITS in delays:
        raise ValueError("delays: units are never delayed (the other streams shift against them)")
    units = vocab.units_to_ids(row[UNITS])
    end = [vocab.eos_id] if eos else []
    raw = {UNITS: np.asarray([vocab.bos_id, vocab.speech_id, *units, *end], dtype=np.int64)}
    for name in delays:
        values = row.get(name)
        if values is None:
            raise ValueError(f"the row has no '{name}' stream; it has: "
                             f"{', '.join(k for k, v in row.items() if v is not None)}")
        values = np.asarray(values, dtype=np.int64)
        if len(values) != len(units):
            raise ValueError(f"'{name}' has {len(values)} values for {len(units)} units")
        if values.size and values.min() < 0:
            raise ValueError(f"'{name}' has a negative value ({int(values.min())})")
        raw[name] = np.concatenate([np.full(PREFIX, NO_VALUE), values,
                                    np.full(len(end), NO_VALUE)]).astype(np.int64)
    return laid_out(raw, delays, vocab.pad_id)


def laid_out(raw: Mapping[str, np.ndarray], delays: Mapping[str, int], pad_id: int) -> Example:
    """Aligned streams -> the delayed example; a step's mask is True iff it holds a value."""
    pads = {name: pad_id if name == UNITS else NO_VALUE for name in raw}
    shifted, valid = delay(raw, delays, pads)
    # ``valid`` marks where a stream's steps landed; NO_VALUE steps inside it carry no loss
    masks = {name: valid[name] & (shifted[name] != NO_VALUE) for name in shifted}
    return Example(shifted, masks)
