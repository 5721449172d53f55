"""Real-time interaction (LSLM, Moshi, VITA): ``duplex_corpus``, ``duplex_tokens``,
``duplex_eval`` and ``fusions``.

The mono stages (``corpus``, ``data``, ``tokenizer`` with ``causal: true``, ``vocoder``) fit the
causal unit tokenizer and the vocoder on mono speech; these stages bring interaction:

- ``duplex_corpus``: synthetic scenarios (``speechlm.corpus.duplex``): the user's microphone on
  one channel, the assistant on the other; ``kinds`` chooses the behaviours (queries and
  answers, interruptions, non-query audio for silence mode, stories with backchannels). Valid and
  test scenarios are spoken by held-out voices. Output: ``RUN/duplex_corpus/``.
- ``duplex_tokens``: both channels through the causal tokenizer at frame rate, plus the text
  stream (``words``: the assistant's words as well as its state tokens). Output: token datasets
  ``RUN/duplex_tokens/{train,valid}``, which the ``model`` stage trains on (``objective:
  duplex``).
- ``duplex_eval``: ``speechlm eval duplex`` of ``RUN/model`` on the test scenarios. Output:
  ``RUN/duplex_eval/duplex.json``; the figures go to ``results.json`` under ``duplex``.
- ``fusions`` (LSLM's comparison): the model stage's training again for each fusion in
  ``compare`` (the recipe's own is ``RUN/model``), each evaluated like ``duplex_eval``. Output:
  ``RUN/fusions/<fusion>/{model,eval}``; figures under ``duplex_fusion.<fusion>``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from speechlm.config import Config, positive
from speechlm.errors import ConfigError
from speechlm.recipes.stages import STAGES, RunContext, Stage

SCENARIOS = "scenarios.jsonl"


# ---- duplex_corpus --------------------------------------------------------------------------
@dataclass
class DuplexCorpusConfig(Config):
    """Scenario counts per split, the ``kinds`` of behaviour, and the seed."""

    train: int = positive(600)
    valid: int = positive(60)
    test: int = positive(60)
    kinds: list | None = None  # default: every kind (speechlm.corpus.duplex.ALL_KINDS)
    seed: int = 0

    def validate(self) -> None:
        from speechlm.corpus.duplex import ALL_KINDS

        for k in self.kinds or []:
            if k not in ALL_KINDS:
                raise ConfigError(f"kinds: {k!r} is not one of {', '.join(ALL_KINDS)}")


def _run_duplex_corpus(ctx: RunContext, conf: DuplexCorpusConfig, d: Path) -> dict:
    from speechlm.corpus.duplex import ALL_KINDS, synthesize_duplex

    return synthesize_duplex(d, {"train": conf.train, "valid": conf.valid, "test": conf.test},
                             kinds=conf.kinds or list(ALL_KINDS), seed=conf.seed)


def _plan_duplex_corpus(ctx: RunContext, conf: DuplexCorpusConfig) -> dict:
    kinds = ", ".join(conf.kinds) if conf.kinds else "all kinds"
    return {"scenarios": f"{conf.train} train / {conf.valid} valid / {conf.test} test ({kinds}; "
                         "valid and test by held-out voices)"}


STAGES.add("duplex_corpus", Stage("duplex_corpus", _run_duplex_corpus, _plan_duplex_corpus,
                                  config=DuplexCorpusConfig))


def scenarios(ctx: RunContext, split: str) -> list[dict]:
    from speechlm.corpus.duplex import read_scenarios

    return read_scenarios(ctx.dir("duplex_corpus") / SCENARIOS, split=split)


# ---- duplex_tokens --------------------------------------------------------------------------
@dataclass
class DuplexTokensConfig(Config):
    """``words``: the text stream holds the assistant's words (Moshi's inner monologue) as well
    as its state tokens; false: state tokens only (LSLM, VITA). ``transcript``: also a
    transcript stream, the words spoken on the microphone channel, which the model learns to
    predict as an auxiliary target (``speechlm.sequences.duplex``)."""

    words: bool = True
    transcript: bool = False


def _run_duplex_tokens(ctx: RunContext, conf: DuplexTokensConfig, d: Path) -> dict:
    from speechlm.sequences.duplex import text_vocab, transcript_vocab
    from speechlm.tokenizers import load_tokenizer
    from speechlm.tokenizers.duplex import tokenize_scenarios, write_duplex_tokens

    tok = load_tokenizer(ctx.dir("tokenizer"))
    train = scenarios(ctx, "train")
    # valid words unseen in training read as <unk> (in both vocabularies)
    vocab = text_vocab(train, conf.words)
    heard = transcript_vocab(train) if conf.transcript else None  # words on the microphone
    info = {}
    for split, recs in (("train", train), ("valid", scenarios(ctx, "valid"))):
        rows, errors = tokenize_scenarios(tok, recs, vocab, conf.words, progress=True,
                                          transcript=heard)
        info[split] = write_duplex_tokens(d / split, rows, errors, tok, ctx.dir("tokenizer"),
                                          vocab, heard, words=conf.words)
    sizes = {"transcript_vocab_size": len(heard)} if heard is not None else {}
    return {**info, "text_vocab_size": len(vocab), **sizes, "frame_rate": tok.frame_rate}


def _plan_duplex_tokens(ctx: RunContext, conf: DuplexTokensConfig) -> dict:
    if not ctx.conf("tokenizer").causal:
        raise ConfigError("tokenizer.causal: the duplex stages need a causal tokenizer (the "
                          "engine assigns units frame by frame); set causal: true")
    what = "state tokens and the assistant's words" if conf.words else "state tokens"
    also = "; transcript stream (the microphone's words, an auxiliary target)" \
        if conf.transcript else ""
    return {"tokens": f"both channels at frame rate (causal units); text stream: {what}{also}"}


STAGES.add("duplex_tokens", Stage("duplex_tokens", _run_duplex_tokens, _plan_duplex_tokens,
                                  config=DuplexTokensConfig,
                                  needs=("duplex_corpus", "tokenizer")))


# ---- duplex_eval ----------------------------------------------------------------------------
@dataclass
class DuplexEvalConfig(Config):
    """``max_scenarios`` test scenarios played live (0: all), units sampled at
    ``temperature`` and text/state tokens at ``text_temperature``, the engine seeded by
    ``seed``; ``stop_on_irq``: the interrupt token ends the model's turn (LSLM;
    ``speechlm.realtime.engine``)."""

    max_scenarios: int = 0
    temperature: float = positive(1.0)
    text_temperature: float = positive(1.0)
    seed: int = 0
    stop_on_irq: bool = True

    def validate(self) -> None:
        if self.max_scenarios < 0:
            raise ConfigError(f"max_scenarios: must be >= 0 (0: all), got {self.max_scenarios}")


def evaluate_model(ctx: RunContext, conf: DuplexEvalConfig, model: Path, out: Path) -> dict:
    """``speechlm eval duplex`` of ``model`` on the run's test scenarios into ``out``."""
    from speechlm.evaluate.duplex import evaluate_duplex
    from speechlm.realtime.engine import EngineSettings

    recs = scenarios(ctx, "test")
    if conf.max_scenarios:
        recs = recs[:conf.max_scenarios]
    r = evaluate_duplex(model, recs, out, engine_settings=EngineSettings(
        temperature=conf.temperature, text_temperature=conf.text_temperature, seed=conf.seed,
        vocode=False, stop_on_irq=conf.stop_on_irq))
    return {"duplex": r["duplex"], "by_kind": r["by_kind"], "scenarios": r["scenarios"],
            "skipped": r["skipped"]}


