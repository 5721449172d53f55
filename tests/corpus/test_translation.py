"""English -> Spanish translation of the synthetic grammar (parallel corpus for VioLA):
hand-checked answers, coverage of the grammar's output and vocabulary, errors."""

from __future__ import annotations

import re

import pytest

from speechlm.corpus import lexicon as lx
from speechlm.corpus.grammar import STORIES, sample_sentences, vocabulary, words_of
from speechlm.corpus.translation import (
    ADJECTIVES_ES,
    ADVERBS_ES,
    COPULA,
    DETERMINERS_ES,
    FOODS_ES,
    LANGUAGES,
    NAMES_GENDER,
    NOUNS_ES,
    PLACES_ES,
    PREPOSITIONS_ES,
    STORY_ES,
    THINGS_ES,
    VERBS_ES,
    inflect,
    plural,
    translate,
)

ALLOWED = re.compile(r"[a-záéíóúüñ .]+")
_SENTENCE = r"[a-záéíóúüñ]+( [a-záéíóúüñ]+)*\."
WELL_FORMED = re.compile(rf"{_SENTENCE}( {_SENTENCE})*")  # single spaces, stops on last words

KNOWN = [
    ("tom runs.", "tom corre."),  # name, present 3sg
    ("anna sleeps alone.", "anna duerme sola."),  # adverb agreeing with a feminine name
    ("an angry cow sees the mice.", "una vaca enfadada ve los ratones."),  # an, fem, irregular pl
    ("these white sheep were tired.", "estas ovejas blancas estaban cansadas."),  # estar, past
    ("the man is tall.", "el hombre es alto."),  # ser, present
    ("the young men are brown.", "los hombres jóvenes son marrones."),  # plural accent rules
    ("yesterday two men found the knives.", "ayer dos hombres encontraron los cuchillos."),
    ("anna walks to the park.", "anna camina al parque."),  # a + el
    ("the fish swim from the river.", "los peces nadan del río."),  # de + el, number from verb
    ("that cat sleeps behind the house.", "ese gato duerme detrás de la casa."),
    ("some wolves jump quickly.", "unos lobos saltan rápidamente."),
    ("every baker sees the queen every day.", "cada panadero ve a la reina cada día."),
    ("this boy has a little mouse.", "este chico tiene un ratón pequeñito."),  # no personal a
    ("the boys read the book.", "los chicos leen el libro."),
    ("yesterday the boys read the book.", "ayer los chicos leyeron el libro."),
    ("the women were sad. lucy eats one orange near the station.",
     "las mujeres estaban tristes. lucy come una naranja cerca de la estación."),
    ("anna had a little cow. one day the cow ran away. anna looked for it everywhere. "
     "she found it near the lake. anna took the cow home.",
     "anna tenía una vaca pequeñita. un día la vaca se escapó. anna la buscó por todas partes. "
     "ella la encontró cerca del lago. anna llevó a la vaca a casa."),
]


@pytest.mark.parametrize(("english", "spanish"), KNOWN)
def test_known_translations(english, spanish):
    assert translate(english) == spanish
    assert translate(english, "es") == spanish


def test_spelling_rules():
    assert [plural(w) for w in ("perro", "bebé", "pez", "ratón", "flor", "rey", "joven")] == [
        "perros", "bebés", "peces", "ratones", "flores", "reyes", "jóvenes"]
    assert inflect("pequeño", "f", "pl") == "pequeñas"
    assert inflect("feliz", "f", "pl") == "felices" and inflect("grande", "f", "sg") == "grande"


@pytest.mark.parametrize("seed", [0, 7])
def test_translates_every_sampled_utterance(seed):
    texts = sample_sentences(3000, seed)
    assert any(t.count(".") == 5 for t in texts)  # stories are covered
    for text in texts:
        es = translate(text)
        assert ALLOWED.fullmatch(es), (text, es)
        assert es.count(".") == text.count(".") and es.endswith("."), (text, es)
        assert WELL_FORMED.fullmatch(es), (text, es)


def test_lexicon_covers_the_grammar():
    assert set(NOUNS_ES) == {sg for sg, _ in lx.NOUNS}
    assert set(THINGS_ES) == {sg for sg, _ in lx.THINGS}
    assert set(PLACES_ES) == set(lx.PLACES) and set(FOODS_ES) == set(lx.FOODS)
    assert set(ADJECTIVES_ES) == set(lx.ADJECTIVES)
    assert set(VERBS_ES) == {v[0] for v in lx.VERBS_INTRANSITIVE + lx.VERBS_TRANSITIVE}
    assert set(PREPOSITIONS_ES) == set(lx.PREPOSITIONS) and set(ADVERBS_ES) == set(lx.ADVERBS)
    assert set(DETERMINERS_ES) == set(lx.DETERMINERS_SG + lx.DETERMINERS_PL) | {"an"}
    assert set(NAMES_GENDER) == {n for n, _ in lx.NAMES}
    # every word the grammar can say is handled by the lexicon or a story template
    nouns = {w for pair in lx.NOUNS + lx.THINGS for w in pair}
    verbs = {w for v in lx.VERBS_INTRANSITIVE + lx.VERBS_TRANSITIVE for w in v}
    handled = (nouns | verbs | set(PLACES_ES) | set(FOODS_ES) | set(ADJECTIVES_ES)
               | set(PREPOSITIONS_ES) | set(ADVERBS_ES) | set(DETERMINERS_ES) | set(COPULA)
               | set(NAMES_GENDER) | {"yesterday", "every", "day", "he", "she", "his", "her"}
               | {w for t in STORY_ES for w in words_of(t)})
    assert vocabulary() <= handled, vocabulary() - handled


def test_every_story_sentence_with_every_filler():
    templates = {s for context, ending in STORIES for s in context + [ending]}
    assert templates == set(STORY_ES)
    fillers = [dict(name=n, he=p, his="his" if p == "he" else "her", place=place, food=food,
                    thing=thing, animal=animal)
               for (n, p), place, food, (thing, _), (animal, _) in zip(
                   lx.NAMES * 3, lx.PLACES * 3, lx.FOODS * 8, lx.THINGS * 2, lx.NOUNS,
                   strict=False)]  # every filler at least once (50 nouns)
    for slots in fillers:
        for context, ending in STORIES:
            english = " ".join(s.format(**slots) for s in context + [ending])
            es = translate(english)
            assert WELL_FORMED.fullmatch(es) and es.count(".") == 5, (english, es)
            assert "{" not in es and slots["name"] in es


def test_story_slots_agree():
    assert translate("emma wanted a new ball.") == "emma quería una pelota nueva."
    assert translate("ben wanted a new car.") == "ben quería un coche nuevo."
    assert translate("she was very tired.") == "ella estaba muy cansada."
    assert translate("tom came home wet and cold.") == "tom volvió a casa mojado y helado."


def test_unknown_word_and_language():
    with pytest.raises(ValueError, match="zebra"):
        translate("the zebra runs.")
    with pytest.raises(ValueError, match="runs"):  # known words, not a sentence of the grammar
        translate("the dog runs runs.")
    with pytest.raises(ValueError, match="full stop"):
        translate("the dog runs")
    with pytest.raises(ValueError, match="es"):
        translate("the dog runs.", "fr")
    assert LANGUAGES == ("es",)
