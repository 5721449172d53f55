"""The multistream format on hand-made rows: exact streams and masks, delays, re-layout."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.errors import ConfigError
from speechlm.sequences.formats import FORMATS, parse_formats
from speechlm.sequences.multistream import multistream
from speechlm.sequences.vocab import SpeechVocab

VOCAB = SpeechVocab.build({"units": 10})  # <pad>=0 <s>=1 </s>=2 <unk>=3 [SPEECH]=4 [TEXT]=5, u0=6
ROW = {"units": [3, 5], "durations": [2, 1], "f0": [0, 7]}


def test_delay_one_on_durations_and_f0():
    ex = multistream(ROW, VOCAB, None, delays={"durations": 1, "f0": 1})
    assert ex.streams["units"].tolist() == [1, 4, 9, 11, 2, 0]
    assert ex.streams["durations"].tolist() == [-1, -1, -1, 2, 1, -1]
    assert ex.streams["f0"].tolist() == [-1, -1, -1, 0, 7, -1]
    assert ex.masks["units"].tolist() == [True, True, True, True, True, False]
    assert ex.masks["durations"].tolist() == [False, False, False, True, True, False]
    assert ex.masks["f0"].tolist() == [False, False, False, True, True, False]


def test_prompt_form_and_default_delays():
    ex = multistream(ROW, VOCAB, None, eos=False)  # defaults: every stream the row has, delay 1
    assert ex.streams["units"].tolist() == [1, 4, 9, 11, 0]
    assert ex.streams["durations"].tolist() == [-1, -1, -1, 2, 1]
    assert ex.masks["durations"].tolist() == [False, False, False, True, True]
    assert all(a.dtype == np.int64 for a in ex.streams.values())
    only_units = multistream({"units": [3]}, VOCAB, None, eos=False)
    assert list(only_units.streams) == ["units"]


def test_streams_and_delays_are_the_given_ones():
    ex = multistream(ROW, VOCAB, None, delays={"durations": 2})
    assert list(ex.streams) == ["units", "durations"]
    assert ex.streams["units"].tolist() == [1, 4, 9, 11, 2, 0, 0]
    assert ex.streams["durations"].tolist() == [-1, -1, -1, -1, 2, 1, -1]
    assert ex.masks["units"].tolist() == [True] * 5 + [False] * 2


def test_bad_rows_are_named():
    with pytest.raises(ValueError, match="no 'f0' stream"):
        multistream({"units": [3], "durations": [1]}, VOCAB, None, delays={"f0": 1})
    with pytest.raises(ValueError, match="'durations' has 1 values for 2 units"):
        multistream({"units": [3, 4], "durations": [1]}, VOCAB, None, delays={"durations": 1})


def test_registered_and_delays_not_settable_by_hand():
    assert FORMATS.get("multistream").columns == ("units", "durations")
    assert parse_formats({"multistream": 1.0})[0].params == {"eos": True, "delays": None}
    with pytest.raises(ConfigError, match="unknown parameter"):
        parse_formats({"multistream": {"ratio": 1.0, "p_switch": 0.1}})
    assert np.issubdtype(multistream(ROW, VOCAB, None).streams["f0"].dtype, np.integer)
