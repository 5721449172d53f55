"""Speaking styles for expressive corpora: how each is delivered, and the words that carry it.

A styled utterance carries its label twice, as SpiRit-LM's STSP benchmark needs: in the delivery
(espeak-ng's pitch, pitch range, rate, volume and word gap) and in the content (sentiment words
of the style). ``label_of_text`` reads the label back from a transcript; a style classifier
reads it from audio (``speechlm.evaluate.style``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class StyleSpec:
    """espeak-ng delivery of one style (centre values; utterances jitter around them)."""

    pitch: int  # 0-100 (espeak's base pitch scale)
    range: int  # 0-100 (pitch range: 0 is monotone)
    rate: int  # words per minute
    volume: int  # 0-200 (100 is espeak's default)
    wordgap: int = 0  # extra pause between words, in units of 10 ms


STYLES: dict[str, StyleSpec] = {
    "neutral": StyleSpec(pitch=50, range=45, rate=165, volume=100),
    "happy": StyleSpec(pitch=72, range=95, rate=200, volume=130),
    "sad": StyleSpec(pitch=28, range=8, rate=115, volume=65, wordgap=2),
    "angry": StyleSpec(pitch=45, range=70, rate=215, volume=185),
}

# words that carry each style's sentiment, and no other style's; neutral speech uses none of
# them (its label is read back as the absence of the others)
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
        "adjectives": ["furious", "annoyed", "outraged", "bitter", "hateful", "cross"],
        "verbs": ["shouted", "yelled", "stormed", "cursed", "snapped", "screamed"],
    },
    "neutral": {
        "adjectives": ["ordinary", "usual", "plain", "regular", "normal", "common"],
        "verbs": ["waited", "walked", "sat", "stood", "stayed", "looked"],
    },
}
EMOTIONAL = ("happy", "sad", "angry")  # styles whose words count in ``label_of_text``
_WORD = re.compile(r"[a-z']+")


def style_words(style: str) -> set[str]:
    """Every word of ``style``'s lexicon."""
    return {w for ws in STYLE_WORDS[style].values() for w in ws}


def label_of_text(text: str) -> str:
    """The style a transcript expresses: the emotional style with most of its words, else neutral.

    Ties between emotional styles go to the first in :data:`EMOTIONAL` order.
    """
    words = _WORD.findall(text.lower())
    counts = {s: sum(w in style_words(s) for w in words) for s in EMOTIONAL}
    best = max(EMOTIONAL, key=lambda s: counts[s])
    return best if counts[best] else "neutral"
