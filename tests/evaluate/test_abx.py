"""ABX: the batched DTW equals a plain one; separable phones give 0 error, noise gives ~0.5."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.evaluate.abx import Segment, abx_error, dtw_distances, phone_segments


def _plain_dtw(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cost = 1 - a @ b.T
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    n = np.zeros_like(acc)
    acc[0, 0] = 0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            opts = [(acc[i - 1, j - 1], n[i - 1, j - 1]), (acc[i - 1, j], n[i - 1, j]),
                    (acc[i, j - 1], n[i, j - 1])]
            best = min(opts, key=lambda t: t[0])
            acc[i, j], n[i, j] = best[0] + cost[i - 1, j - 1], best[1] + 1
    return acc[-1, -1] / n[-1, -1]


def test_batched_dtw_matches_plain_dtw():
    rng = np.random.default_rng(0)
    segs = [rng.standard_normal((int(n), 4)) for n in rng.integers(1, 9, 12)]
    pairs = [(i, j) for i in range(12) for j in range(i, 12)]
    got = dtw_distances(segs, pairs, chunk=7)
    want = [_plain_dtw(segs[i], segs[j]) for i, j in pairs]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got[pairs.index((3, 3))] == pytest.approx(0.0, abs=1e-6)


def _segments(separable: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = {p: rng.standard_normal(8) for p in "abcd"}
    segs = []
    for spk in ("s1", "s2", "s3"):
        shift = rng.standard_normal(8) * 0.3  # a speaker offset
        for p in "abcd":
            for _ in range(4):
                base = centres[p] + shift if separable else rng.standard_normal(8)
                frames = base + 0.1 * rng.standard_normal((int(rng.integers(2, 6)), 8))
                segs.append(Segment(p, ("", ""), spk, frames))
    return segs


def test_separable_phones_have_no_abx_error():
    r = abx_error(_segments(True), context=False)
    assert r["within"] == 0.0 and r["across"] == 0.0
    assert r["n_phone_pairs_within"] == 12 and r["n_phone_pairs_across"] == 12


def test_noise_features_are_at_chance():
    r = abx_error(_segments(False), context=False, max_other_speakers=2)
    assert 0.35 < r["within"] < 0.65 and 0.35 < r["across"] < 0.65


def test_phone_segments_cut_frames_at_the_gold_times():
    frames = np.arange(20, dtype=np.float32)[:, None]  # 10 Hz -> 2 s
    phones = [("_", 0.0, 0.3), ("'a", 0.3, 0.7), ("b", 0.7, 0.75), ("c", 0.75, 2.0)]
    segs = phone_segments(phones, frames, 10.0, "s")
    assert [s.phone for s in segs] == ["a", "b", "c"]  # stress mark dropped, pause skipped
    assert segs[0].frames[:, 0].tolist() == [3, 4, 5, 6]
    assert len(segs[1].frames) == 1  # shorter than a frame still gets one
    assert segs[0].context == ("_", "b") and segs[2].context == ("b", "#")
