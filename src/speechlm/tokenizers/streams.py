"""The record one tokenizer returns for one utterance: named, time-aligned streams."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class Streams:
    """Token streams of one utterance.

    ``frame_rate`` is the rate (Hz) of the frames that ``durations`` count and that un-deduplicated
    ``units``/``codes``/``feats`` run at. Optional streams:

    - ``units``: int64 (N,) unit ids, de-duplicated when the tokenizer de-duplicates;
    - ``durations``: int64 (N,) frames covered by each unit (sum = frames of the utterance);
    - ``f0``: int64 (N,) per-unit quantised speaker-normalised log-F0 bin (0 = unvoiced), pGSLM;
    - ``pitch``: int64 pitch tokens at ``pitch_rate`` Hz; ``style``: int64 at ``style_rate`` Hz
      (SpiRit-LM Expressive);
    - ``codes``: int64 (K, T) codec codebook indices;
    - ``feats``: float16 (T, D) continuous frames.
    """

    frame_rate: float
    units: np.ndarray | None = None
    durations: np.ndarray | None = None
    f0: np.ndarray | None = None
    pitch: np.ndarray | None = None
    style: np.ndarray | None = None
    codes: np.ndarray | None = None
    feats: np.ndarray | None = None
    pitch_rate: float | None = None
    style_rate: float | None = None

    def names(self) -> list[str]:
        """Names of the array streams that are present."""
        return [f.name for f in fields(self)
                if isinstance(getattr(self, f.name), np.ndarray)]

    def equals(self, other: Streams) -> bool:
        """True when both records hold the same streams with identical values and rates."""
        if self.names() != other.names() or self.frame_rate != other.frame_rate:
            return False
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in self.names())

    def seconds(self) -> float:
        """Duration covered, from durations, codes or feats (whichever is present)."""
        if self.durations is not None:
            return float(self.durations.sum()) / self.frame_rate
        if self.codes is not None:
            return self.codes.shape[-1] / self.frame_rate
        if self.feats is not None:
            return len(self.feats) / self.frame_rate
        if self.units is not None:
            return len(self.units) / self.frame_rate
        return 0.0
