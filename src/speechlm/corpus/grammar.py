"""A small English grammar over ``lexicon``: sentences, stories and minimal pairs.

Sentences have real structure for a speech LM to learn: subject-verb agreement (present tense),
determiner-noun agreement, irregular past forms (often cued by "yesterday"), adjective-noun word
order and prepositional phrases. Stories are short scripted scenarios (4 context sentences and
an ending that follows from them) with a named character and consistent pronouns.

Text is lower case; a sentence's last word carries a full stop; words are separated by spaces.
Minimal pairs (``syntactic_pair``) change one or two words of a sentence drawn from exactly the
training distribution, so a model can only prefer the grammatical side by having learnt it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from speechlm.corpus import lexicon as lx

VOWEL_LETTERS = "aeiou"
# Zipf exponents: content words recur often (many exemplars per word across voices), the tail
# still reaches several hundred words; determiners nearly flat
WORD_ZIPF = 1.4
DET_ZIPF = 0.8
# utterance mix: one sentence, two sentences, else a story (stories are long: ~20% of the audio)
SHARE_ONE, SHARE_TWO = 0.65, 0.27
BE = {("present", "sg"): "is", ("present", "pl"): "are", ("past", "sg"): "was",
      ("past", "pl"): "were"}


@dataclass
class NounPhrase:
    """A noun phrase and where its parts are, so pairs can edit them."""

    words: list[str]
    number: str  # "sg" | "pl"
    det: int | None = None  # index of the determiner in words
    adj: int | None = None
    noun: int | None = None
    invariant: bool = False  # singular == plural (fish, sheep): no agreement evidence


class Grammar:
    """Samples words with Zipf-like weights from a ``numpy`` generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._cdf: dict[tuple[int, float], list[float]] = {}

    def pick(self, items: list, exponent: float | None = None):
        """One item, the ``i``-th with probability proportional to Zipf weight ``i``."""
        exponent = WORD_ZIPF if exponent is None else exponent
        key = (len(items), exponent)
        if key not in self._cdf:
            self._cdf[key] = np.cumsum(lx.zipf_weights(len(items), exponent)).tolist()
        cdf = self._cdf[key]
        return items[min(bisect.bisect_right(cdf, self.rng.random() * cdf[-1]), len(items) - 1)]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    # -- phrases -------------------------------------------------------------------------------
    def noun_phrase(self, role: str, number: str | None = None, det: str | None = None,
                    adjective: bool | None = None) -> NounPhrase:
        """A determiner (+ adjective) + noun, or a name for subjects."""
        if number is None:
            number = "pl" if self.chance(0.4) else "sg"
        if role == "subject" and number == "sg" and det is None and adjective is None \
                and self.chance(0.25):
            return NounPhrase([self.pick(lx.NAMES)[0]], "sg")
        pool = lx.NOUNS if role == "subject" or self.chance(0.35) else lx.THINGS
        pair = self.pick(pool)
        noun = pair[0] if number == "sg" else pair[1]
        if det is None:
            # flat-ish: demonstratives and quantifiers must be common enough to learn agreement
            det = self.pick(lx.DETERMINERS_SG if number == "sg" else lx.DETERMINERS_PL, DET_ZIPF)
        words, adj_i = [det], None
        if adjective if adjective is not None else self.chance(0.35):
            adj_i = 1
            words.append(self.pick(lx.ADJECTIVES))
        words.append(noun)
        if words[0] == "a" and words[1][0] in VOWEL_LETTERS:
            words[0] = "an"
        return NounPhrase(words, number, det=0, adj=adj_i, noun=len(words) - 1,
                          invariant=pair[0] == pair[1])

    def place_phrase(self) -> list[str]:
        return [self.pick(lx.PREPOSITIONS), "the", self.pick(lx.PLACES)]

    # -- sentences -----------------------------------------------------------------------------
    def clause(self, tense: str | None = None, kind: str | None = None,
               subject: NounPhrase | None = None, obj: NounPhrase | None = None,
               verb: tuple[str, str, str] | None = None) -> dict:
        """One clause as named parts (see ``render``)."""
        tense = tense or ("past" if self.chance(0.4) else "present")
        if kind is None:
            r = self.rng.random()
            kind = "intransitive" if r < 0.35 else ("transitive" if r < 0.85 else "copula")
        subject = subject or self.noun_phrase("subject")
        parts: dict = {"tense": tense, "kind": kind, "subject": subject}
        if kind == "copula":
            parts["verb"] = BE[(tense, subject.number)]
            parts["verb_forms"] = None
            parts["rest"] = [self.pick(lx.ADJECTIVES)]
            return parts
        forms = verb or self.pick(lx.VERBS_TRANSITIVE if kind == "transitive"
                                  else lx.VERBS_INTRANSITIVE)
        parts["verb_forms"] = forms
        parts["verb"] = forms[2] if tense == "past" else (
            forms[1] if subject.number == "sg" else forms[0])
        if kind == "transitive":
            parts["object"] = obj or self.noun_phrase("object")
        r = self.rng.random()
        parts["rest"] = self.place_phrase() if r < 0.4 else (
            [self.pick(lx.ADVERBS)] if r < 0.6 else [])
        parts["lead"] = ["yesterday"] if tense == "past" and self.chance(0.3) else []
        if tense == "present" and not parts["rest"] and self.chance(0.25):
            parts["rest"] = ["every", "day"]
        return parts

    def sentence(self) -> str:
        return render(self.clause())

    def utterance(self) -> str:
        """What one training utterance says: a sentence, two, or a story."""
        r = self.rng.random()
        if r < SHARE_ONE:
            return self.sentence()
        if r < SHARE_ONE + SHARE_TWO:
            return self.sentence() + " " + self.sentence()
        context, scenario, slots = self.story()
        return " ".join(context + [story_ending(scenario, slots)])

    # -- stories -------------------------------------------------------------------------------
    def story_slots(self) -> dict:
        name, he = self.pick(lx.NAMES)
        return {
            "name": name, "he": he, "his": "his" if he == "he" else "her",
            "place": self.pick(lx.PLACES), "food": self.pick(lx.FOODS),
            "thing": self.pick(lx.THINGS)[0], "animal": self.pick(lx.NOUNS[:30])[0],
        }

    def story(self) -> tuple[list[str], int, dict]:
        """A story's context sentences, its scenario index and its slot fillers."""
        scenario = int(self.rng.integers(len(STORIES)))
        slots = self.story_slots()
        return [s.format(**slots) for s in STORIES[scenario][0]], scenario, slots


