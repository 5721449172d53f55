"""Sampling settings shared by every architecture's generation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

from speechlm.errors import SpeechLMError


@dataclass
class Sampling:
    """Sampling settings of one generation call (validated on construction)."""

    max_seconds: float = 10.0
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filtering
    top_p: float = 1.0
    seed: int = 0
    min_seconds: float = 0.0  # end-of-sequence is not sampled before this much speech
    # CTRL / HF rule on every id already in the sequence (prompt included): a positive logit is
    # divided by it, a negative one multiplied, before temperature / top-k / top-p; 1.0: off
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if not self.max_seconds > 0:
            raise SpeechLMError(f"max_seconds must be > 0, got {self.max_seconds}")
        if not 0 <= self.min_seconds <= self.max_seconds:
            raise SpeechLMError(f"min_seconds must be in [0, max_seconds={self.max_seconds}], "
                                f"got {self.min_seconds}")
        if not self.temperature > 0:
            raise SpeechLMError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise SpeechLMError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise SpeechLMError(f"top_p must be in (0, 1], got {self.top_p}")
        penalty = self.repetition_penalty
        if (isinstance(penalty, bool) or not isinstance(penalty, Real)
                or not (math.isfinite(penalty) and penalty > 0)):
            raise SpeechLMError(f"repetition_penalty must be a finite number > 0 (1.0: off), "
                                f"got {penalty!r}")
        self.repetition_penalty = float(penalty)  # HF's processor takes floats only
