"""``crossmodal``: cross-modal StoryCloze and next-word probes (``speechlm eval crossmodal``) and
the spoken-vs-written similarity of words by layer (``speechlm eval similarity``) on the run's
model.

The items and sentences are made and spoken here by the held-out voices (never the training
ones), so every recipe is measured on the same set. Outputs in ``RUN/crossmodal/``:
``crossmodal.json``/``.md``, and for a model with text tokens ``similarity.json``/``.md``/``.png``
(a speech-only model measures S->S; the rest is recorded as not applicable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from speechlm.config import Config, at_least, choice, positive
from speechlm.recipes.stages import STAGES, RunContext, Stage
from speechlm.recipes.stages.evaluation import model_stage


@dataclass
class CrossmodalConfig(Config):
    """``stories`` (a tSC and an sSC item each) and ``probes`` scored in ``directions``;
    ``sentences`` for the similarity by layer (0: skip it)."""

    stories: int = at_least(1, 100)
    probes: int = at_least(1, 100)
    sentences: int = at_least(0, 40)
    seed: int = 11  # not the benchmark's or the style stage's: other items
    directions: list = field(default_factory=lambda: ["S->S", "S->T", "T->S", "T->T"])
    batch_size: int = positive(32)
    model: str = choice("model", "model", "align")  # the stage whose model is measured

    def validate(self) -> None:
        from speechlm.generate.crossmodal import check_directions

        check_directions(self.directions)


def _run_crossmodal(ctx: RunContext, conf: CrossmodalConfig, d: Path) -> dict:
    """The figures recorded in ``.done`` and read by the report: DESIGN's ``tsc_s2s``, ...
    (``benchmarks``), the task x direction table and the similarity's best layer."""
    from speechlm.evaluate.crossmodal import NO_TEXT, evaluate_crossmodal
    from speechlm.evaluate.scoring import load_model
    from speechlm.evaluate.similarity import evaluate_similarity

    lm = load_model(ctx.dir(conf.model))  # one load for both measurements
    r = evaluate_crossmodal(lm, d, n_stories=conf.stories, n_probes=conf.probes,
                            seed=conf.seed, directions=conf.directions,
                            batch_size=conf.batch_size)
    info = {"benchmarks": {name: {"accuracy": f["accuracy"], "n_pairs": f["n_pairs"],
                                  "chance": f["chance"], "scoring": r["scoring"]}
                           for name, f in r["figures"].items()},
            "table": {task: {dr: f["accuracy"] for dr, f in by.items()}
                      for task, by in r["results"].items()},
            "not_applicable": sorted(r["not_applicable"]), "skipped": len(r["skipped"])}
    if not conf.sentences:
        return info
    if not lm.vocab.has_text:
        return info | {"similarity": {"not_applicable": NO_TEXT}}
    s = evaluate_similarity([lm], d, n_sentences=conf.sentences, seed=conf.seed)["models"][0]
    best = s["best_layer"]
    info["similarity"] = {"layers": len(s["layers"]), "best_layer": best,
                          **{k: None if best is None else s[k][best]
                             for k in ("matched", "mismatched", "difference")},
                          "n_words": s["n_words"], "plot": ctx.rel(d / "similarity.png")}
    return info


def _plan_crossmodal(ctx: RunContext, conf: CrossmodalConfig) -> dict:
    similarity = (f"; similarity of {conf.sentences} sentences by layer" if conf.sentences
                  else "")
    return {"crossmodal": f"{conf.stories} stories (tSC, sSC) and {conf.probes} next-word "
                          f"probes by held-out voices, {', '.join(conf.directions)}{similarity}"}


STAGES.add("crossmodal", Stage("crossmodal", _run_crossmodal, _plan_crossmodal,
                               config=CrossmodalConfig, extra_needs=model_stage))
