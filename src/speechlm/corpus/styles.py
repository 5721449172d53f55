"""Speaking styles for expressive corpora: how each is delivered, and the words that carry it.

A styled utterance carries its label twice, as SpiRit-LM's STSP benchmark needs: in the delivery
(espeak-ng's pitch, pitch range, rate, volume and word gap) and in the content (sentiment words
of the style). ``label_of_text`` reads the label back from a transcript; a style classifier
reads it from audio (``speechlm.evaluate.style``).

``styled_text`` writes the content: grammar text free of every other style's words, plus a
sentence built from the style's own words. Its templates are the same for every style, neutral
included, so only the words (not the sentence shapes) tell the styles apart in text.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from speechlm.corpus import lexicon as lx
from speechlm.corpus.grammar import VOWEL_LETTERS, Grammar, story_ending
from speechlm.errors import ConfigError


@dataclass(frozen=True)
class StyleSpec:
    """espeak-ng delivery of one style (centre values; utterances jitter around them)."""

    pitch: int  # 0-100 (espeak's base pitch scale)
    range: int  # 0-100 (pitch range: 0 is monotone)
    rate: int  # words per minute
    volume: int  # 0-200 (100 is espeak's default)
    wordgap: int = 0  # extra pause between words, in units of 10 ms


STYLES: dict[str, StyleSpec] = {
    "neutral": StyleSpec(pitch=50, range=35, rate=150, volume=80),
    "happy": StyleSpec(pitch=75, range=100, rate=195, volume=105),
    "sad": StyleSpec(pitch=30, range=10, rate=110, volume=50, wordgap=3),
    "angry": StyleSpec(pitch=45, range=25, rate=240, volume=125),
}
# per-utterance jitter (uniform, +-): styles overlap a little, so a classifier must generalise
JITTER = StyleSpec(pitch=6, range=8, rate=12, volume=10, wordgap=0)
# what espeak accepts (espeakRATE_MINIMUM/MAXIMUM in speak_lib.h for the rate)
LIMITS: dict[str, tuple[int, int]] = {"pitch": (0, 100), "range": (0, 100), "rate": (80, 450),
                                      "volume": (0, 200), "wordgap": (0, 50)}

# words that carry each style's sentiment, and no other style's; neutral speech uses none of
# the emotional styles' words (its label is read back as the absence of them), and none of
# these words is in the grammar's lexicon (its mood words are handled by ``mood_words``)
STYLE_WORDS: dict[str, dict[str, list[str]]] = {
    "happy": {
        "adjectives": ["glad", "cheerful", "delighted", "joyful", "wonderful", "lovely"],
        "verbs": ["laughed", "smiled", "cheered", "celebrated", "danced", "sang"],
    },
    "sad": {
        "adjectives": ["lonely", "gloomy", "miserable", "tearful", "heartbroken", "sorry"],
        "verbs": ["cried", "wept", "sighed", "mourned", "sobbed", "grieved"],
    },
    "angry": {
        "adjectives": ["furious", "annoyed", "outraged", "bitter", "grumpy", "cross"],
        "verbs": ["shouted", "yelled", "stormed", "cursed", "snapped", "screamed"],
    },
    "neutral": {
        "adjectives": ["calm", "fine", "ready", "steady", "normal", "ordinary"],
        "verbs": ["nodded", "rested", "listened", "paused", "stayed", "returned"],
    },
}
EMOTIONAL = ("happy", "sad", "angry")  # styles whose words count in ``label_of_text``
_WORD = re.compile(r"[a-z']+")


def style_words(style: str) -> set[str]:
    """Every word of ``style``'s lexicon."""
    return {w for ws in STYLE_WORDS[style].values() for w in ws}


def mood_words(style: str) -> set[str]:
    """``style``'s words plus the grammar lexicon's words of the same mood.

    The lexicon has mood words of its own (the adjectives happy, sad, angry; the verbs laugh,
    cry, shout...): all forms of a lexicon verb whose past is a style word count, so "the boys
    laugh" never appears in a sad or neutral utterance.
    """
    words = style_words(style)
    lexicon = {style} & set(lx.ADJECTIVES)
    for forms in lx.VERBS_INTRANSITIVE + lx.VERBS_TRANSITIVE:
        if forms[2] in words:
            lexicon.update(forms)
    return words | lexicon


def label_of_text(text: str) -> str:
    """The style a transcript expresses: the emotional style with most of its words, else neutral.

    Ties between emotional styles go to the first in :data:`EMOTIONAL` order.
    """
    words = _WORD.findall(text.lower())
    counts = {s: sum(w in style_words(s) for w in words) for s in EMOTIONAL}
    best = max(EMOTIONAL, key=lambda s: counts[s])
    return best if counts[best] else "neutral"


