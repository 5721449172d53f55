"""SpeechGPT's template: where the loss is taken, and parsing a generated answer back."""

import pytest

from speechlm.sequences.formats import FORMATS
from speechlm.sequences.speechgpt import (
    ASSISTANT,
    EOA,
    EOH,
    EOSP,
    MARKERS,
    SOSP,
    TA,
    TQ,
    UA,
    parse_answer,
)
from speechlm.sequences.vocab import SpeechVocab

ROW = {"prompt_units": [3, 1, 4], "prompt_text": "who ate the cake",
       "response_text": "emma ate the cake.", "response_units": [5, 9],
       "units": [2, 7], "text": "the dog ran."}


@pytest.fixture(scope="module")
def vocab():
    from speechlm.train.textlm import train_text_tokenizer

    tok = train_text_tokenizer(["who ate the cake emma ate the cake. the dog ran."] * 20,
                               vocab_size=80)
    return SpeechVocab.extend(tok, 10).with_tokens(MARKERS)


def _answer(vocab, name):
    ex = FORMATS.get(name).fn(ROW, vocab, None)
    ids = ex.input_ids
    return ids, ex.labels, ids.index(vocab.marker(ASSISTANT)) + 1


@pytest.mark.parametrize("name", ["speechgpt_asr", "speechgpt_tts", "speechgpt_chain",
                                  "speechgpt_text_qa", "speechgpt_direct"])
def test_loss_covers_exactly_the_answer_and_eoa(vocab, name):
    ids, labels, first = _answer(vocab, name)
    # nothing up to the role marker is predicted; everything after it is, up to <eoa>
    assert all(lab == -100 for lab in labels[:first])
    assert labels[first:] == ids[first:]
    assert ids[-1] == vocab.marker(EOA)
    assert ids.count(vocab.marker(EOH)) == 1


def test_chain_answer_is_transcript_then_text_then_speech(vocab):
    ids, _, first = _answer(vocab, "speechgpt_chain")
    answer = ids[first:]
    m = vocab.marker
    tq, ta, ua = answer.index(m(TQ)), answer.index(m(TA)), answer.index(m(UA))
    assert tq == 0 < ta < ua
    assert answer[tq + 1:ta] == vocab.text_to_ids(ROW["prompt_text"])
    assert answer[ta + 1:ua] == vocab.text_to_ids(ROW["response_text"])
    assert answer[ua + 1:] == [m(SOSP), *vocab.units_to_ids([5, 9]).tolist(), m(EOSP), m(EOA)]
    # the question itself is speech only: no text of it before the answer
    assert ids[2:7] == [m(SOSP), *vocab.units_to_ids([3, 1, 4]).tolist(), m(EOSP)]


def test_parse_answer_round_trips_the_parts(vocab):
    ids, _, first = _answer(vocab, "speechgpt_chain")
    got = parse_answer(vocab, ids[first:])
    assert (got.question_text, got.text, got.units) == ("who ate the cake", "emma ate the cake.",
                                                        [5, 9])
    # the direct answer has no text, and stops at <eoa>
    ids_d, _, first_d = _answer(vocab, "speechgpt_direct")
    direct = parse_answer(vocab, ids_d[first_d:] + vocab.text_to_ids("emma"))
    assert (direct.text, direct.units) == ("", [5, 9])


def test_parse_answer_of_unfinished_speech_keeps_the_units(vocab):
    m = vocab.marker
    ids = [m(TA), *vocab.text_to_ids("emma"), m(UA), m(SOSP), *vocab.units_to_ids([1, 2])]
    assert parse_answer(vocab, ids).units == [1, 2]
    assert parse_answer(vocab, ids).text == "emma"
