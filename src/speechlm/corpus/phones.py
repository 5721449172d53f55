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
