"""Named-stream examples: delay/undelay on hand-made arrays, masks, and the registries' misses."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.errors import ConfigError
from speechlm.sequences.example import IGNORE, TOKENS, Example, delay, undelay
from speechlm.sequences.formats import FORMATS, parse_formats


def test_delay_shifts_each_stream_and_masks_its_own_values():
    streams = {"units": np.array([10, 11, 12]), "dur": np.array([1, 2, 3]),
               "f0": np.array([7, 8, 9])}
    out, masks = delay(streams, {"dur": 1, "f0": 2}, pad={"units": 0, "dur": -1, "f0": -2})
    assert out["units"].tolist() == [10, 11, 12, 0, 0]
    assert out["dur"].tolist() == [-1, 1, 2, 3, -1]
    assert out["f0"].tolist() == [-2, -2, 7, 8, 9]
    assert masks["units"].tolist() == [True, True, True, False, False]
    assert masks["dur"].tolist() == [False, True, True, True, False]
    assert masks["f0"].tolist() == [False, False, True, True, True]


def test_delay_per_codebook_row_is_the_musicgen_pattern():
    codes = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])  # (K=3, T=3)
    out, masks = delay({"codes": codes}, {"codes": [0, 1, 2]}, pad=0)
    assert out["codes"].tolist() == [[1, 2, 3, 0, 0], [0, 4, 5, 6, 0], [0, 0, 7, 8, 9]]
    assert masks["codes"].astype(int).tolist() == [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0],
                                                   [0, 0, 1, 1, 1]]


def test_undelay_inverts_delay_exactly():
    rng = np.random.default_rng(0)
    streams = {"units": rng.integers(0, 50, 7), "dur": rng.integers(1, 9, 7),
               "codes": rng.integers(0, 16, (4, 7)), "f0": rng.normal(size=7).astype(np.float32)}
    delays = {"dur": 1, "f0": 3, "codes": [0, 1, 2, 3]}
    shifted, masks = delay(streams, delays, pad=0)
    assert all(a.shape[-1] == 10 for a in shifted.values())
    back, back_masks = undelay(shifted, delays, masks)
    for name, a in streams.items():
        assert np.array_equal(back[name], a), name
        assert back[name].dtype == a.dtype
        assert back_masks[name].all(), name


def test_undelay_keeps_missing_values_marked():
    # a generation that stopped early: the last f0 value was never produced
    shifted = {"units": np.array([5, 6, 0]), "f0": np.array([0, 1, 0])}
    masks = {"units": np.array([True, True, False]), "f0": np.array([False, True, False])}
    back, back_masks = undelay(shifted, {"f0": 1}, masks)
    assert back["units"].tolist() == [5, 6] and back["f0"].tolist() == [1, 0]
    assert back_masks["units"].tolist() == [True, True]
    assert back_masks["f0"].tolist() == [True, False]


def test_delay_errors_name_the_stream():
    with pytest.raises(ValueError, match="codes"):
        delay({"codes": np.zeros((2, 4))}, {"codes": [0, 1, 2]})
    with pytest.raises(ValueError, match="dur"):
        delay({"dur": np.zeros(3)}, {"dur": -1})
    with pytest.raises(ValueError, match="fewer than the largest delay"):
        undelay({"a": np.zeros(2)}, {"a": 3})


def test_multi_stream_example_has_a_mask_per_stream():
    ex = Example({"units": np.array([1, 2, 3]), "codes": np.zeros((2, 3), np.int64)},
                 {"units": np.array([False, True, True])})
    assert len(ex) == 3
    assert ex.masks["units"].tolist() == [False, True, True]
    assert ex.masks["codes"].shape == (2, 3) and ex.masks["codes"].all()
    with pytest.raises(ValueError, match="differ in length"):
        Example({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="mask of 'a'"):
        Example({"a": np.zeros(3)}, {"a": np.ones(2, bool)})


def test_single_stream_labels_follow_the_mask():
    ex = Example.single([1, 4, 6, 7, 2], [False, False, True, True, True])
    assert ex.streams[TOKENS].tolist() == ex.input_ids == [1, 4, 6, 7, 2]
    assert ex.labels == [IGNORE, IGNORE, 6, 7, 2]


def test_registry_misses_list_the_valid_names():
    with pytest.raises(ConfigError, match=r"formats\.speech_onyl: unknown format 'speech_onyl'; "
                                          r"valid: .*speech_only.*interleaved"):
        parse_formats({"speech_onyl": 1.0})
    with pytest.raises(ConfigError, match=r"formats\.interleaved\.p_swich: unknown parameter; "
                                          r"valid: ratio, p_switch"):
        parse_formats({"interleaved": {"ratio": 1, "p_swich": 0.2}})
    assert {"speech_only", "interleaved", "speech_instruction"} <= set(FORMATS.names())

    from speechlm.models.architecture import get_architecture
    from speechlm.train.objectives import get_objective

    # the names are listed in registration order, which depends on what was imported first
    with pytest.raises(ConfigError,
                       match=r"unknown architecture 'transformer'; valid: .*\bcausal_lm\b"):
        get_architecture("transformer")
    with pytest.raises(ConfigError, match=r"unknown objective 'mlm'; valid: (.*, )?lm\b"):
        get_objective("mlm")


def test_format_params_reach_the_format():
    uses = parse_formats({"interleaved": {"ratio": 2, "p_switch": 0.9}, "speech_only": 1})
    assert [u.spec.name for u in uses] == ["interleaved", "speech_only"]
    assert uses[0].ratio == 2.0 and uses[0].params["p_switch"] == 0.9
    assert uses[1].params == {"eos": True}
