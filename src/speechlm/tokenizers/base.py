"""The protocol every speech tokenizer shares, and the tokenizer directory format.

A tokenizer directory holds ``tokenizer.json`` (``class``, ``kind``, the feature spec and every
setting needed to rebuild it) plus safetensors weights; never pickle.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from speechlm.errors import ConfigError, SpeechLMError
from speechlm.tokenizers.streams import Streams

FORMAT = "speechlm-tokenizer"
VERSION = 1
SPEC_FILE = "tokenizer.json"


class Tokenizer(ABC):
    """``encode(waveforms, sample_rate) -> list[Streams]``, ``decode``, ``save``/``load``."""

    kind: str
    n_units: int
    frame_rate: float
    sample_rate: int = 16000

    @abstractmethod
    def encode(self, waveforms: list[np.ndarray], sample_rate: int,
               speakers: list[str | None] | None = None) -> list[Streams]:
        """Tokenise mono float waveforms at ``sample_rate`` Hz (resampled as needed)."""

    def decode(self, streams: list[Streams]) -> list[np.ndarray]:
        """Audio at ``sample_rate`` for each record; only tokenizers that can invert do."""
        raise SpeechLMError(f"tokenizer kind '{self.kind}' cannot decode to audio: use a vocoder "
                            "(speechlm vocoder ...) or a codec tokenizer (encodec, mimi, dac)")

    @abstractmethod
    def spec(self) -> dict:
        """The JSON-serialisable description written to ``tokenizer.json``."""

    @abstractmethod
    def save_weights(self, out_dir: Path) -> None:
        """Write the tokenizer's tensors (safetensors) and any model folders into ``out_dir``."""

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: dict, directory: Path) -> Tokenizer:
        """Rebuild from a ``tokenizer.json`` dict and its directory."""

    def save(self, out_dir: str | Path) -> Path:
        """Write ``tokenizer.json`` and weights into ``out_dir``; returns the folder."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.save_weights(out_dir)
        spec = {"format": FORMAT, "version": VERSION, **self.spec()}
        tmp = out_dir / (SPEC_FILE + ".tmp")
        tmp.write_text(json.dumps(spec, indent=2) + "\n")
        tmp.replace(out_dir / SPEC_FILE)  # the spec last: a folder with it is complete
        return out_dir

    def resample(self, waveforms: list[np.ndarray], sample_rate: int) -> list[np.ndarray]:
        """Mono float32 at the tokenizer's rate (soxr when the rates differ)."""
        out = []
        for w in waveforms:
            w = np.asarray(w, dtype=np.float32)
            if w.ndim != 1:
                raise SpeechLMError(f"expected mono 1-D waveforms, got shape {w.shape}")
            if sample_rate != self.sample_rate:
                import soxr

                w = soxr.resample(w, sample_rate, self.sample_rate).astype(np.float32)
            out.append(w)
        return out


def read_spec(directory: str | Path) -> dict:
    """Read and check ``directory/tokenizer.json``."""
    path = Path(directory) / SPEC_FILE
    if not path.exists():
        raise ConfigError(f"{path}: not found; '{directory}' is not a tokenizer directory "
                          "(make one with: speechlm tokenizer fit ...)")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON ({e.msg})") from e
    if spec.get("format") != FORMAT:
        raise ConfigError(f"{path}: key 'format' must be '{FORMAT}'")
    if spec.get("version", 0) > VERSION:
        raise ConfigError(f"{path}: version {spec['version']} is newer than this speechlm")
    return spec
