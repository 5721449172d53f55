"""Codec language models (VALL-E): ``codec``, ``nar``, ``delayed`` and ``tts``.

- ``codec``: train the neural codec inside the run (``speechlm codec train`` on the training
  split); the section is a :class:`~speechlm.codec.CodecTrainConfig` without its paths, plus
  ``preset`` (tiny or paper) under the keys given. A tokenizer reads it with
  ``tokenizer: {kind: dac, model: <codec>}``. Output: ``RUN/codec/``.
- the ``model`` stage (``architecture: valle``) trains VALL-E's AR into ``RUN/model``;
- ``nar``: VALL-E's NAR (``architecture: valle_nar``, a train section) into ``RUN/nar``, then
  attached to ``RUN/model`` as its ``nar`` sub-model;
- ``delayed``: the delay-pattern variant (``architecture: codec_delayed``) into ``RUN/delayed``;
- ``tts``: zero-shot TTS on held-out voices and sentences (``speechlm.evaluate.tts``): a set
  spoken by the held-out voices is synthesised into ``RUN/tts/heldout``, and VALL-E (kind
  ``tts``), the delayed model (``tts_delayed``), the codec round trip (``resynth``) and the
  ground truth (``original``) are scored by ``eval speech``. Output: ``RUN/tts/tts.json``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechlm.config import Config, at_least, positive
from speechlm.errors import ConfigError
from speechlm.recipes.stages import STAGES, RunContext, Stage, config_values, refuse_recipe_keys
from speechlm.recipes.stages.corpus import TRAIN
from speechlm.recipes.stages.lm import (
    model_needs,
    parse_train,
    plan_model,
    run_model,
    train_values,
)
from speechlm.train.config import TrainConfig

# ---- codec -----------------------------------------------------------------------------------
CODEC_PATHS = {"manifest": f"data/{TRAIN}", "output_dir": "codec"}


def _parse_codec(section: Any, prefix: str) -> Any:
    from speechlm.codec import CodecTrainConfig, preset

    if not isinstance(section, dict):
        return CodecTrainConfig.from_dict(section, prefix)  # names the section's type error
    refuse_recipe_keys(section, prefix, CODEC_PATHS)
    rest = dict(section)
    try:
        d = preset(rest.pop("preset", "tiny"))
    except ConfigError as e:
        raise ConfigError(f"{prefix}{e}") from None
    model = {**d.get("model", {}), **rest.pop("model", {})}
    return CodecTrainConfig.from_dict({**d, **rest, "model": model, **CODEC_PATHS}, prefix)


def _codec_values(ctx: RunContext, conf: Any) -> dict:
    values = config_values(conf)
    for key in (*CODEC_PATHS, "progress", "max_steps", "save_steps", "logging_steps",
                "save_total_limit"):
        values.pop(key, None)  # where and how verbose; more steps resume the same codec
    values["max_steps"] = conf.max_steps
    return values


def _run_codec(ctx: RunContext, conf: Any, d: Path) -> dict:
    from speechlm.codec import train_codec

    paths = {k: str(ctx.out / rel) for k, rel in CODEC_PATHS.items()}
    metrics = train_codec(dataclasses.replace(conf, **paths))
    losses = metrics["train_loss"]
    return {"steps": metrics["steps"], "parameters": metrics["parameters"],
            "final_train_loss": losses[-1][1] if losses else None}


def _plan_codec(ctx: RunContext, conf: Any) -> dict:
    dac = conf.dac_config()
    return {"codec": f"DAC, {dac.n_codebooks} x {dac.codebook_size} codes at "
                     f"{dac.sampling_rate / dac.hop_length:g} Hz, {conf.max_steps} steps"}


def _codec_config_class() -> type:
    from speechlm.codec import CodecTrainConfig

    return CodecTrainConfig


# ---- nar, delayed: more models trained like the model stage ---------------------------------
def train_stage(name: str, architecture: str, after_run=None, needs: tuple[str, ...] = (),
                tokens: str = "tokens") -> Stage:
    """A stage that trains one more model like the ``model`` stage, into ``RUN/<name>``, on
    the ``tokens`` stage's datasets; ``after_run(ctx)`` then runs (VALL-E: attach the NAR)."""
    def parse(section: Any, prefix: str) -> TrainConfig:
        conf = parse_train(section, prefix, output_dir=name)
        if conf.architecture != architecture:
            raise ConfigError(f"{prefix}architecture: the {name} stage trains {architecture}, "
                              f"got {conf.architecture}")
        if tokens != "tokens":
            conf = dataclasses.replace(conf, data=f"{tokens}/train", eval_data=f"{tokens}/valid")
        return conf

    def run(ctx: RunContext, conf: TrainConfig, d: Path) -> dict:
        metrics = run_model(ctx, conf, d)
        if after_run is not None:
            after_run(ctx)
        return {k: metrics.get(k) for k in ("steps", "parameters", "final_eval_loss",
                                             "kept_step", "too_long", "precision")}

    def stage_needs(conf: TrainConfig) -> tuple[str, ...]:
        return tuple(n for n in model_needs(conf) if n != "tokens") + (tokens,)

    return Stage(name, run, plan_model, config=TrainConfig, parse=parse,
                 extra_needs=stage_needs, needs=needs, record=train_values)


