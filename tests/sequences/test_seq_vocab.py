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
