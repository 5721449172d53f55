"""Training data: a token dataset -> formatted examples on disk -> packed blocks, memory-mapped.

Rows are formatted with ``datasets.map`` into an Arrow file beside the run (one column per
stream, ``s:<name>``, and per loss mask, ``m:<name>``), written batch by batch, so memory does not
grow with the corpus. A block is a window of ``seq_len`` steps over the concatenated examples,
read from the memory-mapped file when a batch asks for it (fairseq's ``break_mode=none``: a block
may span examples, only the final partial block is dropped). Under DDP, rank 0 writes the file
and every rank reads only the blocks its sampler gives it.

A ``(K, T)`` stream (codebooks) is stored time-major, ``K`` values per step.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.config import load_json
from speechlm.errors import ConfigError
from speechlm.sequences.example import Example
from speechlm.sequences.formats import FormatUse, check_formats, check_rows, make_example
from speechlm.sequences.vocab import SpeechVocab

logger = logging.getLogger(__name__)

STREAM, MASK = "s:", "m:"  # column prefixes of the formatted examples
STEPS = "steps"  # column: time steps of each example
PAIR_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")  # a pair format's rows (TRL's DPO)
WRITER_BATCH = 1000


def read_info(data_dir: str | Path) -> dict:
    """The token dataset's ``info.json``, with ``tokenizer`` resolved to an absolute path and,
    for a tokenizer with prosody, its pitch/style sizes and rates (``prosody_info``)."""
    p = Path(data_dir) / "info.json"
    info = load_json(p, "data must be a token dataset written by `speechlm tokenize`")
    for key in ("n_units", "frame_rate"):
        if key not in info:
            raise ConfigError(f"{p}: missing key {key!r}")
    if info.get("tokenizer"):  # stored relative to the dataset, so a moved run still works
        from speechlm.tokenizers.prosody import prosody_info

        info["tokenizer"] = str((Path(data_dir) / info["tokenizer"]).resolve())
        info = {**prosody_info(info["tokenizer"]), **_codec_info(info["tokenizer"]), **info}
    return info


def _codec_info(tokenizer_dir: str) -> dict:
    """``n_codebooks`` and ``codebook_size`` of a codec tokenizer (empty for other kinds)."""
    path = Path(tokenizer_dir) / "tokenizer.json"
    spec = json.loads(path.read_text()) if path.exists() else {}
    if spec.get("class") != "codec":
        return {}
    return {"n_codebooks": int(spec["n_codebooks"]), "codebook_size": int(spec["n_units"])}


def load_rows(data_dir: str | Path):
    """The token dataset as a memory-mapped ``datasets.Dataset``."""
    from speechlm.tokenizers.job import load_token_dataset

    return load_token_dataset(data_dir)


def _fingerprint(data_dir: Path, vocab: SpeechVocab, uses: Sequence[FormatUse], seed: int,
                 context: dict) -> str:
    """Content key of a formatted-examples file: the data files, vocabulary, formats, seed."""
    from dataclasses import asdict

    parts = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                   for p in (data_dir / "data").glob("*.parquet"))
    key = json.dumps({"data": parts, "vocab": asdict(vocab.layout), "seed": seed,
                      "context": context,
                      "formats": [(u.spec.name, u.ratio, u.params) for u in uses]},
                     sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def format_examples(data_dir: str | Path, vocab: SpeechVocab, uses: Sequence[FormatUse],
                    seed: int, cache_dir: str | Path, key: str = "data",
                    progress: bool = True):
    """Every row formatted (choice seeded by row index) into an Arrow file in ``cache_dir``.

    Returns the memory-mapped ``datasets.Dataset`` of ``s:<stream>`` / ``m:<stream>`` columns
    (and ``steps``), or, for pair formats (``output="pair"``), of ``prompt_ids`` /
    ``chosen_ids`` / ``rejected_ids``. A file made from the same data, vocabulary, formats and
    seed is reused.
    """
    data_dir = Path(data_dir)
    info = read_info(data_dir)
    if vocab.has_range("units") and int(info["n_units"]) > vocab.n_units:
        raise ConfigError(f"{key}: {data_dir} has {info['n_units']} units but the vocabulary "
                          f"{vocab.n_units}")
    with _progress_bars(progress):
        ds = load_rows(data_dir)
    check_formats(uses, vocab, ds.column_names, where=f"{key} ({data_dir})")
    for warning in check_rows(uses, ds, where=f"{key} ({data_dir})"):
        logger.warning(warning)
    context = {k: float(info[k]) for k in ("frame_rate", "pitch_rate", "style_rate") if k in info}
    cols = {c for u in uses for c in u.spec.columns}
    if any(u.spec.needs for u in uses):  # a row without what they need falls back to units
        cols.add("units")
    cols = sorted(cols & set(ds.column_names))
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{key}-{_fingerprint(data_dir, vocab, uses, seed, context)}.arrow"

    pairs = uses[0].spec.output == "pair"  # a mix is all pairs or all examples (objectives)

    def fmt(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {c: [] for c in PAIR_COLUMNS} if pairs else {STEPS: []}
        for j, index in enumerate(indices):
            row = {c: batch[c][j] for c in cols}
            ex = make_example(row, vocab, uses, seed, index, context)
            if pairs:
                for c, ids in zip(PAIR_COLUMNS, (ex.prompt, ex.chosen, ex.rejected), strict=True):
                    out[c].append(ids)
                continue
            out[STEPS].append(len(ex))
            for name, a in ex.streams.items():
                # (K, T) -> time-major (T*K,); masks the same way
                out.setdefault(STREAM + name, []).append(_flat(a))
                out.setdefault(MASK + name, []).append(_flat(ex.masks[name]))
        return out

    with _progress_bars(progress):
        return ds.map(fmt, batched=True, with_indices=True, batch_size=WRITER_BATCH,
                      writer_batch_size=WRITER_BATCH, remove_columns=ds.column_names,
                      cache_file_name=str(path), load_from_cache_file=True,
                      desc=f"formatting {key}")


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """``datasets``' progress bars off inside the block unless ``enabled`` (restored after)."""
    import datasets

    switch = not enabled and datasets.is_progress_bar_enabled()
    if switch:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if switch:
            datasets.enable_progress_bars()


