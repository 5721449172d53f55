"""The synthetic grammar's lexicon: a few hundred English words in grammatical classes.

Order inside each list is frequency rank: the grammar draws items with Zipf-like weights
(``zipf_weights``), so the first items of a list recur often and the last ones rarely, as in
natural text, while frequent words recur often enough in two hours of speech to be learnable.
"""

from __future__ import annotations

import numpy as np

# (singular, plural); irregular plurals included on purpose
NOUNS: list[tuple[str, str]] = [
    ("dog", "dogs"), ("cat", "cats"), ("boy", "boys"), ("girl", "girls"), ("man", "men"),
    ("woman", "women"), ("child", "children"), ("bird", "birds"), ("teacher", "teachers"),
    ("friend", "friends"), ("horse", "horses"), ("farmer", "farmers"), ("baby", "babies"),
    ("doctor", "doctors"), ("fish", "fish"), ("mouse", "mice"), ("king", "kings"),
    ("queen", "queens"), ("rabbit", "rabbits"), ("cow", "cows"), ("sheep", "sheep"),
    ("duck", "ducks"), ("student", "students"), ("driver", "drivers"), ("cook", "cooks"),
    ("monkey", "monkeys"), ("tiger", "tigers"), ("sister", "sisters"), ("brother", "brothers"),
    ("mother", "mothers"), ("father", "fathers"), ("neighbor", "neighbors"),
    ("soldier", "soldiers"), ("pilot", "pilots"), ("singer", "singers"), ("goat", "goats"),
    ("lion", "lions"), ("wolf", "wolves"), ("fox", "foxes"), ("bear", "bears"),
    ("frog", "frogs"), ("pig", "pigs"), ("chicken", "chickens"), ("painter", "painters"),
    ("nurse", "nurses"), ("baker", "bakers"), ("sailor", "sailors"), ("uncle", "uncles"),
    ("aunt", "aunts"), ("puppy", "puppies"),
]
# things that can be objects (not subjects)
THINGS: list[tuple[str, str]] = [
    ("ball", "balls"), ("book", "books"), ("apple", "apples"), ("car", "cars"),
    ("box", "boxes"), ("cake", "cakes"), ("letter", "letters"), ("hat", "hats"),
    ("cup", "cups"), ("chair", "chairs"), ("table", "tables"), ("bag", "bags"),
    ("door", "doors"), ("window", "windows"), ("flower", "flowers"), ("tree", "trees"),
    ("key", "keys"), ("boat", "boats"), ("picture", "pictures"), ("song", "songs"),
    ("shoe", "shoes"), ("bottle", "bottles"), ("coat", "coats"), ("egg", "eggs"),
    ("knife", "knives"), ("leaf", "leaves"), ("stone", "stones"), ("toy", "toys"),
    ("bike", "bikes"), ("clock", "clocks"), ("lamp", "lamps"), ("pencil", "pencils"),
    ("bed", "beds"), ("sandwich", "sandwiches"), ("orange", "oranges"), ("candle", "candles"),
    ("ring", "rings"), ("basket", "baskets"), ("blanket", "blankets"), ("drum", "drums"),
]
ADJECTIVES: list[str] = [
    "big", "small", "old", "young", "happy", "little", "red", "good", "new", "tall",
    "black", "white", "sad", "green", "funny", "kind", "hungry", "angry", "blue", "brown",
    "quiet", "loud", "pretty", "clever", "tired", "strong", "brave", "lazy", "dirty", "clean",
    "yellow", "gentle", "famous", "busy", "shy", "heavy", "soft", "warm", "cold", "silly",
]
# verbs as (base, third person singular, past); irregular pasts dominate on purpose so that
# the irregular-past benchmark has material
VERBS_INTRANSITIVE: list[tuple[str, str, str]] = [
    ("run", "runs", "ran"), ("sleep", "sleeps", "slept"), ("sing", "sings", "sang"),
    ("swim", "swims", "swam"), ("walk", "walks", "walked"), ("laugh", "laughs", "laughed"),
    ("fall", "falls", "fell"), ("sit", "sits", "sat"), ("jump", "jumps", "jumped"),
    ("cry", "cries", "cried"), ("dance", "dances", "danced"), ("wait", "waits", "waited"),
    ("smile", "smiles", "smiled"), ("fly", "flies", "flew"), ("work", "works", "worked"),
    ("play", "plays", "played"), ("come", "comes", "came"), ("go", "goes", "went"),
    ("stand", "stands", "stood"), ("shout", "shouts", "shouted"),
]
VERBS_TRANSITIVE: list[tuple[str, str, str]] = [
    ("see", "sees", "saw"), ("take", "takes", "took"), ("find", "finds", "found"),
    ("eat", "eats", "ate"), ("like", "likes", "liked"), ("have", "has", "had"),
    ("bring", "brings", "brought"), ("make", "makes", "made"), ("hold", "holds", "held"),
    ("buy", "buys", "bought"), ("give", "gives", "gave"), ("want", "wants", "wanted"),
    ("throw", "throws", "threw"), ("catch", "catches", "caught"), ("draw", "draws", "drew"),
    ("break", "breaks", "broke"), ("carry", "carries", "carried"), ("lose", "loses", "lost"),
    ("keep", "keeps", "kept"), ("sell", "sells", "sold"), ("hide", "hides", "hid"),
    ("wash", "washes", "washed"), ("open", "opens", "opened"), ("love", "loves", "loved"),
    ("help", "helps", "helped"), ("watch", "watches", "watched"), ("pull", "pulls", "pulled"),
    ("push", "pushes", "pushed"), ("steal", "steals", "stole"), ("choose", "chooses", "chose"),
    ("drink", "drinks", "drank"), ("write", "writes", "wrote"), ("read", "reads", "read"),
    ("feed", "feeds", "fed"), ("meet", "meets", "met"), ("forget", "forgets", "forgot"),
    ("shake", "shakes", "shook"), ("bite", "bites", "bit"), ("send", "sends", "sent"),
    ("leave", "leaves", "left"),
]
PLACES: list[str] = [
    "park", "house", "school", "garden", "river", "market", "forest", "beach", "kitchen",
    "city", "farm", "shop", "station", "village", "hill", "lake", "library", "church",
    "bridge", "castle", "zoo", "hospital", "field", "harbor", "island",
]
PREPOSITIONS: list[str] = ["to", "in", "near", "at", "from", "behind"]
ADVERBS: list[str] = ["today", "again", "quickly", "slowly", "together", "now", "here",
                      "outside", "alone", "there"]
