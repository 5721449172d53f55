"""espeak English phone mnemonics: splitting, same-class substitutions for non-words, and a
check against the CMU pronouncing dictionary that pocketsphinx ships."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

# phone classes for non-word substitutions (espeak English mnemonics, stress marks removed)
_CLASSES = [
    ["p", "b", "t", "d", "k", "g"], ["f", "v", "T", "s", "z", "S"], ["m", "n"],
    ["l", "r", "w"], ["tS", "dZ"],
    ["a", "E", "I", "i:", "0", "V", "U", "u:", "eI", "aI", "oU", "O:", "A:", "3:", "aU"],
]
_CLASS_OF = {p: c for c in _CLASSES for p in c}

def split_stress(label: str) -> tuple[str, str]:
    i = 0
    while i < len(label) and label[i] in "',":
        i += 1
    return label[:i], label[i:]


def base_phone(label: str) -> str:
    return split_stress(label)[1]


def split_mnemonics(text: str) -> list[str] | None:
    """Split an espeak mnemonic string (``f'El``) into phones with their stress marks."""
    out, i = [], 0
    while i < len(text):
        j = i
        while j < len(text) and text[j] in "',":
            j += 1
        match = next((p for p in _INVENTORY if p and text.startswith(p, j)), None)
        if match is None:
            return None
        out.append(text[i:j] + match)
        i = j + len(match)
    return out


def make_nonword(phones: list[str], rng: np.random.Generator, n_changes: int) -> list[str] | None:
    slots = [i for i, p in enumerate(phones) if base_phone(p) in _CLASS_OF]
    if len(slots) < n_changes:
        return None
    out = list(phones)
    for i in rng.choice(slots, n_changes, replace=False):
        stress, base = split_stress(out[i])
        options = [q for q in _CLASS_OF[base] if q != base]
        out[i] = stress + options[int(rng.integers(len(options)))]
    return out


def phone_key(phones: list[str]) -> str:
    return " ".join(base_phone(p) for p in phones)


# espeak en-us mnemonics -> coarse ARPAbet (AO merged into AA: the cot/caught merger of en-us
# espeak makes the two indistinguishable), to test non-words against a pronouncing dictionary
_ARPABET = {
    "p": "P", "b": "B", "t": "T", "t#": "T", "t2": "T", "d": "D", "k": "K", "g": "G", "f": "F",
    "v": "V", "T": "TH", "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH",
    "tS": "CH", "dZ": "JH", "m": "M", "n": "N", "N": "NG", "l": "L", "r": "R", "w": "W",
    "j": "Y", "a": "AE", "aa": "AE", "0": "AA", "O:": "AA", "A:": "AA", "O2": "AA", "V": "AH",
    "@": "AH", "@2": "AH", "a#": "AH", "3": "ER", "3:": "ER", "E": "EH", "e@": "EH R",
    "I": "IH", "I#": "IH", "I2": "IH", "i": "IY", "i:": "IY", "i@": "IH R", "i@3": "IH R",
    "U": "UH", "u:": "UW", "eI": "EY", "aI": "AY", "aU": "AW", "OI": "OY", "oU": "OW",
    "A@": "AA R", "O@": "AA R", "o@": "AA R", "aI@": "AY ER", "aI3": "AY ER", "@L": "AH L",
    ";": "",
}
_INVENTORY = sorted(_ARPABET, key=len, reverse=True)  # longest first: greedy like espeak


@functools.lru_cache(maxsize=1)
def _english_pronunciations() -> frozenset[str]:
    """Pronunciations of the CMU dictionary that pocketsphinx ships (empty if not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("pocketsphinx")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    path = Path(spec.submodule_search_locations[0]) / "model" / "en-us" / "cmudict-en-us.dict"
    if not path.exists():
        return frozenset()
    prons = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        phones = [p.rstrip("012") for p in line.split()[1:]]
        prons.add(" ".join("AA" if p == "AO" else p for p in phones))
    return frozenset(prons)


def is_english_word(phones: list[str]) -> bool:
    """Whether ``phones`` (espeak mnemonics) sound like an entry of the CMU dictionary."""
    mapped = [_ARPABET.get(base_phone(p)) for p in phones]
    if any(m is None for m in mapped):
        return False  # a phone we cannot map: the lexicon check alone applies
    return " ".join(m for m in mapped if m) in _english_pronunciations()


# ---- phonemes of any text, for text-to-speech models (VALL-E, VioLA) --------------------------
WORD_BREAK = "|"  # between words (espeak's own "_" marks pauses inside its output)
UNKNOWN_PHONEME = "<unk>"  # a non-ASCII character espeak wrote (another language's letters)
# Every multi-character English mnemonic, then every printable ASCII character alone: espeak
# writes ASCII mnemonics in every language, so any of its output has a tokenisation (stress marks
# and length marks come out as their own tokens when no longer phone matches).
PHONEME_INVENTORY: tuple[str, ...] = (
    UNKNOWN_PHONEME, WORD_BREAK,
    *sorted(p for p in _ARPABET if len(p) > 1),
    *(chr(c) for c in range(33, 127) if chr(c) != WORD_BREAK),
)
_PHONEME_INDEX = {p: i for i, p in enumerate(PHONEME_INVENTORY)}
_LONGEST_FIRST = sorted(PHONEME_INVENTORY[2:], key=len, reverse=True)


def split_phonemes(mnemonics: str) -> list[str]:
    """espeak mnemonics (words separated by spaces) -> inventory symbols, longest match first."""
    out: list[str] = []
    for word in mnemonics.split():
        if out:
            out.append(WORD_BREAK)
        i = 0
        while i < len(word):
            match = next((p for p in _LONGEST_FIRST if word.startswith(p, i)), None)
            out.append(match or UNKNOWN_PHONEME)
            i += len(match) if match else 1
    return out


@functools.lru_cache(maxsize=65536)
def _phonemes(text: str, voice: str) -> tuple[str, ...]:
    from speechlm.corpus.espeak import Espeak

    espeak = Espeak.get()
    espeak.set_voice(voice)
    # espeak spells some all-capital words letter by letter ("IT", "US"): transcripts written
    # in capitals (LibriSpeech) are read as the words they are
    return tuple(split_phonemes(espeak.phonemes(text.lower())))


def phonemize(text: str, voice: str = "en-us") -> list[str]:
    """``text`` as espeak-ng pronounces it in ``voice``'s language: inventory symbols."""
    return list(_phonemes(text, voice))


def phoneme_indices(text: str, voice: str = "en-us") -> np.ndarray:
    """:func:`phonemize` as indices into :data:`PHONEME_INVENTORY` (int64)."""
    return np.asarray([_PHONEME_INDEX[p] for p in _phonemes(text, voice)], dtype=np.int64)