def _flat(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        return a.T.reshape(-1)
    dtype = np.int32 if np.issubdtype(a.dtype, np.integer) else np.float32
    return a.T.reshape(-1).astype(dtype)


class BlockDataset:
    """Fixed-length windows over concatenated examples, read from memory-mapped Arrow.

    Item ``i`` is ``{"streams": {name: array}, "masks": {name: bool array}}`` with arrays of
    shape ``(seq_len,)`` or ``(K, seq_len)``; objectives turn items into model inputs.
    """

    def __init__(self, examples, seq_len: int, key: str = "data") -> None:
        self._args = (examples, seq_len, key)
        self.seq_len = seq_len
        self.names = [c[len(STREAM):] for c in examples.column_names if c.startswith(STREAM)]
        if not self.names or len(examples) == 0:
            raise ConfigError(f"{key}: no examples (the dataset is empty)")
        table = examples.data.table if hasattr(examples.data, "table") else examples.data
        steps = int(np.sum(table.column(STEPS).to_numpy()))
        self._chunks: dict[str, list] = {}  # column -> its flattened chunks (zero-copy views)
        self._starts: dict[str, np.ndarray] = {}  # column -> first value index of each chunk
        self.rows: dict[str, int] = {}  # stream -> values per step (K)
        for name in self.names:
            for col in (STREAM + name, MASK + name):
                self._chunks[col] = [c.flatten() for c in table.column(col).chunks]
                self._starts[col] = np.cumsum([0] + [len(c) for c in self._chunks[col]])
            # K from the totals: an example may have no steps (the first one too)
            self.rows[name] = int(self._starts[STREAM + name][-1]) // max(steps, 1)
        self.n_blocks = steps // seq_len
        if self.n_blocks == 0:
            raise ConfigError(f"seq_len: {seq_len} is longer than all of {key} ({steps} "
                              "tokens); lower seq_len or add data")

    def __getstate__(self) -> dict[str, Any]:
        # a DataLoader worker started by spawn/forkserver gets the file's path, not its contents
        return {"args": self._args}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(*state["args"])

    def __len__(self) -> int:
        return self.n_blocks

    @property
    def n_tokens(self) -> int:
        """Time steps in all blocks."""
        return self.n_blocks * self.seq_len

    def _window(self, col: str, k: int, start: int, stop: int) -> np.ndarray:
        """Steps ``[start, stop)`` of a column holding ``k`` values per step."""
        lo, hi = start * k, stop * k
        starts, chunks = self._starts[col], self._chunks[col]
        c = int(np.searchsorted(starts, lo, side="right")) - 1
        parts = []
        while lo < hi:
            a, b = lo - int(starts[c]), min(hi, int(starts[c + 1])) - int(starts[c])
            parts.append(chunks[c].slice(a, b - a).to_numpy(zero_copy_only=False))
            lo += b - a
            c += 1
        flat = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return flat if k == 1 else flat.reshape(stop - start, k).T  # (K, seq_len)

    def __getitem__(self, i: int) -> dict[str, dict[str, np.ndarray]]:
        if not 0 <= i < self.n_blocks:
            raise IndexError(i)
        start, stop = i * self.seq_len, (i + 1) * self.seq_len
        return {"streams": {n: self._window(STREAM + n, self.rows[n], start, stop)
                            for n in self.names},
                "masks": {n: self._window(MASK + n, self.rows[n], start, stop).astype(bool)
                          for n in self.names}}


def example_from_item(item: dict[str, Any]) -> Example:
    """A block as an :class:`Example` (tests and inspection)."""
    return Example(dict(item["streams"]), dict(item["masks"]))


class ExampleDataset:
    """One example per item (not packed), read from the memory-mapped Arrow of
    :func:`format_examples`: for models that see one utterance at a time (VALL-E's NAR attends
    both ways, so a block holding two utterances would mix them). Examples longer than
    ``max_len`` steps are left out and counted (``n_too_long``).

    Item ``i`` is ``{"streams": ..., "masks": ...}`` as :class:`BlockDataset`'s, each array of
    its example's own length.
    """

    def __init__(self, examples, max_len: int, key: str = "data") -> None:
        self._args = (examples, max_len, key)
        self.examples = examples
        self.names = [c[len(STREAM):] for c in examples.column_names if c.startswith(STREAM)]
        steps = np.asarray(examples[STEPS], dtype=np.int64)
        self.index = np.flatnonzero((steps <= max_len) & (steps > 0))
        self.n_too_long = int((steps > max_len).sum())
        self.n_tokens = int(steps[self.index].sum())
        if len(self.index) == 0:
            raise ConfigError(f"{key}: no example fits seq_len {max_len} ({len(steps)} examples, "
                              f"{self.n_too_long} longer); raise seq_len or add data")

    def __getstate__(self) -> dict[str, Any]:
        return {"args": self._args}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(*state["args"])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, dict[str, np.ndarray]]:
        row = self.examples[int(self.index[i])]
        n = int(row[STEPS])
        streams, masks = {}, {}
        for name in self.names:
            values = np.asarray(row[STREAM + name])
            k = len(values) // n
            streams[name] = values if k == 1 else values.reshape(n, k).T
            m = np.asarray(row[MASK + name], dtype=bool)
            masks[name] = m if k == 1 else m.reshape(n, k).T
        return {"streams": streams, "masks": masks}
