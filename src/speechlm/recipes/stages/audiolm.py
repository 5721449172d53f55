"""AudioLM (semantic -> coarse -> fine): ``acoustic_tokens``, ``coarse``, ``fine`` and
``continuation``.

The semantic stage is the recipe's ordinary unit LM (``tokenizer``, ``tokens``, ``model``,
``vocoder``, ``eval``: GSLM). Then:

- ``acoustic_tokens``: a codec tokenizer (the section: ``kind`` encodec/mimi/dac, ``model`` a
  hub id, a folder or ``<codec>`` for the ``codec`` stage's, ``n_codebooks``) tokenises both
  splits, joined by utterance with the ``tokens`` stage's semantic units
  (``speechlm.tokenizers.job.join_token_datasets``). Output: ``RUN/acoustic_tokens/{train,valid}``
  and the fitted tokenizer in ``RUN/acoustic_tokens/tokenizer``.
- ``coarse`` (``architecture: valle``, ``formats: {audiolm_coarse: 1.0}``) and ``fine``
  (``valle_nar``, ``audiolm_fine``, attached to ``RUN/coarse`` as its ``nar``): the acoustic
  stages, VALL-E's AR and NAR reading semantic units.
- ``continuation``: held-out-voice prompts continued by the semantic LM; the same new units
  spoken by AudioLM's acoustic stages (kind ``continuation``) and by the semantic model's unit
  vocoder (``continuation_gslm``), each scored by ``eval speech`` (speaker similarity to the
  prompt's own utterance, DNSMOS). Output: ``RUN/continuation/continuation.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from speechlm.config import Config, at_least, positive
from speechlm.errors import ConfigError
from speechlm.recipes.stages import STAGES, RunContext, Stage
from speechlm.recipes.stages.codec_lm import attach, train_stage
from speechlm.recipes.stages.corpus import TRAIN, VALID
from speechlm.recipes.stages.tokens import FROM_CODEC, TokenizerConfig

SPLITS = (("train", TRAIN), ("valid", VALID))


# ---- acoustic_tokens ------------------------------------------------------------------------
def _parse_acoustic(section, prefix: str) -> TokenizerConfig:
    from speechlm.tokenizers.fitting import CODEC_KINDS

    conf = TokenizerConfig.from_dict(section, prefix)
    if conf.kind not in CODEC_KINDS:
        raise ConfigError(f"{prefix}kind: a codec ({', '.join(CODEC_KINDS)}), got {conf.kind}")
    return conf


def _run_acoustic(ctx: RunContext, conf: TokenizerConfig, d: Path) -> dict:
    from speechlm.tokenizers import fit_tokenizer
    from speechlm.tokenizers.job import join_token_datasets, tokenize_manifest

    options = conf.options()
    if conf.model == FROM_CODEC:
        options["model"] = str(ctx.dir("codec"))
    tok = fit_tokenizer(ctx.dir("data") / TRAIN, conf.kind, conf.units, d / "tokenizer",
                        **options)
    figures = {}
    for split, manifest in SPLITS:
        tokenize_manifest(ctx.dir("data") / manifest, tok, d / "codes" / split)
        figures[split] = join_token_datasets(d / "codes" / split, ctx.dir("tokens") / split,
                                             d / split)
    return figures


def _plan_acoustic(ctx: RunContext, conf: TokenizerConfig) -> dict:
    return {"acoustic tokens": f"{conf.kind} ({conf.model}), joined with the semantic units"}


def _acoustic_needs(conf: TokenizerConfig) -> tuple[str, ...]:
    return ("codec",) if conf.model == FROM_CODEC else ()


# ---- continuation ---------------------------------------------------------------------------
@dataclass
class ContinuationConfig(Config):
    """Prompts by the held-out voices (``hours`` of them synthesised with ``seed``), each
    continued once by the semantic LM and spoken by both the acoustic stages and the unit
    vocoder."""

    hours: float = positive(0.15)
    seed: int = 11
    prompts: int = at_least(1, 30)
    prompt_seconds: float = positive(3.0)
    max_seconds: float = positive(4.0)
    min_seconds: float = at_least(0, 2.0)
    temperature: float = positive(0.8)
    top_k: int = at_least(0, 50)


def _run_continuation(ctx: RunContext, conf: ContinuationConfig, d: Path) -> dict:
    from speechlm.audio import save_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.corpus.synth import HELDOUT_VOICES, synthesize_corpus
    from speechlm.evaluate.speech import evaluate_speech
    from speechlm.generate.audiolm import continue_audiolm
    from speechlm.models.sampling import Sampling
    from speechlm.models.speech_lm import load_speech_lm
    from speechlm.tokenizers.reading import read_utterance

    synthesize_corpus(d / "heldout", conf.hours, seed=conf.seed, voices=list(HELDOUT_VOICES))
    manifest = d / "heldout" / "manifest.jsonl"
    utts = [u for u in read_manifest(manifest) if u.duration >= conf.prompt_seconds + 0.5]
    utts = utts[: conf.prompts]
    if not utts:
        raise ConfigError(f"continuation: no held-out utterance longer than "
                          f"{conf.prompt_seconds + 0.5:g} s; raise hours")
    semantic, acoustic = load_speech_lm(ctx.dir("model")), load_speech_lm(ctx.dir("coarse"))
    rate = 16000
    wavs = [read_utterance(u, rate)[: int(conf.prompt_seconds * rate)] for u in utts]
    sampling = Sampling(max_seconds=conf.max_seconds, temperature=conf.temperature,
                        top_k=conf.top_k, seed=conf.seed, min_seconds=conf.min_seconds)
    outs = continue_audiolm(semantic, acoustic, wavs, rate, sampling, conf.temperature,
                            conf.top_k)
    summary = {}
    for kind, get in (("continuation", lambda o: (o.audio, o.sample_rate)),
                      ("continuation_gslm", lambda o: (o.semantic_audio, o.semantic_sample_rate)),
                      ("continuation_units", lambda o: (o.units_only_audio,
                                                        o.semantic_sample_rate))):
        for u, o in zip(utts, outs, strict=True):
            save_audio(d / kind / f"{u.id}.wav", *get(o))
        agg = evaluate_speech(d / kind, manifest, d / "eval" / kind, metrics=["speaker", "mos"],
                              seed=conf.seed)["aggregate"]
        summary[kind] = {"speaker_similarity": agg.get("speaker_similarity"),
                         "mos": agg.get("dnsmos_ovrl"), "n_scored": agg.get("n_scored"),
                         "different_speaker_similarity": agg.get("different_speaker_similarity")}
    result = {"n_prompts": len(utts), "speech": summary}
    (d / "continuation.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _plan_continuation(ctx: RunContext, conf: ContinuationConfig) -> dict:
    return {"continuation": f"{conf.prompts} held-out-voice prompts of {conf.prompt_seconds:g} s "
                            f"-> up to {conf.max_seconds:g} s, AudioLM vs the unit vocoder"}


STAGES.add("acoustic_tokens", Stage("acoustic_tokens", _run_acoustic, _plan_acoustic,
                                    config=TokenizerConfig, parse=_parse_acoustic,
                                    needs=("data", "tokens"), extra_needs=_acoustic_needs))
STAGES.add("coarse", train_stage("coarse", "valle", tokens="acoustic_tokens"))
STAGES.add("fine", train_stage("fine", "valle_nar", after_run=attach("coarse", "fine"),
                               needs=("coarse",), tokens="acoustic_tokens"))
STAGES.add("continuation", Stage("continuation", _run_continuation, _plan_continuation,
                                 config=ContinuationConfig,
                                 needs=("model", "vocoder", "coarse", "fine")))
