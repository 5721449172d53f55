"""The synthetic grammar: vocabulary size, determinism, minimal pairs."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.corpus.espeak import Espeak
from speechlm.corpus.grammar import (
    SYNTAX_TYPES,
    Grammar,
    regular_past,
    sample_sentences,
    syntactic_pair,
    vocabulary,
    words_of,
)


def test_sample_sentences_deterministic_and_in_vocabulary():
    a = sample_sentences(300, seed=3)
    assert a == sample_sentences(300, seed=3) and a != sample_sentences(300, seed=4)
    words = [w for t in a for w in words_of(t)]
    assert set(words) <= vocabulary()
    assert len(vocabulary()) >= 400
    assert all(t.endswith(".") and t == t.lower() for t in a)
    assert any(t.count(".") >= 5 for t in a)  # stories are part of the training text


@pytest.mark.parametrize("kind", SYNTAX_TYPES)
def test_pairs_are_minimal(kind):
    g = Grammar(np.random.default_rng(0))
    train = set(sample_sentences(3000, seed=0))
    for _ in range(40):
        good, bad, subtype = syntactic_pair(g, kind)
        gw, bw = words_of(good), words_of(bad)
        assert good != bad and subtype
        if kind == "word_order":
            assert sorted(gw) == sorted(bw) or len(gw) == len(bw)
        else:
            assert len(gw) == len(bw) and sum(x != y for x, y in zip(gw, bw, strict=True)) == 1
        assert bad not in train


def test_regular_past():
    assert [regular_past(v) for v in ("eat", "fly", "come", "run")] == \
        ["eated", "flied", "comed", "runed"]


def test_every_word_gets_its_own_alignment():
    """espeak speaks every vocabulary word with one word label (merged pairs are split)."""
    espeak = Espeak.get()
    vocab = sorted(vocabulary())
    for i in range(0, len(vocab), 40):
        chunk = vocab[i:i + 40]
        spoken = espeak.speak(" ".join(chunk) + ".", "en-us+m3")
        assert [w for w, _, _ in spoken.words] == chunk
