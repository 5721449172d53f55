"""The ``multistream`` objective: packed multi-stream blocks, a loss mask per stream.

Delays live in the model config (``model.streams.<name>.delay``) and nowhere else: this
objective passes the model's streams and delays to the formats (their ``delays`` parameter, and
the streams as columns to read), so ``formats.multistream.delays`` is refused. Before
formatting, the token dataset must have a column for every stream and, for a discrete stream
that is not capped by design (durations are), no value beyond the stream's classes, so a model
never trains on a silently clipped F0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from speechlm.errors import ConfigError
from speechlm.train.objectives import (
    OBJECTIVES,
    Objective,
    block_datasets,
    speech_lm_trainer,
)

DELAYS = "delays"  # the format parameter this objective fills from the model


def multistream_collate(items: list[dict]) -> dict[str, Any]:
    """Blocks -> ``{"streams": {name: (B, L) long}, "masks": {name: (B, L) bool}}``."""
    import torch

    names = items[0]["streams"]
    return {"streams": {n: torch.from_numpy(np.stack([it["streams"][n] for it in items])
                                            .astype(np.int64)) for n in names},
            "masks": {n: torch.from_numpy(np.stack([it["masks"][n] for it in items]))
                      for n in names}}


class MultiStreamObjective(Objective):
    """Weighted per-stream losses on packed blocks of parallel streams (pGSLM's MS-TLM)."""

    name = "multistream"
    streams = None  # whichever streams the model has

    def check(self, cfg, uses) -> None:
        super().check(cfg, uses)
        for u in uses:
            if DELAYS not in u.spec.params:
                raise ConfigError(f"formats.{u.spec.name}: objective multistream trains on "
                                  "multi-stream formats (e.g. multistream)")
            given = cfg.formats.get(u.spec.name)
            if isinstance(given, dict) and DELAYS in given:
                raise ConfigError(f"formats.{u.spec.name}.delays: set by the model; give them as "
                                  "model.streams.<name>.delay")

    def datasets(self, cfg, vocab, model, uses, eval_uses):
        specs = model.config.stream_specs
        _check_columns(cfg.data, specs, "data")
        if cfg.eval_data:
            _check_columns(cfg.eval_data, specs, "eval_data")
        return block_datasets(cfg, vocab, _for_model(uses, model.config.delays),
                              _for_model(eval_uses, model.config.delays))

    def trainer(self, cfg, model, vocab, train_ds, eval_ds, callbacks):
        # the model takes no ``labels``: naming ``masks`` makes the Trainer compute eval losses
        return speech_lm_trainer(cfg, model, vocab, train_ds, eval_ds, callbacks,
                                 multistream_collate, label_names=["masks"])


def _for_model(uses: Sequence, delays: dict[str, int]) -> list:
    """The formats reading the model's streams (as columns) with the model's delays."""
    from dataclasses import replace

    from speechlm.sequences.formats import FormatUse

    out = []
    for u in uses:
        columns = (*u.spec.columns, *(n for n in delays if n not in u.spec.columns))
        out.append(FormatUse(replace(u.spec, columns=columns), u.ratio,
                             {**u.params, DELAYS: dict(delays)}))
    return out


def _check_columns(data: str, specs: Sequence, key: str) -> None:
    """Every stream has its column; a discrete stream's values fit its classes (or are capped)."""
    import pyarrow.compute as pc

    from speechlm.models.modeling_multistream import CAPPED
    from speechlm.train.data import load_rows

    ds = load_rows(data)
    for s in specs[1:]:
        if s.name not in ds.column_names:
            raise ConfigError(f"model.streams.{s.name}: {key} ({data}) has no '{s.name}' column "
                              f"(it has {', '.join(ds.column_names)}); tokenise with a tokenizer "
                              "that makes it, or drop the stream")
        if s.kind == "discrete" and s.name not in CAPPED:
            column = ds.data.table.column(s.name)
            top = pc.max(pc.list_flatten(column)).as_py() if len(column) else None
            if top is not None and top >= s.size:
                raise ConfigError(f"model.streams.{s.name}.size: {s.size} classes, but {key} has "
                                  f"values up to {top}; use size >= {top + 1}")


OBJECTIVES.add("multistream", MultiStreamObjective())
