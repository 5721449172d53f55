"""Spoken dialogue (dGSLM): ``dialogues``, ``dialogue_tokens``, ``dialogue_generate``, ``turns``
and ``dialogue_eval``.

The mono stages (``corpus``, ``data``, ``tokenizer``, ``vocoder``) fit the unit tokenizer and the
vocoder on mono speech; these stages bring two-channel dialogue:

- ``dialogues``: synthetic two-speaker dialogues (``speechlm.corpus.dialogue``): a training set
  by the training voices and a valid set by voices no dialogue, tokenizer or vocoder was trained
  on (default: the held-out voices of the benchmarks); or an imported dialogue manifest
  (``manifest``: ``speechlm corpus import SRC --format dialogue``) split by dialogue, a
  training dialogue sharing a speaker with a held-out one being dropped (listed).
  Output: ``RUN/dialogues/{train,valid}/manifest.jsonl``.
- ``dialogue_tokens``: both channels of each dialogue through the run's tokenizer at frame rate
  (``speechlm.tokenizers.dialogue``), with the silence unit counted on the training split.
  Output: token datasets ``RUN/dialogue_tokens/{train,valid}`` (columns ``units_a``,
  ``units_b``), which the ``model`` stage trains on with ``architecture: dgslm``.
- ``dialogue_generate``: held-out prompts continued by dGSLM and by the cascaded baseline
  (``speechlm.generate.dialogue``). Output: ``RUN/dialogue_generate/{data,resynth,model,
  baseline}/<id>.wav``.
- ``turns``: ``speechlm eval turns`` on each of those folders, and how far dGSLM and the
  baseline are from the data (``speechlm.evaluate.turns.compare_sources``).
- ``dialogue_eval``: the zero-shot benchmarks (``tasks``, default lexical) with each item on
  channel A and on channel B (the other channel silent), through the dgslm architecture.

A dialogue that cannot be used (not two channels, unreadable, shorter than the prompt and the
continuation) is skipped, counted and listed in the stage's record, never fatal alone.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from speechlm.config import Config, at_least, choice, fraction, positive
from speechlm.errors import ConfigError
from speechlm.recipes.stages import STAGES, RunContext, Stage, config_values

MANIFEST = "manifest.jsonl"
SPLITS = ("train", "valid")


def _check_voices(key: str, voices: list | None) -> None:
    if voices is not None and (len(voices) < 2 or not all(isinstance(v, str) for v in voices)):
        raise ConfigError(f"{key}: expected a list of at least 2 espeak-ng voice names (a "
                          f"dialogue has 2 speakers), got {voices!r}")


# ---- dialogues ------------------------------------------------------------------------------
@dataclass
class DialoguesConfig(Config):
    """Synthetic dialogues (``hours`` of training dialogue by ``voices``, ``valid_hours`` by
    ``valid_voices``) or an imported dialogue manifest (``manifest``, ``valid_fraction`` of its
    dialogues held out)."""

    hours: float | None = positive(None)
    valid_hours: float = positive(0.1)
    seed: int = 0
    voices: list | None = None  # default: speechlm.corpus.dialogue.DIALOGUE_VOICES
    valid_voices: list | None = None  # default: speechlm.corpus.synth.HELDOUT_VOICES
    manifest: str | None = None
    valid_fraction: float = fraction(0.05)

    def validate(self) -> None:
        if self.hours is not None and self.manifest is not None:
            raise ConfigError("manifest: give either hours (synthetic dialogues) or manifest "
                              "(an imported dialogue manifest), not both")
        _check_voices("voices", self.voices)
        _check_voices("valid_voices", self.valid_voices)
        shared = set(self.train_voices()) & set(self.heldout_voices())
        if shared:
            raise ConfigError(f"valid_voices: {sorted(shared)} also speak training dialogues; "
                              "held-out voices must be new to the model")

    def train_voices(self) -> list[str]:
        from speechlm.corpus.dialogue import DIALOGUE_VOICES

        return list(self.voices or DIALOGUE_VOICES)

    def heldout_voices(self) -> list[str]:
        from speechlm.corpus.synth import HELDOUT_VOICES

        return list(self.valid_voices or HELDOUT_VOICES)


def dialogue_manifest(ctx: RunContext, split: str) -> Path:
    """``RUN/dialogues/<split>/manifest.jsonl``."""
    return ctx.dir("dialogues") / split / MANIFEST


def _speakers(record: dict) -> set[str]:
    return {c["speaker"] for c in record["channels"] if c.get("speaker")}


def split_dialogues(records: list[dict], valid_fraction: float, seed: int
                    ) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, valid, dropped): a seeded choice of whole dialogues held out; a training
    dialogue with a held-out speaker is dropped, so valid speakers are new to the model."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, round(len(records) * valid_fraction))
    if len(records) < 2:
        raise ConfigError(f"manifest: {len(records)} dialogue(s); a train/valid split needs 2")
    valid = [records[i] for i in sorted(order[:n_valid])]
    held = set().union(*(_speakers(r) for r in valid))
    rest = [records[i] for i in sorted(order[n_valid:])]
    train = [r for r in rest if not _speakers(r) & held]
    dropped = [{"id": r["id"], "reason": "shares a speaker with a held-out dialogue"}
               for r in rest if _speakers(r) & held]
    if not train:
        raise ConfigError("manifest: every training dialogue shares a speaker with the held-out "
                          "ones; lower valid_fraction")
    return train, valid, dropped


def _summary(records: list[dict]) -> dict:
    return {"dialogues": len(records),
            "hours": round(sum(r["duration"] for r in records) / 3600, 4),
            "speakers": len(set().union(*(_speakers(r) for r in records))) if records else 0}


def _run_dialogues(ctx: RunContext, conf: DialoguesConfig, d: Path) -> dict:
    from speechlm.corpus.dialogue import read_dialogues, synthesize_dialogues

    if conf.manifest is not None:
        records = read_dialogues(conf.manifest)  # audio paths made absolute
        train, valid, dropped = split_dialogues(records, conf.valid_fraction, conf.seed)
        for split, recs in zip(SPLITS, (train, valid), strict=True):
            (d / split).mkdir(parents=True, exist_ok=True)
            (d / split / MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in recs))
        return {"source": "imported", "manifest": ctx.rel(conf.manifest),
                **{s: _summary(r) for s, r in zip(SPLITS, (train, valid), strict=True)},
                "dropped": dropped}
    if conf.hours is None:
        raise ConfigError(f"dialogues: recipe '{ctx.recipe.name}' at scale '{ctx.recipe.scale}' "
                          "has no synthetic dialogues: give dialogues.manifest=<dialogue "
                          "manifest> (speechlm corpus import SRC --format dialogue)")
    synthesize_dialogues(d / "train", conf.hours, conf.seed, voices=conf.train_voices())
    synthesize_dialogues(d / "valid", conf.valid_hours, conf.seed + 1,
                         voices=conf.heldout_voices())
    return {"source": "synthetic", **{s: _summary(read_dialogues(d / s / MANIFEST))
                                      for s in SPLITS},
            "valid_voices": conf.heldout_voices()}


def _plan_dialogues(ctx: RunContext, conf: DialoguesConfig) -> dict:
    if conf.manifest is not None:
        if not Path(conf.manifest).is_file():
            raise ConfigError(f"manifest: {conf.manifest} not found")
        return {"dialogues": f"{conf.manifest}, {conf.valid_fraction:g} held out by dialogue"}
    if conf.hours is None:
        return {"dialogues": "needs dialogues.manifest=<an imported dialogue manifest>"}
    return {"dialogues": f"synthetic, {conf.hours:g} h by {len(conf.train_voices())} voices; "
                         f"valid {conf.valid_hours:g} h by {len(conf.heldout_voices())} "
                         "held-out voices"}


def _dialogues_record(ctx: RunContext, conf: DialoguesConfig) -> dict:
    values = config_values(conf)
    if conf.manifest is not None:
        from speechlm.fingerprint import file_digest

        # the content, not just the path: an edited manifest is another set of dialogues
        values["manifest_sha256"] = file_digest(conf.manifest)
    return values


STAGES.add("dialogues", Stage("dialogues", _run_dialogues, _plan_dialogues,
                              config=DialoguesConfig, record=_dialogues_record))


# ---- dialogue_tokens ------------------------------------------------------------------------
@dataclass
class DialogueTokensConfig(Config):
    """How each channel is tokenised (``speechlm.tokenizers.dialogue``): ``segments: whole``
    (one piece) or ``speech`` (speech regions closer than ``region_gap`` s merged, ``pad`` s
    of context around each, silence unit between)."""

    segments: str = choice("whole", "whole", "speech")
    region_gap: float = positive(1.0)
    pad: float = at_least(0, 0.2)

    def validate(self) -> None:
        if 2 * self.pad >= self.region_gap:
            raise ConfigError(f"pad: two pads ({2 * self.pad:g} s) must be shorter than "
                              f"region_gap ({self.region_gap:g} s), or regions overlap")


def _run_dialogue_tokens(ctx: RunContext, conf: DialogueTokensConfig, d: Path) -> dict:
    from speechlm.corpus.dialogue import read_dialogues
    from speechlm.tokenizers import load_tokenizer
    from speechlm.tokenizers.dialogue import tokenize_dialogues, write_dialogue_tokens

    tok = load_tokenizer(ctx.dir("tokenizer"))
    info, silence = {}, None
    for split in SPLITS:  # train first: its silence unit fills the valid set too
        rows, errors, silence = tokenize_dialogues(
            tok, read_dialogues(dialogue_manifest(ctx, split)), conf.segments, conf.region_gap,
            conf.pad, silence=silence, progress=True)
        info[split] = write_dialogue_tokens(d / split, rows, errors, tok, ctx.dir("tokenizer"),
                                            silence_unit=silence, segments=conf.segments,
                                            region_gap=conf.region_gap, pad=conf.pad)
    return {**info, "silence_unit": silence, "frame_rate": tok.frame_rate}


def _plan_dialogue_tokens(ctx: RunContext, conf: DialogueTokensConfig) -> dict:
    how = "whole channels" if conf.segments == "whole" else \
        f"speech regions (gap {conf.region_gap:g} s, pad {conf.pad:g} s)"
    return {"tokens": f"each channel at frame rate, {how}, through the run's tokenizer"}


STAGES.add("dialogue_tokens", Stage("dialogue_tokens", _run_dialogue_tokens,
                                    _plan_dialogue_tokens, config=DialogueTokensConfig,
                                    needs=("dialogues", "tokenizer")))


# ---- dialogue_generate ----------------------------------------------------------------------
@dataclass
class DialogueGenerateConfig(Config):
    """``max_prompts`` held-out dialogues: the first ``prompt_seconds`` continued ``seconds`` by
    dGSLM and by the cascaded baseline (the floor passes after ``switch_seconds`` of silence of
    its holder, checked every ``chunk_frames``)."""

    prompt_seconds: float = positive(10.0)
    seconds: float = positive(20.0)
    max_prompts: int = positive(20)
    temperature: float = positive(1.0)
    top_k: int = at_least(0, 0)  # 0: no top-k filtering
    seed: int = 0
    switch_seconds: float = positive(0.5)
    chunk_frames: int = positive(5)


def _run_dialogue_generate(ctx: RunContext, conf: DialogueGenerateConfig, d: Path) -> dict:
    from speechlm.corpus.dialogue import read_dialogues
    from speechlm.generate.continuation import resolve_vocoder
    from speechlm.generate.dialogue import DialogueSampling, continue_dialogues
    from speechlm.models import load_speech_lm
    from speechlm.train.data import load_rows

    lm = load_speech_lm(ctx.dir("model"))
    rows = sorted(load_rows(ctx.dir("dialogue_tokens") / "valid"), key=lambda r: r["id"])
    records = {r["id"]: r for r in read_dialogues(dialogue_manifest(ctx, "valid"))}
    settings = DialogueSampling(**{k: v for k, v in config_values(conf).items()
                                   if k != "max_prompts"})
    return continue_dialogues(lm, resolve_vocoder(lm), rows, records, d, settings,
                              conf.max_prompts, progress=True)


def _plan_dialogue_generate(ctx: RunContext, conf: DialogueGenerateConfig) -> dict:
    return {"continuations": f"{conf.max_prompts} held-out prompts of {conf.prompt_seconds:g} s "
                             f"-> {conf.seconds:g} s by dGSLM and by the turn-based baseline "
                             f"(floor passes after {conf.switch_seconds:g} s of silence)"}


STAGES.add("dialogue_generate", Stage(
    "dialogue_generate", _run_dialogue_generate, _plan_dialogue_generate,
    config=DialogueGenerateConfig, needs=("dialogues", "dialogue_tokens", "model", "vocoder")))


# ---- turns ----------------------------------------------------------------------------------
@dataclass
class TurnsConfig(Config):
    """``speechlm eval turns`` settings: the voice activity detector and the IPU silence."""

    vad: str = choice("silero", "silero", "energy")
    min_silence: float = positive(0.2)


def _run_turns(ctx: RunContext, conf: TurnsConfig, d: Path) -> dict:
    from speechlm.evaluate.turns import compare_sources, evaluate_turns
    from speechlm.generate.dialogue import SOURCES

    stats, info = {}, {"vad": conf.vad, "min_silence_s": conf.min_silence}
    for source in SOURCES:
        result = evaluate_turns([ctx.dir("dialogue_generate") / source], d / source, conf.vad,
                                conf.min_silence, progress=False)
        stats[source] = result["aggregate"]
        info[source] = {k: v for k, v in result["aggregate"].items()
                        if k not in ("histograms", "histogram_edges_s")}
        info[source]["gap_histogram"] = result["aggregate"].get("histograms", {}).get("gap")
        info[source]["skipped_files"] = result["skipped"]
    info["histogram_edges_s"] = stats["data"].get("histogram_edges_s")
    info["comparison"] = {ref: compare_sources(stats, ref) for ref in ("data", "resynth")
                          if stats[ref].get("histograms")}
    (d / "turns.json").write_text(json.dumps(info, indent=1))
    return info


def _plan_turns(ctx: RunContext, conf: TurnsConfig) -> dict:
    return {"turns": f"IPUs, pauses, gaps, overlaps ({conf.vad} VAD) of data, resynthesis, "
                     "dGSLM and the baseline"}


STAGES.add("turns", Stage("turns", _run_turns, _plan_turns, config=TurnsConfig,
                          needs=("dialogue_generate",)))


# ---- dialogue_eval --------------------------------------------------------------------------
@dataclass
class DialogueEvalConfig(Config):
    """Zero-shot ``tasks`` (lexical, syntactic) with the item on channel A, then on channel B."""

    tasks: list = field(default_factory=lambda: ["lexical"])
    scoring: str = choice("sum", "sum", "mean")
    batch_size: int = positive(32)

    def validate(self) -> None:
        bad = [t for t in self.tasks if t not in ("lexical", "syntactic")]
        if not self.tasks or bad:
            raise ConfigError(f"tasks: a list of lexical, syntactic; got {self.tasks!r}")


KEPT = ("accuracy", "n_pairs", "scoring", "chance", "accuracy_by_scoring")


def _run_dialogue_eval(ctx: RunContext, conf: DialogueEvalConfig, d: Path) -> dict:
    import numpy as np

    from speechlm.evaluate.zerospeech import evaluate_zerospeech, read_submission
    from speechlm.models import load_speech_lm
    from speechlm.models.dialogue import for_channel

    lm = load_speech_lm(ctx.dir("model"))
    benchmarks, differences = {}, {}
    for task in conf.tasks:
        written = []
        for c, name in enumerate((task, f"{task}_channel_b")):
            out = d / f"channel_{'ab'[c]}"
            r = evaluate_zerospeech(for_channel(lm, c), ctx.dir("benchmark"), task, out,
                                    conf.scoring, batch_size=conf.batch_size, progress=False)
            benchmarks[name] = {k: r[k] for k in KEPT if k in r} | {"channel": "AB"[c]}
            written.append(read_submission(r["submission"]))
        a, b = (np.asarray([w[k] for k in sorted(written[0])]) for w in written)
        differences[task] = float(np.nanmax(np.abs(a - b))) if len(a) else 0.0
    return {"benchmarks": benchmarks, "max_score_difference_a_b": differences}


def _plan_dialogue_eval(ctx: RunContext, conf: DialogueEvalConfig) -> dict:
    return {"benchmarks": f"{', '.join(conf.tasks)} with the item on channel A, then B "
                          f"({conf.scoring} of edge log-probabilities)"}


STAGES.add("dialogue_eval", Stage("dialogue_eval", _run_dialogue_eval, _plan_dialogue_eval,
                                  config=DialogueEvalConfig, needs=("benchmark", "model")))
