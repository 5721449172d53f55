"""VioLA's examples: one codec LM, four tasks told apart by task and language tokens.

Wang et al. 2023, "VioLA: Unified Codec Language Models for Speech Recognition, Synthesis, and
Translation". Every task is a conditional continuation in one decoder; the loss is on the
output only. With ``X`` the source language's token and ``Y`` the target's::

    asr  BOS [ASR] X [SPEECH] f1 .. fT  X  [TEXT] t1 .. tn EOS   speech -> text, same language
    st   BOS [ST]  X [SPEECH] f1 .. fT  Y  [TEXT] t1 .. tn EOS   speech -> translated text
    mt   BOS [MT]  X [TEXT]   s1 .. sm  Y  [TEXT] t1 .. tn EOS   text -> translated text
    tts  BOS [TTS] X p1 .. pk           X  [SPEECH] c1 .. cT EOS  phonemes -> codebook 0

``f``: input speech frames, read as the sum of all K codebooks' embeddings (VioLA's input
pre-net); ``c``: codebook 0 of the output speech (VALL-E's AR: VioLA's TTS fills the other
codebooks with a NAR, here VALL-E's, ``speechlm.models.codec_lm.attach_nar``); ``s``, ``t``:
characters (:data:`CHARS`, text normalised by :func:`normalize_text`); ``p``: phonemes
(:func:`~speechlm.corpus.phones.phoneme_indices`). The examples use the NAR's layout of
streams (:mod:`speechlm.sequences.valle`): ``codes`` (K, L) and ``kinds`` (L,); input frames
are ``PROMPT`` positions, output codebook-0 frames ``TARGET`` positions (row 0 only), every
other position a ``TOKEN`` (row 0). The loss mask is row 0 at the output tokens and EOS.

Characters, not a subword vocabulary, are the text: the four tasks then share one small
inventory in every language, and WER and BLEU are computed on exactly what the model wrote.
The translations of the synthetic corpus are :func:`speechlm.corpus.translation.translate`'s.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from speechlm.errors import ConfigError
from speechlm.sequences.codec import Ints
from speechlm.sequences.example import Example
from speechlm.sequences.valle import CODES, KINDS, PROMPT, TARGET, TOKEN, ValleLayout
from speechlm.sequences.vocab import SPEECH_MARKER, TEXT_MARKER, SpeechVocab

# lower-case letters of English and Spanish, the apostrophe and the space (index 0)
CHARS: tuple[str, ...] = (" ", "'", *"abcdefghijklmnopqrstuvwxyz", *"áéíóúüñ")
_CHAR_INDEX = {c: i for i, c in enumerate(CHARS)}
TASKS = ("asr", "st", "mt", "tts")
TASK_MARKERS = {t: f"[{t.upper()}]" for t in TASKS}
LANGUAGES = ("en", "es")  # the languages with a token (the corpus' and its translation's)
LANGUAGE_MARKERS = {lang: f"[{lang.upper()}]" for lang in LANGUAGES}
MARKERS = (SPEECH_MARKER, TEXT_MARKER, *TASK_MARKERS.values(), *LANGUAGE_MARKERS.values())
ESPEAK_VOICE = {"en": "en-us", "es": "es"}  # the phonemes of a language's text


def normalize_text(text: str) -> str:
    """Lower case, composed accents, every character outside :data:`CHARS` a space, single
    spaces: what the models read and write, and what WER and BLEU compare."""
    t = unicodedata.normalize("NFC", text.lower())
    return " ".join("".join(c if c in _CHAR_INDEX else " " for c in t).split())


def char_indices(text: str) -> np.ndarray:
    """:func:`normalize_text` as indices into :data:`CHARS` (int64)."""
    return np.asarray([_CHAR_INDEX[c] for c in normalize_text(text)], dtype=np.int64)


def chars_text(indices: Ints) -> str:
    """Indices into :data:`CHARS` -> text (the inverse of :func:`char_indices`)."""
    return "".join(CHARS[int(i)] for i in np.asarray(indices).reshape(-1))


@dataclass(frozen=True)
class ViolaLayout:
    """The ids a VioLA model reads and writes: VALL-E's layout plus characters and markers."""

    base: ValleLayout  # specials, [SPEECH], phonemes, codebooks
    text_id: int  # [TEXT]
    char_offset: int
    n_chars: int
    markers: dict[str, int]  # task and language marker -> id

    @classmethod
    def from_vocab(cls, vocab: SpeechVocab) -> ViolaLayout:
        offset, n = vocab.range("chars")
        missing = [m for m in MARKERS if m not in vocab.layout.markers]
        if missing:
            raise ConfigError(f"vocabulary: a VioLA vocabulary needs the markers {missing}")
        return cls(ValleLayout.from_vocab(vocab), vocab.text_id, offset, n,
                   {m: vocab.marker(m) for m in MARKERS[2:]})

    def to_dict(self) -> dict:
        return {**self.base.to_dict(), "text_id": self.text_id, "char_offset": self.char_offset,
                "n_chars": self.n_chars, "markers": dict(self.markers)}

    @classmethod
    def from_dict(cls, d: dict) -> ViolaLayout:
        try:
            return cls(ValleLayout.from_dict(d), int(d["text_id"]), int(d["char_offset"]),
                       int(d["n_chars"]), {str(k): int(v) for k, v in d["markers"].items()})
        except (KeyError, TypeError, AttributeError) as e:
            raise ConfigError(f"layout: expected the keys of ViolaLayout.to_dict, got {d!r} "
                              f"({e})") from None

    @property
    def max_id(self) -> int:
        return max(self.base.max_id, self.text_id, self.char_offset + self.n_chars - 1,
                   *self.markers.values())

    def task_id(self, task: str) -> int:
        if task not in TASK_MARKERS:
            raise ConfigError(f"task: '{task}' is not a VioLA task; known: {', '.join(TASKS)}")
        return self.markers[TASK_MARKERS[task]]

    def language_id(self, language: str) -> int:
        if language not in LANGUAGE_MARKERS:
            raise ConfigError(f"language: '{language}' has no token; known: "
                              f"{', '.join(LANGUAGES)}")
        return self.markers[LANGUAGE_MARKERS[language]]

    def char_ids(self, indices: Ints) -> np.ndarray:
        return np.asarray(indices, dtype=np.int64).reshape(-1) + self.char_offset

    def output_ids(self, task: str) -> np.ndarray:
        """The ids a task may write: characters (asr, st, mt) or codebook-0 codes (tts), and
        EOS (constrained decoding)."""
        if task == "tts":
            first = self.base.books.offsets[0] + np.arange(self.base.books.sizes[0])
        else:
            first = self.char_offset + np.arange(self.n_chars)
        return np.append(first, self.base.eos_id).astype(np.int64)


