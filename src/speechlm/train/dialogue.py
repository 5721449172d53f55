"""The ``dialogue`` objective: dGSLM's DLM on two channels of frame units, packed into blocks.

The token dataset holds one dialogue per row, each channel's frame units in a column
(``units_a``, ``units_b``: not de-duplicated, as the recipe's ``dialogue_tokens`` stage writes
them). The ``dialogue`` format turns a row into ``BOS + units`` per channel with the next-unit
and duration targets (``speechlm.sequences.dialogue``); blocks of ``seq_len`` positions are cut
over the concatenated dialogues, as fairseq's ``--sample-break-mode none`` does (a block may end
one dialogue and start the next after its BOS; the last target of a dialogue is masked, so no
target crosses a dialogue boundary).

The target settings live in the model config (``delayed_duration``, ``max_duration``) and
nowhere else: this objective passes them to the format, so ``formats.dialogue.delayed`` is
refused. The loss is ``DialogueLM``'s (edge-unit cross-entropy plus the weighted duration L1);
the held-out loss is the same on ``eval_data``. The data's silence unit (``info.json``:
``silence_unit``) is written into the model config, so the model directory knows what a silent
channel holds (scoring single-channel items, the cascaded baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from speechlm.errors import ConfigError
from speechlm.train.objectives import (
    OBJECTIVES,
    Objective,
    block_datasets,
    speech_lm_trainer,
)

FROM_MODEL = ("delayed", "max_duration")  # format parameters this objective sets from the model
SILENCE_KEY = "silence_unit"  # info.json key of the data's silence unit
# info.json keys of how each channel was tokenised (speechlm.tokenizers.dialogue)
CHANNEL_TOKEN_KEYS = ("segments", "region_gap", "pad")


def dialogue_collate(pad_id: int):
    """Blocks -> ``DialogueLM.forward``'s ``units``, ``next_units``, ``durations`` (B, 2, L)."""
    from speechlm.sequences.dialogue import collate
    from speechlm.train.data import example_from_item

    def fn(items: list[dict]) -> dict[str, Any]:
        return collate([example_from_item(it) for it in items], pad_id)

    return fn


class DialogueObjective(Objective):
    """Edge units and delayed durations on both channels of packed dialogue blocks (dGSLM)."""

    name = "dialogue"
    streams = None

    def check(self, cfg, uses) -> None:
        super().check(cfg, uses)
        for u in uses:
            if u.spec.name != "dialogue":
                raise ConfigError(f"formats.{u.spec.name}: objective dialogue trains on the "
                                  "dialogue format (two channels of frame units)")
            given = cfg.formats.get(u.spec.name)
            for key in FROM_MODEL:
                if isinstance(given, dict) and key in given:
                    raise ConfigError(f"formats.{u.spec.name}.{key}: set by the model "
                                      "(model.dialogue.delayed_duration / max_duration)")

    def datasets(self, cfg, vocab, model, uses, eval_uses):
        from speechlm.train.data import read_info

        if not hasattr(model.config, "delayed_duration"):
            raise ConfigError(f"objective: dialogue trains a dialogue LM (architecture dgslm), "
                              f"not a {type(model).__name__}")
        info = read_info(cfg.data)
        if info.get(SILENCE_KEY) is not None:
            model.config.silence_unit = int(info[SILENCE_KEY])
        if info.get("segments"):
            model.config.channel_tokens = {k: info[k] for k in CHANNEL_TOKEN_KEYS if k in info}
        return block_datasets(cfg, vocab, _for_model(uses, model.config),
                              _for_model(eval_uses, model.config))

    def trainer(self, cfg, model, vocab, train_ds, eval_ds, callbacks):
        # the model takes no ``labels``: naming its targets makes the Trainer compute eval losses
        return speech_lm_trainer(cfg, model, vocab, train_ds, eval_ds, callbacks,
                                 dialogue_collate(vocab.pad_id),
                                 label_names=["next_units", "durations"])


def _for_model(uses: Sequence, config: Any) -> list:
    """The formats with the model's target settings."""
    from speechlm.sequences.formats import FormatUse

    fixed = {"delayed": bool(config.delayed_duration), "max_duration": int(config.max_duration)}
    return [FormatUse(u.spec, u.ratio, {**u.params, **fixed}) for u in uses]


OBJECTIVES.add("dialogue", DialogueObjective())
