"""``fit_tokenizer``: build a tokenizer of any kind from a manifest and save it to a folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from speechlm.corpus.manifest import read_manifest
from speechlm.errors import ConfigError
from speechlm.tokenizers.frontends import FRONTEND_KINDS, make_frontend

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
    if kind in CODEC_KINDS:
        from speechlm.tokenizers.codecs import CodecTokenizer

        return CodecTokenizer.create(kind, **opts).save(out_dir)
    if kind == CONTINUOUS_KIND:
        from speechlm.tokenizers.continuous import ContinuousTokenizer

        feat_kind = opts.pop("features", "logmel")
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
    prosody_opts = opts.pop("prosody", None)
    frontend = make_frontend(kind, opts)
    utts = _sample_utterances(read_manifest(manifest), max_hours, seed)
    frames, wavs_for_prosody, skipped = _sample_frames(utts, frontend, max_frames, seed,
                                                       keep_audio=prosody_opts is not None)
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


def _sample_frames(utts: list, frontend, max_frames: int, seed: int, keep_audio: bool
                   ) -> tuple[np.ndarray, list[tuple[np.ndarray, str | None]], list[dict]]:
    """A uniform sample of frames, the audio kept for prosody, and the utterances skipped."""
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
            sampler.add(x.float().cpu().numpy())
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
