"""Benchmark sets spoken by held-out voices, in the published layouts, and their readers.

``build_benchmarks(out_dir, seed, pairs)`` writes

- ``lexical/dev/<filename>.wav`` + ``lexical/dev/gold.csv`` (sWUGGY, ZeroSpeech 2021 layout;
  columns ``id,filename,voice,frequency,word,phones,length,correct``): each word that occurs in
  the training text against a non-word made by substituting one phone (two in words of five or
  more phones) with another of the same class. Both sides are synthesised from espeak phoneme
  mnemonics with the same voice, rate and pitch, so only the changed phones differ. ``frequency``
  is the word's occurrences per million words of the training text distribution (both rows of a
  pair carry it); ``word`` of a non-word row is its phone string; ``phones`` are espeak
  mnemonics separated by spaces; ``length`` is the number of phones.
- ``syntactic/dev/<filename>.wav`` + ``syntactic/dev/gold.csv`` (sBLIMP layout; columns
  ``filename,id,voice,type,subtype,transcription,correct``) with types ``agreement``,
  ``determiner``, ``irregular_past`` and ``word_order`` in equal shares.
- ``storycloze/sSC/`` and ``storycloze/tSC/``: ``<filename>.wav`` + ``gold.csv`` with columns
  ``id,filename,voice,correct,transcription``. Each audio is a whole story: four context
  sentences and an ending. sSC's wrong ending is another scenario's ending told about the same
  character (coherence); tSC's is the ending of a different random story (topic).

Rows of one pair share ``id`` and ``voice``; filenames are random strings, as in the releases.
``read_gold`` and ``read_storycloze`` read these and the official releases; for StoryCloze the
release is assumed to hold ``sSC/`` and ``tSC/`` folders of ``<id>_correct.wav`` /
``<id>_incorrect.wav`` files (no gold.csv), which are paired by ``<id>``.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from speechlm.corpus.grammar import (
    STORIES,
    SYNTAX_TYPES,
    Grammar,
    sample_sentences,
    syntactic_pair,
    words_of,
)
from speechlm.errors import SpeechLMError

LEXICAL_COLUMNS = ["id", "filename", "voice", "frequency", "word", "phones", "length", "correct"]
SYNTACTIC_COLUMNS = ["filename", "id", "voice", "type", "subtype", "transcription", "correct"]
STORY_COLUMNS = ["id", "filename", "voice", "correct", "transcription"]
FREQUENCY_SAMPLE = 10000  # utterances of training text used to estimate word frequencies
MIN_PER_MILLION = 2000.0  # lexical items recur >= ~40 times in 2 h of training speech
SAMPLE_RATE = 16000

# phone classes for non-word substitutions (espeak English mnemonics, stress marks removed)
_CLASSES = [
    ["p", "b", "t", "d", "k", "g"], ["f", "v", "T", "s", "z", "S"], ["m", "n"],
    ["l", "r", "w"], ["tS", "dZ"],
    ["a", "E", "I", "i:", "0", "V", "U", "u:", "eI", "aI", "oU", "O:", "A:", "3:", "aU"],
]
_CLASS_OF = {p: c for c in _CLASSES for p in c}


@functools.lru_cache(maxsize=4)
def word_frequencies(seed: int = 12345) -> dict[str, float]:
    """Occurrences per million words of the training text distribution (a fixed sample)."""
    counts = Counter(w for t in sample_sentences(FREQUENCY_SAMPLE, seed) for w in words_of(t))
    total = sum(counts.values())
    return {w: 1e6 * n / total for w, n in counts.items()}


def _split_stress(label: str) -> tuple[str, str]:
    i = 0
    while i < len(label) and label[i] in "',":
        i += 1
    return label[:i], label[i:]


def _base(label: str) -> str:
    return _split_stress(label)[1]


def _random_names(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    out = []
    while len(out) < n:
        name = "".join(rng.choice(letters, 11))
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


class _Speaker:
    """Speaks benchmark items with per-item random rate/pitch; one fresh espeak per build."""

    def __init__(self, rng: np.random.Generator):
        from speechlm.corpus.espeak import Espeak
        from speechlm.corpus.synth import PITCH_RANGE, RATE_RANGE

        self.espeak = Espeak.get()
        self.rng = rng
        self.ranges = RATE_RANGE, PITCH_RANGE

    def params(self) -> dict:
        (r0, r1), (p0, p1) = self.ranges
        return {"rate": int(self.rng.integers(r0, r1)), "pitch": int(self.rng.integers(p0, p1)),
                "seed": int(self.rng.integers(2**31))}

    def say(self, text: str, voice: str, params: dict):
        return self.espeak.speak(text, voice, sample_rate=SAMPLE_RATE, **params)

    def mnemonics(self, word: str, voice: str) -> list[str] | None:
        """The word's phones as espeak's translator writes them (phone events omit some, e.g.
        a post-vocalic l), split into phones; None if a symbol is not in our inventory."""
        self.espeak.set_voice(voice)
        return split_mnemonics(self.espeak.phonemes(word).replace(" ", ""))


def spoken_phones(spoken) -> list[str]:
    """Base labels of the phone events of a synthesised item, pauses left out."""
    return [_base(p) for p, _, _ in spoken.phones if not p.startswith("_")]


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


def _nonword(phones: list[str], rng: np.random.Generator, n_changes: int) -> list[str] | None:
    slots = [i for i, p in enumerate(phones) if _base(p) in _CLASS_OF]
    if len(slots) < n_changes:
        return None
    out = list(phones)
    for i in rng.choice(slots, n_changes, replace=False):
        stress, base = _split_stress(out[i])
        options = [q for q in _CLASS_OF[base] if q != base]
        out[i] = stress + options[int(rng.integers(len(options)))]
    return out


def _key(phones: list[str]) -> str:
    return " ".join(_base(p) for p in phones)


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
    mapped = [_ARPABET.get(_base(p)) for p in phones]
    if any(m is None for m in mapped):
        return False  # a phone we cannot map: the lexicon check alone applies
    return " ".join(m for m in mapped if m) in _english_pronunciations()


def build_lexical(out: Path, pairs: int, rng: np.random.Generator, speaker: _Speaker,
                  voices: list[str], names: set[str]) -> int:
    """sWUGGY-style word / non-word pairs; returns the number of pairs written."""
    from speechlm.audio import save_audio
    from speechlm.corpus.grammar import vocabulary

    freq = word_frequencies()
    vocab = sorted(vocabulary())
    known = set()  # phone strings of real words: never non-words
    for w in vocab:
        m = speaker.mnemonics(w, voices[0])
        if m:
            known.add(_key(m))
    candidates = sorted(w for w in vocab if freq.get(w, 0.0) >= MIN_PER_MILLION)
    order = rng.permutation(len(candidates))
    dev = out / "lexical" / "dev"
    dev.mkdir(parents=True, exist_ok=True)
    rows, made, tries = [], 0, 0
    while made < pairs and tries < pairs * 20:
        word = candidates[order[tries % len(order)]]
        tries += 1
        voice = voices[int(rng.integers(len(voices)))]
        phones = speaker.mnemonics(word, voice)
        if phones is None or len(phones) < 3:
            continue
        fake = _nonword(phones, rng, 2 if len(phones) >= 5 else 1)
        if (fake is None or _key(fake) in known or is_english_word(fake)
                or split_mnemonics("".join(fake)) != fake):  # espeak would read it otherwise
            continue
        params = speaker.params()
        sides = [speaker.say("[[" + "".join(ph) + "]]", voice, params) for ph in (phones, fake)]
        # the phoneme input must say the word exactly as the text does, the non-word otherwise
        as_text = spoken_phones(speaker.say(word, voice, params))
        if spoken_phones(sides[0]) != as_text or spoken_phones(sides[1]) == as_text:
            continue
        fnames = _random_names(rng, 2, names)
        for (ph, spoken, correct, fname) in zip((phones, fake), sides, (1, 0), fnames,
                                                strict=True):
            save_audio(dev / f"{fname}.wav", spoken.wav, SAMPLE_RATE)
            rows.append({"id": made, "filename": fname, "voice": voice,
                         "frequency": round(freq[word], 2),
                         "word": word if correct else "".join(_base(p) for p in ph),
                         "phones": " ".join(ph), "length": len(ph), "correct": correct})
        made += 1
    _write_csv(dev / "gold.csv", LEXICAL_COLUMNS, rows)
    return made


def build_syntactic(out: Path, pairs: int, rng: np.random.Generator, speaker: _Speaker,
                    voices: list[str], names: set[str]) -> int:
    """sBLIMP-style grammatical / ungrammatical pairs, the four types in turn."""
    from speechlm.audio import save_audio

    grammar = Grammar(rng)
    dev = out / "syntactic" / "dev"
    dev.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(pairs):
        kind = SYNTAX_TYPES[i % len(SYNTAX_TYPES)]
        good, bad, subtype = syntactic_pair(grammar, kind)
        voice = voices[int(rng.integers(len(voices)))]
        params = speaker.params()
        for text, correct, fname in zip((good, bad), (1, 0), _random_names(rng, 2, names),
                                        strict=True):
            save_audio(dev / f"{fname}.wav", speaker.say(text, voice, params).wav, SAMPLE_RATE)
            rows.append({"filename": fname, "id": i, "voice": voice, "type": kind,
                         "subtype": subtype, "transcription": text, "correct": correct})
    _write_csv(dev / "gold.csv", SYNTACTIC_COLUMNS, rows)
    return pairs


def build_storycloze(out: Path, pairs: int, rng: np.random.Generator, speaker: _Speaker,
                     voices: list[str], names: set[str]) -> int:
    """Spoken StoryCloze pairs: sSC (coherent vs incoherent ending), tSC (vs random ending)."""
    from speechlm.audio import save_audio

    grammar = Grammar(rng)
    for kind in ("sSC", "tSC"):
        folder = out / "storycloze" / kind
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(pairs):
            context, scenario, slots = grammar.story()
            good = STORIES[scenario][1].format(**slots)
            other = (scenario + 1 + int(rng.integers(len(STORIES) - 1))) % len(STORIES)
            if kind == "sSC":  # same character, an ending that does not follow
                bad = STORIES[other][1].format(**slots)
            else:  # the ending of another random story
                bad = STORIES[other][1].format(**grammar.story_slots())
            voice = voices[int(rng.integers(len(voices)))]
            params = speaker.params()
            for ending, correct, fname in zip((good, bad), (1, 0), _random_names(rng, 2, names),
                                              strict=True):
                text = " ".join(context + [ending])
                save_audio(folder / f"{fname}.wav", speaker.say(text, voice, params).wav,
                           SAMPLE_RATE)
                rows.append({"id": i, "filename": fname, "voice": voice, "correct": correct,
                             "transcription": text})
        _write_csv(folder / "gold.csv", STORY_COLUMNS, rows)
    return pairs


def build_benchmarks(out_dir: str | Path, seed: int = 0, pairs: int = 400,
                     voices: list[str] | None = None) -> dict:
    """Write the lexical, syntactic and StoryCloze sets (``pairs`` pairs each) to ``out_dir``.

    Spoken by ``voices`` (default: the held-out voices, never used for training corpora).
    Returns counts per set, also written to ``out_dir/benchmarks.json``.
    """
    import json

    from speechlm.corpus.synth import HELDOUT_VOICES

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    voices = list(voices or HELDOUT_VOICES)
    rng = np.random.default_rng([seed, 7])
    speaker = _Speaker(rng)
    names: set[str] = set()
    summary = {
        "lexical": build_lexical(out, pairs, rng, speaker, voices, names),
        "syntactic": build_syntactic(out, pairs, rng, speaker, voices, names),
        "storycloze": build_storycloze(out, max(1, pairs // 2), rng, speaker, voices, names),
        "voices": voices, "seed": seed,
    }
    (out / "benchmarks.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


# -- readers -----------------------------------------------------------------------------------
_INT_COLUMNS = {"length", "correct"}
_FLOAT_COLUMNS = {"frequency"}


def _typed(key: str, value: str):
    value = value.strip()
    if key in _INT_COLUMNS:
        return int(float(value)) if value else None
    if key in _FLOAT_COLUMNS:
        if not value:
            return None
        v = float(value)
        return None if math.isnan(v) else v
    return value


def read_gold(data_dir: str | Path, task: str, split: str = "dev") -> list[dict]:
    """Rows of ``<data_dir>/<task>/<split>/gold.csv`` (task ``lexical`` or ``syntactic``), typed.

    Also accepts ``data_dir`` pointing at the task or split folder itself. Each row gets
    ``path``, the absolute path of its audio (``<filename>.wav``, or ``.flac`` if that exists).
    """
    if task not in ("lexical", "syntactic"):
        raise SpeechLMError(f"unknown ZeroSpeech task '{task}'; known: lexical, syntactic")
    root = Path(data_dir)
    for folder in (root / task / split, root / split, root):
        if (folder / "gold.csv").exists():
            break
    else:
        raise SpeechLMError(f"{root}: no {task}/{split}/gold.csv (build one with "
                            "'speechlm synth benchmark' or point --data at a ZeroSpeech 2021 copy)")
    rows = []
    with open(folder / "gold.csv", newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.DictReader(f), 2):
            if "filename" not in row or "correct" not in row:
                raise SpeechLMError(f"{folder / 'gold.csv'}:{lineno}: needs filename and correct")
            typed = {k: _typed(k, v or "") for k, v in row.items() if k is not None}
            wav = folder / f"{typed['filename']}.wav"
            if not wav.exists() and (folder / f"{typed['filename']}.flac").exists():
                wav = folder / f"{typed['filename']}.flac"
            typed["path"] = str(wav.resolve())
            rows.append(typed)
    return rows


_PAIR_FILE = re.compile(r"^(?P<id>.+?)[_-](?P<label>correct|incorrect)\.(wav|flac)$")


def read_storycloze(data_dir: str | Path, kind: str) -> list[dict]:
    """Pairs of a StoryCloze set (``kind`` ``ssc`` or ``tsc``): ``id``, ``correct_path``,
    ``incorrect_path``, ``voice``.

    Finds the ``sSC``/``tSC`` folder (any case) in ``data_dir``, ``data_dir/storycloze`` or
    ``data_dir`` itself; reads its gold.csv, or pairs ``<id>_correct.wav`` with
    ``<id>_incorrect.wav`` (the released layout) when there is none.
    """
    kind = kind.lower()
    if kind not in ("ssc", "tsc"):
        raise SpeechLMError(f"unknown StoryCloze kind '{kind}'; known: ssc, tsc")
    root = Path(data_dir)
    folder = None
    for base in (root, root / "storycloze", root / "StoryCloze"):
        if base.is_dir():
            match = [p for p in base.iterdir() if p.is_dir() and p.name.lower() == kind]
            if match:
                folder = match[0]
                break
    if folder is None:
        if root.name.lower() == kind:
            folder = root
        else:
            raise SpeechLMError(f"{root}: no {kind} StoryCloze folder (sSC/ or tSC/)")
    pairs: dict[str, dict] = {}
    if (folder / "gold.csv").exists():
        with open(folder / "gold.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                item = pairs.setdefault(row["id"], {"id": row["id"], "voice": row.get("voice")})
                side = "correct_path" if int(row["correct"]) == 1 else "incorrect_path"
                item[side] = str((folder / f"{row['filename']}.wav").resolve())
    else:
        for path in sorted(folder.rglob("*")):
            m = _PAIR_FILE.match(path.name)
            if m:
                item = pairs.setdefault(m["id"], {"id": m["id"], "voice": None})
                item[f"{m['label']}_path"] = str(path.resolve())
    incomplete = [k for k, v in pairs.items() if "correct_path" not in v
                  or "incorrect_path" not in v]
    if incomplete:
        raise SpeechLMError(f"{folder}: StoryCloze items without both endings: {incomplete[:5]}")
    if not pairs:
        raise SpeechLMError(f"{folder}: no StoryCloze items found")
    return list(pairs.values())