def source_ids(task: str, layout: ViolaLayout, source: str, target: str,
               text: Ints = (), frames: Ints | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The prompt of a task, up to and including the output's modality marker: ``codes``
    (K, P) and ``kinds`` (P,). ``text``: character indices (mt) or phoneme indices (tts);
    ``frames``: the input speech's codes (K, T) (asr, st)."""
    k, pad = layout.base.n_codebooks, layout.base.pad_id
    head = [layout.base.bos_id, layout.task_id(task), layout.language_id(source)]
    if task in ("asr", "st"):
        if frames is None:
            raise ValueError(f"{task}: needs the input speech's codes")
        f = layout.base.code_ids(frames)
        rows = [np.array(head + [layout.base.audio_id]), f,
                np.array([layout.language_id(target), layout.text_id])]
        kinds = [TOKEN] * (len(head) + 1) + [PROMPT] * f.shape[1] + [TOKEN, TOKEN]
    elif task == "mt":
        rows = [np.array(head + [layout.text_id]), layout.char_ids(text),
                np.array([layout.language_id(target), layout.text_id])]
        kinds = [TOKEN] * (len(head) + 1 + len(text) + 2)
    else:  # tts (an unknown task was refused by task_id above)
        rows = [np.array(head), layout.base.phoneme_ids(text),
                np.array([layout.language_id(target), layout.base.audio_id])]
        kinds = [TOKEN] * (len(head) + len(text) + 2)
    codes = np.full((k, len(kinds)), pad, dtype=np.int64)
    at = 0
    for r in rows:
        r = np.asarray(r, dtype=np.int64)
        if r.ndim == 2:
            codes[:, at: at + r.shape[1]] = r
            at += r.shape[1]
        else:
            codes[0, at: at + len(r)] = r
            at += len(r)
    return codes, np.asarray(kinds, dtype=np.int64)


def task_example(task: str, layout: ViolaLayout, source: str, target: str, output: Ints,
                 text: Ints = (), frames: Ints | None = None) -> Example:
    """A whole training example: :func:`source_ids`, then ``output`` (character indices, or
    codebook-0 codes (T,) for tts) and EOS; loss on the output and EOS (row 0)."""
    codes, kinds = source_ids(task, layout, source, target, text, frames)
    if task == "tts":
        out = np.asarray(output, dtype=np.int64).reshape(-1) + layout.base.books.offsets[0]
        out_kind = TARGET
    else:
        out, out_kind = layout.char_ids(output), TOKEN
    out = np.append(out, layout.base.eos_id)
    k = codes.shape[0]
    tail = np.full((k, len(out)), layout.base.pad_id, dtype=np.int64)
    tail[0] = out
    kinds_out = np.full(len(out), out_kind, dtype=np.int64)
    kinds_out[-1] = TOKEN  # EOS is a token
    mask = np.zeros((k, codes.shape[1] + len(out)), dtype=bool)
    mask[0, codes.shape[1]:] = True
    return Example({CODES: np.concatenate([codes, tail], axis=1),
                    KINDS: np.concatenate([kinds, kinds_out])}, {CODES: mask})


# ---- the formats: a codec token-dataset row (``codes`` + ``text``) -> one task's example ------
def row_example(row: dict, vocab: SpeechVocab, task: str, source: str = "en",
                target: str = "es") -> Example:
    """One row as ``task``: its speech (``codes``), its text and, for st and mt, the text's
    translation into ``target`` (:func:`speechlm.corpus.translation.translate`)."""
    layout = ViolaLayout.from_vocab(vocab)
    codes = np.asarray(row[CODES], dtype=np.int64)[: layout.base.n_codebooks]
    text = row["text"] or ""
    if task == "tts":
        from speechlm.corpus.phones import phoneme_indices

        return task_example(task, layout, source, source, codes[0],
                            text=phoneme_indices(text, ESPEAK_VOICE[source]))
    if task == "asr":
        return task_example(task, layout, source, source, char_indices(text), frames=codes)
    from speechlm.corpus.translation import translate

    try:
        translation = translate(text, target)
    except ValueError as e:
        raise ConfigError(f"formats.viola_{task}: no {target} translation of {text!r} ({e}); "
                          "the translation tasks train on the synthetic grammar's text") from None
    if task == "st":
        return task_example(task, layout, source, target, char_indices(translation),
                            frames=codes)
    return task_example(task, layout, source, target, char_indices(translation),
                        text=char_indices(text))


def _register(task: str, summary: str) -> None:
    from speechlm.sequences.formats import CODECS, register_format

    def fn(row, vocab, rng, **params):
        return row_example(row, vocab, task, **params)

    # every task declares every range and marker: the single-task models of a comparison then
    # have exactly the unified model's vocabulary, hence its size
    register_format(f"viola_{task}", columns=(CODES, "text"), ranges=("phonemes", "chars", CODECS),
                    markers=MARKERS, params={"source": "en", "target": "es"},
                    summary=summary, needs={"text": None}, fallback="skip")(fn)


_register("asr", "VioLA ASR: BOS [ASR] X [SPEECH] frames X [TEXT] chars EOS")
_register("st", "VioLA speech translation: BOS [ST] X [SPEECH] frames Y [TEXT] chars EOS")
_register("mt", "VioLA text translation: BOS [MT] X [TEXT] chars Y [TEXT] chars EOS")
_register("tts", "VioLA TTS: BOS [TTS] X phonemes X [SPEECH] codebook 0 EOS")


def task_of(names: Sequence[str]) -> list[str]:
    """The VioLA tasks among format names (``viola_asr`` -> ``asr``)."""
    return [n[len("viola_"):] for n in names if n.startswith("viola_")]
