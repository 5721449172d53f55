"""Text-side generation metrics on hand-made strings with known answers."""

from __future__ import annotations

import math

import pytest

from speechlm.evaluate.asr import normalize_text, wer, wer_details
from speechlm.evaluate.generation import auto_bleu, self_bleu, sentence_bleu


def test_auto_bleu_counts_repeated_bigrams():
    assert auto_bleu("the cat sat on the mat") == 0.0
    # bigrams: (a b) (b a) (a b) (b c): (a b) occurs twice -> 2 of 4 repeated
    assert auto_bleu("a b a b c") == pytest.approx(0.5)
    assert auto_bleu("a a a") == 1.0
    assert auto_bleu("word") is None


def test_sentence_bleu_identity_and_brevity():
    ref = "the cat sat on the mat".split()
    assert sentence_bleu(ref, [ref]) == pytest.approx(1.0)
    short = "the cat sat on".split()  # all n-grams match; only the brevity penalty bites
    assert sentence_bleu(short, [ref]) == pytest.approx(math.exp(1 - 6 / 4))
    assert sentence_bleu("dog runs far away".split(), [ref]) < 0.05


def test_self_bleu_is_high_for_copies_and_low_for_diverse_texts():
    same = ["the dog ran to the house"] * 3
    assert self_bleu(same) == pytest.approx(1.0)
    diverse = ["the dog ran home", "a bird sang loudly today", "she bought green apples"]
    assert self_bleu(diverse) < 0.1
    assert self_bleu(["only one"]) is None


def test_wer_normalises_case_and_punctuation():
    assert wer("The cat, sat.", "the cat sat") == 0.0
    d = wer_details(["a b c d", ""], ["a x c", "ignored"])
    assert d["utterances"] == 1 and d["ref_words"] == 4
    assert d["substitutions"] == 1 and d["deletions"] == 1
    assert d["wer"] == pytest.approx(0.5)
    assert normalize_text("Don't STOP-now!") == "don't stop now"
