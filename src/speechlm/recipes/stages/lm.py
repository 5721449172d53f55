"""Language models: ``textlm`` (the text LM a TWIST warm start begins from) and ``model`` (the
speech LM, trained by ``run_training``).

The ``model`` stage's section is ``train``: a :class:`TrainConfig` without the paths, which the
pipeline fills in relative to the run directory (``TRAIN_PATHS``). The token datasets come from
the ``tokens`` stage, or from the stage ``TOKEN_STAGES`` names for the objective (dGSLM's
``dialogue`` objective trains on the ``dialogue_tokens`` stage's two-channel datasets). With
``init: warm`` and no ``init_from`` the speech LM starts from the ``textlm`` stage's text LM (the
stage is then one of its inputs). Outputs: ``RUN/textlm/`` (an HF model + tokenizer, when trained
here) and ``RUN/model/`` (the model directory).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechlm.config import Config, check_hf_config, choice, positive
from speechlm.errors import ConfigError
from speechlm.recipes.stages import (
    STAGES,
    RunContext,
    Stage,
    config_values,
    offline_hf_config,
    refuse_recipe_keys,
)
from speechlm.train.config import TrainConfig

# TrainConfig's paths, relative to the run directory (the tokens stage's datasets, RUN/model)
TRAIN_PATHS = {"data": "tokens/train", "eval_data": "tokens/valid", "output_dir": "model"}
# objectives that train on another stage's token datasets (its train/ and valid/)
TOKEN_STAGES = {"dialogue": "dialogue_tokens", "duplex": "duplex_tokens"}
FROM_TEXTLM = "<textlm>"  # train.init_from placeholder: the text LM of the textlm stage


# ---- textlm ---------------------------------------------------------------------------------
@dataclass
class TextLMConfig(Config):
    """``init_from`` names a text LM (local folder or hub id); without it one is trained here on
    the synthetic grammar's text (``train_text_lm``; unset keys take its defaults), or with
    ``source: digits`` on image rows (TWIST's other-modality control)."""

    init_from: str | None = None
    source: str | None = choice(None, None, "grammar", "digits")
    n_sentences: int | None = positive(None)
    seed: int | None = None
    model: dict | None = None  # HF config kwargs (model_type + its keys)
    steps: int | None = positive(None)
    seq_len: int | None = positive(None)
    batch_size: int | None = positive(None)
    lr: float | None = positive(None)
    vocab_size: int | None = positive(None)

    def validate(self) -> None:
        if self.init_from:
            for key, value in self.training().items():
                raise ConfigError(f"{key}: unused when init_from is set (no text LM is trained "
                                  f"here), got {value!r}")
        elif self.model is not None:
            check_hf_config(self.model, "model")

    def training(self) -> dict:
        """``train_text_lm``'s keyword arguments (the keys that are set)."""
        return {k: v for k, v in config_values(self).items() if k != "init_from"}


def text_lm_ref(ctx: RunContext) -> str:
    """The text LM of the ``textlm`` stage: the folder or hub id it names, or ``RUN/textlm``."""
    return ctx.conf("textlm").init_from or str(ctx.dir("textlm"))


def _run_textlm(ctx: RunContext, conf: TextLMConfig, d: Path) -> dict:
    if conf.init_from:
        return {}  # a given text LM: nothing to train
    from speechlm.train.textlm import train_text_lm

    train_text_lm(d, **conf.training())
    return {}


def _text_lm_config(ctx: RunContext) -> tuple[Any, str]:
    """(HF config of the textlm stage's text LM or None, where it comes from)."""
    conf = ctx.conf("textlm")
    if conf.init_from:
        return offline_hf_config(conf.init_from), conf.init_from
    from speechlm.train.textlm import DEFAULT_MODEL, train_text_lm

    cfg = check_hf_config(conf.model or DEFAULT_MODEL, "model")
    # its BPE vocabulary has at most vocab_size tokens (train_text_lm's default when unset)
    cfg.vocab_size = conf.vocab_size or _default(train_text_lm, "vocab_size")
    return cfg, "trained here"


def _plan_textlm(ctx: RunContext, conf: TextLMConfig) -> dict:
    cfg, source = _text_lm_config(ctx)
    if cfg is None:
        return {"text LM": source, "parameters": _UNKNOWN_OFFLINE}
    return {"text LM": source, "parameters": _count(count_causal_lm(cfg, cfg.vocab_size))}


STAGES.add("textlm", Stage("textlm", _run_textlm, _plan_textlm, config=TextLMConfig))


# ---- model ----------------------------------------------------------------------------------
def parse_train(section: Any, prefix: str, output_dir: str = "model") -> TrainConfig:
    """A train section (a :class:`TrainConfig` without its paths) with the run's paths filled
    in: the token stage's datasets and ``RUN/<output_dir>``."""
    if not isinstance(section, dict):
        return TrainConfig.from_dict(section, prefix)  # names the section's type error
    d = dict(section)
    paths = {**TRAIN_PATHS, "output_dir": output_dir}
    refuse_recipe_keys(d, prefix, paths)
    init = d.get("init", "cold")
    if init != "cold" and "model" in d:
        raise ConfigError(f"{prefix}model: unused with init={init} (the model is the one it "
                          "starts from); remove it")
    if init == "warm" and not d.get("init_from"):
        d["init_from"] = FROM_TEXTLM
    conf = TrainConfig.from_dict({**d, **paths}, prefix)
    stage = token_stage(conf)
    if stage == "tokens":
        return conf
    return dataclasses.replace(conf, data=f"{stage}/train", eval_data=f"{stage}/valid")


def token_stage(conf: TrainConfig) -> str:
    """The stage whose token datasets the model trains on (``tokens`` unless the objective
    says otherwise: ``TOKEN_STAGES``)."""
    return TOKEN_STAGES.get(conf.objective_name, "tokens")


def train_values(ctx: RunContext, conf: TrainConfig) -> dict:
    values = config_values(conf)
    if conf.init != "cold":
        del values["model"]  # unused (the default): the model is the one it starts from
    return values


def model_needs(conf: TrainConfig) -> tuple[str, ...]:
    return (token_stage(conf), *(("textlm",) if conf.init_from == FROM_TEXTLM else ()))


def run_model(ctx: RunContext, conf: TrainConfig, d: Path) -> dict:
    """``run_training`` on the run's paths (the section's are relative to the run)."""
    from speechlm.train import run_training

    paths = {k: str(ctx.out / getattr(conf, k)) for k in TRAIN_PATHS}
    init_from = text_lm_ref(ctx) if conf.init_from == FROM_TEXTLM else conf.init_from
    return run_training(dataclasses.replace(conf, **paths, init_from=init_from))


def plan_model(ctx: RunContext, conf: TrainConfig) -> dict:
    from speechlm.models import get_architecture
    from speechlm.sequences.formats import CODECS, format_tokens, inventory_sizes
    from speechlm.sequences.vocab import SpeechVocab, with_default_markers

    facts = {"init": conf.init if conf.init == "cold" else f"{conf.init} from {conf.init_from}"}
    markers, ranges = format_tokens(conf.format_uses())
    markers = with_default_markers(markers)
    units = ctx.conf("tokenizer").units
    sizes = {"units": units, **_prosody_sizes(ctx.conf("tokenizer").prosody),
             **inventory_sizes()}
    other = [r for r in ranges if r not in ("units", "text")]
    if CODECS in other:  # the codebooks of the codec, when known without weights
        other.remove(CODECS)
        books = _codebooks(ctx)
        if books is None:
            return {**facts, "parameters": _UNKNOWN_OFFLINE}
        other += list(books)
        sizes.update(books)
    if unknown := [r for r in other if r not in sizes]:
        facts["parameters"] = f"unknown before tokenising (the formats need {', '.join(unknown)})"
        return facts
    head = ("units",) if "units" in ranges or CODECS not in ranges else ()
    vocab = SpeechVocab.build({r: sizes[r] for r in (*head, *other)}, markers)
    if conf.init == "cold":
        n = get_architecture(conf.architecture).count_parameters(conf.model, vocab)
        return {**facts, "vocabulary": vocab.size, "parameters": _count(n)}
    if conf.init_from == FROM_TEXTLM:
        cfg, _ = _text_lm_config(ctx)
    else:
        cfg = offline_hf_config(conf.init_from)
    if cfg is None:
        return {**facts, "parameters": _UNKNOWN_OFFLINE}
    if conf.init == "from_model":
        size, facts["vocabulary"] = cfg.vocab_size, f"{cfg.vocab_size} and any new markers"
    elif conf.vocab_mode == "extend":  # the text vocabulary with the speech tokens appended
        size = cfg.vocab_size + len(markers) + units + sum(sizes[r] for r in other)
        facts["vocabulary"] = f"about {size}"
    else:
        size = facts["vocabulary"] = vocab.size
    try:
        return {**facts, "parameters": _count(count_causal_lm(cfg, size))}
    except ValueError:  # a checkpoint that is not an AutoModelForCausalLM (a multi-stream one)
        return {**facts, "parameters": f"unknown (not a causal LM: {cfg.model_type})"}


def _codebooks(ctx: RunContext) -> dict[str, int] | None:
    """``codec0`` .. sizes of the tokenizer's codec, when known without weights or data."""
    from speechlm.recipes.stages.tokens import FROM_CODEC

    # AudioLM's codec tokens are the acoustic_tokens stage's (its tokenizer is the semantic one)
    tok = ctx.conf("acoustic_tokens" if "acoustic_tokens" in ctx.recipe.stages else "tokenizer")
    if tok.model == FROM_CODEC:
        cfg = ctx.conf("codec").dac_config()
    else:
        cfg = offline_hf_config(tok.model)
    if cfg is None:  # a hub codec offline: the recipe's n_codebooks x units (codebook size)
        return {f"codec{k}": tok.units for k in range(tok.n_codebooks)} if tok.n_codebooks \
            else None
    n = tok.n_codebooks or getattr(cfg, "n_codebooks", None) or getattr(cfg, "num_quantizers",
                                                                          None)
    if tok.kind == "encodec" and tok.n_codebooks is None:
        return None  # set by the bandwidth
    return {f"codec{k}": int(cfg.codebook_size) for k in range(int(n))} if n else None


def _prosody_sizes(prosody: bool | dict | None) -> dict[str, int]:
    """Pitch and style codebook sizes a tokenizer with these ``prosody`` options fits."""
    from speechlm.tokenizers.prosody import N_PITCH, N_STYLE

    if not prosody:
        return {}
    given = prosody if isinstance(prosody, dict) else {}
    return {"pitch": given.get("n_pitch", N_PITCH), "style": given.get("n_style", N_STYLE)}


STAGES.add("model", Stage("model", run_model, plan_model, config=TrainConfig, section="train",
                          parse=parse_train, extra_needs=model_needs,
                          record=train_values))


# ---- parameter counts -----------------------------------------------------------------------
_UNKNOWN_OFFLINE = "unknown offline (the checkpoint is neither a local folder nor cached)"


def count_causal_lm(config: Any, vocab_size: int) -> int:
    """Parameters of an ``AutoModelForCausalLM`` for ``config`` with ``vocab_size`` rows, counted
    on the ``meta`` device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    config.vocab_size = vocab_size
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _count(n: int) -> str:
    return f"{n:,} ({n / 1e6:.2f}M)"


def _default(fn: Any, name: str) -> Any:
    import inspect

    return inspect.signature(fn).parameters[name].default
