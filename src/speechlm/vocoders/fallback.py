"""The training-free fallback vocoder: per-unit mean spectral envelopes, source-filter synthesis.

Fitting needs no gradient step: the training audio is tokenised, every token frame is paired with
the spectral envelope, voicing and F0 measured at that frame, and per-unit means are kept
(plus the mean run length of each unit, the duration model for de-duplicated units).
Synthesis looks the means up frame by frame and voices them with ``dsp.source_filter``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.vocoders import dsp
from speechlm.vocoders.base import (
    WEIGHTS_NAME,
    check_units,
    frame_units,
    read_config,
    write_config,
)

F0_SMOOTH_FRAMES = 9  # ~180 ms at 50 Hz: a plausible intonation contour, not per-unit jumps
PAIR_PRIOR_RUNS = 3.0  # pseudo-counts of the unit mean in each (previous, unit) duration mean


@dataclass
class FallbackVocoder:
    """Per-unit tables: ``log_env`` (K, B), ``voicing`` (K), ``log_f0`` (K), ``mean_dur`` (K)."""

    sample_rate: int
    frame_rate: float
    log_env: np.ndarray
    voicing: np.ndarray
    log_f0: np.ndarray
    mean_dur: np.ndarray
    counts: np.ndarray
    bin_log_f0: np.ndarray | None = None  # mean log-F0 (Hz) of each f0 token bin, bin 0 unvoiced
    pair_dur: np.ndarray | None = None  # (K, K) mean run length of unit b after unit a
    kind: str = "fallback"

    @property
    def n_units(self) -> int:
        return len(self.log_env)

    def synthesize(self, streams: Any, seed: int = 0) -> np.ndarray:
        """Audio (float32, ``sample_rate``) of ``streams.units`` with their durations.

        Durations are predicted from per-unit means when ``streams.durations`` is None;
        ``streams.f0`` (per-unit F0 token bins, 0 = unvoiced) drives the pitch when present and
        the vocoder was fitted on a tokenizer that emits them.
        """
        units = check_units(streams, self.n_units)
        if getattr(streams, "durations", None) is None and self.pair_dur is not None:
            from dataclasses import replace

            streams = replace(streams, durations=self.predict_durations(units))
        fu = frame_units(streams, self.mean_dur)
        n_samples = int(round(len(fu) * self.sample_rate / self.frame_rate))
        f0, voicing = self._pitch(streams, fu)
        wav = dsp.source_filter(
            self.log_env[fu], f0, voicing, self.frame_rate, self.sample_rate, n_samples, seed
        )
        return dsp.limit_peak(wav)

    def predict_durations(self, units: np.ndarray) -> np.ndarray:
        """Frame counts for de-duplicated units: mean run length given the previous unit."""
        from speechlm.vocoders.base import round_durations

        units = np.asarray(units, dtype=np.int64)
        means = self.mean_dur[units].astype(np.float64)
        if self.pair_dur is not None and len(units) > 1:
            means[1:] = self.pair_dur[units[:-1], units[1:]]
        return round_durations(means)

    def _pitch(self, streams: Any, fu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """F0 (Hz) and voicing per frame: from the ``f0`` bins when given, else per-unit means."""
        bins = getattr(streams, "f0", None)
        if bins is not None and self.bin_log_f0 is not None and len(fu):
            bins = np.clip(np.asarray(bins, dtype=np.int64).reshape(-1), 0,
                           len(self.bin_log_f0) - 1)
            frame_bins = _to_frames(bins, streams, len(fu))
            voiced = frame_bins > 0
            log_f0 = np.where(voiced, self.bin_log_f0[frame_bins], self.log_f0[fu])
            return np.exp(dsp.smooth(log_f0, 3)), dsp.smooth(voiced.astype(np.float64), 3)
        log_f0 = dsp.smooth(self.log_f0[fu].astype(np.float64), F0_SMOOTH_FRAMES)
        return np.exp(log_f0), self.voicing[fu].astype(np.float64)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``vocoder.json`` and the tables as safetensors; returns the folder."""
        from safetensors.numpy import save_file

        d = write_config(out_dir, {
            "kind": self.kind, "sample_rate": self.sample_rate, "frame_rate": self.frame_rate,
            "n_units": self.n_units, "n_fft": dsp.N_FFT,
        })
        tables = {"log_env": self.log_env, "voicing": self.voicing, "log_f0": self.log_f0,
                  "mean_dur": self.mean_dur, "counts": self.counts}
        if self.bin_log_f0 is not None:
            tables["bin_log_f0"] = self.bin_log_f0
        if self.pair_dur is not None:
            tables["pair_dur"] = self.pair_dur
        save_file(tables, str(d / WEIGHTS_NAME))
        return d

    @classmethod
    def load(cls, vocoder_dir: str | Path) -> FallbackVocoder:
        """Read a folder written by ``save``."""
        from safetensors.numpy import load_file

        d = Path(vocoder_dir)
        cfg = read_config(d)
        if not (d / WEIGHTS_NAME).is_file():
            raise SpeechLMError(f"{d}: missing {WEIGHTS_NAME}; refit with `vocoder fit-fallback`")
        t = load_file(str(d / WEIGHTS_NAME))
        return cls(cfg["sample_rate"], float(cfg["frame_rate"]), t["log_env"], t["voicing"],
                   t["log_f0"], t["mean_dur"], t["counts"], t.get("bin_log_f0"), t.get("pair_dur"))


