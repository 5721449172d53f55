"""VioLA: single-task baselines (``single_asr`` .. ``single_tts``) and the ``viola`` evaluation.

- the ``model`` stage (``architecture: viola``, a mix of ``viola_*`` formats) trains the one
  multi-task model into ``RUN/model``; the ``nar`` stage trains VALL-E's NAR and attaches it;
- ``single_<task>``: a model of the same architecture and size (the same vocabulary: every
  ``viola_*`` format declares every range) trained on that task alone, into
  ``RUN/single_<task>``; ``single_tts`` gets the NAR too;
- ``viola``: a held-out set spoken by the held-out voices (sentences of the training manifest
  left out); ASR WER, speech- and text-translation BLEU (``speechlm.evaluate.viola``) and TTS
  through ``eval speech`` (``speechlm.evaluate.tts``) for the multi-task model and each
  single-task model present. Output: ``RUN/viola/viola.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from speechlm.config import Config, at_least, positive
from speechlm.recipes.stages import STAGES, RunContext, Stage
from speechlm.recipes.stages.codec_lm import attach, train_stage
from speechlm.recipes.stages.corpus import TRAIN
from speechlm.sequences.viola import TASKS

SINGLE = {task: f"single_{task}" for task in TASKS}


@dataclass
class ViolaEvalConfig(Config):
    """The held-out set (``hours`` by the held-out voices, ``seed``), how many items each text
    task decodes and how many the TTS task speaks, and how TTS samples."""

    hours: float = positive(0.15)
    seed: int = 11  # not the corpus' or the benchmark's seed: other sentences
    items: int = at_least(1, 100)
    tts_items: int = at_least(1, 20)
    max_seconds: float = positive(6.0)
    target: str = "es"
    temperature: float = positive(0.8)
    top_k: int = at_least(0, 50)


def _models(ctx: RunContext) -> dict[str, tuple[str, list[str]]]:
    """Model name -> (stage, its tasks): the multi-task model and the single-task ones."""
    from speechlm.sequences.viola import task_of

    train = ctx.conf("model")
    out = {"viola": ("model", task_of(list(train.formats)))}
    for task, stage in SINGLE.items():
        if stage in ctx.recipe.stages:
            out[f"single_{task}"] = (stage, [task])
    return out


def _run_viola(ctx: RunContext, conf: ViolaEvalConfig, d: Path) -> dict:
    from speechlm.corpus.synth import HELDOUT_VOICES, synthesize_corpus
    from speechlm.evaluate.tts import evaluate_tts
    from speechlm.evaluate.viola import TEXT_TASKS, evaluate_viola_text
    from speechlm.generate.tts import TtsSettings

    synthesize_corpus(d / "heldout", conf.hours, seed=conf.seed, voices=list(HELDOUT_VOICES))
    manifest, train = d / "heldout" / "manifest.jsonl", ctx.dir("data") / TRAIN
    models = _models(ctx)
    text = evaluate_viola_text(
        {name: (ctx.dir(stage), [t for t in tasks if t in TEXT_TASKS])
         for name, (stage, tasks) in models.items()},
        manifest, d / "text", train_manifest=train, n_items=conf.items, seed=conf.seed,
        max_seconds=conf.max_seconds, target=conf.target)
    speakers = {f"tts_{name}": ctx.dir(stage) for name, (stage, tasks) in models.items()
                if "tts" in tasks}
    speech = {}
    if speakers:
        speech = evaluate_tts(
            speakers, manifest, d / "tts", train_manifest=train, n_items=conf.tts_items,
            seed=conf.seed, settings=TtsSettings(temperature=conf.temperature, top_k=conf.top_k,
                                                 seed=conf.seed),
            max_seconds=conf.max_seconds)["speech"]
    results = {name: dict(text["results"].get(name, {})) for name in models}
    for name in models:
        s = speech.get(f"tts_{name}")
        if s:
            results[name].update({"tts_wer": s["wer"], "tts_prompt_similarity":
                                  s["prompt_similarity"], "tts_mos": s["mos"]})
    record = {"n_items": text["n_items"], "results": results, "speech": speech}
    (d / "viola.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _plan_viola(ctx: RunContext, conf: ViolaEvalConfig) -> dict:
    names = ", ".join(f"{n} ({'/'.join(t)})" for n, (_, t) in _models(ctx).items())
    return {"viola": f"{conf.items} held-out items per text task, {conf.tts_items} spoken "
                     f"({conf.hours:g} h by held-out voices); models {names}"}


for _task, _stage in SINGLE.items():
    STAGES.add(_stage, train_stage(
        _stage, "viola", after_run=attach(_stage, "nar") if _task == "tts" else None,
        needs=("nar",) if _task == "tts" else ()))
STAGES.add("viola", Stage("viola", _run_viola, _plan_viola, config=ViolaEvalConfig,
                          needs=("data", "model", "nar"), after=tuple(SINGLE.values())))
