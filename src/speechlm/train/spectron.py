"""The ``spectron`` objective: SpeechGPT's chain of modality ending in a spectrogram.

Spectron (Nachmani et al., 2023) answers speech with text and then the spectrogram itself, from a
regression head on the LM. Here the chain is SpeechGPT's up to the text answer, and the spoken
answer is the log-mel frames of the recorded response instead of units::

    BOS [Human] <sosp> question units <eosp> <eoh> [SpeechGPT] [tq] transcript [ta] answer [SPEC]
    frames...

The loss is the text's cross-entropy from ``[tq]`` on (the transcript, the answer and ``[SPEC]``)
plus :class:`~speechlm.models.modeling_spectron.SpectronLM`'s frame regression and stop terms.

Data (:func:`write_spectron_rows`): a token dataset whose rows have ``prompt_units``,
``prompt_text``, ``response_text`` and ``response_frames`` (T x n_mels log-mel of the spoken
answer, unnormalised so that Griffin-Lim inverts it); ``info.json`` holds the mel front end's
settings (``mel``). ``run_training`` trains it from a speech-text model directory
(``init: from_model``; :meth:`SpectronObjective.build` wraps it) like any objective and writes
a model directory with architecture ``spectron``.
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

COLUMNS = ("prompt_units", "prompt_text", "response_text", "response_frames")
MEL_OPTIONS = {"n_mels": 80, "normalize": False}  # invertible: the level is kept


def mel_frontend(spec: Mapping | None = None) -> Any:
    """The log-mel front end of the frames (``spec``: its ``to_dict()``; default 80 bands)."""
    from speechlm.tokenizers.features import SpectralFeatures, SpectralSpec
    from speechlm.tokenizers.frontends import make_frontend

    if spec is not None:
        return SpectralFeatures(SpectralSpec(**spec))
    return make_frontend("logmel", dict(MEL_OPTIONS))


def chain_prefix(vocab: Any, prompt_units: Sequence[int]) -> list[int]:
    """The turn up to ``[SpeechGPT]`` for a spoken question."""
    from speechlm.sequences import speechgpt as sg

    return sg.prompt_ids(vocab, sg.human_speech(vocab, prompt_units))


def spectron_chain_example(row: Mapping, vocab: Any) -> dict[str, Any]:
    """One row -> ``input_ids``, ``labels`` (from ``[tq]`` on) and ``frames`` (T, n_mels)."""
    from speechlm.models.modeling_spectron import SPEC
    from speechlm.sequences import speechgpt as sg

    prefix = chain_prefix(vocab, row["prompt_units"])
    answer = [vocab.marker(sg.TQ), *vocab.text_to_ids(row["prompt_text"]), vocab.marker(sg.TA),
              *vocab.text_to_ids(row["response_text"]), vocab.marker(SPEC)]
    frames = np.asarray(row["response_frames"], dtype=np.float32)
    return {"input_ids": prefix + answer, "labels": [IGNORE] * len(prefix) + answer,
            "frames": frames.reshape(len(frames), -1)}


class SpectronDataset:
    """The rows of a token dataset as :func:`spectron_chain_example` items; rows longer than
    ``max_len`` positions (text and frames) are left out (``n_too_long``)."""

    def __init__(self, data_dir: str | Path, vocab: Any, max_len: int, key: str = "data"):
        import pyarrow.compute as pc

        from speechlm.train.data import load_rows

        self.rows, self.vocab = load_rows(data_dir), vocab
        missing = [c for c in COLUMNS if c not in self.rows.column_names]
        if missing:
            raise ConfigError(f"{key}: {data_dir} has no column {', '.join(missing)} (a "
                              f"spectron dataset has {', '.join(COLUMNS)})")
        table = self.rows.data  # lengths from Arrow, without reading the frames into Python
        frames = pc.list_value_length(table.column("response_frames")).to_numpy(
            zero_copy_only=False)
        units = pc.list_value_length(table.column("prompt_units")).to_numpy(zero_copy_only=False)
        text = np.asarray([len(a) + len(b) for a, b in zip(
            vocab.tokenizer(table.column("prompt_text").to_pylist(),
                            add_special_tokens=False)["input_ids"],
            vocab.tokenizer(table.column("response_text").to_pylist(),
                            add_special_tokens=False)["input_ids"], strict=True)])
        steps = 10 + units + text + frames  # the template's markers, then both parts
        self.index = np.flatnonzero(steps <= max_len)
        self.n_too_long = int((steps > max_len).sum())
        if len(self.index) == 0:
            raise ConfigError(f"{key}: no row fits seq_len {max_len}; raise seq_len")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return spectron_chain_example(self.rows[int(self.index[i])], self.vocab)


def write_spectron_rows(out_dir: str | Path, rows: Sequence[Mapping], tokenizer_dir: str | Path,
                        n_units: int, frame_rate: float, mel: Mapping) -> Path:
    """Write rows (:data:`COLUMNS` and ``id``) as a spectron token dataset."""
    import pyarrow as pa

    from speechlm.tokenizers.job import write_token_table

    if not rows:
        raise ConfigError(f"{out_dir}: no row to write")
    schema = pa.schema([("id", pa.string()), ("prompt_units", pa.list_(pa.int32())),
                        ("prompt_text", pa.string()), ("response_text", pa.string()),
                        ("response_frames", pa.list_(pa.list_(pa.float32())))])
    table = pa.Table.from_pylist(
        [{"id": str(r["id"]), "prompt_units": [int(u) for u in r["prompt_units"]],
          "prompt_text": r["prompt_text"], "response_text": r["response_text"],
          "response_frames": np.asarray(r["response_frames"], dtype=np.float32).tolist()}
         for r in rows], schema=schema)
    return write_token_table(out_dir, table, tokenizer_dir, n_units, frame_rate, mel=dict(mel))


class SpectronObjective(Objective):
    """Text cross-entropy and frame regression on :class:`SpectronDataset` rows, for a
    :class:`~speechlm.models.modeling_spectron.SpectronLM` built around a trained model."""

    name = "spectron"
    params: dict[str, Any] = {}
    streams = None

    def check(self, cfg, uses) -> None:
        """No ``objective_args``; ``init: from_model`` (the formats are not used)."""
        for k in cfg.objective_args:
            raise ConfigError(f"objective_args.{k}: objective spectron takes none")
        if cfg.init != "from_model":
            raise ConfigError("init: objective spectron starts from a trained speech-text "
                              "model directory (init: from_model, init_from: DIR)")

    def build(self, cfg, info):
        """``init_from`` with the template's and ``[SPEC]`` markers appended, wrapped by the
        pre-net and the frame and stop heads; frames normalised by training-set statistics."""
        from speechlm.models.architecture import get_architecture
        from speechlm.models.init import from_model_init
        from speechlm.models.modeling_spectron import MARKERS, SpectronLM, mel_stats
        from speechlm.sequences.speechgpt import MARKERS as TEMPLATE
        from speechlm.train.data import load_rows

        lm, vocab, init_info = from_model_init(cfg.init_from, [*TEMPLATE, *MARKERS],
                                               seed=cfg.seed)
        rows = load_rows(cfg.data)
        sample = rows.select(range(min(len(rows), 500)))["response_frames"]
        mean, std = mel_stats(np.asarray(f, dtype=np.float32) for f in sample)
        model = SpectronLM.from_backbone(lm.model, len(mean), vocab.marker(MARKERS[0]), mean,
                                         std, seed=cfg.seed)
        tokenizers = {role: str(lm.dir / rel) for role, rel in lm.meta["tokenizers"].items()}
        return (get_architecture("spectron"), model, vocab,
                {"init": "from_model", **init_info, "tokenizers": tokenizers})

    def extra_meta(self, cfg, info, model):
        return {"formats": {}, "spectron": {"mel": info["mel"], "n_mels": model.config.n_mels}}

    def datasets(self, cfg, vocab, model, uses=(), eval_uses=()):
        return (SpectronDataset(cfg.data, vocab, cfg.seq_len),
                SpectronDataset(cfg.eval_data, vocab, cfg.seq_len, "eval_data")
                if cfg.eval_data else None)

    def trainer(self, cfg, model, vocab, train_ds, eval_ds, callbacks):
        from speechlm.models.modeling_spectron import spectron_collate

        return speech_lm_trainer(cfg, model, vocab, train_ds, eval_ds, callbacks,
                                 spectron_collate(vocab.pad_id), label_names=["labels", "frames"])


OBJECTIVES.add("spectron", SpectronObjective())