def attach(ar_stage: str, nar_stage: str):
    """``after_run`` of a NAR stage: attach ``RUN/<nar_stage>`` to ``RUN/<ar_stage>``."""
    def fn(ctx: RunContext) -> None:
        from speechlm.models.codec_lm import attach_nar

        attach_nar(ctx.dir(ar_stage), ctx.dir(nar_stage))

    return fn


# ---- tts -------------------------------------------------------------------------------------
@dataclass
class TtsConfig(Config):
    """The held-out set (``hours`` by the held-out voices, ``seed``), ``items`` spoken by each
    model, and how they sample (VALL-E samples its AR; the recipes' generation defaults)."""

    hours: float = positive(0.15)
    seed: int = 11  # not the corpus' or the benchmark's seed: other sentences
    items: int = at_least(1, 20)
    max_seconds: float = positive(6.0)  # longest target utterance
    prompt_min_seconds: float = positive(2.0)
    prompt_max_seconds: float = positive(5.0)
    temperature: float = positive(0.8)
    top_k: int = at_least(0, 50)

    def validate(self) -> None:
        if self.prompt_min_seconds > self.prompt_max_seconds:
            raise ConfigError(f"prompt_min_seconds: {self.prompt_min_seconds} is above "
                              f"prompt_max_seconds {self.prompt_max_seconds}")


def _tts_models(ctx: RunContext) -> dict[str, str]:
    """Kind of audio -> the stage whose model speaks it."""
    return {"tts": "model", **({"tts_delayed": "delayed"} if "delayed" in ctx.recipe.stages
                               else {})}


def _run_tts(ctx: RunContext, conf: TtsConfig, d: Path) -> dict:
    from speechlm.corpus.synth import HELDOUT_VOICES, synthesize_corpus
    from speechlm.evaluate.tts import evaluate_tts
    from speechlm.generate.tts import TtsSettings

    synthesize_corpus(d / "heldout", conf.hours, seed=conf.seed, voices=list(HELDOUT_VOICES))
    result = evaluate_tts(
        {kind: ctx.dir(stage) for kind, stage in _tts_models(ctx).items()},
        d / "heldout" / "manifest.jsonl", d,
        train_manifest=ctx.dir("data") / TRAIN, n_items=conf.items, seed=conf.seed,
        settings=TtsSettings(temperature=conf.temperature, top_k=conf.top_k, seed=conf.seed),
        max_seconds=conf.max_seconds,
        prompt_seconds=(conf.prompt_min_seconds, conf.prompt_max_seconds))
    return {"n_items": result["n_items"], "speech": result["speech"]}


def _plan_tts(ctx: RunContext, conf: TtsConfig) -> dict:
    kinds = ", ".join(["original", "resynth", *_tts_models(ctx)])
    return {"tts": f"{conf.items} held-out items ({conf.hours:g} h by held-out voices), "
                   f"kinds {kinds}; T={conf.temperature:g}, top-k {conf.top_k}"}


STAGES.add("codec", Stage("codec", _run_codec, _plan_codec, config=_codec_config_class(),
                          parse=_parse_codec, needs=("data",), record=_codec_values))
STAGES.add("nar", train_stage("nar", "valle_nar", after_run=attach("model", "nar"),
                              needs=("model",)))
STAGES.add("delayed", train_stage("delayed", "codec_delayed"))
STAGES.add("tts", Stage("tts", _run_tts, _plan_tts, config=TtsConfig,
                        needs=("data", "model", "nar"), after=("delayed",)))
