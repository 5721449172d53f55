"""Offline generation: continue a spoken prompt with a speech LM, resynthesise audio.

``continue_speech(speech_lm, wav, sample_rate, ...) -> (Streams, audio)``;
``continue_speech_batch`` for many prompts; ``resynthesize`` for tokenizer + vocoder only.
"""

from speechlm.generate.continuation import (
    Continuation,
    continue_speech,
    continue_speech_batch,
    resynthesize,
)
from speechlm.models.sampling import Sampling

__all__ = ["Continuation", "Sampling", "continue_speech", "continue_speech_batch", "resynthesize"]
