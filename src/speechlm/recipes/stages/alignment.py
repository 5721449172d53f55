"""Preference alignment: ``preferences`` (the DPO pairs) and ``align`` (DPO from ``RUN/model``).

``preferences`` makes pairs one of two ways (``kind``):

- ``story``: spoken story pairs from the grammar (SpokenSwag-style), spoken by training voices
  and tokenised by the run's tokenizer;
- ``model``: the pre-trained model's own continuations of training prompts, ranked by the judge
  (Align-SLM style); needs the vocoder to speak them.

``align`` (section ``align``: a :class:`TrainConfig` without its paths, ``init: from_model`` of
``RUN/model``, objective ``dpo`` and format ``speech_preference`` by default) trains the aligned
model into ``RUN/align``, a complete model directory (the vocoder is installed beside it), which
the ``eval`` and ``generate`` stages evaluate with ``model: align``.

Outputs: ``RUN/preferences/{audio,tokens}`` (story pairs), ``ranking.jsonl`` (model pairs),
``train`` and ``valid`` (the pair token datasets); ``RUN/align`` (the model directory).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from speechlm.config import Config, at_least, choice, fraction, positive
from speechlm.errors import ConfigError
from speechlm.recipes.stages import STAGES, RunContext, Stage, config_values
from speechlm.recipes.stages.corpus import TRAIN
from speechlm.recipes.stages.finetune import finetune_stage


# ---- preferences ----------------------------------------------------------------------------
@dataclass
class PreferencesConfig(Config):
    """Preference pairs for DPO (see the module docstring); ``valid_fraction`` of them are held
    out for the preference loss."""

    kind: str = choice("story", "story", "model")
    pairs: int = positive(2000)  # story: how many pairs to speak
    scenarios: list | None = None  # story: the story scenarios pairs may use (None: all)
    voices: list | None = None  # story: speakers (default: the training voices)
    prompts: int = positive(300)  # model: prompts to continue
    prompt_seconds: float = positive(3.0)
    samples: int = at_least(2, 4)  # model: continuations per prompt to rank
    max_seconds: float = positive(4.0)
    min_seconds: float = at_least(0, 1.0)
    temperature: float = positive(1.0)
    max_auto_bleu: float = positive(0.3)  # model: drop a chosen side that repeats itself
    text_lm: str | None = None  # model: the judge's text LM (default: the grammar's tiny one)
    valid_fraction: float = fraction(0.1)
    seed: int = 0

    def validate(self) -> None:
        if self.min_seconds > self.max_seconds:
            raise ConfigError(f"min_seconds: must be <= max_seconds ({self.max_seconds:g})")


def _preferences_needs(conf: PreferencesConfig) -> tuple[str, ...]:
    return ("tokenizer",) if conf.kind == "story" else ("data", "model", "vocoder")


def _preferences_values(ctx: RunContext, conf: PreferencesConfig) -> dict:
    """Only the keys the chosen kind uses (an unused default changes nothing)."""
    used = {"story": ("kind", "pairs", "scenarios", "voices"),
            "model": ("kind", "prompts", "prompt_seconds", "samples", "max_seconds",
                      "min_seconds", "temperature", "max_auto_bleu", "text_lm")}[conf.kind]
    return {k: v for k, v in config_values(conf).items()
            if k in used or k in ("valid_fraction", "seed")}


def _run_preferences(ctx: RunContext, conf: PreferencesConfig, d: Path) -> dict:
    from speechlm.alignment.pairs import self_ranked_pairs, story_pair_rows, write_pair_splits

    if conf.kind == "story":
        from speechlm.corpus.preferences import synthesize_story_pairs
        from speechlm.tokenizers.job import tokenize_manifest
        from speechlm.train.data import read_info

        spoken = synthesize_story_pairs(d / "audio", conf.pairs, conf.seed, conf.voices,
                                        conf.scenarios)
        tokenize_manifest(d / "audio" / "manifest.jsonl", ctx.dir("tokenizer"), d / "tokens")
        rows, left_out = story_pair_rows(d / "audio", d / "tokens")
        info = read_info(d / "tokens")
        summary = {"hours": spoken["hours"], "scenarios": spoken["scenarios"],
                   "left_out": left_out}
        tokenizer, n_units, rate = info["tokenizer"], info["n_units"], info["frame_rate"]
    else:
        from speechlm.models import load_speech_lm

        rows, summary = self_ranked_pairs(
            ctx.dir("model"), ctx.dir("data") / TRAIN, d, n_prompts=conf.prompts,
            prompt_seconds=conf.prompt_seconds, n_samples=conf.samples,
            max_seconds=conf.max_seconds, min_seconds=conf.min_seconds,
            temperature=conf.temperature, seed=conf.seed, text_lm=conf.text_lm,
            max_auto_bleu=conf.max_auto_bleu)
        lm = load_speech_lm(ctx.dir("model"))
        tokenizer = lm.dir / lm.meta["tokenizers"]["speech"]
        n_units, rate = lm.speech_tokenizer.n_units, lm.speech_tokenizer.frame_rate
    counts = write_pair_splits(d, rows, tokenizer, n_units, rate, conf.valid_fraction, conf.seed)
    return {**summary, **counts}


def _plan_preferences(ctx: RunContext, conf: PreferencesConfig) -> dict:
    if conf.kind == "story":
        which = "all scenarios" if conf.scenarios is None else f"scenarios {conf.scenarios}"
        return {"pairs": f"{conf.pairs} spoken story pairs ({which}), "
                         f"{conf.valid_fraction:g} held out"}
    return {"pairs": f"the model's continuations of {conf.prompts} training prompts, "
                     f"{conf.samples} each, ranked by the judge; {conf.valid_fraction:g} held out"}


STAGES.add("preferences", Stage(
    "preferences", _run_preferences, _plan_preferences, config=PreferencesConfig,
    extra_needs=_preferences_needs, record=_preferences_values))


# ---- align ----------------------------------------------------------------------------------
STAGES.add("align", finetune_stage(
    "align", start="model", data="preferences/train", eval_data="preferences/valid",
    defaults={"objective": "dpo", "formats": {"speech_preference": 1.0}},
    needs=("preferences",)))
