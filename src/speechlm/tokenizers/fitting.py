"""``fit_tokenizer``: build a tokenizer of any kind from a manifest and save it to a folder."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from speechlm.corpus.manifest import read_manifest
from speechlm.errors import ConfigError
from speechlm.tokenizers.features import SPECTRAL_KINDS, FeatureStats, SpectralFeatures
from speechlm.tokenizers.frontends import ENCODER_KINDS, FRONTEND_KINDS, make_frontend

CODEC_KINDS = ("encodec", "mimi", "dac")
CONTINUOUS_KIND = "continuous"
ALL_KINDS = FRONTEND_KINDS + CODEC_KINDS + (CONTINUOUS_KIND,)
PROSODY_MAX_SECONDS = 2 * 3600  # audio kept in memory to fit F0 bins and pitch/style codebooks


def fit_tokenizer(manifest: str | Path, kind: str, n_units: int, out_dir: str | Path,
                  **opts) -> Path:
    """Fit a tokenizer of ``kind`` on ``manifest`` and save it in ``out_dir``.

    Unit kinds (``mfcc``, ``logmel``, ``hubert``, ``wav2vec2``, ``wavlm``, ``w2v-bert``, ``cpc``):
    k-means with ``n_units`` centroids on a uniform random sample of at most ``max_frames`` frames
    (default 200k) drawn from at most ``max_hours`` of audio. Options: ``seed``, ``dedup``
    (default True), ``smoothing`` (default 0: off; a penalty per change of unit, as a multiple of
    the median frame-to-centroid distance: see ``UnitTokenizer``), ``prosody`` (dict or True: F0
    bins, pitch and style tokens), ``n_iter``, plus
    the front end's own (``frame_rate``, ``model``, ``layer``, ...).
    ``causal=True`` (``mfcc``, ``logmel``): the front end the real-time engine runs frame by frame
    (``speechlm.tokenizers.streaming``); its normalisation statistics are fitted here on every
    sampled utterance's un-normalised features, then k-means on the normalised frames. It
    excludes ``smoothing`` (the Viterbi path looks at the whole utterance).
    Codec kinds (``encodec``, ``mimi``, ``dac``) need ``model`` (hub id or folder) and take
    ``n_codebooks``; ``continuous`` takes ``features`` (a front-end kind) and stores float16 frames.
    """
    out_dir = Path(out_dir)
    if kind in FRONTEND_KINDS and not (isinstance(n_units, int) and n_units >= 2):
        raise ConfigError(f"units: must be an integer >= 2, got {n_units!r}")
    for key in ("max_frames", "max_hours", "n_iter"):
        value = opts.get(key)
        if value is not None and not value > 0:
            raise ConfigError(f"{key}: must be > 0, got {value!r}")
    causal = bool(opts.pop("causal", False))
    if causal:
        _check_causal(kind, opts)
    if kind in CODEC_KINDS:
        from speechlm.tokenizers.codecs import CodecTokenizer

        return CodecTokenizer.create(kind, **opts).save(out_dir)
    if kind == CONTINUOUS_KIND:
        from speechlm.tokenizers.continuous import ContinuousTokenizer

        feat_kind = opts.pop("features", "logmel")
        if causal:
            opts["causal"] = True
        return ContinuousTokenizer(make_frontend(feat_kind, opts)).save(out_dir)
    if kind not in FRONTEND_KINDS:
        raise ConfigError(f"kind '{kind}' is unknown; valid kinds: {', '.join(ALL_KINDS)}")
    seed = int(opts.pop("seed", 0))
    max_frames = int(opts.pop("max_frames", 200_000))
    max_hours = opts.pop("max_hours", None)
    n_iter = int(opts.pop("n_iter", 25))
    dedup = bool(opts.pop("dedup", True))
    smoothing = float(opts.pop("smoothing", 0.0))
    if smoothing < 0:
        raise ConfigError(f"smoothing: {smoothing} must be >= 0 (0 turns it off)")
    if causal and smoothing:
        raise ConfigError(f"smoothing: {smoothing:g} cannot be used with causal=True (its Viterbi "
                          "path looks at the whole utterance, so streaming units would differ); "
                          "set smoothing=0 or causal=False")
    prosody_opts = opts.pop("prosody", None)
    normalize = bool(opts.get("normalize", True))
    # causal: sample un-normalised frames, fit the global statistics, then normalise the sample
    frontend = make_frontend(kind, {**opts, "causal": True, "normalize": False} if causal else opts)
    moments = _Moments() if causal and normalize else None
    utts = _sample_utterances(read_manifest(manifest), max_hours, seed)
    frames, wavs_for_prosody, skipped = _sample_frames(utts, frontend, max_frames, seed,
                                                       keep_audio=prosody_opts is not None,
                                                       moments=moments)
    if moments is not None:
        frontend = SpectralFeatures(replace(frontend.spec, normalize=True), moments.stats())
        frames = frontend.normalise(torch.from_numpy(frames)).numpy()
    from speechlm.tokenizers.kmeans import KMeansQuantizer
    from speechlm.tokenizers.units import UnitTokenizer

    quantizer = KMeansQuantizer.fit(frames, n_units, seed=seed, n_iter=n_iter)
    # the penalty in the features' own units, so one setting suits any front end
    penalty = smoothing * quantizer.median_distortion(frames) if smoothing else 0.0
    prosody = None
    if prosody_opts is not None:
        from speechlm.tokenizers.prosody import Prosody

        popts = {} if prosody_opts is True else dict(prosody_opts)
        prosody = Prosody.fit(wavs_for_prosody, frontend.sample_rate, seed=seed, **popts)
    path = UnitTokenizer(frontend, quantizer, dedup=dedup, prosody=prosody,
                         switch_penalty=penalty).save(out_dir)
    _write_errors(path / ERRORS_FILE, skipped)
    return path


ERRORS_FILE = "fit_errors.jsonl"  # utterances left out of the fit: unreadable or too short


def _check_causal(kind: str, opts: dict) -> None:
    """Refuse ``causal=True`` where there is no causal front end to build."""
    feat_kind = opts.get("features", "logmel") if kind == CONTINUOUS_KIND else kind
    if feat_kind in ENCODER_KINDS + CODEC_KINDS:
        what = "an SSL encoder" if feat_kind in ENCODER_KINDS else "a codec"
        raise ConfigError(f"causal: only the spectral front ends ({', '.join(SPECTRAL_KINDS)}) "
                          f"have a causal variant; '{feat_kind}' is {what}, whose frames see the "
                          "whole utterance")
    if kind == CONTINUOUS_KIND and opts.get("normalize", True):
        raise ConfigError("causal: a continuous tokenizer fits no normalisation statistics; set "
                          "normalize=False with causal=True")


class _Moments:
    """Per-dimension count, mean and sum of squared deviations over batches of frames
    (Chan et al.'s pairwise update, in float64: no cancellation over millions of frames)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = np.zeros(0)
        self.m2 = np.zeros(0)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)  # (T, D)
        nb, mb = len(x), x.mean(0)
        m2b = np.square(x - mb).sum(0)
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * nb / n
        self.m2 = self.m2 + m2b + np.square(delta) * self.n * nb / n
        self.n = n

    def stats(self) -> FeatureStats:
        std = np.sqrt(self.m2 / self.n)  # population std, as the per-utterance path uses
        return FeatureStats(self.mean.astype(np.float32).tolist(),
                            std.astype(np.float32).tolist())


