"""The expressive format on hand-made rows: merge order by time, ties, de-dup, text, the split."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.errors import ConfigError
from speechlm.sequences.expressive import expressive, split_expressive
from speechlm.sequences.formats import FORMATS, interleaved, make_example, parse_formats
from speechlm.sequences.vocab import SpeechVocab

# <pad>=0 <s>=1 </s>=2 <unk>=3 [SPEECH]=4 [TEXT]=5, units 6..15, pitch 16..21, style 22..24
VOCAB = SpeechVocab.build({"units": 10, "pitch": 6, "style": 3})
BOS, EOS, SPEECH, TEXT = 1, 2, 4, 5


def u(i: int) -> int:
    return 6 + i


def p(i: int) -> int:
    return 16 + i


def s(i: int) -> int:
    return 22 + i


# units at 0, .08, .12, .16 s (50 Hz); pitch at 0, .08, .16, .24, .32 s (12.5 Hz);
# style at 0, .16, .32 s (6.25 Hz here, so that the hand-made row has a style change)
ROW = {"units": [3, 5, 3, 7], "durations": [4, 2, 2, 8], "pitch": [1, 1, 2, 2, 5],
       "style": [2, 2, 1]}
RATES = {"frame_rate": 50.0, "pitch_rate": 12.5, "style_rate": 6.25}
# de-duplicated: pitch 1@0, 2@.16, 5@.32; style 2@0, 1@.32. Ties: style, then pitch, then unit
MERGED = [s(2), p(1), u(3), u(5), u(3), p(2), u(7), s(1), p(5)]


def test_merge_order_by_time_with_ties_and_dedup():
    ex = expressive(ROW, VOCAB, None, **RATES)
    assert ex.input_ids == [BOS, SPEECH, *MERGED, EOS]
    assert ex.labels == ex.input_ids  # loss on every token


def test_prompt_form_and_speech_only_default():
    assert expressive(ROW, VOCAB, None, eos=False, **RATES).input_ids == [BOS, SPEECH, *MERGED]
    # p_switch 0 (the default) ignores word alignments
    words = [{"label": "a", "start": 0.0, "end": 0.32}]
    ex = expressive({**ROW, "words": words}, VOCAB, np.random.default_rng(0), **RATES)
    assert ex.input_ids == [BOS, SPEECH, *MERGED, EOS]


def test_rates_come_from_the_context_like_frame_rate():
    spec = FORMATS.get("expressive")
    assert set(spec.context) == {"frame_rate", "pitch_rate", "style_rate"}
    from speechlm.tokenizers.prosody import F0_RATE, PITCH_WINDOW, STYLE_WINDOW

    # the defaults are the rates the prosody tokenizer writes
    assert (spec.params["pitch_rate"], spec.params["style_rate"]) == (F0_RATE / PITCH_WINDOW,
                                                                      F0_RATE / STYLE_WINDOW)
    ex = make_example(ROW, VOCAB, parse_formats({"expressive": 1.0}), 0, 0, RATES)
    assert ex.input_ids == [BOS, SPEECH, *MERGED, EOS]
    with pytest.raises(ConfigError, match="pitch_rate: unknown parameter"):
        parse_formats({"expressive": {"pitch_rate": 25.0}})


@pytest.fixture(scope="module")
def text_vocab() -> SpeechVocab:
    from speechlm.train.textlm import train_text_tokenizer

    tok = train_text_tokenizer(["the dog sees a cat ."] * 20, vocab_size=40)
    return SpeechVocab.extend(tok, 10, 6, 3)


def test_text_interleaving_keeps_each_words_tokens_in_its_span(text_vocab):
    v = text_vocab
    words = [{"label": "the", "start": 0.0, "end": 0.12}, {"label": "dog", "start": 0.12,
                                                           "end": 0.24},
             {"label": "sees", "start": 0.24, "end": 0.32}]
    row = {**ROW, "words": words}
    seed = 2  # its first draw is below 0.5: the first span is speech
    assert np.random.default_rng(seed).random() < 0.5
    ex = expressive(row, v, np.random.default_rng(seed), p_switch=1.0, **RATES)

    def ids(name: str, values: list[int]) -> list[int]:
        return v.to_ids(name, values).tolist()

    # "the" [0, .12): st2 pi1 u3 u5; "dog" [.12, .24): text; "sees" [.24, ...): st1 pi5
    assert ex.input_ids == [v.bos_id, v.speech_id, *ids("style", [2]), *ids("pitch", [1]),
                            *ids("units", [3, 5]), v.text_id, *v.text_to_ids("dog"),
                            v.speech_id, *ids("style", [1]), *ids("pitch", [5]), v.eos_id]
    # the same draws as ``interleaved``: the same spans in the same modalities
    for rng_seed in range(6):
        mine = expressive(row, v, np.random.default_rng(rng_seed), p_switch=0.5, **RATES)
        theirs = interleaved(row, v, np.random.default_rng(rng_seed), p_switch=0.5,
                             frame_rate=50.0)
        markers = (v.speech_id, v.text_id)
        assert ([t for t in mine.input_ids if t in markers]
                == [t for t in theirs.input_ids if t in markers])


def test_missing_columns_and_text_are_named():
    with pytest.raises(ValueError, match=r"no 'pitch' column.*`prosody` option"):
        expressive({"units": [1], "durations": [1], "style": [0]}, VOCAB, None)
    with pytest.raises(ValueError, match=r"no 'style' column"):
        expressive({"units": [1], "durations": [1], "pitch": [0], "style": None}, VOCAB, None)
    words = [{"label": "a", "start": 0.0, "end": 0.1}]
    with pytest.raises(ConfigError, match=r"p_switch: interleaving needs text tokens"):
        expressive({**ROW, "words": words}, VOCAB, np.random.default_rng(0), p_switch=0.5)


def test_split_restores_fixed_rate_streams():
    # one frame per unit at 50 Hz: pitch steps (80 ms) fall on unit starts, so times are exact
    row = {"units": list(range(10)) + [3] * 6, "durations": [1] * 16,
           "pitch": [5, 5, 2, 2], "style": [1]}
    ex = expressive(row, VOCAB, None, eos=False)
    back = split_expressive(ex.input_ids, VOCAB, frames_per_unit=1, frame_rate=50.0)
    assert back["units"].tolist() == row["units"]
    assert back["pitch"].tolist() == [5, 5, 2, 2] and back["style"].tolist() == [1]
    # a continuation that starts with units holds the pitch and style in effect before it;
    # 5 units of 80 ms: 5 pitch steps, the new pitch at the 5th unit's start (0.32 s, step 4)
    cont = split_expressive([u(1), u(2), u(3), u(4), p(3), u(5)], VOCAB, frames_per_unit=4,
                            frame_rate=50.0, start={"pitch": 0, "style": 2})
    assert cont["units"].tolist() == [1, 2, 3, 4, 5]
    assert cont["pitch"].tolist() == [0, 0, 0, 0, 3] and cont["style"].tolist() == [2]
