"""``ssl``: pre-train the speech encoder inside the run (``speechlm ssl train`` on the training
split), so that a recipe's units are self-supervised all the way down.

The section is an :class:`~speechlm.ssl.SSLTrainConfig` without its paths (the training split
and ``RUN/ssl``); a tokenizer then reads the encoder with ``model: <ssl>``::

    stages: [corpus, data, benchmark, ssl, tokenizer, tokens, model, ...]
    ssl: {objective: hubert, max_steps: 2400, model: {hidden_size: 256, ...}}
    tokenizer: {kind: hubert, model: <ssl>, layer: 2, units: 100}

Output: ``RUN/ssl/`` (the encoder folder of ``speechlm ssl train``, resumable like it).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from speechlm.errors import ConfigError
from speechlm.recipes.stages import STAGES, RunContext, Stage, config_values, refuse_recipe_keys
from speechlm.recipes.stages.corpus import TRAIN
from speechlm.recipes.stages.tokens import FROM_SSL
from speechlm.ssl.config import SAMPLE_RATE, SSLTrainConfig, encoder_config

# SSLTrainConfig's paths, relative to the run directory
SSL_PATHS = {"manifest": f"data/{TRAIN}", "output_dir": "ssl"}
# the tokenizer kind that reads each objective's encoder
TOKENIZER_KINDS = {"hubert": "hubert", "wav2vec2": "wav2vec2", "cpc": "cpc"}


def _parse_ssl(section: Any, prefix: str) -> SSLTrainConfig:
    if not isinstance(section, dict):
        return SSLTrainConfig.from_dict(section, prefix)  # names the section's type error
    refuse_recipe_keys(section, prefix, SSL_PATHS)
    return SSLTrainConfig.from_dict({**section, **SSL_PATHS}, prefix)


def _values(ctx: RunContext, conf: SSLTrainConfig) -> dict:
    values = config_values(conf)
    for key in (*SSL_PATHS, "progress"):  # where and how verbose: not what is trained
        values.pop(key, None)
    return values


def _run_ssl(ctx: RunContext, conf: SSLTrainConfig, d: Path) -> dict:
    from speechlm.ssl import train_ssl

    paths = {k: str(ctx.out / rel) for k, rel in SSL_PATHS.items()}
    metrics = train_ssl(dataclasses.replace(conf, **paths))
    losses = metrics["train_loss"]
    return {"objective": conf.objective, "steps": metrics["steps"],
            "parameters": metrics["parameters"],
            "final_train_loss": losses[-1][1] if losses else None}


def frame_rate(conf: SSLTrainConfig) -> float:
    """Frames per second of the encoder ``conf`` trains (from its conv strides)."""
    return SAMPLE_RATE / math.prod(encoder_config(conf.objective, conf.model).conv_stride)


def _plan_ssl(ctx: RunContext, conf: SSLTrainConfig) -> dict:
    tok = ctx.conf("tokenizer") if "tokenizer" in ctx.recipe.stages else None
    if tok is not None and tok.model == FROM_SSL and tok.kind != TOKENIZER_KINDS[conf.objective]:
        raise ConfigError(f"objective: {conf.objective} trains an encoder that tokenizer kind "
                          f"'{TOKENIZER_KINDS[conf.objective]}' reads, but tokenizer.kind is "
                          f"'{tok.kind}'")
    return {"encoder": f"{conf.objective}, {conf.max_steps} steps of {conf.batch_size} x "
                       f"{conf.crop_seconds:g} s windows, {frame_rate(conf):g} Hz frames"}


STAGES.add("ssl", Stage("ssl", _run_ssl, _plan_ssl, config=SSLTrainConfig, parse=_parse_ssl,
                        needs=("data",), record=_values))
