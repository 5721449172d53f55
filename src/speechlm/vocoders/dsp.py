"""Signal processing of the fallback vocoder: spectral envelopes, F0, and source-filter synthesis.

Analysis: frames centred on each token frame, a cepstrally smoothed log-magnitude spectrum
(the spectral envelope, free of the harmonics of whoever spoke) and Praat's F0.
Synthesis (a small WORLD-like vocoder): an excitation mixing a pulse train at F0 with white
noise by the voicing degree, shaped frame by frame by the minimum-phase filter of the envelope
and overlap-added. Every random draw takes an explicit generator, so output is reproducible.
"""

from __future__ import annotations

import numpy as np

N_FFT = 512  # 32 ms at 16 kHz: resolves formants, short enough for stops
LIFTER = 30  # cepstral coefficients kept: below the quefrency of a 500 Hz voice (32 samples)
SYNTH_HOP = 80  # 5 ms synthesis frames: smooth envelope motion between token frames
F0_FLOOR, F0_CEIL = 60.0, 450.0
EPS = 1e-5


def frame_centers(n_frames: int, frame_rate: float, sample_rate: int) -> np.ndarray:
    """Sample index of the centre of each token frame: i * hop, as in a centred STFT front end."""
    return np.arange(n_frames) * (sample_rate / frame_rate)


def _frames(wav: np.ndarray, centers: np.ndarray, n_fft: int) -> np.ndarray:
    """(N, n_fft) windows of ``wav`` centred on ``centers`` (zero outside the signal)."""
    half = n_fft // 2
    padded = np.pad(wav.astype(np.float32), (half, half + n_fft))
    starts = np.clip(np.round(centers).astype(np.int64), 0, len(wav) + half)
    idx = starts[:, None] + np.arange(n_fft)[None, :]  # (N, n_fft)
    return padded[idx]


def log_envelope(wav: np.ndarray, centers: np.ndarray, n_fft: int = N_FFT) -> np.ndarray:
    """(N, n_fft//2+1) cepstrally smoothed natural-log magnitude spectra at ``centers``."""
    window = np.hanning(n_fft).astype(np.float32)
    spec = np.abs(np.fft.rfft(_frames(wav, centers, n_fft) * window, axis=1))
    logmag = np.log(spec + EPS)
    cep = np.fft.irfft(logmag, n=n_fft, axis=1)
    cep[:, LIFTER : n_fft - LIFTER + 1] = 0.0  # keep the slowly varying part: the envelope
    env = np.fft.rfft(cep, axis=1).real
    # The smoothed log spectrum runs between harmonic peaks and valleys, so it under-states a
    # voiced frame's energy far more than a noisy one's; restore each frame's true power so
    # vowels are not quieter than fricatives after resynthesis.
    true_power = np.log(np.mean(spec**2, axis=1) + EPS**2)
    env_power = np.log(np.mean(np.exp(2 * env), axis=1) + EPS**2)
    return (env + 0.5 * (true_power - env_power)[:, None]).astype(np.float32)


def f0_track(wav: np.ndarray, centers: np.ndarray, sample_rate: int) -> np.ndarray:
    """F0 in Hz at ``centers`` (0 where unvoiced), from Praat's autocorrelation pitch."""
    import parselmouth

    snd = parselmouth.Sound(wav.astype(np.float64), sampling_frequency=sample_rate)
    pitch = snd.to_pitch_ac(time_step=0.005, pitch_floor=F0_FLOOR, pitch_ceiling=F0_CEIL)
    times = np.asarray(pitch.xs())
    freq = np.asarray(pitch.selected_array["frequency"])
    if len(times) == 0:
        return np.zeros(len(centers), dtype=np.float32)
    t = centers / sample_rate
    nearest = np.clip(np.searchsorted(times, t), 0, len(times) - 1)
    return freq[nearest].astype(np.float32)


