"""Continuous features stored as float16 frames: log-mel (Spectron) or encoder latents (Mini-Omni,
LauraGPT), from any front end."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speechlm.tokenizers.base import Tokenizer
from speechlm.tokenizers.frontends import Frontend, build_frontend
from speechlm.tokenizers.streams import Streams


class ContinuousTokenizer(Tokenizer):
    """``encode`` -> ``Streams(feats=(T, D) float16)`` at the front end's frame rate."""

    kind = "continuous"

    def __init__(self, frontend: Frontend) -> None:
        self.frontend = frontend
        self.n_units = 0  # no discrete vocabulary
        self.dim = frontend.dim
        self.frame_rate = frontend.frame_rate
        self.sample_rate = frontend.sample_rate

    def encode(self, waveforms: list[np.ndarray], sample_rate: int,
               speakers: list[str | None] | None = None) -> list[Streams]:
        feats = self.frontend(self.resample(waveforms, sample_rate))
        return [Streams(self.frame_rate, feats=x.half().cpu().numpy()) for x in feats]

    def spec(self) -> dict:
        return {"class": "continuous", "kind": self.kind, "n_units": 0, "dim": self.dim,
                "frame_rate": self.frame_rate, "sample_rate": self.sample_rate,
                "features": self.frontend.to_dict()}

    def save_weights(self, out_dir: Path) -> None:
        save = getattr(self.frontend, "save_weights", None)
        if save is not None:
            save(out_dir)

    @classmethod
    def from_spec(cls, spec: dict, directory: Path) -> ContinuousTokenizer:
        return cls(build_frontend(spec["features"], directory))
