"""Codec tokens back to audio through the codec tokenizer's own decoder (EnCodec, Mimi, DAC)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.vocoders.base import read_config, write_config

TOKENIZER_SUBDIR = "tokenizer"


class CodecVocoder:
    """Wraps a codec tokenizer: ``synthesize(streams)`` is ``tokenizer.decode([streams])[0]``."""

    kind = "codec"

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.sample_rate = int(tokenizer.sample_rate)

    def synthesize(self, streams: Any) -> np.ndarray:
        """Decode ``streams.codes`` (K x T) with the codec."""
        if getattr(streams, "codes", None) is None:
            raise SpeechLMError("streams have no 'codes': a codec vocoder decodes codec tokens")
        return np.asarray(self.tokenizer.decode([streams])[0], dtype=np.float32)

    def save(self, out_dir: str | Path) -> Path:
        """``vocoder.json`` plus a copy of the codec tokenizer (its spec names the weights)."""
        d = write_config(out_dir, {"kind": self.kind, "sample_rate": self.sample_rate,
                                   "tokenizer": TOKENIZER_SUBDIR})
        self.tokenizer.save(d / TOKENIZER_SUBDIR)
        return d

    @classmethod
    def load(cls, vocoder_dir: str | Path) -> CodecVocoder:
        """Rebuild from a folder written by ``save``."""
        from speechlm.tokenizers import load_tokenizer

        d = Path(vocoder_dir)
        cfg = read_config(d)
        return cls(load_tokenizer(d / cfg.get("tokenizer", TOKENIZER_SUBDIR)))
