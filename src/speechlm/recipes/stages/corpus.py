"""Speech in: ``corpus`` (synthetic speech, or the user's ``--manifest``), ``data`` (the
train/valid split) and ``benchmark`` (zero-shot sets spoken by held-out voices).

Outputs: ``RUN/corpus/manifest.jsonl`` (synthetic) or the given manifest;
``RUN/data/train.jsonl`` and ``RUN/data/valid.jsonl``, whose audio paths are relative to
``RUN/data`` when the audio lies inside the run; ``RUN/benchmark/<task>/...``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechlm.config import Config, choice, fraction, positive
from speechlm.corpus.styles import check_styles
from speechlm.corpus.synth import TRAIN_VOICES
from speechlm.errors import ConfigError
from speechlm.recipes.stages import STAGES, RunContext, Stage, config_values

MANIFEST = "manifest.jsonl"
TRAIN, VALID = "train.jsonl", "valid.jsonl"


def _check_voices(voices: list | None) -> None:
    if voices is not None and (not voices or not all(isinstance(v, str) for v in voices)):
        raise ConfigError(f"voices: expected a non-empty list of espeak-ng voice names "
                          f"(e.g. en-us+m1), got {voices!r}")


# ---- corpus ---------------------------------------------------------------------------------
@dataclass
class CorpusConfig(Config):
    """Synthetic speech (espeak-ng voices speaking the grammar), with gold alignments."""

    hours: float = positive()
    seed: int = 0
    # the voice set is part of what the corpus is: recorded, so other voices mean another corpus
    voices: list = field(default_factory=lambda: list(TRAIN_VOICES))
    # speaking styles (speechlm.corpus.styles.STYLES) each utterance draws one of; None: unstyled
    styles: list | None = None

    def validate(self) -> None:
        _check_voices(self.voices)
        check_styles(self.styles)


def _parse_corpus(section: Any, prefix: str) -> CorpusConfig | None:
    # null (the paper scales): no synthetic corpus, the user gives --manifest
    return None if section is None else CorpusConfig.from_dict(section, prefix)


def _corpus_record(ctx: RunContext, conf: CorpusConfig | None) -> dict:
    if ctx.manifest is not None:
        from speechlm.fingerprint import file_digest

        # the content, not just the path: an edited manifest is another corpus
        return {"manifest": ctx.rel(ctx.manifest), "manifest_sha256": file_digest(ctx.manifest)}
    return config_values(conf)


def corpus_manifest(ctx: RunContext) -> Path:
    """The manifest the recipe trains on: ``--manifest``, else the synthetic one."""
    return ctx.manifest if ctx.manifest is not None else ctx.dir("corpus") / MANIFEST


def _run_corpus(ctx: RunContext, conf: CorpusConfig | None, d: Path) -> dict:
    if ctx.manifest is not None:
        from speechlm.corpus.manifest import read_manifest

        utts = read_manifest(ctx.manifest)
        return {"utterances": len(utts), "hours": sum(u.duration for u in utts) / 3600,
                "speakers": len({u.speaker for u in utts if u.speaker})}
    if conf is None:
        raise ConfigError(f"corpus: recipe '{ctx.recipe.name}' at scale '{ctx.recipe.scale}' has "
                          "no synthetic corpus: pass --manifest with an imported corpus")
    from speechlm.corpus.synth import synthesize_corpus

    return synthesize_corpus(d, hours=conf.hours, seed=conf.seed, voices=conf.voices,
                             styles=conf.styles)


def _plan_corpus(ctx: RunContext, conf: CorpusConfig | None) -> dict:
    if ctx.manifest is not None:
        if not ctx.manifest.is_file():
            raise ConfigError(f"manifest: {ctx.manifest} not found (--manifest)")
        return {"manifest": str(ctx.manifest)}
    if conf is None:
        return {"input": "needs --manifest (no synthetic corpus at this scale)"}
    return {"synthetic": f"{conf.hours:g} h, {len(conf.voices)} voices"}


STAGES.add("corpus", Stage(
    "corpus", _run_corpus, _plan_corpus, config=CorpusConfig, parse=_parse_corpus,
    record=_corpus_record))


# ---- data -----------------------------------------------------------------------------------
@dataclass
class DataConfig(Config):
    """The train/valid split of the corpus.

    ``by: speaker`` holds out whole speakers (the held-out loss then measures what the
    benchmarks measure: speech from voices the model never heard), ``utterance`` a random choice
    of utterances; ``auto`` splits by speaker when the corpus has at least ``min_speakers``
    speakers, by utterance otherwise (too few voices to spare some).
    """

    valid_fraction: float = fraction(0.03)
    seed: int = 0
    by: str = choice("auto", "auto", "speaker", "utterance")
    min_speakers: int = positive(10)
    # word times for an imported corpus (``speechlm corpus align``): ``auto`` (or unset, which
    # keeps the records of runs made before this key) adds them to the rows of --manifest that
    # lack them when a format of the recipe needs them (interleaving); ``always`` whatever the
    # formats
    align_words: str | None = choice(None, None, "auto", "always", "never")


def split_manifest(ctx: RunContext, manifest: Path, out_dir: Path, conf: DataConfig) -> dict:
    """Split utterances into ``train.jsonl``/``valid.jsonl`` (see :class:`DataConfig`)."""
    from speechlm.corpus.manifest import read_manifest, write_manifest

    utts = read_manifest(manifest)  # audio paths resolved
    for u in utts:  # relative to out_dir inside the run, so a moved run still finds its audio
        u.audio = ctx.rel(u.audio, start=out_dir)
    speakers = sorted({u.speaker for u in utts if u.speaker})
    by = conf.by
    if by == "auto":
        by = "speaker" if len(speakers) >= conf.min_speakers else "utterance"
    if by == "speaker" and len(speakers) < 2:
        raise ConfigError(f"by: speaker needs at least 2 speakers; {manifest} has "
                          f"{len(speakers)} (use by: utterance)")
    rng = random.Random(conf.seed)
    target = max(1, int(round(len(utts) * conf.valid_fraction)))
    if by == "speaker":
        rng.shuffle(speakers)
        held: set[str] = set()
        n = 0
        # whole speakers until the target is reached, always leaving one to train on
        for s in speakers[:-1]:
            if n >= target:
                break
            held.add(s)
            n += sum(u.speaker == s for u in utts)
        is_valid = [u.speaker in held for u in utts]
    else:
        order = list(range(len(utts)))
        rng.shuffle(order)
        chosen = set(order[:target])
        is_valid = [i in chosen for i in range(len(utts))]
    train = [u for u, v in zip(utts, is_valid, strict=True) if not v]
    valid = [u for u, v in zip(utts, is_valid, strict=True) if v]
    write_manifest(out_dir / TRAIN, train)
    write_manifest(out_dir / VALID, valid)
    return {"split_by": by, "train": len(train), "valid": len(valid),
            "valid_speakers": sorted({u.speaker for u in valid if u.speaker}) if by == "speaker"
            else [],
            "train_hours": sum(u.duration for u in train) / 3600,
            "valid_hours": sum(u.duration for u in valid) / 3600}


def _run_data(ctx: RunContext, conf: DataConfig, d: Path) -> dict:
    manifest, info = corpus_manifest(ctx), {}
    if _aligns(ctx, conf):  # rows that have words keep them (no work when all have)
        from speechlm.corpus.align import align_manifest

        a = align_manifest(manifest, d / "aligned", workers=min(4, os.cpu_count() or 1))
        info["word_alignment"] = (
            f"{a['aligned']} of {a['utterances']} utterances aligned ({a['method']}), "
            f"{a['kept_words']} had words, {a['errors']} not aligned (listed in "
            f"data/aligned/errors.jsonl)")
        manifest = d / "aligned" / MANIFEST
    return {**split_manifest(ctx, manifest, d, conf), **info}


def _aligns(ctx: RunContext, conf: DataConfig) -> bool:
    """Whether the imported corpus is word-aligned before the split (synthetic speech has its
    gold word times)."""
    if ctx.manifest is None or conf.align_words == "never":
        return False
    return conf.align_words == "always" or needs_word_times(ctx)


def needs_word_times(ctx: RunContext) -> bool:
    """Whether a training format of the recipe reads word times (interleaving)."""
    from speechlm.sequences.formats import parse_formats

    for conf in ctx.recipe.confs.values():
        formats = getattr(conf, "formats", None)
        if isinstance(formats, dict) and formats:
            if any(u.ratio > 0 and "words" in u.spec.needed(u.params)
                   for u in parse_formats(formats)):
                return True
    return False


def _plan_data(ctx: RunContext, conf: DataConfig) -> dict:
    how = {"speaker": "whole speakers", "utterance": "utterances",
           "auto": f"whole speakers (utterances if under {conf.min_speakers} speakers)"}[conf.by]
    plan = {"split": f"{conf.valid_fraction:g} of the corpus held out for validation, by {how}"}
    if _aligns(ctx, conf):
        plan["word times"] = ("added by `speechlm corpus align` where --manifest lacks them "
                              "(the training formats interleave words)")
    return plan


STAGES.add("data", Stage("data", _run_data, _plan_data, config=DataConfig, needs=("corpus",)))


# ---- benchmark ------------------------------------------------------------------------------
@dataclass
class BenchmarkConfig(Config):
    """Lexical, syntactic and StoryCloze sets (``pairs`` each) spoken by held-out voices."""

    seed: int = 0
    pairs: int = positive(400)
    voices: list | None = None  # default: the held-out voices, never in a training corpus

    def validate(self) -> None:
        _check_voices(self.voices)


def _run_benchmark(ctx: RunContext, conf: BenchmarkConfig, d: Path) -> dict:
    from speechlm.corpus.benchmarks import build_benchmarks

    return build_benchmarks(d, **config_values(conf))


def _plan_benchmark(ctx: RunContext, conf: BenchmarkConfig) -> dict:
    return {"sets": f"lexical, syntactic, ssc, tsc: {conf.pairs} pairs each"}


STAGES.add("benchmark", Stage("benchmark", _run_benchmark, _plan_benchmark,
                              config=BenchmarkConfig))
