"""Grammaticality of transcripts under the synthetic grammar: are their class trigrams attested?

The grammar (``speechlm.corpus.grammar``) generates the training text, so it can judge what a
model says. Each word is mapped to its grammatical classes (a singular noun, a plural one, a
third-person present verb, a plural determiner, ...; function words are their own class; an
ambiguous form such as *read* has several), and a transcript's class trigrams are looked up in
those of a large sample of the grammar's own utterances (sentences, pairs and stories,
punctuation removed, as ASR writes them). Classes keep what grammar decides (agreement, word
order, which nouns can be subjects) and drop the word choice, which makes the word sequences
far too many to sample: word trigrams of 200,000 utterances cover only 89% of a fresh sample's,
class trigrams nearly all of them (a test measures both). A parser would be exact; this is the
cheap approximation, and it also flags a repeated or broken word.

A transcript's ``grammaticality`` is the share of its trigrams that are attested; it is
*grammatical* when all are (a transcript under three words has none and is not judged).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

SAMPLE = 200_000  # grammar utterances whose trigrams are "attested"


@cache
def word_classes() -> dict[str, tuple[str, ...]]:
    """Word -> its grammatical classes (lexicon words); other words are their own class.

    A form that is the same in both numbers (*fish*, *the*) gets a class of its own, so that it
    adds no reading of the other number; a form of two classes (*read*, *leaves*) keeps both.
    """
    from speechlm.corpus import lexicon as lx

    classes: dict[str, set[str]] = {}

    def add(word: str, cls: str) -> None:
        classes.setdefault(word, set()).add(cls)

    for kind, pairs in (("noun", lx.NOUNS), ("thing", lx.THINGS)):
        for sg, pl in pairs:
            if sg == pl:  # fish, sheep: no number to agree with
                add(sg, f"{kind}_inv")
            else:
                add(sg, f"{kind}_sg")
                add(pl, f"{kind}_pl")
    for kind, verbs in (("vi", lx.VERBS_INTRANSITIVE), ("vt", lx.VERBS_TRANSITIVE)):
        for base, third, past in verbs:
            for form, cls in ((base, "base"), (third, "3sg"), (past, "past")):
                add(form, f"{kind}_{cls}")
    for cls, words in (("adj", lx.ADJECTIVES), ("place", lx.PLACES), ("food", lx.FOODS),
                       ("name", [n for n, _ in lx.NAMES])):
        for w in words:
            add(w, cls)
    both = set(lx.DETERMINERS_SG) & set(lx.DETERMINERS_PL)  # "the": its own class
    for w in [*lx.DETERMINERS_SG, "an"]:
        add(w, w if w in both else "det_sg")
    for w in lx.DETERMINERS_PL:
        add(w, w if w in both else "det_pl")
    return {w: tuple(sorted(c)) for w, c in classes.items()}


def classes_of(word: str) -> tuple[str, ...]:
    """The classes of one word (a word outside the lexicon is its own class)."""
    return word_classes().get(word, (word,))


@cache
def attested_trigrams(n: int = SAMPLE, seed: int = 12345) -> frozenset[tuple[str, str, str]]:
    """Every class trigram of ``n`` utterances sampled from the grammar (cached per process)."""
    from itertools import product

    from speechlm.corpus.grammar import Grammar, words_of

    g = Grammar(np.random.default_rng(seed))
    found: set[tuple[str, str, str]] = set()
    for _ in range(n):
        w = words_of(g.utterance())
        for a, b, c in zip(w, w[1:], w[2:], strict=False):
            found.update(product(classes_of(a), classes_of(b), classes_of(c)))
    return frozenset(found)


def trigrams(text: str) -> list[tuple[str, str, str]]:
    """The word trigrams of a transcript (lower-cased, punctuation dropped)."""
    from speechlm.corpus.grammar import words_of

    w = words_of(text.lower())
    return list(zip(w, w[1:], w[2:], strict=False))


def attested(gram: tuple[str, str, str], known: frozenset) -> bool:
    """Whether some reading of the word trigram is a class trigram the grammar produces."""
    from itertools import product

    return any(t in known for t in product(*(classes_of(w) for w in gram)))


def grammaticality(text: str, known: frozenset | None = None) -> float | None:
    """Share of the transcript's trigrams the grammar attests (None: fewer than 3 words)."""
    grams = trigrams(text)
    if not grams:
        return None
    known = attested_trigrams() if known is None else known
    return sum(attested(g, known) for g in grams) / len(grams)


def grammatical_rate(texts: Sequence[str], known: frozenset | None = None) -> dict:
    """``rate``: share of the judged transcripts whose every trigram is attested; ``mean``: mean
    grammaticality; ``n_judged``, ``n_too_short``."""
    scores = [grammaticality(t, known) for t in texts]
    judged = [s for s in scores if s is not None]
    return {"rate": float(np.mean([s == 1.0 for s in judged])) if judged else None,
            "mean": float(np.mean(judged)) if judged else None,
            "n_judged": len(judged), "n_too_short": len(scores) - len(judged)}
