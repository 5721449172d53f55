"""Feature front ends by name: spectral baselines (MFCC, log-mel) and SSL encoders.

A front end is a callable ``wavs -> list[(T, D) tensors]`` with ``kind``, ``dim``, ``frame_rate``,
``frame_offset`` (seconds from the start of the audio to the centre of frame 0), ``sample_rate``
and ``to_dict()``; ``build_frontend`` rebuilds one from that dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from speechlm.errors import ConfigError
from speechlm.tokenizers.features import SPECTRAL_KINDS, SpectralFeatures, SpectralSpec

ENCODER_KINDS = ("hubert", "wav2vec2", "wavlm", "w2v-bert", "cpc")
FRONTEND_KINDS = SPECTRAL_KINDS + ENCODER_KINDS


class Frontend(Protocol):
    kind: str
    frame_rate: float
    frame_offset: float
    sample_rate: int

    @property
    def dim(self) -> int: ...

    def __call__(self, wavs: list[np.ndarray]) -> list[torch.Tensor]: ...

    def to_dict(self) -> dict: ...


def make_frontend(kind: str, opts: dict) -> Frontend:
    """A new front end of ``kind`` from user options (``frame_rate``, ``model``, ``layer`` ...)."""
    if kind in SPECTRAL_KINDS:
        defaults = {"n_mels": 80} if kind == "logmel" else {}
        known = set(SpectralSpec.__dataclass_fields__)
        unknown = set(opts) - known
        if unknown:
            raise ConfigError(f"unknown option(s) {sorted(unknown)} for kind '{kind}'; "
                              f"known: {sorted(known - {'kind'})}")
        return SpectralFeatures(SpectralSpec(kind=kind, **{**defaults, **opts}))
    if kind in ENCODER_KINDS:
        from speechlm.tokenizers.encoders import SSLEncoder

        return SSLEncoder.create(kind, **opts)
    raise ConfigError(f"feature kind '{kind}' is unknown; valid kinds: {', '.join(FRONTEND_KINDS)}")


def build_frontend(spec: dict, directory: Path) -> Frontend:
    """Rebuild a front end from its ``to_dict()`` (paths relative to the tokenizer dir)."""
    kind = spec.get("kind")
    if kind in SPECTRAL_KINDS:
        return SpectralFeatures.from_dict(spec)
    if kind in ENCODER_KINDS:
        from speechlm.tokenizers.encoders import SSLEncoder

        return SSLEncoder.from_dict(spec, directory)
    raise ConfigError(f"features.kind '{kind}' is unknown; valid: {', '.join(FRONTEND_KINDS)}")
