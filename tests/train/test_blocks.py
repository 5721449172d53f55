"""Training blocks on disk: ``format_examples`` + ``BlockDataset`` against the in-memory packing.

The formatted examples are a memory-mapped Arrow file written in batches of ``WRITER_BATCH``
rows (one Arrow chunk each); a block is a window over the concatenated examples that may span
examples and chunks. These tests pin the blocks to :func:`pack` of the same examples, the
``(K, T)`` stream layout, the loss masks through ``lm_collate``, the reuse of the file, and that
a DDP rank reads only the blocks its sampler gives it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pytest
from torch.utils.data import DistributedSampler

from speechlm.sequences.example import IGNORE, TOKENS, Example
from speechlm.sequences.formats import make_example, parse_formats, register_format
from speechlm.sequences.packing import pack
from speechlm.sequences.vocab import SpeechVocab
from speechlm.train import data
from speechlm.train.data import STEPS, BlockDataset, format_examples, load_rows
from speechlm.train.objectives import lm_collate
from speechlm.train.toydata import write_toy_token_dataset

K = 3  # rows of the test's (K, T) stream


@register_format("test_blocks_masked", columns=("units",),
                 summary="speech_only with the loss off on even unit ids (tests)")
def masked(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None) -> Example:
    """``BOS units EOS``; the loss mask is False on every even unit id."""
    ids = [vocab.bos_id, *vocab.units_to_ids(row["units"]).tolist(), vocab.eos_id]
    mask = [True] + [u % 2 == 1 for u in row["units"]] + [True]
    return Example.single(ids, mask)


@register_format("test_blocks_codes", columns=("units", "durations"),
                 summary="tokens + a (3, T) codes stream + a float stream (tests)")
def codes(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None) -> Example:
    """Three aligned streams: ``tokens`` (T,), ``codes`` (K, T) = 10 * unit + k, ``dur`` (T,)."""
    units = np.asarray(row["units"], dtype=np.int64)
    t = np.arange(len(units))
    code = 10 * units[None, :] + np.arange(K)[:, None]  # (K, T)
    code_mask = (t[None, :] + np.arange(K)[:, None]) % 3 != 0  # (K, T)
    return Example({TOKENS: vocab.units_to_ids(units), "codes": code,
                    "dur": np.asarray(row["durations"], dtype=np.float64) / 2},
                   {"codes": code_mask})


@register_format("test_blocks_empty_first", columns=("id", "units"),
                 summary="every tenth row, row 0 first, gives an example with no steps (tests)")
def empty_first(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None
                ) -> Example:
    """Units as a ``(2, T)`` stream; no steps at all for rows ``toy...0``."""
    units = np.asarray(row["units"], dtype=np.int64)
    units = units[:0] if row["id"].endswith("0") else units
    return Example({"codes": np.stack([units, units + 1])})


@pytest.fixture(scope="module")
def vocab() -> SpeechVocab:
    return SpeechVocab.speech_only(20)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    """1,200 short toy rows: more than one Arrow chunk (``WRITER_BATCH`` = 1000 rows)."""
    assert data.WRITER_BATCH == 1000
    return write_toy_token_dataset(tmp_path_factory.mktemp("blocks_tokens"), n_rows=1200, seed=3)


def in_memory(tokens, vocab, uses, seed=0) -> list[Example]:
    """Every row formatted in memory, as the previous implementation did."""
    return [make_example(row, vocab, uses, seed, i, {"frame_rate": 50.0})
            for i, row in enumerate(load_rows(tokens))]


def chunk_step_bounds(examples) -> list[int]:
    """Step offsets where the formatted file's Arrow chunks meet."""
    steps = [int(np.sum(c.to_numpy())) for c in examples.data.table.column(STEPS).chunks]
    return np.cumsum(steps)[:-1].tolist()


@pytest.mark.parametrize("fmt", ["speech_only", "test_blocks_masked"])
def test_blocks_equal_in_memory_pack(tokens, vocab, tmp_path, fmt):
    uses = parse_formats({fmt: 1.0})
    ex = format_examples(tokens, vocab, uses, 0, tmp_path, progress=False)
    bounds = chunk_step_bounds(ex)
    assert len(bounds) == 1  # two chunks: 1000 rows + 200 rows
    expected = in_memory(tokens, vocab, uses)
    total = sum(len(e) for e in expected)
    for seq_len in (7, 32, 100, 1000):
        ids, labels = pack(expected, seq_len)
        blocks = BlockDataset(ex, seq_len)
        assert len(blocks) == len(ids) == total // seq_len  # the final partial block is dropped
        assert blocks.n_tokens == len(ids) * seq_len < total
        # a block spans the chunk boundary (the boundary is not a block boundary)
        assert bounds[0] % seq_len != 0 and bounds[0] < blocks.n_tokens
        got = [blocks[i] for i in range(len(blocks))]
        np.testing.assert_array_equal(np.stack([g["streams"][TOKENS] for g in got]), ids)
        got_labels = np.stack([np.where(g["masks"][TOKENS], g["streams"][TOKENS], IGNORE)
                               for g in got])
        np.testing.assert_array_equal(got_labels, labels)
        with pytest.raises(IndexError):
            blocks[len(blocks)]