def _to_frames(values: np.ndarray, streams: Any, n_frames: int) -> np.ndarray:
    """A per-frame or per-unit stream stretched onto the ``n_frames`` frame timeline."""
    if len(values) == n_frames:
        return values
    durs = getattr(streams, "durations", None)
    if durs is not None and len(values) == len(durs):
        return np.repeat(values, np.asarray(durs, dtype=np.int64))
    idx = np.linspace(0, len(values) - 1, n_frames)  # e.g. per-unit F0 with predicted durations
    return values[np.round(idx).astype(np.int64)]


def _durations(streams: Any, n: int) -> np.ndarray:
    durs = getattr(streams, "durations", None)
    return np.asarray(durs, dtype=np.int64) if durs is not None else np.ones(n, dtype=np.int64)


class FallbackStats:
    """Running per-unit sums over (audio, streams) pairs; ``finish`` turns them into a vocoder."""

    def __init__(self, n_units: int, frame_rate: float, sample_rate: int) -> None:
        self.n_units, self.frame_rate, self.sample_rate = n_units, frame_rate, sample_rate
        n_bins = dsp.N_FFT // 2 + 1
        self.env_sum = np.zeros((n_units, n_bins))
        self.frames = np.zeros(n_units)
        self.voiced = np.zeros(n_units)
        self.logf0_sum = np.zeros(n_units)
        self.runs = np.zeros(n_units)
        self.run_frames = np.zeros(n_units)
        self.pair_frames = np.zeros((n_units, n_units))  # run lengths of b after a
        self.pair_runs = np.zeros((n_units, n_units))
        self.bin_sum: np.ndarray | None = None  # per f0 token bin: sum of voiced log-F0
        self.bin_n: np.ndarray | None = None

    def add(self, wav: np.ndarray, streams: Any) -> None:
        """Accumulate one utterance (``wav`` at ``sample_rate``, its token streams)."""
        units = check_units(streams)
        if units.size == 0:
            return
        durs = _durations(streams, len(units))
        centers = dsp.frame_centers(int(durs.sum()), self.frame_rate, self.sample_rate)
        self.add_frames(units, durs, dsp.log_envelope(wav, centers),
                        dsp.f0_track(wav, centers, self.sample_rate), getattr(streams, "f0", None))

    def add_frames(self, units: np.ndarray, durs: np.ndarray, env: np.ndarray, f0: np.ndarray,
                   bins: np.ndarray | None = None) -> None:
        """Accumulate analysed frames: per-unit ``units``/``durs``, per-frame ``env`` and ``f0``
        (Hz, 0 unvoiced), optional per-unit F0 token ``bins``."""
        units, durs = np.asarray(units, dtype=np.int64), np.asarray(durs, dtype=np.int64)
        if units.size == 0:
            return
        fu = np.repeat(units, durs)
        np.add.at(self.env_sum, fu, env)
        np.add.at(self.frames, fu, 1.0)
        voiced = f0 > 0
        np.add.at(self.voiced, fu, voiced.astype(np.float64))
        np.add.at(self.logf0_sum, fu[voiced], np.log(f0[voiced]))
        np.add.at(self.runs, units, 1.0)
        np.add.at(self.run_frames, units, durs.astype(np.float64))
        np.add.at(self.pair_frames, (units[:-1], units[1:]), durs[1:].astype(np.float64))
        np.add.at(self.pair_runs, (units[:-1], units[1:]), 1.0)
        if bins is not None and len(bins) == len(units):
            self._add_bins(np.repeat(np.asarray(bins, dtype=np.int64), durs), f0)

    def _add_bins(self, frame_bins: np.ndarray, f0: np.ndarray) -> None:
        """Learn what each f0 token bin means in Hz (the tokens are speaker-normalised bins)."""
        n = int(frame_bins.max()) + 1
        if self.bin_sum is None or len(self.bin_sum) < n:
            grow = lambda a: np.pad(a, (0, n - len(a))) if a is not None else np.zeros(n)  # noqa: E731
            self.bin_sum, self.bin_n = grow(self.bin_sum), grow(self.bin_n)
        ok = (frame_bins > 0) & (f0 > 0)
        np.add.at(self.bin_sum, frame_bins[ok], np.log(f0[ok]))
        np.add.at(self.bin_n, frame_bins[ok], 1.0)

    def finish(self) -> FallbackVocoder:
        """Per-unit means; units never seen get the global means (and a warning count of 0)."""
        if self.frames.sum() == 0:
            raise SpeechLMError("no token frames were seen: cannot fit the fallback vocoder")
        seen = self.frames > 0
        global_env = self.env_sum[seen].sum(0) / self.frames[seen].sum()
        env = np.where(seen[:, None], self.env_sum / np.maximum(self.frames, 1)[:, None],
                       global_env[None, :])
        voicing = np.where(seen, self.voiced / np.maximum(self.frames, 1), 0.5)
        global_logf0 = self.logf0_sum.sum() / max(self.voiced.sum(), 1.0)
        if self.voiced.sum() == 0:
            global_logf0 = np.log(120.0)
        log_f0 = np.where(self.voiced > 0, self.logf0_sum / np.maximum(self.voiced, 1),
                          global_logf0)
        global_dur = self.run_frames.sum() / max(self.runs.sum(), 1.0)
        mean_dur = np.where(self.runs > 0, self.run_frames / np.maximum(self.runs, 1), global_dur)
        # pair means shrunk towards the unit's mean: rare pairs barely move it
        prior = PAIR_PRIOR_RUNS
        pair_dur = (self.pair_frames + prior * mean_dur[None, :]) / (self.pair_runs + prior)
        bin_log_f0 = None
        if self.bin_sum is not None:
            bin_log_f0 = np.where(self.bin_n > 0, self.bin_sum / np.maximum(self.bin_n, 1),
                                  global_logf0).astype(np.float32)
        f32 = np.float32
        return FallbackVocoder(self.sample_rate, float(self.frame_rate), env.astype(f32),
                               voicing.astype(f32), log_f0.astype(f32), mean_dur.astype(f32),
                               self.frames.astype(f32), bin_log_f0, pair_dur.astype(f32))


