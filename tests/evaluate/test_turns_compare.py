"""Comparing turn-taking sources: the gap-histogram distance and dGSLM's claim, on hand-made
figures."""

from __future__ import annotations

import pytest

from speechlm.evaluate.turns import (
    compare_sources,
    histogram,
    histogram_distance,
    summarize,
    turn_events,
)


def test_histogram_distance_is_total_variation_of_the_shapes():
    assert histogram_distance([2, 2, 0], [1, 1, 0]) == 0.0  # same shape, other counts
    assert histogram_distance([1, 0], [0, 1]) == 1.0
    assert histogram_distance([3, 1], [1, 3]) == pytest.approx(0.5)
    assert histogram_distance([0, 0], [1, 0]) == 1.0  # no gaps at all vs some
    assert histogram_distance([0, 0], [0, 0]) == 0.0


def _stats(a, b, seconds=60.0):
    return summarize([turn_events([a, b])], seconds)


def test_compare_sources_says_which_system_is_closer():
    # data: a 0.3-s gap, a 0.2-s overlap; model: the same; baseline: a 1.1-s gap, no overlap
    data = _stats([(0.0, 1.0), (3.0, 4.0)], [(1.3, 3.2)])
    model = _stats([(0.0, 1.0), (3.0, 4.0)], [(1.35, 3.25)])
    baseline = _stats([(0.0, 1.0), (4.5, 5.0)], [(2.1, 3.4)])
    c = compare_sources({"data": data, "model": model, "baseline": baseline})
    assert data["n_overlap"] == 1 and baseline["n_overlap"] == 0
    assert c["overlap_per_min_diff"] == {"model": 0.0, "baseline": 1.0}
    assert c["gap_distance"]["model"] == 0.0 and c["gap_distance"]["baseline"] == 1.0
    assert c["closer"] == {"overlap_per_min_diff": True, "gap_distance": True} and c["holds"]
    assert histogram([0.3])[3] == 1  # the bin the data's gap falls in
    reverse = compare_sources({"data": data, "model": baseline, "baseline": model})
    assert not reverse["holds"] and reverse["reference"] == "data"