def _write_errors(path: Path, errors: list[dict]) -> None:
    import json

    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)


def _sample_utterances(utts: list, max_hours: float | None, seed: int) -> list:
    """A random subset of at most ``max_hours`` (all of them when None), in random order."""
    order = np.random.default_rng(seed).permutation(len(utts))
    if max_hours is None:
        return [utts[i] for i in order]
    chosen, total = [], 0.0
    for i in order:
        if total >= max_hours * 3600:
            break
        chosen.append(utts[i])
        total += utts[i].duration
    return chosen


def _sample_frames(utts: list, frontend, max_frames: int, seed: int, keep_audio: bool,
                   moments: _Moments | None = None
                   ) -> tuple[np.ndarray, list[tuple[np.ndarray, str | None]], list[dict]]:
    """A uniform sample of frames, the audio kept for prosody, and the utterances skipped
    (``moments``: also accumulates the statistics of every frame, not only the sample's)."""
    from speechlm.progress import progress_bar
    from speechlm.tokenizers.kmeans import FrameSampler
    from speechlm.tokenizers.reading import iter_audio

    sampler = FrameSampler(max_frames, seed)
    kept: list[tuple[np.ndarray, str | None]] = []
    batch: list[tuple] = []  # (utterance, waveform)
    skipped: list[dict] = []
    kept_s = 0.0

    def flush() -> None:
        for (utt, _), x in zip(batch, frontend([w for _, w in batch]), strict=True):
            if len(x) == 0:
                skipped.append({"id": utt.id, "audio": utt.audio,
                                "error": f"too short to tokenise ({utt.duration:.3f}s)"})
                continue
            x = x.float().cpu().numpy()
            sampler.add(x)
            if moments is not None:
                moments.add(x)
        batch.clear()

    total = math.fsum(u.duration for u in utts)
    with progress_bar(total=total, unit="s", desc="features", leave=False) as bar:
        for utt, wav, err in iter_audio(utts, frontend.sample_rate):
            bar.update(utt.duration)  # exact seconds: whole ones per utterance would drift
            if err is not None:
                skipped.append({"id": utt.id, "audio": utt.audio, "error": err})
                continue
            batch.append((utt, wav))
            if keep_audio and kept_s < PROSODY_MAX_SECONDS:  # bounded, like the frame sample
                kept.append((wav, utt.speaker))
                kept_s += len(wav) / frontend.sample_rate
            if len(batch) >= 16:
                flush()
        if batch:
            flush()
    if sampler.seen == 0:
        first = skipped[0]["error"] if skipped else "-"
        raise ConfigError(f"no readable audio among {len(utts)} utterances ({len(skipped)} "
                          f"unreadable or too short; first: {first})")
    return sampler.frames(), kept, skipped
