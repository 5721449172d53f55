"""The ``omni`` objective: LLaMA-Omni's speech adapter and CTC unit decoder on a trained LM.

Data: a token dataset (Parquet + ``info.json``, :func:`write_omni_rows`) with one spoken
question and its answer per row:

| column           | type               | what                                               |
| ---------------- | ------------------ | -------------------------------------------------- |
| ``id``           | str                | the row                                            |
| ``prompt_feats`` | list[list[float]]  | continuous frames (T x D) of the spoken question   |
| ``prompt_text``  | str (optional)     | the written question (the text path of ``answer``) |
| ``response_text``| str                | the answer, as the LM writes it                    |
| ``response_units``| list[int]         | de-duplicated units of the spoken answer           |

``info.json``: ``tokenizer`` is the continuous feature extractor of ``prompt_feats``,
``n_units`` the inventory of ``response_units`` (the unit decoder's classes, blank excluded),
``unit_tokenizer`` (optional) the tokenizer that made them, ``frame_rate`` of the features.

Each row becomes :func:`omni_example`: ``BOS [Human] [SPEECH]*ceil(T/k) [Assistant] answer EOS``
with labels on the answer and EOS. Rows longer than ``seq_len`` positions are left out and
counted (``too_long``); rows whose units cannot fit the upsampled answer (CTC needs
``(answer + 1) * upsample`` >= units + repeats) are counted (``units_unfit``: they still train
the text, and add no unit loss).

``run_training`` trains it like any objective (step caps, early stopping, the best checkpoint
by held-out loss, resume): ``init: from_model`` (the backbone LM's model directory: weights and
vocabulary, the template's markers appended; :meth:`OmniObjective.build` wraps it),
``objective: omni``, the adapter's keys in ``objective_args`` (:attr:`OmniObjective.params`);
formats are not used. The model directory holds the model, the vocabulary and
``speechlm.json`` (architecture ``omni``) with the backbone's speech tokenizers, the feature
extractor (role ``features``) and the unit tokenizer (role ``units``, if named).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import ConfigError
from speechlm.sequences.example import IGNORE
from speechlm.train.objectives import (
    OBJECTIVES,
    Objective,
    speech_lm_trainer,
)

COLUMNS = ("prompt_feats", "response_text", "response_units")
FEATURES, UNITS = "features", "units"  # tokenizer roles in the model directory


def omni_example(row: Mapping, vocab: Any, stack: int, written: bool = False) -> dict[str, Any]:
    """One row -> ``input_ids``, ``labels`` (lists), ``speech_feats`` (T, D) float32 and
    ``unit_targets`` (list): the template with the answer labelled. ``written``: the question's
    text in the slot instead of its frames (no frames), the same answer."""
    from speechlm.models.modeling_omni import prompt_ids, stacked_length

    feats = np.asarray(row["prompt_feats"], dtype=np.float32).reshape(len(row["prompt_feats"]),
                                                                       -1)
    if written:
        prompt = prompt_ids(vocab, question_ids=vocab.text_to_ids(row["prompt_text"]))
        feats = feats[:0]
    else:
        prompt = prompt_ids(vocab, stacked_length(len(feats), stack))
    answer = [*vocab.text_to_ids(row["response_text"]), vocab.eos_id]
    return {"input_ids": prompt + answer, "labels": [IGNORE] * len(prompt) + answer,
            "speech_feats": feats, "unit_targets": [int(u) for u in row["response_units"]]}


def omni_collate(pad_id: int):
    """Examples of :func:`omni_example` -> the batch ``OmniSpeechLM.forward`` takes (right
    padding: ``pad_id`` / ``IGNORE`` / zero frames / unit 0 past ``unit_lengths``)."""
    import torch

    def fn(items: list[dict]) -> dict[str, Any]:
        b = len(items)
        n = max(len(it["input_ids"]) for it in items)
        t = max(1, max(len(it["speech_feats"]) for it in items))  # a batch may be all text
        s = max(1, max(len(it["unit_targets"]) for it in items))
        ids = torch.full((b, n), pad_id, dtype=torch.long)
        labels = torch.full((b, n), IGNORE, dtype=torch.long)
        attn = torch.zeros(b, n, dtype=torch.long)
        feats = torch.zeros(b, t, items[0]["speech_feats"].shape[1])
        fmask = torch.zeros(b, t, dtype=torch.bool)
        units = torch.zeros(b, s, dtype=torch.long)
        for i, it in enumerate(items):
            k, f, u = len(it["input_ids"]), len(it["speech_feats"]), len(it["unit_targets"])
            ids[i, :k] = torch.tensor(it["input_ids"])
            labels[i, :k] = torch.tensor(it["labels"])
            attn[i, :k] = 1
            feats[i, :f] = torch.from_numpy(np.asarray(it["speech_feats"], dtype=np.float32))
            fmask[i, :f] = True
            units[i, :u] = torch.tensor(it["unit_targets"], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": attn, "speech_feats": feats,
                "speech_mask": fmask, "labels": labels, "unit_targets": units,
                "unit_lengths": torch.tensor([len(it["unit_targets"]) for it in items])}

    return fn


class OmniDataset:
    """The rows of a token dataset as :func:`omni_example` items, formatted when read; rows
    longer than ``max_len`` positions are left out (``n_too_long``)."""

    def __init__(self, data_dir: str | Path, vocab: Any, stack: int, upsample: int,
                 max_len: int, key: str = "data", written_share: float = 0.0) -> None:
        import pyarrow.compute as pc

        from speechlm.train.data import load_rows

        self.rows, self.vocab, self.stack = load_rows(data_dir), vocab, stack
        self.written_share = written_share
        if written_share and "prompt_text" not in self.rows.column_names:
            raise ConfigError(f"objective_args.written_share: {data_dir} has no prompt_text "
                              "column to read the written questions from")
        missing = [c for c in COLUMNS if c not in self.rows.column_names]
        if missing:
            raise ConfigError(f"{key}: {data_dir} has no column {', '.join(missing)} (an omni "
                              f"dataset has {', '.join(COLUMNS)})")
        table = self.rows.data  # lengths from Arrow, without reading the frames into Python
        frames = pc.list_value_length(table.column("prompt_feats")).to_numpy(zero_copy_only=False)
        n_units = pc.list_value_length(table.column("response_units")).to_numpy(
            zero_copy_only=False)
        answer = np.asarray([len(ids) + 1 for ids in vocab.tokenizer(
            table.column("response_text").to_pylist(), add_special_tokens=False)["input_ids"]])
        steps = 4 + -(-frames // stack) + answer  # BOS [Human] slot [Assistant] answer EOS
        self.index = np.flatnonzero(steps <= max_len)
        self.n_too_long = int((steps > max_len).sum())
        self.n_units_unfit = int((answer * upsample < n_units)[self.index].sum())
        if len(self.index) == 0:
            raise ConfigError(f"{key}: no row fits seq_len {max_len} ({len(steps)} rows); "
                              "raise seq_len")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = int(self.index[i])
        # exactly that share of the rows, spread evenly: where floor(share * row) steps up
        share = self.written_share
        written = int(share * (row + 1)) > int(share * row)
        return omni_example(self.rows[row], self.vocab, self.stack, written)


class OmniObjective(Objective):
    """Text answer (cross-entropy) and its units (CTC) from spoken questions (LLaMA-Omni)."""

    name = "omni"
    # written_share: the share of training rows asked with the written question instead of
    # the spoken one, the same answer (modality consistency, as AudioChatLLaMA); held-out
    # loss stays on the spoken questions
    params = {"stack": 5, "projector_dim": 2048, "unit_layers": 2, "upsample": 25,
              "unit_loss_weight": 1.0, "written_share": 0.0}
    streams = None

    def check(self, cfg, uses) -> None:
        """``objective_args`` only (the rows are read directly; formats are not used)."""
        for k, v in cfg.objective_args.items():
            if k not in self.params:
                raise ConfigError(f"objective_args.{k}: unknown for objective omni; valid: "
                                  f"{', '.join(self.params)}")
            if k == "written_share":
                if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
                    raise ConfigError(f"objective_args.written_share: must be in [0, 1), got "
                                      f"{v!r}")
            elif not isinstance(v, int | float) or v <= 0:
                raise ConfigError(f"objective_args.{k}: must be a positive number, got {v!r}")
        if cfg.init != "from_model":
            raise ConfigError("init: objective omni starts from a trained LM's model directory "
                              "(init: from_model, init_from: DIR)")

    def datasets(self, cfg, vocab, model, uses=(), eval_uses=()):
        from speechlm.models.modeling_omni import OmniSpeechLM

        if not isinstance(model, OmniSpeechLM):
            raise ConfigError(f"objective: omni trains an OmniSpeechLM, not a "
                              f"{type(model).__name__}")
        a = self.args(cfg)

        def make(data: str, key: str, share: float = 0.0) -> OmniDataset:
            return OmniDataset(data, vocab, int(a["stack"]), int(a["upsample"]), cfg.seq_len, key,
                               written_share=share)

        return (make(cfg.data, "data", float(a["written_share"])),
                make(cfg.eval_data, "eval_data") if cfg.eval_data else None)

    def build(self, cfg, info):
        """The backbone model directory (``init_from``) with the template's markers appended,
        wrapped by the adapter and unit decoder sized from the data."""
        from speechlm.models.architecture import get_architecture
        from speechlm.models.init import from_model_init
        from speechlm.models.modeling_omni import MARKERS, OmniSpeechLM
        from speechlm.train.data import load_rows

        a = self.args(cfg)
        lm, vocab, init_info = from_model_init(cfg.init_from, list(MARKERS), seed=cfg.seed)
        feat_dim = int(info.get("feat_dim") or len(load_rows(cfg.data)[0]["prompt_feats"][0]))
        model = OmniSpeechLM.from_backbone(
            lm.model, feat_dim, int(info["n_units"]), vocab.speech_id, seed=cfg.seed,
            stack=int(a["stack"]), projector_dim=int(a["projector_dim"]),
            unit_layers=int(a["unit_layers"]), upsample=int(a["upsample"]),
            unit_loss_weight=float(a["unit_loss_weight"]))
        tokenizers = {role: str(lm.dir / rel) for role, rel in lm.meta["tokenizers"].items()}
        tokenizers[FEATURES] = info["tokenizer"]
        if info.get("unit_tokenizer"):
            tokenizers[UNITS] = str((Path(cfg.data) / info["unit_tokenizer"]).resolve())
        return (get_architecture("omni"), model, vocab,
                {"init": "from_model", **init_info, "tokenizers": tokenizers})

    def extra_meta(self, cfg, info, model):
        return {"formats": {}, "omni": {"feat_dim": model.config.feat_dim,
                                        "n_units": model.config.n_units, **self.args(cfg)}}

    def extra_metrics(self, trainer, train_ds, eval_ds, vocab, cfg):
        held_out = {} if eval_ds is None else {
            "eval": held_out_losses(trainer.model, eval_ds, vocab.pad_id, cfg.batch_size)}
        return {"units_unfit": train_ds.n_units_unfit, **held_out}

    def trainer(self, cfg, model, vocab, train_ds, eval_ds, callbacks):
        return speech_lm_trainer(cfg, model, vocab, train_ds, eval_ds, callbacks,
                                 omni_collate(vocab.pad_id),
                                 label_names=["labels", "unit_targets"])


OBJECTIVES.add("omni", OmniObjective())


def write_omni_rows(out_dir: str | Path, rows: Sequence[Mapping], tokenizer_dir: str | Path,
                    n_units: int, frame_rate: float, unit_tokenizer: str | Path | None = None,
                    **info: Any) -> Path:
    """Write rows (:data:`COLUMNS`, ``id``, optional ``prompt_text``) as an omni token dataset."""
    import os

    import pyarrow as pa

    from speechlm.tokenizers.job import write_token_table

    if not rows:
        raise ConfigError(f"{out_dir}: no row to write")
    schema = pa.schema([("id", pa.string()), ("prompt_feats", pa.list_(pa.list_(pa.float32()))),
                        ("prompt_text", pa.string()), ("response_text", pa.string()),
                        ("response_units", pa.list_(pa.int32()))])
    table = pa.Table.from_pylist(
        [{"id": str(r.get("id", i)), "prompt_feats": np.asarray(r["prompt_feats"]).tolist(),
          "prompt_text": r.get("prompt_text"), "response_text": r["response_text"],
          "response_units": [int(u) for u in r["response_units"]]}
         for i, r in enumerate(rows)], schema=schema)
    if unit_tokenizer is not None:  # relative, as the dataset's own tokenizer is stored
        info["unit_tokenizer"] = os.path.relpath(Path(unit_tokenizer).resolve(),
                                                 Path(out_dir).resolve())
    return write_token_table(out_dir, table, tokenizer_dir, n_units, frame_rate, **info)


def held_out_losses(model: Any, dataset: OmniDataset, pad_id: int, batch_size: int
                    ) -> dict[str, float]:
    """Mean text and unit loss of ``model`` over ``dataset`` (per batch, averaged)."""
    import torch

    collate = omni_collate(pad_id)
    text, unit = [], []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(dataset), batch_size):
            batch = collate([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))])
            out = model(**{k: v.to(model.device) for k, v in batch.items()})
            text.append(float(out.text_loss))
            unit.append(float(out.unit_loss))
    model.train(was_training)
    return {"text_loss": float(np.mean(text)), "unit_loss": float(np.mean(unit))}