def check_styles(styles: object) -> None:
    """Raise ``ConfigError`` naming the valid styles unless ``styles`` is None (no styles) or a
    non-empty list of distinct names from :data:`STYLES`."""
    if styles is None:
        return
    valid = ", ".join(STYLES)
    if not isinstance(styles, list) or not styles:
        raise ConfigError(f"styles: expected a non-empty list of styles from {valid}; "
                          f"got {styles!r}")
    unknown = [s for s in styles if not (isinstance(s, str) and s in STYLES)]
    if unknown:
        raise ConfigError(f"styles: unknown style(s) {', '.join(map(repr, unknown))}; "
                          f"valid: {valid}")
    if len(set(styles)) != len(styles):
        raise ConfigError(f"styles: {styles!r} names a style twice")


def delivery(style: str, rng: np.random.Generator) -> StyleSpec:
    """``style``'s centre values, each moved by a uniform draw within :data:`JITTER`."""
    centre = STYLES[style]
    values = {}
    for f in dataclasses.fields(StyleSpec):
        d = getattr(JITTER, f.name)
        lo, hi = LIMITS[f.name]
        value = getattr(centre, f.name) + int(rng.integers(-d, d + 1))
        values[f.name] = min(max(value, lo), hi)
    return StyleSpec(**values)


def styled_text(g: Grammar, style: str) -> str:
    """An utterance whose content carries ``style``, drawn with ``g``'s generator.

    Grammar text (a sentence, or a story) redrawn until it has no word of another style's mood
    (:func:`mood_words`), with one sentence of the style's own words: two or more of them, so
    ``label_of_text`` reads the style back. In a story, that sentence is mostly about its
    character.
    """
    banned = set().union(*(mood_words(s) for s in STYLES if s != style))

    def clean(sentences: list[str]) -> bool:
        return not banned & set(_WORD.findall(" ".join(sentences)))

    r = g.rng.random()
    if r < 0.2:  # the style sentence alone
        return _style_sentence(g, style, _subject(g))
    if r < 0.8:  # with a grammar sentence, before or after it
        while not clean(base := [g.sentence()]):
            pass
        mine = _style_sentence(g, style, _subject(g))
        return " ".join([mine, *base] if g.chance(0.5) else [*base, mine])
    while True:  # else a story
        context, scenario, slots = g.story()
        story = context + [story_ending(scenario, slots)]
        if clean(story):
            break
    # the style sentence after one of the story's sentences, never before the first, which
    # introduces the character
    mine = _style_sentence(g, style, ([slots["name"]], "sg", slots["he"]))
    at = 1 + int(g.rng.integers(len(story)))
    return " ".join(story[:at] + [mine] + story[at:])


def _subject(g: Grammar) -> tuple[list[str], str, str | None]:
    """(words, number, pronoun) of a style sentence's subject: a name or a noun phrase."""
    if g.chance(0.5):
        name, he = g.pick(lx.NAMES)
        return [name], "sg", he
    np_ = g.noun_phrase("subject", adjective=False)
    return np_.words, np_.number, "they" if np_.number == "pl" else None


def _style_sentence(g: Grammar, style: str, subject: tuple[list[str], str, str | None]) -> str:
    """One past-tense sentence with two or more of ``style``'s words, in one of six shapes."""
    adjectives, verbs = STYLE_WORDS[style]["adjectives"], STYLE_WORDS[style]["verbs"]
    a, a2 = (adjectives[i] for i in g.rng.choice(len(adjectives), 2, replace=False))
    v, v2 = (verbs[i] for i in g.rng.choice(len(verbs), 2, replace=False))
    words, number, pronoun = subject
    s, be = " ".join(words), "was" if number == "sg" else "were"
    # "the dog ... because it" reads badly: that shape only with names and plurals
    shape = int(g.rng.integers(6 if pronoun is not None else 5))
    if shape == 0:
        text = f"{s} {v} and felt {a}"
    elif shape == 1:
        text = f"{s} {be} {a} and {v}"
    elif shape == 2:
        text = f"{s} felt {a} and {a2}"
    elif shape == 3:
        text = " ".join([s, v, "and", v2, *_tail(g)])
    elif shape == 4:
        text = " ".join([_with_adjective(g, a), v, *_tail(g)])
    else:
        text = f"{s} {v} because {pronoun} {be} so {a}"
    return text + "."


def _tail(g: Grammar) -> list[str]:
    """Sometimes a place phrase ("near the river") after the verbs."""
    return g.place_phrase() if g.chance(0.3) else []


def _with_adjective(g: Grammar, adjective: str) -> str:
    """A subject noun phrase with ``adjective`` before its noun ("an annoyed farmer")."""
    np_ = g.noun_phrase("subject", adjective=True)
    words = list(np_.words)
    words[np_.adj] = adjective
    if words[0] in ("a", "an"):
        words[0] = "an" if adjective[0] in VOWEL_LETTERS else "a"
    return " ".join(words)
