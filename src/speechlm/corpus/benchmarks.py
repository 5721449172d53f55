"""Benchmark sets spoken by held-out voices, in the published layouts, and their readers.

``build_benchmarks(out_dir, seed, pairs)`` writes

- ``lexical/dev/<filename>.wav`` + ``lexical/dev/gold.csv`` (sWUGGY, ZeroSpeech 2021 layout;
  columns ``id,filename,voice,frequency,word,phones,length,correct``): each word that occurs in
  the training text against a non-word made by substituting one phone (two in words of four or
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
``read_gold`` and ``read_storycloze`` (``speechlm.corpus.readers``, re-exported here) read these
and the official releases.
"""

from __future__ import annotations

import csv
import functools
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from speechlm.corpus.grammar import (
    STORIES,
    SYNTAX_TYPES,
    Grammar,
    sample_sentences,
    story_ending,
    syntactic_pair,
    words_of,
)
from speechlm.corpus.phones import (
    base_phone,
    is_english_word,
    make_nonword,
    phone_key,
    split_mnemonics,
)
from speechlm.corpus.readers import read_gold, read_storycloze
from speechlm.errors import ConfigError

__all__ = ["build_benchmarks", "read_gold", "read_storycloze", "word_frequencies"]

LEXICAL_COLUMNS = ["id", "filename", "voice", "frequency", "word", "phones", "length", "correct"]
SYNTACTIC_COLUMNS = ["filename", "id", "voice", "type", "subtype", "transcription", "correct"]
STORY_COLUMNS = ["id", "filename", "voice", "correct", "transcription"]
FREQUENCY_SAMPLE = 10000  # utterances of training text used to estimate word frequencies
MIN_PER_MILLION = 2000.0  # lexical items recur >= ~40 times in 2 h of training speech
SAMPLE_RATE = 16000


@functools.lru_cache(maxsize=4)
def word_frequencies(seed: int = 12345) -> dict[str, float]:
    """Occurrences per million words of the training text distribution (a fixed sample)."""
    counts = Counter(w for t in sample_sentences(FREQUENCY_SAMPLE, seed) for w in words_of(t))
    total = sum(counts.values())
    return {w: 1e6 * n / total for w, n in counts.items()}


def _random_names(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    out = []
    while len(out) < n:
        name = "".join(rng.choice(letters, 11))
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


class Speaker:
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

    def say_to_file(self, text: str, voice: str, params: dict, out_dir: Path, uid: str):
        """Speak ``text`` into ``out_dir/wav/<uid>.wav``; its manifest ``Utterance`` (audio path
        relative to ``out_dir``, with the word alignments)."""
        from speechlm.audio import save_audio
        from speechlm.corpus.manifest import Utterance

        spoken = self.say(text, voice, params)
        save_audio(Path(out_dir) / "wav" / f"{uid}.wav", spoken.wav, SAMPLE_RATE)
        return Utterance(id=uid, audio=f"wav/{uid}.wav", duration=spoken.duration,
                         sample_rate=SAMPLE_RATE, text=text, speaker=voice, words=spoken.words)

    def mnemonics(self, word: str, voice: str) -> list[str] | None:
        """The word's phones as espeak's translator writes them (phone events omit some, e.g.
        a post-vocalic l), split into phones; None if a symbol is not in our inventory."""
        self.espeak.set_voice(voice)
        return split_mnemonics(self.espeak.phonemes(word).replace(" ", ""))

def speak_items(items: list[dict], parts: Sequence[str], out_dir: Path,
                rng: np.random.Generator, voice_pool: Callable[[dict], Sequence[str]],
                desc: str, unit: str = "item", progress: bool = True) -> tuple[list, float]:
    """Speak each item's ``parts`` (keys of its texts) into ``out_dir/wav/<id>.<part>.wav``, all
    by one voice drawn from ``voice_pool(item)`` (set as ``item["voice"]``) with one rate and
    pitch; returns the manifest utterances and the seconds spoken."""
    from speechlm.progress import progress_bar

    speaker = Speaker(rng)
    (Path(out_dir) / "wav").mkdir(parents=True, exist_ok=True)
    utts, seconds = [], 0.0
    for item in progress_bar(items, unit=unit, desc=desc, disable=not progress):
        pool = voice_pool(item)
        item["voice"] = pool[int(rng.integers(len(pool)))]
        params = speaker.params()
        for part in parts:
            utts.append(speaker.say_to_file(item[part], item["voice"], params, out_dir,
                                            f"{item['id']}.{part}"))
            seconds += utts[-1].duration
    return utts, seconds


def spoken_phones(spoken) -> list[str]:
    """Base labels of the phone events of a synthesised item, pauses left out."""
    return [base_phone(p) for p, _, _ in spoken.phones if not p.startswith("_")]



def build_lexical(out: Path, pairs: int, rng: np.random.Generator, speaker: Speaker,
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
            known.add(phone_key(m))
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
        fake = make_nonword(phones, rng, 2 if len(phones) >= 4 else 1)
        if (fake is None or phone_key(fake) in known or is_english_word(fake)
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
                         "word": word if correct else "".join(base_phone(p) for p in ph),
                         "phones": " ".join(ph), "length": len(ph), "correct": correct})
        made += 1
    _write_csv(dev / "gold.csv", LEXICAL_COLUMNS, rows)
    return made


def build_syntactic(out: Path, pairs: int, rng: np.random.Generator, speaker: Speaker,
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


def build_storycloze(out: Path, pairs: int, rng: np.random.Generator, speaker: Speaker,
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
            good = story_ending(scenario, slots)
            other = (scenario + 1 + int(rng.integers(len(STORIES) - 1))) % len(STORIES)
            if kind == "sSC":  # same character, an ending that does not follow
                bad = story_ending(other, slots)
            else:  # the ending of another random story
                bad = story_ending(other, grammar.story_slots())
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
    Returns counts per set, also written to ``out_dir/benchmarks.json``. The same seed gives
    the same items; the audio is byte-identical when built in a fresh process (espeak's output
    depends slightly on what it said before in the process).
    """
    import json

    from speechlm.corpus.synth import HELDOUT_VOICES

    if not (isinstance(pairs, int) and pairs > 0):
        raise ConfigError(f"pairs: must be a positive integer, got {pairs!r}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    voices = list(voices or HELDOUT_VOICES)
    rng = np.random.default_rng([seed, 7])
    speaker = Speaker(rng)
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