def _run_duplex_eval(ctx: RunContext, conf: DuplexEvalConfig, d: Path) -> dict:
    return evaluate_model(ctx, conf, ctx.dir("model"), d)


def _plan_duplex_eval(ctx: RunContext, conf: DuplexEvalConfig) -> dict:
    n = conf.max_scenarios or ctx.conf("duplex_corpus").test
    return {"evaluation": f"{n} held-out scenarios played live into the engine: takeover, "
                          "latency, false replies, answer rate, step time"}


STAGES.add("duplex_eval", Stage("duplex_eval", _run_duplex_eval, _plan_duplex_eval,
                                config=DuplexEvalConfig, needs=("duplex_corpus", "model")))


# ---- fusions --------------------------------------------------------------------------------
@dataclass
class FusionsConfig(Config):
    """The fusions trained beside the recipe's own (same data, steps and seed), each evaluated
    like ``duplex_eval`` (its settings)."""

    compare: list | None = None  # default: the two the model stage does not use

    def validate(self) -> None:
        from speechlm.models.duplex import FUSIONS

        for f in self.compare or []:
            if f not in FUSIONS:
                raise ConfigError(f"compare: {f!r} is not one of {', '.join(FUSIONS)}")


def _own_fusion(ctx: RunContext) -> str:
    from speechlm.models.duplex import duplex_settings

    return duplex_settings(ctx.conf("model").model)[1]["fusion"]


def _fusions_to_train(ctx: RunContext, conf: FusionsConfig) -> list[str]:
    from speechlm.models.duplex import FUSIONS

    return [f for f in (conf.compare or FUSIONS) if f != _own_fusion(ctx)]


def _run_fusions(ctx: RunContext, conf: FusionsConfig, d: Path) -> dict:
    from speechlm.models.duplex import SECTION
    from speechlm.recipes.stages.lm import run_model

    train = ctx.conf("model")
    own = _own_fusion(ctx)
    results = {}
    if "duplex_eval" in ctx.records:
        own_loss = json.loads((ctx.dir("model") / "metrics.json").read_text()).get(
            "final_eval_loss")
        results[own] = {**ctx.records["duplex_eval"]["info"]["duplex"],
                        "final_eval_loss": own_loss}
    for fusion in _fusions_to_train(ctx, conf):
        model_cfg = {**train.model, SECTION: {**train.model.get(SECTION, {}), "fusion": fusion}}
        out = d / fusion
        rel = str((out / "model").relative_to(ctx.out))
        run_model(ctx, dataclasses.replace(train, model=model_cfg, output_dir=rel), out)
        metrics = json.loads((out / "model" / "metrics.json").read_text())
        r = evaluate_model(ctx, ctx.conf("duplex_eval"), out / "model", out / "eval")
        results[fusion] = {**r["duplex"], "final_eval_loss": metrics.get("final_eval_loss")}
    return {"fusions": results}


def _plan_fusions(ctx: RunContext, conf: FusionsConfig) -> dict:
    return {"fusions": f"{', '.join(_fusions_to_train(ctx, conf))} trained like the model "
                       "stage and evaluated like duplex_eval"}


STAGES.add("fusions", Stage("fusions", _run_fusions, _plan_fusions, config=FusionsConfig,
                            needs=("duplex_tokens", "duplex_corpus", "model", "duplex_eval")))