def test_two_streams_with_a_k_by_t_stream(tokens, vocab, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "WRITER_BATCH", 64)  # many chunks: 19 for 1,200 rows
    uses = parse_formats({"test_blocks_codes": 1.0})
    ex = format_examples(tokens, vocab, uses, 0, tmp_path, progress=False)
    assert len(chunk_step_bounds(ex)) == 18
    expected = in_memory(tokens, vocab, uses)
    # the examples concatenated on the time axis
    names = list(expected[0].streams)
    cat = {n: np.concatenate([e.streams[n] for e in expected], axis=-1) for n in names}
    cat_m = {n: np.concatenate([e.masks[n] for e in expected], axis=-1) for n in names}
    assert cat["codes"].shape[0] == K and not cat_m["codes"].all()
    for seq_len in (5, 64, 333):
        blocks = BlockDataset(ex, seq_len)
        assert blocks.rows == {TOKENS: 1, "codes": K, "dur": 1}
        assert len(blocks) == cat[TOKENS].shape[-1] // seq_len
        for i in range(len(blocks)):
            item, window = blocks[i], slice(i * seq_len, (i + 1) * seq_len)
            assert item["streams"]["codes"].shape == item["masks"]["codes"].shape == (K, seq_len)
            assert item["streams"][TOKENS].shape == item["streams"]["dur"].shape == (seq_len,)
            assert item["streams"]["dur"].dtype == np.float32
            for n in cat:
                np.testing.assert_array_equal(item["streams"][n], cat[n][..., window])
                np.testing.assert_array_equal(item["masks"][n], cat_m[n][..., window])
                assert item["masks"][n].dtype == bool


def test_example_without_steps_first(tokens, vocab, tmp_path):
    """An empty example (here the first one) neither breaks K nor shifts the blocks."""
    uses = parse_formats({"test_blocks_empty_first": 1.0})
    expected = in_memory(tokens, vocab, uses)
    assert len(expected[0]) == 0 and sum(len(e) == 0 for e in expected) > 1
    ex = format_examples(tokens, vocab, uses, 0, tmp_path, progress=False)
    cat = np.concatenate([e.streams["codes"] for e in expected], axis=-1)  # (2, total)
    blocks = BlockDataset(ex, 50)
    assert blocks.rows == {"codes": 2} and len(blocks) == cat.shape[-1] // 50
    for i in (0, 1, len(blocks) - 1):
        np.testing.assert_array_equal(blocks[i]["streams"]["codes"], cat[:, i * 50:(i + 1) * 50])


def test_masked_positions_become_ignored_labels(tokens, vocab, tmp_path):
    uses = parse_formats({"test_blocks_masked": 1.0})
    blocks = BlockDataset(format_examples(tokens, vocab, uses, 0, tmp_path, progress=False), 16)
    items = [blocks[i] for i in range(4)]
    batch = lm_collate(items)
    ids, labels = batch["input_ids"].numpy(), batch["labels"].numpy()
    assert ids.shape == labels.shape == (4, 16) and ids.dtype == np.int64
    units = ids - vocab.unit_offset
    is_unit = (units >= 0) & (units < vocab.n_units)
    off = is_unit & (units % 2 == 0)  # exactly where the format's mask is False
    assert off.any() and (~off).any()
    np.testing.assert_array_equal(labels == IGNORE, off)
    np.testing.assert_array_equal(labels[~off], ids[~off])
    np.testing.assert_array_equal(off, ~np.stack([it["masks"][TOKENS] for it in items]))


