"""Reading any audio file libsndfile reads into mono float32 at a requested rate.

Files are read in blocks, down-mixed and resampled with a streaming ``soxr`` resampler, so a long
file costs about its float32 size at the target rate plus one block, not its decoded size.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from speechlm.errors import AudioError

BLOCK_FRAMES = 1 << 18  # ~16 s at 16 kHz per read: bounded memory, few Python round trips


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """Header information (rate, channels, frames) of ``path``; raises ``AudioError``."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise AudioError(f"{path}: zero-length audio (empty file)")
    try:
        info = sf.info(str(path))
    except Exception as e:  # libsndfile's errors are RuntimeError/LibsndfileError subclasses
        raise AudioError(f"{path}: not a readable audio file ({_short(e)})") from e
    if info.format in ("WAV", "WAVEX"):  # WAVEX: WAVE_FORMAT_EXTENSIBLE (24-bit, multichannel)
        _check_wav_complete(path)
    return info


# placeholder sizes that streaming recorders write before they know the length
_UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)


def _check_wav_complete(path: Path) -> None:
    """Raise when a WAV's ``data`` chunk declares more bytes than the file holds.

    libsndfile silently reads a truncated WAV as a shorter one (a 1 s file cut after 100 bytes
    reads as 3 ms of audio); the header still says how long it was meant to be.
    """
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(4) != b"RIFF":
            return  # RF64 / W64: libsndfile's own checks apply
        f.seek(12)
        while True:
            head = f.read(8)
            if len(head) < 8:
                return
            chunk, length = head[:4], struct.unpack("<I", head[4:])[0]
            if chunk == b"data":
                held = size - f.tell()
                if length not in _UNKNOWN_SIZES and length > held:
                    raise AudioError(
                        f"{path}: truncated WAV (its header declares {length} bytes of audio, "
                        f"the file holds {held}, {held / length:.0%}); re-export or re-copy it")
                return
            f.seek(length + (length & 1), 1)  # chunks are padded to an even size


def load_audio(
    path: str | Path,
    sample_rate: int = 16000,
    start: float | None = None,
    end: float | None = None,
    max_seconds: float | None = None,
    mono: bool = True,
) -> np.ndarray:
    """Read ``path`` (optionally the ``start``..``end`` seconds inside it) as mono float32
    ``(T,)``, or with ``mono=False`` every channel as ``(C, T)`` (stereo dialogue).

    Raises ``AudioError`` naming the file when it is missing, not audio or corrupt, empty,
    contains NaN/Inf samples, or is longer than ``max_seconds``. Silence is valid audio.
    """
    path = Path(path)
    info = audio_info(path)
    sr_in = int(info.samplerate)
    first = 0 if start is None else int(round(start * sr_in))
    last = info.frames if end is None else min(info.frames, int(round(end * sr_in)))
    n_in = last - first
    if info.frames <= 0 or n_in <= 0:
        where = "" if start is None and end is None else f" between {start}s and {end}s"
        raise AudioError(f"{path}: zero-length audio{where}")
    seconds = n_in / sr_in
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(
            f"{path}: {seconds:.1f}s long, over the limit of {max_seconds:g}s "
            "(cut it into segments with start/end in the manifest, or raise the limit)"
        )
    n_out = int(math.ceil(n_in * sample_rate / sr_in))
    n_ch = 1 if mono else int(info.channels)
    out = np.empty((n_out + 64, n_ch), dtype=np.float32)
    filled = 0
    resampler = None if sr_in == sample_rate else soxr.ResampleStream(
        sr_in, sample_rate, n_ch, dtype="float32", quality="HQ"
    )
    try:
        with sf.SoundFile(str(path)) as f:
            f.seek(first)
            remaining = n_in
            while remaining > 0:
                block = f.read(min(BLOCK_FRAMES, remaining), dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                remaining -= len(block)
                if mono and block.shape[1] > 1:
                    block = block.mean(axis=1, keepdims=True)
                if not np.isfinite(block).all():
                    raise AudioError(f"{path}: contains NaN or Inf samples")
                if resampler is not None:
                    block = resampler.resample_chunk(block, last=remaining <= 0)
                filled = _append(out, filled, block)
            if resampler is not None and remaining > 0:  # file shorter than its header said
                filled = _append(out, filled, resampler.resample_chunk(
                    np.zeros((0, n_ch), np.float32), last=True))
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"{path}: corrupt or truncated audio ({_short(e)})") from e
    if filled == 0:
        raise AudioError(f"{path}: zero-length audio")
    out = out[:filled].copy() if filled < len(out) // 2 else out[:filled]
    return out[:, 0] if mono else np.ascontiguousarray(out.T)


def save_audio(path: str | Path, wav: np.ndarray, sample_rate: int, exact: bool = False) -> None:
    """Write float audio, ``(T,)`` or ``(T, channels)``, as 16-bit PCM WAV clipped to [-1, 1]
    (or the format the suffix names); ``exact``: as 32-bit float samples, unclipped (a copy
    of someone's data, whose NaN or overshoot the audio checks must still see)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = np.asarray(wav, dtype=np.float32)
    if exact:
        sf.write(str(path), wav, sample_rate, subtype="FLOAT")
        return
    subtype = "PCM_16" if path.suffix.lower() in (".wav", ".flac") else None
    sf.write(str(path), np.clip(wav, -1.0, 1.0), sample_rate, subtype=subtype)


def frame_db(wav: np.ndarray, hop: int) -> np.ndarray:
    """Energy (dB, mean square) of each whole ``hop``-sample frame of ``wav`` (a partial last
    frame is dropped); digital silence is about -200 dB."""
    n = len(wav) // hop
    frames = np.asarray(wav[: n * hop], dtype=np.float64).reshape(n, hop)
    return 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)


def _append(out: np.ndarray, filled: int, chunk: np.ndarray) -> int:
    n = min(len(chunk), len(out) - filled)  # soxr may emit a few samples past ceil(n*ratio)
    out[filled : filled + n] = chunk[:n]
    return filled + n


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
