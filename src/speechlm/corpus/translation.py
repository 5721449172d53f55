"""Spanish for the synthetic grammar's English: the target side of a parallel corpus (VioLA).

This is a word-for-word-plus-word-order translation made for the synthetic language of
``grammar`` and ``lexicon``, not a general translator: it parses each sentence with the
grammar's own structure (``Grammar.clause`` / ``render``: optional "yesterday", subject noun
phrase, verb, optional object, then a place phrase, an adverb or "every day") and re-renders it
in Spanish with gender, number and word order right; story sentences are matched against the
``STORIES`` templates and told by hand-written Spanish templates with their slots translated.
Anything else raises ``ValueError`` naming the word it could not handle.

Conventions and simplifications (consistent, so that the same English always gives the same
Spanish, and plausible rather than idiomatic):

- Lower case, no inverted or other punctuation: one full stop ends each sentence.
- Determiners, nouns and adjectives agree in gender and number; adjectives follow the noun.
  Gender-neutral English nouns take one (masculine) Spanish noun (teacher -> maestro).
- Present simple -> present; past -> preterite (3rd person singular / plural); the copula is
  ``ser`` (es/son, past era/eran) except ``estar`` (está/están, estaba/estaban) for the
  adjectives in ``STATE_ADJECTIVES``. "like" -> apreciar (no "gustar" restructuring).
- Subject pronouns are kept (él/ella: no pro-drop); human objects take the personal "a"
  (not after tener); a + el -> al, de + el -> del.
- English agreement errors are not reproduced: a noun's own form decides the number, then its
  determiner, then the verb (``the fish swim``); otherwise singular. "read" after a plural
  subject is present unless the sentence starts with "yesterday".
- "together" is always plural (juntos/juntas); "alone" agrees with the subject (solo/sola...).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from speechlm.corpus import grammar as gr
from speechlm.corpus import lexicon as lx

LANGUAGES = ("es",)

# -- lexicon ---------------------------------------------------------------------------------
# English singular -> (Spanish singular, gender); plurals follow ``plural``
NOUNS_ES: dict[str, tuple[str, str]] = {
    "dog": ("perro", "m"), "cat": ("gato", "m"), "boy": ("chico", "m"), "girl": ("chica", "f"),
    "man": ("hombre", "m"), "woman": ("mujer", "f"), "child": ("niño", "m"),
    "bird": ("pájaro", "m"), "teacher": ("maestro", "m"), "friend": ("amigo", "m"),
    "horse": ("caballo", "m"), "farmer": ("granjero", "m"), "baby": ("bebé", "m"),
    "doctor": ("médico", "m"), "fish": ("pez", "m"), "mouse": ("ratón", "m"),
    "king": ("rey", "m"), "queen": ("reina", "f"), "rabbit": ("conejo", "m"),
    "cow": ("vaca", "f"), "sheep": ("oveja", "f"), "duck": ("pato", "m"),
    "student": ("estudiante", "m"), "driver": ("conductor", "m"), "cook": ("cocinero", "m"),
    "monkey": ("mono", "m"), "tiger": ("tigre", "m"), "sister": ("hermana", "f"),
    "brother": ("hermano", "m"), "mother": ("madre", "f"), "father": ("padre", "m"),
    "neighbor": ("vecino", "m"), "soldier": ("soldado", "m"), "pilot": ("piloto", "m"),
    "singer": ("cantante", "m"), "goat": ("cabra", "f"), "lion": ("león", "m"),
    "wolf": ("lobo", "m"), "fox": ("zorro", "m"), "bear": ("oso", "m"), "frog": ("rana", "f"),
    "pig": ("cerdo", "m"), "chicken": ("gallina", "f"), "painter": ("pintor", "m"),
    "nurse": ("enfermero", "m"), "baker": ("panadero", "m"), "sailor": ("marinero", "m"),
    "uncle": ("tío", "m"), "aunt": ("tía", "f"), "puppy": ("cachorro", "m"),
}
THINGS_ES: dict[str, tuple[str, str]] = {
    "ball": ("pelota", "f"), "book": ("libro", "m"), "apple": ("manzana", "f"),
    "car": ("coche", "m"), "box": ("caja", "f"), "cake": ("pastel", "m"), "letter": ("carta", "f"),
    "hat": ("sombrero", "m"), "cup": ("taza", "f"), "chair": ("silla", "f"),
    "table": ("mesa", "f"), "bag": ("bolsa", "f"), "door": ("puerta", "f"),
    "window": ("ventana", "f"), "flower": ("flor", "f"), "tree": ("árbol", "m"),
    "key": ("llave", "f"), "boat": ("barco", "m"), "picture": ("cuadro", "m"),
    "song": ("canción", "f"), "shoe": ("zapato", "m"), "bottle": ("botella", "f"),
    "coat": ("abrigo", "m"), "egg": ("huevo", "m"), "knife": ("cuchillo", "m"),
    "leaf": ("hoja", "f"), "stone": ("piedra", "f"), "toy": ("juguete", "m"),
    "bike": ("bicicleta", "f"), "clock": ("reloj", "m"), "lamp": ("lámpara", "f"),
    "pencil": ("lápiz", "m"), "bed": ("cama", "f"), "sandwich": ("sándwich", "m"),
    "orange": ("naranja", "f"), "candle": ("vela", "f"), "ring": ("anillo", "m"),
    "basket": ("cesta", "f"), "blanket": ("manta", "f"), "drum": ("tambor", "m"),
}
PLACES_ES: dict[str, tuple[str, str]] = {
    "park": ("parque", "m"), "house": ("casa", "f"), "school": ("escuela", "f"),
    "garden": ("jardín", "m"), "river": ("río", "m"), "market": ("mercado", "m"),
    "forest": ("bosque", "m"), "beach": ("playa", "f"), "kitchen": ("cocina", "f"),
    "city": ("ciudad", "f"), "farm": ("granja", "f"), "shop": ("tienda", "f"),
    "station": ("estación", "f"), "village": ("pueblo", "m"), "hill": ("colina", "f"),
    "lake": ("lago", "m"), "library": ("biblioteca", "f"), "church": ("iglesia", "f"),
    "bridge": ("puente", "m"), "castle": ("castillo", "m"), "zoo": ("zoológico", "m"),
    "hospital": ("hospital", "m"), "field": ("campo", "m"), "harbor": ("puerto", "m"),
    "island": ("isla", "f"),
}
# mass nouns: the stories say "some {food}" (un poco de ...) and "the {food}"
FOODS_ES: dict[str, tuple[str, str]] = {
    "bread": ("pan", "m"), "soup": ("sopa", "f"), "rice": ("arroz", "m"),
    "cheese": ("queso", "m"), "fruit": ("fruta", "f"), "pasta": ("pasta", "f"),
    "meat": ("carne", "f"), "candy": ("caramelo", "m"),
}
# people take the personal "a" as direct objects (ve a la chica)
HUMANS = frozenset({
    "boy", "girl", "man", "woman", "child", "teacher", "friend", "farmer", "baby", "doctor",
    "king", "queen", "student", "driver", "cook", "sister", "brother", "mother", "father",
    "neighbor", "soldier", "pilot", "singer", "painter", "nurse", "baker", "sailor", "uncle",
    "aunt",
})
# masculine singular; feminine and plural follow ``inflect``
ADJECTIVES_ES: dict[str, str] = {
    "big": "grande", "small": "pequeño", "old": "viejo", "young": "joven", "happy": "feliz",
    "little": "pequeñito", "red": "rojo", "good": "bueno", "new": "nuevo", "tall": "alto",
    "black": "negro", "white": "blanco", "sad": "triste", "green": "verde",
    "funny": "gracioso", "kind": "amable", "hungry": "hambriento", "angry": "enfadado",
    "blue": "azul", "brown": "marrón", "quiet": "tranquilo", "loud": "ruidoso",
    "pretty": "bonito", "clever": "listo", "tired": "cansado", "strong": "fuerte",
    "brave": "valiente", "lazy": "perezoso", "dirty": "sucio", "clean": "limpio",
    "yellow": "amarillo", "gentle": "gentil", "famous": "famoso", "busy": "ocupado",
    "shy": "tímido", "heavy": "pesado", "soft": "suave", "warm": "cálido", "cold": "frío",
    "silly": "tonto",
}
# states rather than qualities: the copula is estar
STATE_ADJECTIVES = frozenset({"hungry", "angry", "tired", "busy", "dirty", "clean", "sad",
                              "happy", "quiet"})
# English base -> (present 3sg, present 3pl, preterite 3sg, preterite 3pl); written out since
# most of these are irregular or stem-changing in Spanish
VERBS_ES: dict[str, tuple[str, str, str, str]] = {
    "run": ("corre", "corren", "corrió", "corrieron"),
    "sleep": ("duerme", "duermen", "durmió", "durmieron"),
    "sing": ("canta", "cantan", "cantó", "cantaron"),
    "swim": ("nada", "nadan", "nadó", "nadaron"),
    "walk": ("camina", "caminan", "caminó", "caminaron"),
    "laugh": ("ríe", "ríen", "rio", "rieron"),
    "fall": ("cae", "caen", "cayó", "cayeron"),
    "sit": ("se sienta", "se sientan", "se sentó", "se sentaron"),
    "jump": ("salta", "saltan", "saltó", "saltaron"),
    "cry": ("llora", "lloran", "lloró", "lloraron"),
    "dance": ("baila", "bailan", "bailó", "bailaron"),
    "wait": ("espera", "esperan", "esperó", "esperaron"),
    "smile": ("sonríe", "sonríen", "sonrió", "sonrieron"),
    "fly": ("vuela", "vuelan", "voló", "volaron"),
    "work": ("trabaja", "trabajan", "trabajó", "trabajaron"),
    "play": ("juega", "juegan", "jugó", "jugaron"),
    "come": ("viene", "vienen", "vino", "vinieron"),
    "go": ("va", "van", "fue", "fueron"),
    "stand": ("está de pie", "están de pie", "estuvo de pie", "estuvieron de pie"),
    "shout": ("grita", "gritan", "gritó", "gritaron"),
    "see": ("ve", "ven", "vio", "vieron"),
    "take": ("toma", "toman", "tomó", "tomaron"),
    "find": ("encuentra", "encuentran", "encontró", "encontraron"),
    "eat": ("come", "comen", "comió", "comieron"),
    "like": ("aprecia", "aprecian", "apreció", "apreciaron"),
    "have": ("tiene", "tienen", "tuvo", "tuvieron"),
    "bring": ("trae", "traen", "trajo", "trajeron"),
    "make": ("hace", "hacen", "hizo", "hicieron"),
    "hold": ("sostiene", "sostienen", "sostuvo", "sostuvieron"),
    "buy": ("compra", "compran", "compró", "compraron"),
    "give": ("da", "dan", "dio", "dieron"),
    "want": ("quiere", "quieren", "quiso", "quisieron"),
    "throw": ("lanza", "lanzan", "lanzó", "lanzaron"),
    "catch": ("atrapa", "atrapan", "atrapó", "atraparon"),
    "draw": ("dibuja", "dibujan", "dibujó", "dibujaron"),
    "break": ("rompe", "rompen", "rompió", "rompieron"),
    "carry": ("lleva", "llevan", "llevó", "llevaron"),
    "lose": ("pierde", "pierden", "perdió", "perdieron"),
    "keep": ("guarda", "guardan", "guardó", "guardaron"),
    "sell": ("vende", "venden", "vendió", "vendieron"),
    "hide": ("esconde", "esconden", "escondió", "escondieron"),
    "wash": ("lava", "lavan", "lavó", "lavaron"),
    "open": ("abre", "abren", "abrió", "abrieron"),
    "love": ("ama", "aman", "amó", "amaron"),
    "help": ("ayuda", "ayudan", "ayudó", "ayudaron"),
    "watch": ("mira", "miran", "miró", "miraron"),
    "pull": ("arrastra", "arrastran", "arrastró", "arrastraron"),
    "push": ("empuja", "empujan", "empujó", "empujaron"),
    "steal": ("roba", "roban", "robó", "robaron"),
    "choose": ("elige", "eligen", "eligió", "eligieron"),
    "drink": ("bebe", "beben", "bebió", "bebieron"),
    "write": ("escribe", "escriben", "escribió", "escribieron"),
    "read": ("lee", "leen", "leyó", "leyeron"),
    "feed": ("alimenta", "alimentan", "alimentó", "alimentaron"),
    "meet": ("conoce", "conocen", "conoció", "conocieron"),
    "forget": ("olvida", "olvidan", "olvidó", "olvidaron"),
    "shake": ("sacude", "sacuden", "sacudió", "sacudieron"),
    "bite": ("muerde", "muerden", "mordió", "mordieron"),
    "send": ("envía", "envían", "envió", "enviaron"),
    "leave": ("deja", "dejan", "dejó", "dejaron"),
}
NO_PERSONAL_A = frozenset({"have"})  # tiene dos hermanos, not "tiene a dos hermanos"
# (masculine singular, feminine singular, masculine plural, feminine plural)
DETERMINERS_ES: dict[str, tuple[str, str, str, str]] = {
    "the": ("el", "la", "los", "las"), "a": ("un", "una", "unos", "unas"),
    "an": ("un", "una", "unos", "unas"), "some": ("un", "una", "unos", "unas"),
    "this": ("este", "esta", "estos", "estas"), "these": ("este", "esta", "estos", "estas"),
    "that": ("ese", "esa", "esos", "esas"), "those": ("ese", "esa", "esos", "esas"),
    "one": ("un", "una", "unos", "unas"), "two": ("dos", "dos", "dos", "dos"),
    "many": ("mucho", "mucha", "muchos", "muchas"), "every": ("cada", "cada", "cada", "cada"),
}
DETERMINER_NUMBER = {d: "sg" for d in lx.DETERMINERS_SG + ["an"]} | {
    d: "pl" for d in lx.DETERMINERS_PL}
DETERMINER_NUMBER.pop("the")  # the: either
PREPOSITIONS_ES: dict[str, str] = {"to": "a", "in": "en", "near": "cerca de", "at": "en",
                                   "from": "de", "behind": "detrás de"}
ADVERBS_ES: dict[str, str] = {
    "today": "hoy", "again": "otra vez", "quickly": "rápidamente", "slowly": "despacio",
    "together": "junto", "now": "ahora", "here": "aquí", "outside": "afuera", "alone": "solo",
    "there": "allí",
}
AGREEING_ADVERBS = {"alone": None, "together": "pl"}  # adjectives in Spanish; None: subject's
NAMES_GENDER: dict[str, str] = {n: "m" if p == "he" else "f" for n, p in lx.NAMES}
COPULA: dict[str, tuple[str, str]] = {v: k for k, v in gr.BE.items()}  # is -> (present, sg)
SER = {("present", "sg"): "es", ("present", "pl"): "son", ("past", "sg"): "era",
       ("past", "pl"): "eran"}
ESTAR = {("present", "sg"): "está", ("present", "pl"): "están", ("past", "sg"): "estaba",
         ("past", "pl"): "estaban"}
PLURAL_EXCEPTIONS = {"joven": "jóvenes"}  # stress moves: the accent is written

_UNACCENT = str.maketrans("áéíóú", "aeiou")
_VOWELS = "aeiouáéíóú"
_CONTRACTIONS = {"a": "al", "de": "del"}  # with "el"


def plural(word: str) -> str:
    """The Spanish plural of a noun or adjective (regular rules plus ``PLURAL_EXCEPTIONS``)."""
    if word in PLURAL_EXCEPTIONS:
        return PLURAL_EXCEPTIONS[word]
    if word[-1] in _VOWELS:
        return word + "s"  # perro -> perros, bebé -> bebés
    if word[-1] == "z":
        return word[:-1] + "ces"  # pez -> peces
    if word[-1] in "ns" and word[-2] in "áéíóú":
        return word[:-2] + word[-2].translate(_UNACCENT) + word[-1] + "es"  # ratón -> ratones
    return word + "es"  # flor -> flores, rey -> reyes


def inflect(adjective: str, gender: str, number: str) -> str:
    """A masculine singular adjective in ``gender`` ("m"/"f") and ``number`` ("sg"/"pl")."""
    word = adjective[:-1] + "a" if gender == "f" and adjective.endswith("o") else adjective
    return plural(word) if number == "pl" else word


def _determiner(det: str, gender: str, number: str) -> str:
    return DETERMINERS_ES[det][(gender == "f") + 2 * (number == "pl")]


def _with_preposition(prep: str, words: list[str]) -> list[str]:
    """``prep`` + a phrase, contracting a/de + el."""
    head = prep.split()
    if words and words[0] == "el" and head[-1] in _CONTRACTIONS:
        return head[:-1] + [_CONTRACTIONS[head[-1]]] + words[1:]
    return head + words


# -- indexes over word forms (built once) ----------------------------------------------------
_NOUN_INFO: dict[str, tuple[str, str]] = NOUNS_ES | THINGS_ES | PLACES_ES | FOODS_ES
_NOUN_FORMS: dict[str, tuple[str, str | None]] = {}  # English form -> (singular, number)
for _sg in list(PLACES_ES) + list(FOODS_ES):
    _NOUN_FORMS[_sg] = (_sg, "sg")
for _sg, _pl in lx.NOUNS + lx.THINGS:
    _NOUN_FORMS[_sg] = (_sg, None if _sg == _pl else "sg")  # fish, sheep: number not shown
    _NOUN_FORMS[_pl] = (_sg, None if _sg == _pl else "pl")
_VERB_FORMS: dict[str, list[tuple[str, str, str | None]]] = {}  # -> [(base, tense, number)]
for _base, _s3, _past in lx.VERBS_INTRANSITIVE + lx.VERBS_TRANSITIVE:
    _VERB_FORMS.setdefault(_base, []).append((_base, "present", "pl"))
    _VERB_FORMS.setdefault(_s3, []).append((_base, "present", "sg"))
    _VERB_FORMS.setdefault(_past, []).append((_base, "past", None))  # read: present or past


class _Untranslatable(Exception):
    """The parser stopped at ``word`` (None: the sentence ended too early)."""

    def __init__(self, word: str | None):
        super().__init__(word)
        self.word = word


@dataclass
class _Phrase:
    """A parsed noun phrase: Spanish parts still to be agreed once the number is known."""

    det: str | None  # English determiner; None for a name
    adj: str | None  # English adjective
    noun: str  # English singular noun, or the name
    number: str | None  # None when the English does not show it (the sheep)

    @property
    def gender(self) -> str:
        return NAMES_GENDER[self.noun] if self.det is None else _NOUN_INFO[self.noun][1]

    @property
    def human(self) -> bool:
        return self.det is None or self.noun in HUMANS

    def spanish(self, number: str) -> list[str]:
        if self.det is None:
            return [self.noun]  # names stay as they are
        es, gender = _NOUN_INFO[self.noun]
        words = [_determiner(self.det, gender, number), plural(es) if number == "pl" else es]
        if self.adj is not None:
            words.append(inflect(ADJECTIVES_ES[self.adj], gender, number))
        return words


def _word(words: list[str], i: int) -> str:
    if i >= len(words):
        raise _Untranslatable(None)
    return words[i]


def _noun_phrase(words: list[str], i: int) -> tuple[_Phrase, int]:
    """A name, or determiner + optional adjective + noun, from ``words[i]``."""
    w = _word(words, i)
    if w in NAMES_GENDER:
        return _Phrase(None, None, w, "sg"), i + 1
    if w not in DETERMINERS_ES:
        raise _Untranslatable(w)
    adj = _word(words, i + 1)
    if adj in ADJECTIVES_ES:
        i += 1
    else:
        adj = None
    noun = _word(words, i + 1)
    if noun not in _NOUN_FORMS:
        raise _Untranslatable(noun)
    sg, number = _NOUN_FORMS[noun]
    # the noun's form decides; the determiner when the noun is invariant (two sheep)
    return _Phrase(w, adj, sg, number or DETERMINER_NUMBER.get(w)), i + 2


def _clause(words: list[str]) -> str:
    """Spanish for one sentence of ``Grammar.clause`` (words without the full stop)."""
    out: list[str] = []
    i, yesterday = 0, bool(words) and words[0] == "yesterday"
    if yesterday:
        out.append("ayer")
        i = 1
    subject, i = _noun_phrase(words, i)
    verb = _word(words, i)
    obj = None
    if verb in COPULA:
        tense, number = COPULA[verb]
        number = subject.number or number
        adj = _word(words, i + 1)
        if adj not in ADJECTIVES_ES:
            raise _Untranslatable(adj)
        be = ESTAR if adj in STATE_ADJECTIVES else SER
        out += subject.spanish(number) + [be[(tense, number)],
                                          inflect(ADJECTIVES_ES[adj], subject.gender, number)]
        i += 2
    elif verb in _VERB_FORMS:
        options = _VERB_FORMS[verb]
        if len(options) > 1:  # "read": prefer the reading the subject and "yesterday" allow
            fits = [o for o in options if subject.number in (None, o[2]) or o[2] is None]
            options = sorted(fits or options, key=lambda o: (o[1] == "past") != yesterday)
        base, tense, verb_number = options[0]
        number = subject.number or verb_number or "sg"
        out += subject.spanish(number)
        out.append(VERBS_ES[base][2 * (tense == "past") + (number == "pl")])
        i += 1
        nxt = words[i:i + 2]
        if nxt and (nxt[0] in DETERMINERS_ES or nxt[0] in NAMES_GENDER) \
                and nxt != ["every", "day"]:  # "every" also starts an object (every dog)
            obj, i = _noun_phrase(words, i)
            obj_words = obj.spanish(obj.number or "sg")
            if obj.human and base not in NO_PERSONAL_A:
                obj_words = _with_preposition("a", obj_words)
            out += obj_words
    else:
        raise _Untranslatable(verb)
    # rest: a place phrase, an adverb, "every day" or nothing
    if i < len(words):
        w = words[i]
        if w in PREPOSITIONS_ES:
            place, i = _noun_phrase(words, i + 1)
            out += _with_preposition(PREPOSITIONS_ES[w], place.spanish(place.number or "sg"))
        elif w in ADVERBS_ES:
            if w in AGREEING_ADVERBS:
                out.append(inflect(ADVERBS_ES[w], subject.gender,
                                   AGREEING_ADVERBS[w] or subject.number or "sg"))
            else:
                out.append(ADVERBS_ES[w])
            i += 1
        elif w == "every" and words[i + 1:i + 2] == ["day"]:
            out += ["cada", "día"]
            i += 2
    if i < len(words):
        raise _Untranslatable(words[i])
    return " ".join(out) + "."


# -- stories ---------------------------------------------------------------------------------
# every sentence template of ``grammar.STORIES`` -> Spanish. Placeholders: {name}; {he}
# (él/ella); {o} (o/a for the character's gender); {lo} (lo/la for the story's animal); for
# X in place/food/thing/animal: {X}, {el_X}, {un_X}, {a_el_X} (al ...), {de_el_X} (del ...) and
# {X_o} (o/a for its gender). Hand-written, so more idiomatic than ``_clause`` (estar, imperfect)
STORY_ES: dict[str, str] = {
    "{name} was hungry.": "{name} tenía hambre.",
    "{he} went to the kitchen.": "{he} fue a la cocina.",
    "{he} found some {food} there.": "{he} encontró un poco de {food} allí.",
    "{he} ate the {food} quickly.": "{he} comió {el_food} rápidamente.",
    "then {name} was not hungry.": "luego {name} ya no tenía hambre.",
    "{name} walked to the {place}.": "{name} caminó {a_el_place}.",
    "the sky was dark.": "el cielo estaba oscuro.",
    "then it started to rain.": "luego empezó a llover.",
    "{he} had no umbrella.": "{he} no tenía paraguas.",
    "{name} came home wet and cold.": "{name} volvió a casa mojad{o} y helad{o}.",
    "{name} had a little {animal}.": "{name} tenía {un_animal} pequeñit{animal_o}.",
    "one day the {animal} ran away.": "un día {el_animal} se escapó.",
    "{name} looked for it everywhere.": "{name} {lo} buscó por todas partes.",
    "{he} found it near the {place}.": "{he} {lo} encontró cerca {de_el_place}.",
    "{name} took the {animal} home.": "{name} llevó {a_el_animal} a casa.",
    "{name} had a birthday today.": "{name} celebraba su cumpleaños hoy.",
    "{his} friends came to the house.": "sus amigos vinieron a la casa.",
    "they brought a big cake.": "ellos trajeron un pastel grande.",
    "everyone sang a song.": "todos cantaron una canción.",
    "{name} was very happy.": "{name} estaba muy feliz.",
    "{name} worked all day.": "{name} trabajó todo el día.",
    "{he} was very tired.": "{he} estaba muy cansad{o}.",
    "{he} went to bed early.": "{he} se fue a la cama temprano.",
    "the house was quiet.": "la casa estaba tranquila.",
    "{name} slept well all night.": "{name} durmió bien toda la noche.",
    "{name} played with a ball in the {place}.": "{name} jugó con una pelota en {el_place}.",
    "{he} threw the ball too far.": "{he} lanzó la pelota demasiado lejos.",
    "the ball fell in the river.": "la pelota cayó en el río.",
    "{name} could not get it.": "{name} no pudo recuperarla.",
    "{name} went home without the ball.": "{name} volvió a casa sin la pelota.",
    "{name} had a test at school.": "{name} tenía un examen en la escuela.",
    "{he} read {his} books every night.": "{he} leía sus libros cada noche.",
    "{he} worked very hard.": "{he} trabajó muy duro.",
    "the test was easy.": "el examen era fácil.",
    "{name} got a good grade.": "{name} sacó una buena nota.",
    "{name} wanted a new {thing}.": "{name} quería {un_thing} nuev{thing_o}.",
    "{he} saved money for a long time.": "{he} ahorró dinero durante mucho tiempo.",
    "then {he} went to the shop.": "luego {he} fue a la tienda.",
    "{he} bought the {thing}.": "{he} compró {el_thing}.",
    "{name} loved the new {thing}.": "a {name} le encantó {el_thing} nuev{thing_o}.",
    "{name} planted some flowers in the garden.": "{name} plantó unas flores en el jardín.",
    "{he} gave them water every day.": "{he} les dio agua cada día.",
    "the sun was warm.": "el sol calentaba.",
    "soon the flowers grew tall.": "pronto las flores crecieron altas.",
    "{name} picked the flowers for {his} mother.": "{name} cortó las flores para su madre.",
    "{name} went to the lake with {his} father.": "{name} fue al lago con su padre.",
    "they sat by the water.": "ellos se sentaron junto al agua.",
    "they waited a long time.": "ellos esperaron mucho tiempo.",
    "then {name} caught a big fish.": "luego {name} pescó un pez grande.",
    "they cooked the fish for dinner.": "ellos cocinaron el pescado para la cena.",
}
# what each slot may hold (animal: any noun, a superset of the grammar's NOUNS[:30])
STORY_SLOTS: dict[str, frozenset[str]] = {
    "name": frozenset(NAMES_GENDER), "he": frozenset({"he", "she"}),
    "his": frozenset({"his", "her"}), "place": frozenset(PLACES_ES),
    "food": frozenset(FOODS_ES), "thing": frozenset(THINGS_ES), "animal": frozenset(NOUNS_ES),
}
# templates as token lists by length: a sentence is compared only with the few of its length
_TEMPLATES: dict[int, list[tuple[list[str], str]]] = {}
for _en, _es in STORY_ES.items():
    _tokens = _en[:-1].split()
    _TEMPLATES.setdefault(len(_tokens), []).append((_tokens, _es))


def _match_template(words: list[str]) -> tuple[str, dict[str, str]] | None:
    """The Spanish template of the story sentence ``words`` and its slot fillers, or None."""
    for tokens, es in _TEMPLATES.get(len(words), ()):
        slots: dict[str, str] = {}
        for token, w in zip(tokens, words, strict=True):
            if token[0] == "{":
                slot = token[1:-1]
                if w not in STORY_SLOTS[slot] or slots.setdefault(slot, w) != w:
                    break
            elif token != w:
                break
        else:
            return es, slots
    return None


def _slot_values(slots: dict[str, str], it_gender: str) -> dict[str, str]:
    """Every placeholder of ``STORY_ES`` that ``slots`` can fill (see there)."""
    values = {"lo": "lo" if it_gender == "m" else "la"}
    if "name" in slots:
        values["name"] = slots["name"]
        values["o"] = "o" if NAMES_GENDER[slots["name"]] == "m" else "a"
    if "he" in slots:
        values["he"] = "él" if slots["he"] == "he" else "ella"
        values["o"] = "o" if slots["he"] == "he" else "a"
    for key in ("place", "food", "thing", "animal"):
        if key in slots:
            es, gender = _NOUN_INFO[slots[key]]
            the = [_determiner("the", gender, "sg"), es]
            values |= {key: es, f"el_{key}": " ".join(the),
                       f"un_{key}": _determiner("a", gender, "sg") + " " + es,
                       f"a_el_{key}": " ".join(_with_preposition("a", the)),
                       f"de_el_{key}": " ".join(_with_preposition("de", the)),
                       f"{key}_o": "o" if gender == "m" else "a"}
    return values


# -- public ----------------------------------------------------------------------------------
_KNOWN_WORDS = (gr.vocabulary() | set(_NOUN_FORMS) | set(_VERB_FORMS) | set(ADJECTIVES_ES)
                | set(ADVERBS_ES) | set(NAMES_GENDER) | {"he", "she", "his", "her"})


@lru_cache(maxsize=1 << 16)
def _sentence(sentence: str, it_gender: str) -> tuple[str, str]:
    """(Spanish, the gender "it" refers to afterwards) for one sentence without its stop."""
    words = sentence.split(" ")
    if found := _match_template(words):
        es, slots = found
        if "animal" in slots:
            it_gender = _NOUN_INFO[slots["animal"]][1]
        return es.format_map(_slot_values(slots, it_gender)), it_gender
    try:
        return _clause(words), it_gender
    except _Untranslatable as e:
        unknown = [w for w in words if w not in _KNOWN_WORDS]
        if unknown:
            msg = f"cannot translate the word '{unknown[0]}'"
        elif e.word is None:
            msg = "the sentence ends too early"
        else:
            msg = f"cannot parse at the word '{e.word}'"
        raise ValueError(f"{msg} in the sentence '{sentence}.' (not a sentence of the synthetic "
                         "grammar)") from None


def translate(text: str, language: str = "es") -> str:
    """``text`` (sentences of ``grammar``: lower case, each ending in a full stop) in
    ``language``; one output sentence per input sentence. Raises ``ValueError`` for a language
    not in ``LANGUAGES`` or a word or sentence outside the synthetic grammar."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language '{language}'; known: {list(LANGUAGES)}")
    tokens = text.lower().split()
    if not tokens or not tokens[-1].endswith("."):
        raise ValueError(f"text must be sentences each ending with a full stop: '{text}'")
    out: list[str] = []
    sentence: list[str] = []
    it_gender = "m"  # what "it" refers to (the story's animal), carried across sentences
    for token in tokens:
        if token.endswith("."):
            sentence.append(token[:-1])
            es, it_gender = _sentence(" ".join(sentence), it_gender)
            out.append(es)
            sentence = []
        else:
            sentence.append(token)
    return " ".join(out)
