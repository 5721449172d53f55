"""SpeechGPT: spoken instructions, the fine-tuning stages and the spoken-QA evaluation.

- ``instructions``: spoken question-answer items about the synthetic stories
  (:mod:`speechlm.corpus.instructions`; test items are stories no training item tells, spoken by
  the held-out voices, and ``heldout_qtype`` questions are asked only there), tokenised by the
  run's tokenizer into the token datasets ``RUN/instructions/{train,valid,test}``;
- ``sft_cross`` (SpeechGPT's cross-modal instruction stage): ``RUN/model`` fine-tuned on ASR and
  TTS turns of the corpus (``speechgpt_asr``, ``speechgpt_tts``) into ``RUN/sft_cross``;
- ``sft_chain`` (its chain-of-modality stage): ``RUN/sft_cross`` fine-tuned on the spoken and
  the written questions (``speechgpt_chain``, ``speechgpt_text_qa``) into ``RUN/sft_chain``, the
  chat model;
- ``sft_direct``: the baseline, ``RUN/sft_cross`` fine-tuned to answer speech with speech
  (``speechgpt_direct``) into ``RUN/sft_direct``;
- ``omni_features`` (LLaMA-Omni): the spoken questions as a speech encoder's continuous frames
  (a ``continuous`` tokenizer of ``features``: log-mel at the tiny scale, an SSL encoder's layer
  at paper scale), joined with the answers into ``RUN/omni_features/{train,valid,test}``;
- ``omni``: ``RUN/model`` with LLaMA-Omni's speech adapter and CTC unit decoder
  (``speechlm.train.omni``), trained into ``RUN/omni``;
- ``spectron_features`` and ``spectron`` (Spectron's chain): the recorded answers as log-mel
  frames beside the instruction rows (``RUN/spectron_features/{train,valid,test}``), and
  ``RUN/sft_cross`` trained to write the transcript and the text answer and then continue the
  spectrogram (``speechlm.train.spectron``) into ``RUN/spectron``;
- ``qa``: :func:`speechlm.evaluate.instruct.evaluate_qa` on the test items for each fine-tuned
  model present: ``RUN/qa/qa.json`` and ``answers.jsonl``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from speechlm.config import Config, at_least, choice, positive
from speechlm.errors import ConfigError
from speechlm.recipes.stages import STAGES, RunContext, Stage
from speechlm.recipes.stages.finetune import finetune_stage
from speechlm.recipes.stages.tokens import FROM_SSL

# qa name -> stage
CHAT_MODELS = {"speechgpt": "sft_chain", "direct": "sft_direct", "omni": "omni",
               "spectron": "spectron"}


@dataclass
class InstructionsConfig(Config):
    """How many spoken items each split holds, the question type kept out of fine-tuning (asked
    only in the test split, for the in-context check; null: none) and the seed."""

    train: int = positive(3000)
    valid: int = positive(100)
    test: int = positive(100)
    heldout_qtype: str | None = "where"
    seed: int = 0

    def validate(self) -> None:
        from speechlm.corpus.instructions import QTYPES

        if self.heldout_qtype is not None and self.heldout_qtype not in QTYPES:
            raise ConfigError(f"heldout_qtype: one of {', '.join(QTYPES)} or null, got "
                              f"{self.heldout_qtype!r}")


def _run_instructions(ctx: RunContext, conf: InstructionsConfig, d: Path) -> dict:
    from speechlm.corpus.instructions import (
        instruction_rows,
        synthesize_instructions,
        write_instruction_splits,
    )
    from speechlm.tokenizers.job import tokenize_manifest
    from speechlm.train.data import read_info

    spoken = synthesize_instructions(d / "audio", conf.train, conf.valid, conf.test,
                                     seed=conf.seed, heldout_qtype=conf.heldout_qtype)
    tokenize_manifest(d / "audio" / "manifest.jsonl", ctx.dir("tokenizer"), d / "tokens")
    rows, left_out = instruction_rows(d / "audio", d / "tokens")
    info = read_info(d / "tokens")
    counts = write_instruction_splits(d, rows, info["tokenizer"], info["n_units"],
                                      info["frame_rate"])
    return {"hours": spoken["hours"], "items": counts, "qtypes": spoken["qtypes"],
            "left_out": left_out}


def _plan_instructions(ctx: RunContext, conf: InstructionsConfig) -> dict:
    held = f", '{conf.heldout_qtype}' questions only in test" if conf.heldout_qtype else ""
    return {"items": f"{conf.train} train, {conf.valid} valid, {conf.test} test (held-out "
                     f"stories and voices){held}"}


@dataclass
class OmniFeaturesConfig(Config):
    """The speech encoder whose frames the adapter reads: a front-end ``kind`` (its ``model``
    and ``layer`` for an SSL encoder: a hub id, a folder, or ``<ssl>`` for the encoder the run's
    ``ssl`` stage trains) and options of a spectral one."""

    kind: str = choice("logmel", "logmel", "mfcc", "hubert", "wav2vec2", "wavlm", "w2v-bert")
    model: str | None = None
    layer: int | None = None
    n_mels: int | None = positive(None)

    def validate(self) -> None:
        from speechlm.tokenizers.frontends import ENCODER_KINDS

        if (self.kind in ENCODER_KINDS) != (self.model is not None):
            raise ConfigError(f"model: {'needed' if self.model is None else 'unused'} for "
                              f"kind {self.kind}")


def _run_omni_features(ctx: RunContext, conf: OmniFeaturesConfig, d: Path) -> dict:
    from speechlm.corpus.instructions import SPLITS, instruction_rows
    from speechlm.tokenizers.fitting import fit_tokenizer
    from speechlm.tokenizers.job import load_token_dataset, tokenize_manifest
    from speechlm.train.data import read_info
    from speechlm.train.omni import write_omni_rows

    audio = ctx.dir("instructions") / "audio"
    # the adapter reads the questions only: the answers are units, already tokenised
    manifest = d / "questions.jsonl"
    with open(audio / "manifest.jsonl", encoding="utf-8") as src, \
            open(manifest, "w", encoding="utf-8") as dst:
        for line in src:
            u = json.loads(line)
            if u["id"].endswith(".prompt"):
                dst.write(json.dumps({**u, "audio": str((audio / u["audio"]).resolve())}) + "\n")
    model = str(ctx.dir("ssl")) if conf.model == FROM_SSL else conf.model
    opts = {k: v for k, v in (("model", model), ("layer", conf.layer),
                              ("n_mels", conf.n_mels)) if v is not None}
    fit_tokenizer(manifest, "continuous", 0, d / "tokenizer", features=conf.kind, **opts)
    tokenize_manifest(manifest, d / "tokenizer", d / "tokens")
    feats = {r["id"]: r["feats"] for r in load_token_dataset(d / "tokens").select_columns(
        ["id", "feats"])}
    rows, left_out = instruction_rows(audio, ctx.dir("instructions") / "tokens")
    units = read_info(ctx.dir("instructions") / "tokens")
    counts = {}
    for split in SPLITS:
        kept = [{**r, "prompt_feats": feats[f"{r['id']}.prompt"]} for r in rows[split]
                if f"{r['id']}.prompt" in feats]
        left_out += len(rows[split]) - len(kept)
        if kept:
            write_omni_rows(d / split, kept, d / "tokenizer", int(units["n_units"]),
                            float(read_info(d / "tokens")["frame_rate"]),
                            unit_tokenizer=units["tokenizer"])
        counts[split] = len(kept)
    return {"items": counts, "left_out": left_out, "features": conf.kind}


def _plan_omni_features(ctx: RunContext, conf: OmniFeaturesConfig) -> dict:
    what = conf.kind if conf.model is None else f"{conf.kind} {conf.model} layer {conf.layer}"
    return {"features": f"{what} frames of the spoken questions"}


def _run_spectron_features(ctx: RunContext, conf: None, d: Path) -> dict:
    from speechlm.audio import load_audio
    from speechlm.corpus.instructions import SPLITS, instruction_rows
    from speechlm.progress import progress_bar
    from speechlm.train.data import read_info
    from speechlm.train.spectron import mel_frontend, write_spectron_rows

    audio = ctx.dir("instructions") / "audio"
    rows, left_out = instruction_rows(audio, ctx.dir("instructions") / "tokens")
    units = read_info(ctx.dir("instructions") / "tokens")
    mel = mel_frontend()
    counts = {}
    for split in SPLITS:
        out = []
        for r in progress_bar(rows[split], unit="item", desc=f"log-mel {split}"):
            wav = load_audio(audio / "wav" / f"{r['id']}.response.wav", mel.sample_rate)
            out.append({**r, "response_frames": mel([wav])[0].numpy()})
        if out:
            write_spectron_rows(d / split, out, units["tokenizer"], int(units["n_units"]),
                                mel.frame_rate, mel.to_dict())
        counts[split] = len(out)
    return {"items": counts, "left_out": left_out}


def _plan_spectron_features(ctx: RunContext, conf: None) -> dict:
    return {"frames": "80-band log-mel of the recorded answers (unnormalised: invertible)"}


@dataclass
class QAConfig(Config):
    """Test items to ask (null: all), in-context examples for the held-out question type, how
    the spoken answer is sampled and how long it may be."""

    items: int | None = positive(None)
    shots: int = at_least(1, 2)
    max_seconds: float = positive(4.0)
    temperature: float = positive(0.8)
    top_k: int = at_least(0, 20)
    seed: int = 0


def _chat_models(ctx: RunContext) -> dict[str, str]:
    """qa name -> the stage of each fine-tuned model the recipe trains."""
    return {name: stage for name, stage in CHAT_MODELS.items() if stage in ctx.recipe.stages}


def _run_qa(ctx: RunContext, conf: QAConfig, d: Path) -> dict:
    from speechlm.corpus.grammar import sample_sentences
    from speechlm.corpus.manifest import read_jsonl
    from speechlm.evaluate.instruct import evaluate_qa
    from speechlm.tokenizers.job import load_token_dataset

    audio = ctx.dir("instructions") / "audio"
    # the ASR's LM knows the grammar and the training answers, never the test answers
    train_items = [it for _, _, it in read_jsonl(audio / "items.jsonl", "items")
                   if it["split"] == "train"]
    sentences = sample_sentences(5000, seed=conf.seed + 7) + [
        it["response"] for it in train_items] + [it["prompt"] for it in train_items]
    shot_rows = load_token_dataset(ctx.dir("instructions") / "test").to_list()
    models = {name: ctx.dir(stage) for name, stage in _chat_models(ctx).items()}
    return evaluate_qa(models, audio, d, asr_sentences=sentences,
                       max_items=conf.items, heldout_qtype=ctx.conf("instructions").heldout_qtype,
                       shot_rows=shot_rows, shots=conf.shots, seed=conf.seed,
                       max_seconds=conf.max_seconds, temperature=conf.temperature,
                       top_k=conf.top_k)


def _plan_qa(ctx: RunContext, conf: QAConfig) -> dict:
    models = _chat_models(ctx)
    if not models:
        raise ConfigError(f"qa: the recipe has none of the stages {', '.join(CHAT_MODELS.values())}"
                          " to evaluate")
    return {"qa": f"{conf.items or 'all'} test items; models {', '.join(models)}; "
                  f"{conf.shots}-shot in-context check"}


STAGES.add("instructions", Stage("instructions", _run_instructions, _plan_instructions,
                                 config=InstructionsConfig, needs=("tokenizer",)))
STAGES.add("sft_cross", finetune_stage(
    "sft_cross", start="model", data="tokens/train", eval_data="tokens/valid",
    defaults={"objective": "sft", "formats": {"speechgpt_asr": 0.5, "speechgpt_tts": 0.5}},
    needs=("tokens",)))
STAGES.add("sft_chain", finetune_stage(
    "sft_chain", start="sft_cross", data="instructions/train", eval_data="instructions/valid",
    defaults={"objective": "sft",
              "formats": {"speechgpt_chain": 0.5, "speechgpt_text_qa": 0.5}},
    needs=("instructions",)))
STAGES.add("sft_direct", finetune_stage(
    "sft_direct", start="sft_cross", data="instructions/train", eval_data="instructions/valid",
    defaults={"objective": "sft", "formats": {"speechgpt_direct": 1.0}},
    needs=("instructions",)))
STAGES.add("omni_features", Stage(
    "omni_features", _run_omni_features, _plan_omni_features, config=OmniFeaturesConfig,
    needs=("instructions",),
    extra_needs=lambda conf: ("ssl",) if conf.model == FROM_SSL else ()))
STAGES.add("omni", finetune_stage(
    "omni", start="model", data="omni_features/train", eval_data="omni_features/valid",
    defaults={"objective": "omni"}, needs=("omni_features",)))
STAGES.add("spectron_features", Stage("spectron_features", _run_spectron_features,
                                      _plan_spectron_features, needs=("instructions",)))
STAGES.add("spectron", finetune_stage(
    "spectron", start="sft_cross", data="spectron_features/train",
    eval_data="spectron_features/valid", defaults={"objective": "spectron"},
    needs=("spectron_features",), vocoder=False))
STAGES.add("qa", Stage("qa", _run_qa, _plan_qa, config=QAConfig,
                       needs=("instructions",), after=tuple(CHAT_MODELS.values())))
