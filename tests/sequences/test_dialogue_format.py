"""Two-channel dialogue targets: next units, edges, delayed durations, windows and collation."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.sequences.dialogue import (
    DURATIONS,
    NEXT,
    UNITS,
    collate,
    dialogue_example,
    duration_targets,
    edge_mask,
    frames_left,
    next_units,
    windows,
)
from speechlm.sequences.example import IGNORE
from speechlm.sequences.vocab import SpeechVocab

VOCAB = SpeechVocab.build({"units": 20})
UNITS_1 = [5, 5, 7, 7, 7, 2]


def test_targets_of_one_channel_by_hand():
    nxt, mask = next_units(UNITS_1)
    assert nxt.tolist() == [5, 7, 7, 7, 2, 0] and mask.tolist() == [True] * 5 + [False]
    assert edge_mask(UNITS_1).tolist() == [False, True, False, False, True, False]
    assert frames_left(UNITS_1).tolist() == [2, 1, 3, 2, 1, 1]
    # delayed: the run of 7 starting at 2 is predicted at 2, the run of 2 at 5
    values, mask = duration_targets(UNITS_1)
    assert values.tolist() == [0, 0, 3, 0, 0, 1]
    assert mask.tolist() == [False, False, True, False, False, True]
    # at the edge: the same lengths one position earlier, where the next unit changes
    values, mask = duration_targets(UNITS_1, delayed=False)
    assert values.tolist() == [0, 3, 0, 0, 1, 0]
    assert mask.tolist() == [False, True, False, False, True, False]


def test_durations_are_capped_and_rows_are_channels():
    both = np.array([[3, 3, 3, 3, 1, 1], [4, 9, 9, 9, 9, 9]])
    assert frames_left(both, max_duration=3).tolist() == [[3, 3, 2, 1, 2, 1],
                                                          [1, 3, 3, 3, 2, 1]]
    values, mask = duration_targets(both, max_duration=3)
    assert values.tolist() == [[0, 0, 0, 0, 2, 0], [0, 3, 0, 0, 0, 0]]
    assert mask.tolist() == [[False, False, False, False, True, False],
                             [False, True, False, False, False, False]]
    assert edge_mask(both).tolist() == [[False, False, False, True, False, False],
                                        [True, False, False, False, False, False]]


def test_dialogue_example_prepends_bos_so_the_first_run_is_predicted():
    ex = dialogue_example([5, 5, 7], [0, 1, 1], VOCAB)
    o, bos = VOCAB.unit_offset, VOCAB.bos_id
    assert ex.streams[UNITS].tolist() == [[bos, o + 5, o + 5, o + 7], [bos, o, o + 1, o + 1]]
    assert ex.streams[NEXT].tolist() == [[o + 5, o + 5, o + 7, 0], [o, o + 1, o + 1, 0]]
    assert ex.masks[NEXT].tolist() == [[True, True, True, False]] * 2
    # BOS -> first unit is an edge; delayed durations sit on each run's first frame
    assert ex.streams[DURATIONS].tolist() == [[0, 2, 0, 1], [0, 1, 2, 0]]
    assert ex.masks[DURATIONS].tolist() == [[False, True, False, True],
                                            [False, True, True, False]]
    at_edge = dialogue_example([5, 5, 7], [0, 1, 1], VOCAB, delayed=False)
    assert at_edge.streams[DURATIONS].tolist() == [[2, 0, 1, 0], [1, 2, 0, 0]]


def test_bad_channels_are_named():
    with pytest.raises(ValueError, match="of one length"):
        dialogue_example([1, 2, 3], [1, 2], VOCAB)
    with pytest.raises(ValueError, match="units value out of range"):
        dialogue_example([1, 20], [1, 2], VOCAB)


def test_windows_keep_every_target_once_across_boundaries():
    a = [1, 1, 1, 1, 1, 2, 2, 3, 3, 3]
    b = [4, 4, 6, 6, 6, 6, 6, 6, 6, 0]
    ex = dialogue_example(a, b, VOCAB)  # 11 positions
    parts = windows(ex, 4)
    assert [len(p) for p in parts] == [4, 4, 3]
    for name in (UNITS, NEXT, DURATIONS):
        assert np.array_equal(np.concatenate([p.streams[name] for p in parts], 1),
                              ex.streams[name])
        assert np.array_equal(np.concatenate([p.masks[name] for p in parts], 1), ex.masks[name])
    o = VOCAB.unit_offset
    # window 0 ends at frame 3; its last target is window 1's first unit
    assert parts[0].streams[NEXT][:, -1].tolist() == parts[1].streams[UNITS][:, 0].tolist()
    assert parts[1].streams[UNITS][:, 0].tolist() == [o + 1, o + 6]
    # channel B's run of 6 starts in window 0 (position 3) and lasts 7 frames into window 1
    assert parts[0].streams[DURATIONS][1].tolist() == [0, 2, 0, 7]
    assert parts[1].masks[DURATIONS][1].tolist() == [False] * 4  # no run starts there
    assert parts[2].masks[NEXT][:, -1].tolist() == [False, False]  # the dialogue ends


def test_collate_pads_on_the_right_without_targets():
    ex = dialogue_example([5, 5, 7, 7, 1], [2, 2, 2, 3, 3], VOCAB)
    short = windows(ex, 4)[1]  # 2 positions
    batch = collate([windows(ex, 4)[0], short], VOCAB.pad_id)
    assert batch["units"].shape == batch["next_units"].shape == batch["durations"].shape \
        == (2, 2, 4)
    assert batch["units"][1, :, 2:].eq(VOCAB.pad_id).all()
    assert batch["next_units"][1, :, 1:].eq(IGNORE).all()  # the dialogue's end, then padding
    assert batch["next_units"][0].tolist() == ex.streams[NEXT][:, :4].tolist()
    # positions 4, 5: A = 7 (inside its run), 1 (a run of 1); B = 3 (a run of 2 starts), 3
    assert batch["durations"][1].tolist() == [[0, 1, 0, 0], [2, 0, 0, 0]]
    assert collate([short], VOCAB.pad_id, length=6)["units"].shape == (1, 2, 6)
    with pytest.raises(ValueError, match="longer than length=3"):
        collate([ex], VOCAB.pad_id, length=3)
