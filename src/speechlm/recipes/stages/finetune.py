"""Stages that fine-tune a model an earlier stage trained (``init: from_model``).

:func:`finetune_stage` makes one: its section is a :class:`TrainConfig` without the paths and
the starting point, which the recipe sets (the model of stage ``start``, the token datasets of
``data``, the output ``RUN/<name>``); ``defaults`` fill the keys the section leaves out (the
objective and formats). The result is a complete model directory with the vocoder installed
beside it when the recipe has one. Slam's ``align`` (DPO) and SpeechGPT's ``sft_*`` stages are
such stages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from speechlm.errors import ConfigError
from speechlm.recipes.stages import RunContext, Stage, config_values
from speechlm.train.config import TrainConfig

FROM_MODEL = "<model>"  # init_from placeholder: the start stage's model directory


def finetune_stage(name: str, start: str, data: str, eval_data: str | None,
                   defaults: Mapping[str, Any], needs: tuple[str, ...] = (),
                   after: tuple[str, ...] = ("vocoder",), vocoder: bool = True) -> Stage:
    """A stage training ``RUN/<name>`` from ``RUN/<start>`` on ``RUN/<data>`` (held-out loss on
    ``RUN/<eval_data>`` when it exists); ``needs`` adds the stages that write the data."""
    paths = {"data": data, "eval_data": eval_data, "output_dir": name}

    def parse(section: Any, prefix: str) -> TrainConfig:
        if not isinstance(section, dict):
            return TrainConfig.from_dict(section, prefix)  # names the section's type error
        for key in (*paths, "init", "init_from", "model"):
            if key in section:
                raise ConfigError(f"{prefix}{key}: set by the recipe ({name} starts from "
                                  f"RUN/{start} and writes RUN/{name}); remove it")
        return TrainConfig.from_dict({"init": "from_model", **defaults, **section, **paths,
                                      "init_from": FROM_MODEL}, prefix)

    def values(ctx: RunContext, conf: TrainConfig) -> dict:
        out = config_values(conf)
        del out["model"]  # unused: the model is RUN/<start>
        return out

    def run(ctx: RunContext, conf: TrainConfig, d: Path) -> dict:
        from speechlm.train import run_training

        abs_paths = {k: None if rel is None else str(ctx.out / rel) for k, rel in paths.items()}
        if eval_data is not None and not (ctx.out / eval_data / "info.json").is_file():
            abs_paths["eval_data"] = None  # nothing held out (e.g. valid_fraction 0)
        return run_training(dataclasses.replace(conf, **abs_paths,
                                                init_from=str(ctx.dir(start))))

    def plan(ctx: RunContext, conf: TrainConfig) -> dict:
        args = {**config_values(conf).get("objective_args", {})}
        return {"init": f"from RUN/{start}",
                "objective": f"{conf.objective_name} {args or ''}".strip(),
                "formats": ", ".join(conf.formats),
                "steps": f"{conf.max_steps} at lr {conf.lr:g}"}

    def finish(ctx: RunContext) -> None:
        from speechlm.recipes.stages.vocoder import install_vocoder

        if vocoder and "vocoder" in ctx.recipe.stages:
            install_vocoder(ctx, name)

    return Stage(name, run, plan, config=TrainConfig, parse=parse, needs=(start, *needs),
                 after=after, record=values, finish=finish)
