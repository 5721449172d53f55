"""``style``: the style-keeping benchmark (``speechlm eval style``) on labelled speech.

The stage speaks its own labelled set, every style by the held-out voices (never the training
ones), so a recipe trained on any corpus, synthetic or imported, is measured on the same set.
Outputs: ``RUN/style/corpus/`` (the labelled set) and ``speechlm eval style``'s layout in
``RUN/style/`` (``style.json``, ``style.md``, ``f0_<style>.png``, ``audio/``, ``classifier/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from speechlm.config import Config, at_least, choice, fraction, positive
from speechlm.recipes.stages import STAGES, RunContext, Stage
from speechlm.recipes.stages.evaluation import model_stage

# the figures recorded in .done and shown in the report (style.json holds every figure)
HEADLINE = ("style_accuracy", "sentiment_accuracy", "rest_style_accuracy",
            "resynth_style_accuracy", "rest_sentiment_accuracy", "chance", "majority_rate",
            "f0_corr", "rest_f0_corr", "resynth_f0_corr", "f0_min_mae_st", "f0_mean_mae_st",
            "resynth_f0_mae_st", "n_prompts", "n_samples_scored")


@dataclass
class StyleConfig(Config):
    """Labelled held-out-voice speech (``hours``, ``seed``), half to fit the style classifier and
    half for prompts; each prompt continued ``samples`` times."""

    hours: float = positive(0.4)
    seed: int = 7  # not the corpus' or the benchmark's seed: other sentences
    prompts_per_style: int = at_least(1, 20)
    samples: int = at_least(1, 3)
    prompt_seconds: float = positive(3.0)
    max_seconds: float = positive(4.0)
    min_seconds: float = at_least(0, 1.0)
    temperature: float = positive(0.8)
    classifier_fraction: float = fraction(0.5)
    model: str = choice("model", "model", "align")  # the stage whose model continues
    # S->S; S->T, T->S, T->T for a model with text tokens (interleaved training)
    directions: list = field(default_factory=lambda: ["S->S"])

    def validate(self) -> None:
        from speechlm.generate.crossmodal import check_directions

        check_directions(self.directions)


def _run_style(ctx: RunContext, conf: StyleConfig, d: Path) -> dict:
    from speechlm.corpus.styles import STYLES
    from speechlm.corpus.synth import HELDOUT_VOICES, synthesize_corpus
    from speechlm.evaluate.style import evaluate_style

    synthesize_corpus(d / "corpus", conf.hours, seed=conf.seed, voices=list(HELDOUT_VOICES),
                      styles=list(STYLES))
    result = evaluate_style(
        ctx.dir(conf.model), d / "corpus" / "manifest.jsonl", d,
        prompts_per_style=conf.prompts_per_style, prompt_seconds=conf.prompt_seconds,
        continuation_seconds=conf.max_seconds, samples=conf.samples, seed=conf.seed,
        classifier_fraction=conf.classifier_fraction, temperature=conf.temperature,
        min_seconds=conf.min_seconds, directions=conf.directions)
    figures = {k: result["summary"].get(k) for k in HEADLINE}
    for d, f in result["summary"]["cross_modal"].items():  # e.g. "T->S style_accuracy"
        figures |= {f"{d} {k}": v for k, v in f.items() if k != "n_samples"}
    return figures


def _plan_style(ctx: RunContext, conf: StyleConfig) -> dict:
    return {"style": f"{conf.hours:g} h of labelled speech by held-out voices; "
                     f"{conf.prompts_per_style} prompts per style x {conf.samples} samples, "
                     f"{conf.prompt_seconds:g} s -> up to {conf.max_seconds:g} s; "
                     f"{', '.join(conf.directions)}"}


STAGES.add("style", Stage("style", _run_style, _plan_style, config=StyleConfig,
                          needs=("vocoder",), extra_needs=model_stage))
