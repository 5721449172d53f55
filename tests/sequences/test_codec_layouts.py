"""Codec layouts (flat, parallel, delayed, VALL-E AR+NAR): exact outputs on a hand-made K=3, T=4
example, exact round trips on random shapes and delays, and the errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.errors import ConfigError
from speechlm.sequences.codec import (
    Codebooks,
    ar_nar_codes,
    ar_nar_ids,
    delay_mask,
    delayed_codes,
    delayed_ids,
    flat_codes,
    flat_ids,
    moshi_delays,
    musicgen_delays,
    nar_stage,
    nar_stages,
    parallel_codes,
    parallel_ids,
)
from speechlm.sequences.example import delay
from speechlm.sequences.vocab import SpeechVocab

# K=3 codebooks of 4 codes, T=4 frames; codebook k's ids start at 10 + 4k
BOOKS = Codebooks.stacked(3, 4, start=10)
CODES = torch.tensor([[0, 1, 2, 3],
                      [3, 2, 1, 0],
                      [1, 1, 0, 2]])
IDS = torch.tensor([[10, 11, 12, 13],
                    [17, 16, 15, 14],
                    [19, 19, 18, 20]])


def _eq(a: torch.Tensor, expected) -> None:
    assert a.dtype == torch.long
    assert a.tolist() == (expected.tolist() if isinstance(expected, torch.Tensor) else expected)


# ---- the codebook table -------------------------------------------------------------------------
def test_stacked_codebooks_sit_back_to_back():
    assert BOOKS.offsets == (10, 14, 18) and BOOKS.sizes == (4, 4, 4) and BOOKS.n_codebooks == 3


def test_codebooks_from_the_vocabulary_ranges():
    vocab = SpeechVocab.build({"units": 3, "codec0": 4, "codec1": 4, "codec2": 4})
    books = Codebooks.from_vocab(vocab)  # 4 specials + [SPEECH] [TEXT], units 6..8, then codec
    assert books == Codebooks((9, 13, 17), (4, 4, 4))
    assert Codebooks.from_vocab(vocab, 2) == Codebooks((9, 13), (4, 4))
    assert parallel_ids(CODES, books)[:, 0].tolist() == vocab.to_ids("codec0", [0]).tolist() + \
        vocab.to_ids("codec1", [3]).tolist() + vocab.to_ids("codec2", [1]).tolist()
    with pytest.raises(ConfigError, match="no 'codec3' tokens; it has: units, codec0"):
        Codebooks.from_vocab(vocab, 4)
    with pytest.raises(ConfigError, match="no 'codec0' tokens; it has: units"):
        Codebooks.from_vocab(SpeechVocab.build({"units": 3}))


def test_codebook_table_errors():
    with pytest.raises(ConfigError, match="codebooks 0 and 1 overlap"):
        Codebooks((0, 3), (4, 4))
    with pytest.raises(ConfigError, match="2 offsets for 1 sizes"):
        Codebooks((0, 4), (4,))
    with pytest.raises(ConfigError, match="sizes must be positive"):
        Codebooks((0,), (0,))
    with pytest.raises(ConfigError, match="at least one codebook"):
        Codebooks((), ())


# ---- flat ----------------------------------------------------------------------------------------
def test_flat_is_time_major_with_per_codebook_offsets():
    flat = flat_ids(CODES, BOOKS)
    _eq(flat, [10, 17, 19, 11, 16, 19, 12, 15, 18, 13, 14, 20])
    _eq(flat_codes(flat, BOOKS), CODES)


def test_flat_keeps_a_batch_axis():
    batch = torch.stack([CODES, CODES.flip(-1)])  # (B=2, K=3, T=4)
    flat = flat_ids(batch, BOOKS)
    assert flat.shape == (2, 12)
    _eq(flat[1], flat_ids(CODES.flip(-1), BOOKS))
    _eq(flat_codes(flat, BOOKS), batch)


def test_flat_errors_name_the_position():
    flat = flat_ids(CODES, BOOKS)
    with pytest.raises(ValueError, match="multiple of 3 tokens, got 11"):
        flat_codes(flat[:-1], BOOKS)
    swapped = flat.clone()
    swapped[[3, 4]] = swapped[[4, 3]]  # frame 1: codebook 1's id first
    with pytest.raises(ValueError, match=r"token 3 \(frame 1, codebook 0\) holds id 16, "
                                         r"outside codebook 0's ids \[10, 14\)"):
        flat_codes(swapped, BOOKS)
    batch = torch.stack([flat, flat])
    batch[1, 11] = 3  # a text/special id where codebook 2 belongs
    with pytest.raises(ValueError, match=r"item 1: token 11 \(frame 3, codebook 2\) holds id 3"):
        flat_codes(batch, BOOKS)


# ---- parallel ------------------------------------------------------------------------------------
def test_parallel_offsets_each_codebook_row():
    _eq(parallel_ids(CODES, BOOKS), IDS)
    _eq(parallel_ids(CODES.numpy(), BOOKS), IDS)  # numpy and lists are accepted too
    _eq(parallel_ids(CODES.tolist(), BOOKS), IDS)
    _eq(parallel_codes(IDS, BOOKS), CODES)


def test_parallel_errors():
    bad = CODES.clone()
    bad[2, 3] = 4
    with pytest.raises(ValueError, match=r"codebook 2, frame 3: code 4 is outside \[0, 4\)"):
        parallel_ids(bad, BOOKS)
    bad[2, 3] = -1
    with pytest.raises(ValueError, match="code -1 is outside"):
        parallel_ids(bad, BOOKS)
    with pytest.raises(ValueError, match=r"must be \[\.\.\., K=3, T\], got shape \(2, 4\)"):
        parallel_ids(CODES[:2], BOOKS)
    with pytest.raises(ValueError, match="must be integers, got torch.float32"):
        parallel_ids(CODES.float(), BOOKS)
    ids = IDS.clone()
    ids[0, 1] = 14  # codebook 1's first id in codebook 0's row
    with pytest.raises(ValueError, match=r"codebook 0, frame 1 holds id 14, outside codebook "
                                         r"0's ids \[10, 14\)"):
        parallel_codes(ids, BOOKS)


# ---- delayed -------------------------------------------------------------------------------------
def test_delayed_musicgen_stair_on_parallel_ids():
    out = delayed_ids(IDS, pad_id=0)  # default delays 0, 1, 2
    _eq(out, [[10, 11, 12, 13, 0, 0],
              [0, 17, 16, 15, 14, 0],
              [0, 0, 19, 19, 18, 20]])
    assert delay_mask(4, musicgen_delays(3)).int().tolist() == [[1, 1, 1, 1, 0, 0],
                                                                 [0, 1, 1, 1, 1, 0],
                                                                 [0, 0, 1, 1, 1, 1]]
    _eq(delayed_codes(out), IDS)


def test_delayed_moshi_pattern_on_raw_codes():
    delays = moshi_delays(3)
    assert delays == [0, 1, 1]
    out = delayed_ids(CODES, pad_id=4, delays=delays)  # MusicGen's pad: codebook_size
    _eq(out, [[0, 1, 2, 3, 4],
              [4, 3, 2, 1, 0],
              [4, 1, 1, 0, 2]])
    assert delay_mask(4, delays).int().tolist() == [[1, 1, 1, 1, 0],
                                                    [0, 1, 1, 1, 1],
                                                    [0, 1, 1, 1, 1]]
    _eq(delayed_codes(out, delays), CODES)
    assert moshi_delays(4, acoustic_delay=2) == [0, 2, 2, 2]


def test_delayed_matches_the_numpy_delay_of_examples():
    delays = [2, 0, 1]
    shifted, masks = delay({"codes": CODES.numpy()}, {"codes": delays}, pad=-1)
    _eq(delayed_ids(CODES, -1, delays), torch.from_numpy(shifted["codes"]))
    assert delay_mask(4, delays).tolist() == masks["codes"].tolist()


def test_undelay_ignores_whatever_sits_on_the_pads():
    out = delayed_ids(IDS, pad_id=0)
    generated = torch.where(delay_mask(4, [0, 1, 2]), out, torch.full_like(out, 99))
    _eq(delayed_codes(generated), IDS)


def test_delayed_keeps_a_batch_axis():
    batch = torch.stack([IDS, IDS + 1])  # (B=2, K=3, T=4)
    out = delayed_ids(batch, pad_id=0, delays=[1, 0, 3])
    assert out.shape == (2, 3, 7)
    _eq(out[1], delayed_ids(IDS + 1, 0, [1, 0, 3]))
    _eq(delayed_codes(out, [1, 0, 3]), batch)


def test_delay_errors():
    with pytest.raises(ConfigError, match=r"delays must be >= 0, got \[0, -1, 2\]"):
        delayed_ids(CODES, 0, [0, -1, 2])
    with pytest.raises(ConfigError, match="delays: 2 given for 3 codebooks"):
        delayed_ids(CODES, 0, [0, 1])
    with pytest.raises(ConfigError, match="delays must be >= 0"):
        delay_mask(4, [0, -1])
    with pytest.raises(ConfigError, match="delays must be >= 0"):
        delayed_codes(IDS, [-1, 0, 0])
    with pytest.raises(ValueError, match="2 steps is shorter than the largest delay 3"):
        delayed_codes(IDS[:, :2], [0, 3, 0])
    with pytest.raises(ValueError, match=r"must be \[\.\.\., K, T\]"):
        delayed_ids(torch.arange(4), 0)


# ---- VALL-E AR + NAR -----------------------------------------------------------------------------
def test_ar_nar_split_and_merge():
    ar, nar = ar_nar_ids(CODES, BOOKS)
    _eq(ar, [10, 11, 12, 13])
    _eq(nar, [[17, 16, 15, 14], [19, 19, 18, 20]])
    _eq(ar_nar_codes(ar, nar, BOOKS), CODES)
    _eq(ar_nar_codes(ar, [nar[0], nar[1]], BOOKS), CODES)  # one output per NAR stage


def test_nar_stages_read_the_codebooks_below():
    one, two = nar_stages(CODES, BOOKS)
    assert one.stage == 1 and two.stage == 2
    _eq(one.inputs, [[10, 11, 12, 13]])
    _eq(one.target, [17, 16, 15, 14])
    _eq(two.inputs, [[10, 11, 12, 13], [17, 16, 15, 14]])
    _eq(two.target, [19, 19, 18, 20])
    batched = nar_stage(torch.stack([CODES, CODES]), 2, BOOKS)
    assert batched.inputs.shape == (2, 2, 4) and batched.target.shape == (2, 4)
    _eq(batched.inputs[1], two.inputs)


def test_ar_nar_errors():
    with pytest.raises(ConfigError, match=r"NAR stage 0: stages of 3 codebooks are 1\.\.2"):
        nar_stage(CODES, 0, BOOKS)
    with pytest.raises(ConfigError, match="NAR stage 3"):
        nar_stage(CODES, 3, BOOKS)
    ar, nar = ar_nar_ids(CODES, BOOKS)
    with pytest.raises(ValueError, match=r"do not align"):
        ar_nar_codes(ar[:3], nar, BOOKS)
    bad = nar.clone()
    bad[0, 0] = 10  # an AR (codebook 0) id as codebook 1's output
    with pytest.raises(ValueError, match=r"codebook 1, frame 0 holds id 10"):
        ar_nar_codes(ar, bad, BOOKS)


def test_one_codebook_has_no_nar_stage():
    books = Codebooks.stacked(1, 8)
    codes = torch.tensor([[5, 0, 7]])
    ar, nar = ar_nar_ids(codes, books)
    assert nar.shape == (0, 3) and nar_stages(codes, books) == []
    _eq(ar_nar_codes(ar, nar, books), codes)
    _eq(ar_nar_codes(ar, [], books), codes)


# ---- random round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (2, 5), (4, 7), (8, 3), (3, 0), (2, 4, 5),
                                   (3, 2, 1, 6)])
def test_every_layout_round_trips_exactly(shape):
    rng = np.random.default_rng(sum(shape))
    k = shape[-2]
    sizes = [int(s) for s in rng.integers(1, 20, k)]
    # ranges in a random order with gaps between them, as a vocabulary may place them
    offsets, start = [0] * k, 7
    for i in rng.permutation(k):
        offsets[i], start = start, start + sizes[i] + int(rng.integers(0, 3))
    books = Codebooks(tuple(offsets), tuple(sizes))
    codes = torch.from_numpy(np.stack([rng.integers(0, books.sizes[i], shape[:-2] + shape[-1:])
                                       for i in range(k)], axis=-2))
    assert codes.shape == shape
    _eq(flat_codes(flat_ids(codes, books), books), codes)
    _eq(parallel_codes(parallel_ids(codes, books), books), codes)
    _eq(ar_nar_codes(*ar_nar_ids(codes, books), books), codes)
    for delays in (None, moshi_delays(k), [int(d) for d in rng.integers(0, 4, k)]):
        ids = parallel_ids(codes, books)
        out = delayed_ids(ids, pad_id=-1, delays=delays)
        d = musicgen_delays(k) if delays is None else delays
        assert out.shape == (*shape[:-1], shape[-1] + max(d))
        mask = delay_mask(shape[-1], d)
        assert bool((out[..., ~mask] == -1).all()) and int(mask.sum()) == k * shape[-1]
        _eq(delayed_codes(out, delays), ids)