NAMES: list[tuple[str, str]] = [  # (name, pronoun)
    ("tom", "he"), ("anna", "she"), ("ben", "he"), ("lucy", "she"), ("sam", "he"),
    ("mia", "she"), ("jack", "he"), ("emma", "she"), ("max", "he"), ("lily", "she"),
    ("peter", "he"), ("sarah", "she"), ("david", "he"), ("kate", "she"), ("paul", "he"),
    ("julia", "she"), ("mark", "he"), ("rose", "she"), ("leo", "he"), ("nina", "she"),
]
FOODS: list[str] = ["bread", "soup", "rice", "cheese", "fruit", "pasta", "meat", "candy"]

# determiners by number; paired so that an agreement error swaps a determiner for its partner
DETERMINERS_SG: list[str] = ["the", "a", "this", "that", "one", "every"]
DETERMINERS_PL: list[str] = ["the", "some", "these", "those", "two", "many"]
AGREEMENT_SWAP = {"this": "these", "these": "this", "that": "those", "those": "that",
                  "a": "some", "every": "many", "many": "every", "two": "one", "one": "two"}


def zipf_weights(n: int, exponent: float = 1.0, offset: float = 2.0) -> np.ndarray:
    """Normalised Zipf-Mandelbrot weights for ``n`` ranked items."""
    w = 1.0 / (np.arange(n) + offset) ** exponent
    return w / w.sum()


def all_words() -> set[str]:
    """Every word form in the lexicon lists (the grammar adds a few function words)."""
    words: set[str] = set()
    for pair in NOUNS + THINGS:
        words.update(pair)
    for forms in VERBS_INTRANSITIVE + VERBS_TRANSITIVE:
        words.update(forms)
    words.update(ADJECTIVES + PLACES + PREPOSITIONS + ADVERBS + FOODS)
    words.update(n for n, _ in NAMES)
    words.update(DETERMINERS_SG + DETERMINERS_PL)
    return words
