"""The ``codec`` objective: codec language models on one utterance per example (VALL-E).

The token dataset is a codec's (``codes``, K x T per row, with the ``text`` column); each row
becomes one example of the format that matches the model (``speechlm.sequences.valle``):

| model (architecture)                   | format            | loss                           |
| -------------------------------------- | ----------------- | ------------------------------ |
| ``ValleAR`` (``valle``)                | ``valle_ar``      | codebook 0 and EOS             |
| ``ValleNAR`` (``valle_nar``)           | ``valle_nar``     | codebook j >= 1 (one per batch) |
| ``DelayedCodecLM`` (``codec_delayed``) | ``codec_delayed`` | every codebook, delayed        |
| ``Viola`` (``viola``)                  | ``viola_*`` mix   | each task's output and EOS     |

AudioLM's coarse and fine stages are the AR and the NAR on ``audiolm_coarse`` and
``audiolm_fine``: semantic units where VALL-E has phonemes.

Examples are not packed: the NAR attends both ways, so a block holding two utterances would let
one read the other. Rows longer than ``seq_len`` positions are left out and counted in the
metrics (``too_long``). The held-out loss of the NAR is the mean over all its stages (its
training draws one stage per batch), so it is the same number at every evaluation.
"""

from __future__ import annotations

from typing import Any

from speechlm.errors import ConfigError
from speechlm.train.objectives import (
    OBJECTIVES,
    Objective,
    block_datasets,
    speech_lm_trainer,
)

# the formats each model trains on (AudioLM's coarse and fine stages are VALL-E's AR and NAR
# conditioned on semantic units instead of phonemes)
FORMAT_OF = {"ValleAR": ("valle_ar", "audiolm_coarse"), "ValleNAR": ("valle_nar", "audiolm_fine"),
             "DelayedCodecLM": ("codec_delayed",),
             "Viola": ("viola_asr", "viola_st", "viola_mt", "viola_tts")}


def codec_collate(pad_id: int):
    """Items of :class:`~speechlm.train.data.ExampleDataset` -> the model's ``forward`` args."""
    from speechlm.sequences.valle import collate
    from speechlm.train.data import example_from_item

    def fn(items: list[dict]) -> dict[str, Any]:
        return collate([example_from_item(it) for it in items], pad_id)

    return fn


class CodecObjective(Objective):
    """One utterance per example, in the format of the codec LM being trained."""

    name = "codec"
    streams = None

    def check(self, cfg, uses) -> None:
        super().check(cfg, uses)
        for u in uses:
            if not any(u.spec.name in names for names in FORMAT_OF.values()):
                raise ConfigError(f"formats.{u.spec.name}: objective codec trains on "
                                  f"{', '.join(n for ns in FORMAT_OF.values() for n in ns)}")

    def datasets(self, cfg, vocab, model, uses, eval_uses):
        from speechlm.train.data import ExampleDataset

        want = FORMAT_OF.get(type(model).__name__)
        if want is None:
            raise ConfigError(f"objective: codec trains the codec LMs (architectures valle, "
                              f"valle_nar, codec_delayed), not a {type(model).__name__}")
        for u in uses:
            if u.spec.name not in want:
                raise ConfigError(f"formats.{u.spec.name}: a {type(model).__name__} trains on "
                                  f"formats {' or '.join(want)}")
        return block_datasets(cfg, vocab, uses, eval_uses, wrap=ExampleDataset)

    def trainer(self, cfg, model, vocab, train_ds, eval_ds, callbacks):
        labels = ["labels"] if type(model).__name__ == "ValleAR" else ["loss_mask"]
        return speech_lm_trainer(cfg, model, vocab, train_ds, eval_ds, callbacks,
                                 codec_collate(vocab.pad_id), label_names=labels)


OBJECTIVES.add("codec", CodecObjective())
