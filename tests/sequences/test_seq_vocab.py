"""SpeechVocab: id layout, offsets, and round trips through plain ``AutoTokenizer``."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from speechlm.errors import ConfigError
from speechlm.sequences.vocab import SpeechVocab

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "the", "cat", "sat"]


def text_tokenizer() -> PreTrainedTokenizerFast:
    """A 7-token word-level text tokenizer with known ids (the 'text LM' tokenizer)."""
    core = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def test_speech_only_layout_and_offsets():
    v = SpeechVocab.speech_only(5)
    assert (v.pad_id, v.bos_id, v.eos_id, v.speech_id, v.text_id) == (0, 1, 2, 4, 5)
    assert v.unit_offset == 6 and v.size == 11 and not v.has_text
    assert v.units_to_ids([0, 4, 2]).tolist() == [6, 10, 8]
    assert v.ids_to_units([1, 4, 6, 10, 8, 2]).tolist() == [0, 4, 2]
    with pytest.raises(ValueError):
        v.units_to_ids([5])
    with pytest.raises(ConfigError, match="text"):
        v.text_to_ids("the cat")


def test_speech_only_saves_as_plain_hf_tokenizer(tmp_path):
    v = SpeechVocab.speech_only(5, n_pitch=3)
    v.save(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok("<s> [SPEECH] <u0> <u4>", add_special_tokens=False)["input_ids"] == [1, 4, 6, 10]
    assert len(tok) == v.size == 6 + 5 + 3
    w = SpeechVocab.load(tmp_path)
    assert w.layout == v.layout
    assert w.pitch_to_ids([0, 2]).tolist() == [11, 13]


def test_extend_keeps_text_ids_and_appends_contiguous_units(tmp_path):
    t = text_tokenizer()
    v = SpeechVocab.extend(t, 4)
    assert v.layout.n_text == 7 and v.has_text
    assert (v.bos_id, v.eos_id, v.pad_id) == (1, 2, 0)
    assert (v.speech_id, v.text_id, v.unit_offset, v.size) == (7, 8, 9, 13)
    assert v.text_to_ids("the cat sat") == [4, 5, 6] == t("the cat sat")["input_ids"]
    assert len(t) == 7  # the caller's tokenizer is not modified
    v.save(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    ids = tok("the cat [SPEECH] <u0> <u3>", add_special_tokens=False)["input_ids"]
    assert ids == [4, 5, 7, 9, 12]
    assert np.array_equal(SpeechVocab.load(tmp_path).units_to_ids([3]), [12])


def test_named_ranges_and_markers_are_built_not_numbered(tmp_path):
    v = SpeechVocab.build({"units": 3, "codec0": 2, "codec1": 2},
                          markers=["[SPEECH]", "[TEXT]", "[Human]"])
    assert v.layout.specials == {"pad": 0, "bos": 1, "eos": 2, "unk": 3}
    assert v.layout.markers == {"[SPEECH]": 4, "[TEXT]": 5, "[Human]": 6}
    assert v.layout.ranges == {"units": (7, 3), "codec0": (10, 2), "codec1": (12, 2)}
    assert v.to_ids("codec1", [0, 1]).tolist() == [12, 13]
    assert v.from_ids("codec0", [1, 10, 11, 12]).tolist() == [0, 1]
    v.save(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    ids = tok("[Human] <u2> <c0_1> <c1_0>", add_special_tokens=False)["input_ids"]
    assert ids == [6, 9, 11, 12]
    assert SpeechVocab.load(tmp_path).layout == v.layout


def test_unknown_names_list_the_valid_ones():
    v = SpeechVocab.speech_only(4)
    with pytest.raises(ConfigError, match="no 'pitch' tokens; it has: units"):
        v.to_ids("pitch", [0])
    with pytest.raises(ConfigError, match=r"no marker \[Human\]; it has: \[SPEECH\], \[TEXT\]"):
        v.marker("[Human]")
    with pytest.raises(ConfigError, match="range 'phones' is unknown; valid: units, pitch"):
        SpeechVocab.build({"phones": 3})


def test_with_tokens_appends_without_moving_ids():
    v = SpeechVocab.speech_only(4)
    w = v.with_tokens(["[SPEECH]", "[Human]", "[Assistant]"], {"units": 4, "pitch": 2})
    assert w.layout.ranges["units"] == v.layout.ranges["units"] == (6, 4)
    assert w.layout.markers == {"[SPEECH]": 4, "[TEXT]": 5, "[Human]": 10, "[Assistant]": 11}
    assert w.layout.ranges["pitch"] == (12, 2) and w.size == 14
    assert w.tokenizer.convert_tokens_to_ids(["[Human]", "<p1>"]) == [10, 13]
    assert v.size == 10 and "[Human]" not in v.layout.markers  # the original is unchanged
    assert v.with_tokens(["[SPEECH]"]) is v
    with pytest.raises(ConfigError, match="units: the vocabulary has 4 units tokens, the data 5"):
        v.with_tokens(ranges={"units": 5})


def test_layout_written_before_named_ranges_still_loads(tmp_path):
    import json

    v = SpeechVocab.speech_only(5, n_pitch=3)
    v.save(tmp_path)
    old = {"mode": "speech_only", "n_units": 5, "unit_offset": 6, "bos_id": 1, "eos_id": 2,
           "pad_id": 0, "speech_id": 4, "text_id": 5, "size": 14, "n_pitch": 3,
           "pitch_offset": 11, "n_style": 0, "style_offset": -1, "n_text": 0}
    (tmp_path / "speech_vocab.json").write_text(json.dumps(old))
    w = SpeechVocab.load(tmp_path)
    assert (w.bos_id, w.eos_id, w.pad_id, w.speech_id, w.text_id) == (1, 2, 0, 4, 5)
    assert w.units_to_ids([0]).tolist() == [6] and w.pitch_to_ids([2]).tolist() == [13]