def story_ending(scenario: int, slots: dict) -> str:
    """The ending of scenario ``scenario`` told with ``slots`` (coherent for its own story)."""
    return STORIES[scenario][1].format(**slots)


def ending_scenario(text: str) -> tuple[int, dict] | None:
    """Which scenario's ending template a story's last sentence is, with its fillers (None if
    it is none: a story from elsewhere)."""
    import re

    last = text.strip().split(". ")[-1]
    last = last if last.endswith(".") else last + "."
    for scenario, (_, template) in enumerate(STORIES):
        pattern = re.escape(template)
        for slot in ("name", "he", "his", "place", "food", "thing", "animal"):
            pattern = pattern.replace(re.escape("{" + slot + "}"), rf"(?P<{slot}>\w+)", 1)
            pattern = pattern.replace(re.escape("{" + slot + "}"), rf"(?P={slot})")
        if m := re.fullmatch(pattern, last):
            return scenario, m.groupdict()
    return None


# (context templates, coherent ending)
STORIES: list[tuple[list[str], str]] = [
    (["{name} was hungry.", "{he} went to the kitchen.", "{he} found some {food} there.",
      "{he} ate the {food} quickly."], "then {name} was not hungry."),
    (["{name} walked to the {place}.", "the sky was dark.", "then it started to rain.",
      "{he} had no umbrella."], "{name} came home wet and cold."),
    (["{name} had a little {animal}.", "one day the {animal} ran away.",
      "{name} looked for it everywhere.", "{he} found it near the {place}."],
     "{name} took the {animal} home."),
    (["{name} had a birthday today.", "{his} friends came to the house.",
      "they brought a big cake.", "everyone sang a song."], "{name} was very happy."),
    (["{name} worked all day.", "{he} was very tired.", "{he} went to bed early.",
      "the house was quiet."], "{name} slept well all night."),
    (["{name} played with a ball in the {place}.", "{he} threw the ball too far.",
      "the ball fell in the river.", "{name} could not get it."],
     "{name} went home without the ball."),
    (["{name} had a test at school.", "{he} read {his} books every night.",
      "{he} worked very hard.", "the test was easy."], "{name} got a good grade."),
    (["{name} wanted a new {thing}.", "{he} saved money for a long time.",
      "then {he} went to the shop.", "{he} bought the {thing}."],
     "{name} loved the new {thing}."),
    (["{name} planted some flowers in the garden.", "{he} gave them water every day.",
      "the sun was warm.", "soon the flowers grew tall."],
     "{name} picked the flowers for {his} mother."),
    (["{name} went to the lake with {his} father.", "they sat by the water.",
      "they waited a long time.", "then {name} caught a big fish."],
     "they cooked the fish for dinner."),
]


