"""speechlm.audio: every bad-audio case has its own message; formats, rates, channels, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from speechlm.audio import audio_info, load_audio, save_audio
from speechlm.errors import AudioError


def sine(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        load_audio(tmp_path / "nope.wav")


def test_not_audio(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(AudioError, match=r"text\.wav: not a readable audio file"):
        load_audio(path)


def test_corrupt_truncated_flac(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(path, sine(3.0, 16000), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] + b"\x00\xff" * 500)  # header fine, frames broken
    with pytest.raises(AudioError, match=r"cut\.flac: (corrupt or truncated|not a readable)"):
        load_audio(path)


def test_zero_length(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav: zero-length audio"):
        load_audio(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.flac"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.flac: zero-length audio \(empty file\)"):
        load_audio(path)


def test_zero_length_segment(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, sine(1.0, 16000), 16000)
    with pytest.raises(AudioError, match=r"a\.wav: zero-length audio between 2\.0s and 3\.0s"):
        load_audio(path, start=2.0, end=3.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf(tmp_path, bad):
    path = tmp_path / "nan.wav"
    wav = sine(1.0, 16000)
    wav[1234] = bad
    sf.write(path, wav, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN or Inf samples"):
        load_audio(path)


def test_too_long(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, sine(3.0, 16000), 16000)
    with pytest.raises(AudioError, match=r"long\.wav: 3\.0s long, over the limit of 2s"):
        load_audio(path, max_seconds=2)
    assert len(load_audio(path, max_seconds=5)) == 48000


def test_silence_is_valid(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(8000, np.float32), 16000)
    wav = load_audio(path)
    assert wav.dtype == np.float32 and len(wav) == 8000 and not wav.any()


@pytest.mark.parametrize("suffix,subtype", [
    (".wav", "PCM_U8"), (".wav", "PCM_16"), (".wav", "PCM_24"), (".wav", "PCM_32"),
    (".wav", "FLOAT"), (".flac", "PCM_16"), (".flac", "PCM_24"), (".ogg", "VORBIS"),
])
def test_formats_read_as_float32(tmp_path, suffix, subtype):
    ref = sine(1.0, 16000)
    path = tmp_path / f"x{suffix}"
    sf.write(path, ref, 16000, subtype=subtype)
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1 and len(wav) == len(ref)
    tol = 0.05 if subtype in ("PCM_U8", "VORBIS") else 1e-3
    assert np.abs(wav - ref).max() < tol


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_resampled(tmp_path, rate):
    path = tmp_path / "r.wav"
    sf.write(path, sine(1.0, rate), rate, subtype="PCM_16")
    wav = load_audio(path, sample_rate=16000)
    assert abs(len(wav) - 16000) <= 1
    ref = sine(1.0, 16000)[: len(wav)]
    # compare away from the edges, where the resampling filter has no full context
    assert np.abs(wav[500:-500] - ref[500:-500]).max() < 0.02


def test_multichannel_downmixed(tmp_path):
    left, right = sine(1.0, 16000, amp=0.6), np.zeros(16000, np.float32)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right, left, right], axis=1), 16000, subtype="PCM_24")
    wav = load_audio(path)
    assert np.abs(wav - 0.5 * left).max() < 1e-3


def test_start_end_segment(tmp_path):
    path = tmp_path / "seg.wav"
    ramp = np.linspace(-0.5, 0.5, 32000, dtype=np.float32)
    sf.write(path, ramp, 16000, subtype="FLOAT")
    wav = load_audio(path, start=0.5, end=1.0)
    assert len(wav) == 8000 and np.allclose(wav, ramp[8000:16000])


def test_save_audio_roundtrip(tmp_path):
    path = tmp_path / "sub" / "out.wav"
    save_audio(path, np.array([0.0, 0.5, 2.0, -2.0], np.float32), 16000)
    info = audio_info(path)
    assert info.samplerate == 16000 and info.subtype == "PCM_16"
    assert np.allclose(load_audio(path), [0.0, 0.5, 1.0, -1.0], atol=1e-4)


def test_long_file_memory_is_bounded(tmp_path):
    """A 3-minute 48 kHz stereo file costs about its 16 kHz float32 output, not its decoded size."""
    rate, seconds = 48000, 180
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as f:
        block = np.stack([sine(10.0, rate), sine(10.0, rate, 220.0)], axis=1)
        for _ in range(seconds // 10):
            f.write(block)
    out_bytes = seconds * 16000 * 4
    decoded_bytes = seconds * rate * 2 * 4  # what reading it all as float32 would take
    tracemalloc.start()
    wav = load_audio(path, sample_rate=16000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert abs(len(wav) - seconds * 16000) <= 1
    assert peak < 2.5 * out_bytes < decoded_bytes
