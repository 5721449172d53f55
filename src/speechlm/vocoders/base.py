"""The vocoder protocol, the on-disk layout every vocoder shares, and ``load_vocoder``.

A vocoder directory holds ``vocoder.json`` (``kind`` plus the kind's settings) and, for the
learned kinds, ``weights.safetensors``. ``load_vocoder`` dispatches on ``kind`` through a
name -> loader registry and lists the valid names on a miss.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from speechlm.errors import ConfigError, SpeechLMError

CONFIG_NAME = "vocoder.json"
WEIGHTS_NAME = "weights.safetensors"


@runtime_checkable
class Vocoder(Protocol):
    """Turns token streams back into mono float32 audio at ``sample_rate``."""

    kind: str
    sample_rate: int

    def synthesize(self, streams: Any) -> np.ndarray:
        """Audio for one utterance; predicts durations when ``streams.durations`` is None."""
        ...

    def save(self, out_dir: str | Path) -> Path:
        """Write the vocoder directory and return it."""
        ...


def _load_fallback(d: Path) -> Vocoder:
    from speechlm.vocoders.fallback import FallbackVocoder

    return FallbackVocoder.load(d)


def _load_hifigan(d: Path) -> Vocoder:
    from speechlm.vocoders.hifigan.vocoder import HifiganVocoder

    return HifiganVocoder.load(d)


def _load_envelope(d: Path) -> Vocoder:
    from speechlm.vocoders.envelope.vocoder import EnvelopeVocoder

    return EnvelopeVocoder.load(d)


def _load_codec(d: Path) -> Vocoder:
    from speechlm.vocoders.codec import CodecVocoder

    return CodecVocoder.load(d)


LOADERS: dict[str, Callable[[Path], Vocoder]] = {
    "fallback": _load_fallback,
    "hifigan": _load_hifigan,
    "envelope": _load_envelope,
    "codec": _load_codec,
}


def read_config(vocoder_dir: str | Path) -> dict:
    """``vocoder.json`` of ``vocoder_dir`` as a dict; clear errors when missing or invalid."""
    d = Path(vocoder_dir)
    path = d / CONFIG_NAME
    if not path.is_file():
        raise SpeechLMError(
            f"{d}: not a vocoder directory (no {CONFIG_NAME}); make one with "
            "`speechlm vocoder fit-fallback` or `speechlm vocoder train`"
        )
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON ({e})") from e
    if not isinstance(cfg, dict) or "kind" not in cfg:
        raise ConfigError(f"{path}: missing key 'kind' (one of {sorted(LOADERS)})")
    return cfg


def load_vocoder(vocoder_dir: str | Path) -> Vocoder:
    """Load any vocoder directory written by ``speechlm.vocoders``."""
    d = Path(vocoder_dir)
    kind = read_config(d)["kind"]
    if kind not in LOADERS:
        raise ConfigError(f"{d / CONFIG_NAME}: unknown kind {kind!r}; valid: {sorted(LOADERS)}")
    return LOADERS[kind](d)


RUN_LENGTH_KEYS = ("max_steps", "save_steps", "logging_steps")  # may change on resume
TRAIN_CONFIG = "train_config.json"


def begin_run(out_dir: Path, settings: dict) -> None:
    """Start or resume a trained vocoder's run in ``out_dir``: refuse a folder that holds a
    run with other settings (only ``RUN_LENGTH_KEYS`` may change), then record ``settings``."""
    saved = out_dir / TRAIN_CONFIG
    model = lambda d: {k: v for k, v in d.items() if k not in RUN_LENGTH_KEYS}  # noqa: E731
    if saved.is_file() and model(json.loads(saved.read_text())) != model(settings):
        raise ConfigError(f"{saved}: {out_dir} holds a run with a different config; use a new "
                          "--out or the same settings to resume")
    out_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(settings, indent=2))


def last_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete ``checkpoints/step-N`` (one with its state.json), or None."""
    ckpts = sorted((out_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name[5:]))
    complete = [c for c in ckpts if (c / "state.json").is_file()]
    return complete[-1] if complete else None


def write_config(out_dir: str | Path, cfg: dict) -> Path:
    """Write ``vocoder.json`` (creating the folder) and return the folder."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
    return d


def predict_durations(units: np.ndarray, mean_durations: np.ndarray) -> np.ndarray:
    """Integer frame counts for de-duplicated ``units`` from per-unit mean durations.

    Rounding each mean on its own would bias short units (a 1.4-frame mean always gives 1);
    rounding the running total keeps the utterance length equal to the sum of the means.
    """
    units = np.asarray(units, dtype=np.int64)
    return round_durations(np.asarray(mean_durations, dtype=np.float64)[units])


def round_durations(durations: np.ndarray) -> np.ndarray:
    """Fractional frame counts -> integers >= 1 whose running total follows the fractional one."""
    if len(durations) == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.round(np.cumsum(durations)).astype(np.int64)
    return np.maximum(np.diff(np.concatenate([[0], ends])), 1)


def frame_units(streams: Any, mean_durations: np.ndarray | None) -> np.ndarray:
    """The unit of every frame: ``units`` repeated by ``durations`` (predicted when absent)."""
    units = check_units(streams)
    durs = getattr(streams, "durations", None)
    if durs is None:
        if mean_durations is None:
            return units
        durs = predict_durations(units, mean_durations)
    durs = np.asarray(durs, dtype=np.int64)
    if durs.shape != units.shape:
        raise SpeechLMError(
            f"streams: {len(units)} units but {len(durs)} durations; they must match"
        )
    if (durs < 0).any():
        raise SpeechLMError("streams: durations must be non-negative frame counts")
    return np.repeat(units, durs)


def check_units(streams: Any, n_units: int | None = None) -> np.ndarray:
    """``streams.units`` as int64, or a clear error when the streams carry none or (given the
    vocoder's ``n_units``) ids it has no entry for."""
    units = getattr(streams, "units", None)
    if units is None:
        raise SpeechLMError("streams have no 'units'; this vocoder needs unit tokens")
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    if n_units is not None and units.size and (units.min() < 0 or units.max() >= n_units):
        raise SpeechLMError(f"unit ids must be in [0, {n_units}) for this vocoder, got "
                            f"[{units.min()}, {units.max()}]: was it made on the same tokenizer?")
    return units