def test_formatted_file_is_reused_and_keyed(tokens, vocab, tmp_path):
    uses = parse_formats({"speech_only": 1.0})
    first = format_examples(tokens, vocab, uses, 0, tmp_path, progress=False)
    (path,) = [f["filename"] for f in first.cache_files]
    mtime = os.stat(path).st_mtime_ns
    again = format_examples(tokens, vocab, uses, 0, tmp_path, progress=False)
    assert [f["filename"] for f in again.cache_files] == [path]
    assert os.stat(path).st_mtime_ns == mtime  # not written a second time
    assert sorted(p.name for p in tmp_path.iterdir()) == [os.path.basename(path)]
    other_seed = format_examples(tokens, vocab, uses, 1, tmp_path, progress=False)
    other_format = format_examples(tokens, vocab, parse_formats({"test_blocks_masked": 1.0}), 0,
                                   tmp_path, progress=False)
    other_key = format_examples(tokens, vocab, uses, 0, tmp_path, key="eval_data",
                                progress=False)
    paths = {path} | {f["filename"] for d in (other_seed, other_format, other_key)
                      for f in d.cache_files}
    assert len(paths) == 4 and len(list(tmp_path.glob("*.arrow"))) == 4
    assert os.stat(path).st_mtime_ns == mtime


def test_each_rank_reads_only_its_blocks(tokens, vocab, tmp_path, monkeypatch):
    uses = parse_formats({"speech_only": 1.0})
    ex = format_examples(tokens, vocab, uses, 0, tmp_path, progress=False)
    seq_len = next(n for n in range(32, 40) if len(BlockDataset(ex, n)) % 2 == 0)
    blocks = BlockDataset(ex, seq_len)  # an even number of blocks: the ranks split them all
    reference = [blocks[i]["streams"][TOKENS] for i in range(len(blocks))]
    reads: list[tuple[str, int, int]] = []  # (column, first step, end step) of every read
    window = BlockDataset._window

    def counted(self, col, k, start, stop):
        reads.append((col, start, stop))
        return window(self, col, k, start, stop)

    monkeypatch.setattr(BlockDataset, "_window", counted)
    per_rank = []
    for rank in (0, 1):
        sampler = DistributedSampler(blocks, num_replicas=2, rank=rank, shuffle=True, seed=0)
        reads.clear()
        indices = list(sampler)
        for i in indices:
            np.testing.assert_array_equal(blocks[i]["streams"][TOKENS], reference[i])
        # exactly one window of the stream and one of its mask per block of this rank
        assert sorted(reads) == sorted((c, i * seq_len, (i + 1) * seq_len)
                                       for i in indices for c in ("s:tokens", "m:tokens"))
        per_rank.append(set(indices))
    assert not per_rank[0] & per_rank[1]
    assert per_rank[0] | per_rank[1] == set(range(len(blocks)))
    assert len(per_rank[0]) == len(per_rank[1]) == len(blocks) // 2


def test_blocks_hold_no_copy_of_the_data(tokens, vocab, tmp_path):
    """The dataset keeps zero-copy views of the memory-mapped file, not arrays of its own."""
    import pyarrow as pa
    from datasets.table import MemoryMappedTable

    ex = format_examples(tokens, vocab, parse_formats({"speech_only": 1.0}), 0, tmp_path,
                         progress=False)
    assert isinstance(ex.data, MemoryMappedTable)
    before = pa.total_allocated_bytes()
    blocks = BlockDataset(ex, 32)
    assert pa.total_allocated_bytes() - before < 4096  # no Arrow buffer for the tokens
    assert blocks[3]["streams"][TOKENS].base is not None  # a view, not a copy


def test_progress_off_silences_the_map(tokens, vocab, tmp_path, capfd):
    import datasets

    enabled = datasets.is_progress_bar_enabled()
    uses = parse_formats({"speech_only": 1.0})
    format_examples(tokens, vocab, uses, 0, tmp_path, key="quiet", progress=False)
    assert "formatting quiet" not in capfd.readouterr().err
    assert datasets.is_progress_bar_enabled() == enabled  # restored
    if enabled:
        format_examples(tokens, vocab, uses, 0, tmp_path, key="shown", progress=True)
        assert "formatting shown" in capfd.readouterr().err


def test_pickled_blocks_refer_to_the_file(tokens, vocab, tmp_path):
    """A DataLoader worker started by spawn gets the file's path, not a copy of the tokens."""
    import pickle

    ex = format_examples(tokens, vocab, parse_formats({"speech_only": 1.0}), 0, tmp_path,
                         progress=False)
    blocks = BlockDataset(ex, 32)
    payload = pickle.dumps(blocks)
    assert len(payload) < 10_000 < blocks.n_tokens * 4
    back = pickle.loads(payload)
    assert len(back) == len(blocks) and back.rows == blocks.rows
    for i in (0, len(blocks) // 2, len(blocks) - 1):
        np.testing.assert_array_equal(back[i]["streams"][TOKENS], blocks[i]["streams"][TOKENS])