def fit_from_pairs(
    pairs: Iterable[tuple[np.ndarray, Any]], n_units: int, frame_rate: float, sample_rate: int
) -> FallbackVocoder:
    """Fit from (audio, streams) pairs directly (no tokenizer directory needed)."""
    stats = FallbackStats(n_units, frame_rate, sample_rate)
    for wav, streams in pairs:
        stats.add(wav, streams)
    return stats.finish()


def fit_fallback_vocoder(
    manifest: str | Path,
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    max_hours: float = 1.0,
    batch_size: int = 16,
) -> Path:
    """Fit the fallback vocoder on (up to ``max_hours`` of) a manifest's audio; returns ``out_dir``.

    Utterances whose audio cannot be read are skipped and listed in ``out_dir/errors.jsonl``.
    """
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.errors import AudioError
    from speechlm.progress import progress_bar
    from speechlm.tokenizers import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    utts = read_manifest(manifest)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sr = int(tok.sample_rate)
    stats = FallbackStats(int(tok.n_units), float(tok.frame_rate), sr)
    errors, seconds, batch = [], 0.0, []
    budget = max_hours * 3600.0

    def flush() -> None:
        wavs = [w for _, w in batch]
        for wav, streams in zip(wavs, tok.encode(wavs, sr), strict=True):
            stats.add(wav, streams)
        batch.clear()

    for utt in progress_bar(utts, unit="utt", desc="fit fallback vocoder"):
        if seconds >= budget:
            break
        try:
            wav = load_audio(utt.audio, sr, start=utt.start, end=utt.end)
        except AudioError as e:
            errors.append({"id": utt.id, "error": str(e)})
            continue
        seconds += len(wav) / sr
        batch.append((utt.id, wav))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    vocoder = stats.finish()
    vocoder.save(out)
    with open(out / "errors.jsonl", "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in errors)
    cfg = json.loads((out / "vocoder.json").read_text())
    cfg.update({"tokenizer": str(Path(tokenizer_dir).resolve()), "manifest":
                str(Path(manifest).resolve()), "fit_seconds": round(seconds, 1),
                "skipped": len(errors)})
    write_config(out, cfg)
    return out
