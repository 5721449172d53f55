"""VALL-E's AR, NAR and delayed layouts: exact expected ids, masks and kinds, and the batch."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.errors import ConfigError
from speechlm.sequences.example import IGNORE
from speechlm.sequences.valle import (
    ValleLayout,
    ar_example,
    collate,
    delayed_example,
    nar_example,
    prompt_split,
)
from speechlm.sequences.vocab import SpeechVocab

# <pad>=0 <s>=1 </s>=2 <unk>=3 [SPEECH]=4 [TEXT]=5, phonemes 6..10, codec0 11..14,
# codec1 15..18, codec2 19..22
VOCAB = SpeechVocab.build({"phonemes": 5, "codec0": 4, "codec1": 4, "codec2": 4})
LAYOUT = ValleLayout.from_vocab(VOCAB)
PHONEMES = [0, 2]  # ids 6, 8
PROMPT = [[1], [2], [3]]  # ids 12 / 17 / 22
TARGET = [[0, 3], [1, 1], [2, 0]]  # ids 11 14 / 16 16 / 21 19


def test_layout_comes_from_the_vocabulary_and_round_trips():
    assert (LAYOUT.bos_id, LAYOUT.eos_id, LAYOUT.pad_id, LAYOUT.audio_id) == (1, 2, 0, 4)
    assert (LAYOUT.phoneme_offset, LAYOUT.n_phonemes) == (6, 5)
    assert LAYOUT.books.offsets == (11, 15, 19) and LAYOUT.max_id == 22 == VOCAB.size - 1
    assert ValleLayout.from_dict(LAYOUT.to_dict()) == LAYOUT
    with pytest.raises(ConfigError, match="layout: expected the keys"):
        ValleLayout.from_dict({"bos_id": 1})
    with pytest.raises(ValueError, match=r"phoneme 5 is outside \[0, 5\)"):
        LAYOUT.phoneme_ids([1, 5])


def test_ar_example_labels_the_targets_codebook_0_and_eos_only():
    ex = ar_example(PHONEMES, PROMPT, TARGET, LAYOUT)
    assert ex.input_ids == [1, 6, 8, 4, 12, 11, 14, 2]
    assert ex.masks["tokens"].tolist() == [False] * 5 + [True] * 3
    whole = ar_example(PHONEMES, None, TARGET, LAYOUT)  # VALL-E: the whole utterance
    assert whole.input_ids == [1, 6, 8, 4, 11, 14, 2]
    assert whole.masks["tokens"].tolist() == [False] * 4 + [True] * 3
    assert ar_example(PHONEMES, PROMPT, TARGET, LAYOUT, eos=False).input_ids[-1] == 14


def test_nar_example_rows_and_kinds():
    ex = nar_example(PHONEMES, PROMPT, TARGET, LAYOUT)
    assert ex.streams["codes"].tolist() == [[1, 6, 8, 4, 12, 11, 14],
                                            [0, 0, 0, 0, 17, 16, 16],
                                            [0, 0, 0, 0, 22, 21, 19]]
    assert ex.streams["kinds"].tolist() == [1, 1, 1, 1, 2, 3, 3]  # TOKEN, PROMPT, TARGET
    assert ex.masks["codes"].astype(int).tolist() == [[0, 0, 0, 0, 0, 1, 1]] * 3


def test_delayed_example_musicgen_stair_with_eos_after_codebook_0():
    ex = delayed_example(PHONEMES, PROMPT, TARGET, LAYOUT)  # delays 0, 1, 2
    assert ex.streams["codes"].tolist() == [[1, 6, 8, 4, 12, 11, 14, 2, 0],
                                            [0, 0, 0, 0, 0, 17, 16, 16, 0],
                                            [0, 0, 0, 0, 0, 0, 22, 21, 19]]
    assert ex.streams["kinds"].tolist() == [1, 1, 1, 1, 2, 3, 3, 3, 3]
    # loss on the target's frames (not the prompt's) and on codebook 0's EOS
    assert ex.masks["codes"].astype(int).tolist() == [[0, 0, 0, 0, 0, 1, 1, 1, 0],
                                                      [0, 0, 0, 0, 0, 0, 1, 1, 0],
                                                      [0, 0, 0, 0, 0, 0, 0, 1, 1]]


def test_delayed_example_without_delay_adds_a_step_for_eos():
    ex = delayed_example(PHONEMES, PROMPT, TARGET, LAYOUT, delays=[0, 0, 0])
    assert ex.streams["codes"][:, 4:].tolist() == [[12, 11, 14, 2], [17, 16, 16, 0],
                                                   [22, 21, 19, 0]]
    assert ex.masks["codes"][:, 4:].astype(int).tolist() == [[0, 1, 1, 1], [0, 1, 1, 0],
                                                             [0, 1, 1, 0]]
    prompt_form = delayed_example(PHONEMES, PROMPT, TARGET, LAYOUT, delays=[0, 1, 1], eos=False)
    assert prompt_form.streams["codes"][:, 4:].tolist() == [[12, 11, 14, 0], [0, 17, 16, 16],
                                                            [0, 22, 21, 19]]


def test_prompt_split_and_code_range_errors():
    codes = np.arange(12).reshape(3, 4) % 4
    p, t = prompt_split(codes, 1)
    assert p.tolist() == [[0], [0], [0]] and t.shape == (3, 3)
    with pytest.raises(ValueError, match="prompt_frames 5 is outside"):
        prompt_split(codes, 5)
    with pytest.raises(ValueError, match="codebook 1, frame 0: code 4 is outside"):
        ar_example(PHONEMES, None, [[0], [4], [0]], LAYOUT)


def test_collate_pads_right_and_labels_only_the_mask():
    batch = collate([ar_example(PHONEMES, PROMPT, TARGET, LAYOUT),
                     ar_example([1], None, [[3], [0], [0]], LAYOUT)], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 6, 8, 4, 12, 11, 14, 2], [1, 7, 4, 14, 2, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 8, [1] * 5 + [0] * 3]
    i = IGNORE
    assert batch["labels"].tolist() == [[i, i, i, i, i, 11, 14, 2], [i, i, i, 14, 2, i, i, i]]
    nar = collate([nar_example(PHONEMES, PROMPT, TARGET, LAYOUT),
                   nar_example([1], None, [[3], [0], [0]], LAYOUT)], pad_id=0)
    assert nar["codes"].shape == (2, 3, 7) and nar["codes"][1, :, 3:].tolist() == [
        [14, 0, 0, 0], [15, 0, 0, 0], [19, 0, 0, 0]]
    assert nar["kinds"][1].tolist() == [1, 1, 1, 3, 0, 0, 0]  # PAD = 0 after the row
    assert nar["loss_mask"][1].sum() == 3 and not nar["loss_mask"][1, :, 4:].any()