def limit_peak(wav: np.ndarray, peak: float = 0.95) -> np.ndarray:
    """``wav`` scaled down to ``peak`` when it goes above it (summed pulses and filters can
    overshoot a file's [-1, 1]); quieter audio is left as it is."""
    top = float(np.abs(wav).max()) if wav.size else 0.0
    return wav * (peak / top) if top > peak else wav


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average along axis 0 with edge padding (``width`` frames, odd)."""
    if width <= 1 or len(x) == 0:
        return x
    pad = width // 2
    xp = np.pad(x, [(pad, pad)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    c = np.cumsum(np.concatenate([np.zeros_like(xp[:1]), xp]), axis=0)
    return (c[width:] - c[:-width]) / width


def _interp_rows(values: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Linear interpolation of each column of ``values`` (rows at ``src``) onto ``dst``."""
    pos = np.interp(dst, src, np.arange(len(src), dtype=np.float64))
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(src) - 1)
    w = (pos - lo)[:, None] if values.ndim == 2 else pos - lo
    return values[lo] * (1 - w) + values[hi] * w


def _min_phase(log_env: np.ndarray, n_fft: int) -> np.ndarray:
    """Complex minimum-phase spectra with magnitude ``exp(log_env)`` (rows are frames)."""
    cep = np.fft.irfft(log_env, n=n_fft, axis=1)
    fold = np.zeros_like(cep)
    fold[:, 0] = cep[:, 0]
    fold[:, 1 : n_fft // 2] = 2 * cep[:, 1 : n_fft // 2]
    fold[:, n_fft // 2] = cep[:, n_fft // 2]
    return np.exp(np.fft.rfft(fold, axis=1))


def excitation(
    f0: np.ndarray, voicing: np.ndarray, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Unit-power source per sample: pulses at ``f0`` mixed with noise by ``voicing`` in [0, 1]."""
    n = len(f0)
    f0 = np.clip(f0, F0_FLOOR, F0_CEIL)
    phase = np.cumsum(f0 / sample_rate)
    pulses = np.zeros(n, dtype=np.float32)
    at = np.flatnonzero(np.diff(np.floor(phase), prepend=0.0) > 0)
    pulses[at] = np.sqrt(sample_rate / f0[at])  # one pulse per period: power 1 at any F0
    noise = rng.standard_normal(n).astype(np.float32)
    return np.sqrt(voicing) * pulses + np.sqrt(1.0 - voicing) * noise


def source_filter(
    log_env: np.ndarray,
    f0: np.ndarray,
    voicing: np.ndarray,
    frame_rate: float,
    sample_rate: int,
    n_samples: int,
    seed: int = 0,
    n_fft: int = N_FFT,
) -> np.ndarray:
    """Audio of ``n_samples`` from per-token-frame envelopes (N, B), F0 (N, Hz) and voicing (N).

    Token-frame values are interpolated to 5 ms synthesis frames and to samples, so the
    spectrum moves smoothly between units instead of stepping at every frame boundary.
    """
    n_frames = len(log_env)
    if n_frames == 0 or n_samples <= 0:
        return np.zeros(max(n_samples, 0), dtype=np.float32)
    src = frame_centers(n_frames, frame_rate, sample_rate)
    samples = np.arange(n_samples, dtype=np.float64)
    f0_s = np.interp(samples, src, f0)
    v_s = np.clip(np.interp(samples, src, voicing), 0.0, 1.0)
    exc = excitation(f0_s, v_s, sample_rate, np.random.default_rng(seed))

    centers = np.arange(0, n_samples + SYNTH_HOP, SYNTH_HOP, dtype=np.float64)
    env = _interp_rows(log_env.astype(np.float64), src, centers)  # (J, B)
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann: overlap-adds to a constant
    filt = _min_phase(env, n_fft) / np.sqrt(np.sum(window**2))
    frames = _frames(exc, centers, n_fft) * window  # frame j covers [c_j - n_fft/2, c_j + n_fft/2)
    out_frames = np.fft.irfft(np.fft.rfft(frames, axis=1) * filt, n=n_fft, axis=1) * window
    total = len(centers) * SYNTH_HOP + 2 * n_fft
    out = np.zeros(total)
    norm = np.zeros(total)
    starts = np.round(centers).astype(np.int64)  # in a buffer offset by n_fft/2
    for j, s in enumerate(starts):
        out[s : s + n_fft] += out_frames[j]
        norm[s : s + n_fft] += window**2
    half = n_fft // 2
    y = out[half : half + n_samples] / np.maximum(norm[half : half + n_samples], 1e-3)
    return y.astype(np.float32)