def render(parts: dict) -> str:
    """Words of a clause in order, with a full stop."""
    words = list(parts.get("lead", [])) + parts["subject"].words + [parts["verb"]]
    if "object" in parts:
        words += parts["object"].words
    words += parts["rest"]
    return " ".join(words) + "."


def regular_past(base: str) -> str:
    """The over-regularised past of an irregular verb (eat -> eated, cry -> cried)."""
    if base.endswith("e"):
        return base + "d"
    if base.endswith("y") and base[-2] not in VOWEL_LETTERS:
        return base[:-1] + "ied"
    return base + "ed"


SYNTAX_TYPES = ("agreement", "determiner", "irregular_past", "word_order")


def syntactic_pair(g: Grammar, kind: str) -> tuple[str, str, str]:
    """(grammatical, ungrammatical, subtype) differing minimally in one error of ``kind``."""
    if kind == "agreement":  # subject-verb number agreement, present tense
        copula = g.chance(0.25)
        while True:
            subj = g.noun_phrase("subject", det="the" if g.chance(0.5) else None)
            if not subj.invariant and subj.det is not None:
                break
        kind_ = "copula" if copula else ("transitive" if g.chance(0.55) else "intransitive")
        parts = g.clause(tense="present", kind=kind_, subject=subj)
        good = render(parts)
        if copula:
            parts["verb"] = BE[("present", "pl" if subj.number == "sg" else "sg")]
        else:
            forms = parts["verb_forms"]
            parts["verb"] = forms[0] if subj.number == "sg" else forms[1]
        return good, render(parts), ("copula_" if copula else "") + subj.number
    if kind == "determiner":  # determiner-noun agreement in the object
        det = g.pick(["this", "these", "that", "those", "every", "many", "one", "two"])
        number = "sg" if det in ("this", "that", "every", "one") else "pl"
        while True:
            obj = g.noun_phrase("object", number=number, det=det, adjective=False)
            if not obj.invariant:
                break
        parts = g.clause(kind="transitive", obj=obj)
        good = render(parts)
        obj.words[0] = lx.AGREEMENT_SWAP[det]
        return good, render(parts), f"{det}_{lx.AGREEMENT_SWAP[det]}"
    if kind == "irregular_past":
        transitive = g.chance(0.6)
        pool = [v for v in (lx.VERBS_TRANSITIVE if transitive else lx.VERBS_INTRANSITIVE)
                if v[2] != regular_past(v[0])]
        verb = pool[int(g.rng.integers(len(pool)))]
        parts = g.clause(tense="past", kind="transitive" if transitive else "intransitive",
                         verb=verb)
        good = render(parts)
        parts["verb"] = regular_past(verb[0])
        return good, render(parts), "transitive" if transitive else "intransitive"
    if kind == "word_order":  # adjective after its noun
        in_subject = g.chance(0.5)
        np_ = g.noun_phrase("subject" if in_subject else "object", adjective=True,
                            det="the" if g.chance(0.5) else None)
        parts = g.clause(kind="transitive" if not in_subject or g.chance(0.5) else "intransitive",
                         subject=np_ if in_subject else None, obj=None if in_subject else np_)
        good = render(parts)
        w = np_.words
        w[np_.adj], w[np_.noun] = w[np_.noun], w[np_.adj]
        if w[0] == "an" and w[1][0] not in VOWEL_LETTERS:
            w[0] = "a"
        elif w[0] == "a" and w[1][0] in VOWEL_LETTERS:
            w[0] = "an"
        return good, render(parts), "adjective_noun_" + ("subject" if in_subject else "object")
    raise ValueError(f"unknown syntactic error type '{kind}'; known: {list(SYNTAX_TYPES)}")


def sample_sentences(n: int, seed: int) -> list[str]:
    """``n`` training utterance texts (sentences, sentence pairs, stories) for a text LM."""
    g = Grammar(np.random.default_rng(seed))
    return [g.utterance() for _ in range(n)]


def words_of(text: str) -> list[str]:
    """The words of a text as the manifests store them (punctuation stripped)."""
    return [w.strip(".,;:!?") for w in text.split() if w.strip(".,;:!?")]


def vocabulary() -> set[str]:
    """Every word the grammar can say, including the stories' words."""
    words = lx.all_words() | {"an", "is", "are", "was", "were", "yesterday", "every", "day",
                              "he", "she", "his", "her"}
    for context, ending in STORIES:
        for s in context + [ending]:
            words.update(w for w in words_of(s) if "{" not in w)
    return words
