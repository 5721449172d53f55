"""A training example as named, time-aligned streams, each with its own loss mask; stream delays.

Every format returns an :class:`Example`. A single-stream model sees one stream, ``tokens``
(``input_ids``; its loss mask gives the ``labels``). A multi-stream model (pGSLM's units,
durations and F0; a codec's K codebooks; dGSLM's two channels) sees several streams of the same
length ``T``; a stream is ``(T,)`` or ``(K, T)`` (K parallel rows, e.g. codebooks), and every
array's last axis is time.

Delays are data, as in Moshi and MusicGen: ``{"dur": 1, "f0": 1}`` (a stream) or
``{"codes": [0, 1, 2, 3]}`` (one delay per row of a ``(K, T)`` stream). :func:`delay` and
:func:`undelay` are pure functions that return the shifted streams and their masks; undelay
inverts delay exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

TOKENS = "tokens"  # the one stream of a single-stream example
IGNORE = -100  # label of a position without loss (the HF convention)

Delay = int | Sequence[int]


@dataclass
class Example:
    """Named streams of one example, with a boolean loss mask per stream (same shape)."""

    streams: dict[str, np.ndarray]
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {name: np.shape(a)[-1] for name, a in self.streams.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"streams differ in length: {lengths}")
        for name, a in self.streams.items():
            m = self.masks.get(name)
            if m is None:
                self.masks[name] = np.ones(np.shape(a), dtype=bool)
            elif np.shape(m) != np.shape(a):
                raise ValueError(f"mask of '{name}' has shape {np.shape(m)}, stream {np.shape(a)}")
        extra = set(self.masks) - set(self.streams)
        if extra:
            raise ValueError(f"masks for streams that do not exist: {sorted(extra)}")

    @classmethod
    def single(cls, ids: Sequence[int], mask: Sequence[bool] | None = None) -> Example:
        """A one-stream example (``tokens``); ``mask`` False where no loss is taken."""
        ids_a = np.asarray(ids, dtype=np.int64)
        masks = {} if mask is None else {TOKENS: np.asarray(mask, dtype=bool)}
        return cls({TOKENS: ids_a}, masks)

    def __len__(self) -> int:
        """Number of time steps ``T``."""
        return int(np.shape(next(iter(self.streams.values())))[-1]) if self.streams else 0

    @property
    def input_ids(self) -> list[int]:
        """The ``tokens`` stream as a list (single-stream examples)."""
        return self.streams[TOKENS].tolist()

    @property
    def labels(self) -> list[int]:
        """``tokens`` with ``-100`` where the loss mask is False (single-stream examples)."""
        return np.where(self.masks[TOKENS], self.streams[TOKENS], IGNORE).tolist()


def delay(streams: Mapping[str, np.ndarray], delays: Mapping[str, Delay],
          pad: Mapping[str, float] | float = 0) -> tuple[dict[str, np.ndarray],
                                                         dict[str, np.ndarray]]:
    """Shift each stream right by its delay; return ``(shifted, masks)``.

    With ``D`` the largest delay, every output has length ``T + D``: a stream (or row) delayed by
    ``d`` is ``d`` pads, its ``T`` values, then ``D - d`` pads. The mask is True exactly on the
    stream's own values. Streams missing from ``delays`` have delay 0. ``pad`` is one value or
    one per stream.
    """
    rows = {name: _row_delays(a, delays.get(name, 0), name) for name, a in streams.items()}
    span = max((max(d) for d in rows.values()), default=0)
    out, masks = {}, {}
    for name, a in streams.items():
        a = np.asarray(a)
        value = pad.get(name, 0) if isinstance(pad, Mapping) else pad
        t = a.shape[-1]
        shifted = np.full((*a.shape[:-1], t + span), value, dtype=a.dtype)
        mask = np.zeros(shifted.shape, dtype=bool)
        view, mview, src = _rows(shifted), _rows(mask), _rows(a)
        for k, d in enumerate(rows[name]):
            view[k, d : d + t] = src[k]
            mview[k, d : d + t] = True
        out[name], masks[name] = shifted, mask
    return out, masks


def undelay(streams: Mapping[str, np.ndarray], delays: Mapping[str, Delay],
            masks: Mapping[str, np.ndarray] | None = None) -> tuple[dict[str, np.ndarray],
                                                                   dict[str, np.ndarray]]:
    """Invert :func:`delay`: streams of length ``L`` -> length ``L - D``, aligned again.

    The returned mask of a value is the input mask at the position it came from (all True
    without ``masks``), so a value a generation never produced stays marked as missing.
    """
    rows = {name: _row_delays(a, delays.get(name, 0), name) for name, a in streams.items()}
    span = max((max(d) for d in rows.values()), default=0)
    out, out_masks = {}, {}
    for name, a in streams.items():
        a = np.asarray(a)
        t = a.shape[-1] - span
        if t < 0:
            raise ValueError(f"stream '{name}' has {a.shape[-1]} steps, fewer than the largest "
                             f"delay {span}")
        m = np.ones(a.shape, dtype=bool) if masks is None else np.asarray(masks[name], bool)
        res = np.empty((*a.shape[:-1], t), dtype=a.dtype)
        res_m = np.empty(res.shape, dtype=bool)
        for k, d in enumerate(rows[name]):
            _rows(res)[k] = _rows(a)[k, d : d + t]
            _rows(res_m)[k] = _rows(m)[k, d : d + t]
        out[name], out_masks[name] = res, res_m
    return out, out_masks


def _rows(a: np.ndarray) -> np.ndarray:
    """A ``(rows, T)`` view of a ``(T,)`` or ``(K, T)`` array."""
    return a.reshape(-1, a.shape[-1])


def _row_delays(a: np.ndarray, d: Delay, name: str) -> list[int]:
    n_rows = int(np.prod(np.shape(a)[:-1], dtype=np.int64))
    ds = [int(d)] * n_rows if np.isscalar(d) else [int(x) for x in d]
    if len(ds) != n_rows:
        raise ValueError(f"delays of '{name}': {len(ds)} given for {n_rows} rows")
    if any(x < 0 for x in ds):
        raise ValueError(f"delays of '{name}' must be >= 0, got {ds}")
    return ds
