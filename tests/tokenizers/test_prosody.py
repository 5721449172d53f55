"""F0 extraction and speaker normalisation."""

from __future__ import annotations

import numpy as np

from speechlm.tokenizers.prosody import F0_RATE, extract_f0


def _tone(f0_hz: float, seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, 6)).astype(np.float32) * 0.2


def test_f0_of_harmonic_tones_and_silence():
    for hz in (110.0, 220.0):
        f0 = extract_f0(_tone(hz), 16000)
        assert len(f0) == int(F0_RATE)
        voiced = f0[f0 > 0]
        assert len(voiced) > 0.8 * len(f0) and abs(np.median(voiced) - hz) < 2
    silence = np.zeros(16000, np.float32)
    assert (extract_f0(silence, 16000) == 0).all()
