"""VALL-E's examples: phonemes, an acoustic prompt's codes and the target's codes.

Three layouts of the same ``(phonemes, prompt codes [K, Tp], target codes [K, T])``, pure
functions returning an :class:`~speechlm.sequences.example.Example` (vocabulary ids, numpy)::

    AR (one stream; codebook 0; loss on b and EOS only):
        BOS p1 .. pn [SPEECH] a1 .. aTp b1 .. bT EOS        a: the prompt's codebook 0, b: target's

    NAR (K rows per position; ``kinds`` says how the model reads each position):
        kinds   TOKEN ........................  PROMPT ...    TARGET ...
        row 0   BOS p1 .. pn [SPEECH]           a(0)          b(0)
        row k   pad ........................    a(k)          b(k)
      stage j reads row 0 at TOKEN positions, the sum of all K rows at PROMPT frames and of rows
      < j at TARGET frames, and predicts row j at TARGET frames (the mask: every TARGET frame).

    delayed (one AR model over the K codebooks, MusicGen/Moshi's pattern):
        TOKEN positions as above, then the delayed layout of ``[prompt ; target]``
        (:func:`~speechlm.sequences.codec.delayed_ids`, pads where a row has no value) with
        EOS in row 0 right after its last frame (one extra step when no delay leaves room);
        loss on the target's values (:func:`~speechlm.sequences.codec.delay_mask`) and that EOS.

The ``[SPEECH]`` marker is VALL-E's beginning of audio. VALL-E trains the AR on the whole
utterance's codebook 0 after the phonemes (no prompt: ``prompt`` of 0 frames, the default of
:func:`prompt_split`) and the NAR with a prompt cut from the same utterance; both are a choice
of ``prompt_frames`` here. Which ids the models use is a :class:`ValleLayout`, saved in their
configs so that a model directory needs no vocabulary object to synthesise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from speechlm.errors import ConfigError
from speechlm.sequences.codec import (
    Codebooks,
    Ints,
    delay_mask,
    delayed_ids,
    musicgen_delays,
    parallel_ids,
)
from speechlm.sequences.example import IGNORE, TOKENS, Example
from speechlm.sequences.vocab import SpeechVocab

CODES, KINDS = "codes", "kinds"  # stream names of the NAR and delayed examples
PAD, TOKEN, PROMPT, TARGET = 0, 1, 2, 3  # position kinds (PAD: batch padding)


@dataclass(frozen=True)
class ValleLayout:
    """The vocabulary ids the VALL-E models read and write (a JSON dict in their configs)."""

    bos_id: int
    eos_id: int
    pad_id: int
    audio_id: int  # [SPEECH]: the audio starts after it
    phoneme_offset: int  # phoneme p has id phoneme_offset + p
    n_phonemes: int
    books: Codebooks  # codebook k's code c has id books.offsets[k] + c

    @classmethod
    def from_vocab(cls, vocab: SpeechVocab, n_codebooks: int | None = None) -> ValleLayout:
        """The vocabulary's specials, ``[SPEECH]``, ``codec0..`` ranges and the condition
        tokens: ``phonemes`` (VALL-E) or, in a vocabulary without them, ``units`` (AudioLM's
        acoustic stages read semantic units where VALL-E reads phonemes)."""
        offset, n = vocab.range("phonemes" if vocab.has_range("phonemes") else "units")
        return cls(vocab.bos_id, vocab.eos_id, vocab.pad_id, vocab.speech_id, offset, n,
                   Codebooks.from_vocab(vocab, n_codebooks))

    def to_dict(self) -> dict:
        return {"bos_id": self.bos_id, "eos_id": self.eos_id, "pad_id": self.pad_id,
                "audio_id": self.audio_id, "phoneme_offset": self.phoneme_offset,
                "n_phonemes": self.n_phonemes, "codebook_offsets": list(self.books.offsets),
                "codebook_sizes": list(self.books.sizes)}

    @classmethod
    def from_dict(cls, d: dict) -> ValleLayout:
        try:
            books = Codebooks(tuple(d["codebook_offsets"]), tuple(d["codebook_sizes"]))
            return cls(int(d["bos_id"]), int(d["eos_id"]), int(d["pad_id"]), int(d["audio_id"]),
                       int(d["phoneme_offset"]), int(d["n_phonemes"]), books)
        except (KeyError, TypeError) as e:
            raise ConfigError(f"layout: expected the keys of ValleLayout.to_dict, got {d!r} "
                              f"({e})") from None

    @property
    def n_codebooks(self) -> int:
        return self.books.n_codebooks

    @property
    def max_id(self) -> int:
        """The largest id the layout uses (the model's vocabulary must exceed it)."""
        ends = [o + s - 1 for o, s in zip(self.books.offsets, self.books.sizes, strict=True)]
        return max(self.bos_id, self.eos_id, self.pad_id, self.audio_id,
                   self.phoneme_offset + self.n_phonemes - 1, *ends)

    def phoneme_ids(self, phonemes: Ints) -> np.ndarray:
        """Phoneme indices ``[0, n_phonemes)`` -> ids; one outside is a ``ValueError``."""
        p = np.asarray(phonemes, dtype=np.int64).reshape(-1)
        if p.size and (p.min() < 0 or p.max() >= self.n_phonemes):
            raise ValueError(f"phoneme {int(p.min() if p.min() < 0 else p.max())} is outside "
                             f"[0, {self.n_phonemes})")
        return p + self.phoneme_offset

    def head(self, phonemes: Ints) -> np.ndarray:
        """``BOS p1 .. pn [SPEECH]``: the token positions every layout starts with."""
        return np.concatenate([[self.bos_id], self.phoneme_ids(phonemes), [self.audio_id]])

    def code_ids(self, codes: Ints | None) -> np.ndarray:
        """Codes ``[K, T]`` (None: no frames) -> ids ``[K, T]`` (int64 numpy)."""
        if codes is None:
            return np.zeros((self.n_codebooks, 0), dtype=np.int64)
        return parallel_ids(codes, self.books).numpy()


def prompt_split(codes: Ints, prompt_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """An utterance's codes ``[K, T]`` -> (its first ``prompt_frames`` frames, the rest)."""
    c = np.asarray(codes, dtype=np.int64)
    if not 0 <= prompt_frames <= c.shape[-1]:
        raise ValueError(f"prompt_frames {prompt_frames} is outside [0, {c.shape[-1]}] frames")
    return c[..., :prompt_frames], c[..., prompt_frames:]


def ar_example(phonemes: Ints, prompt: Ints | None, target: Ints, layout: ValleLayout,
               eos: bool = True) -> Example:
    """``BOS phonemes [SPEECH] prompt-c0 target-c0 EOS``; mask on target-c0 and EOS only."""
    head, p, t = layout.head(phonemes), layout.code_ids(prompt)[0], layout.code_ids(target)[0]
    end = [layout.eos_id] if eos else []
    ids = np.concatenate([head, p, t, end]).astype(np.int64)
    mask = np.zeros(len(ids), dtype=bool)
    mask[len(head) + len(p):] = True  # the target's codebook 0 and EOS
    return Example.single(ids, mask)


def nar_example(phonemes: Ints, prompt: Ints | None, target: Ints,
                layout: ValleLayout) -> Example:
    """Streams ``codes`` (K, L) and ``kinds`` (L,); the codes' mask is every TARGET frame."""
    head, p, t = layout.head(phonemes), layout.code_ids(prompt), layout.code_ids(target)
    kinds = np.concatenate([np.full(len(head), TOKEN), np.full(p.shape[1], PROMPT),
                            np.full(t.shape[1], TARGET)]).astype(np.int64)
    codes = np.full((layout.n_codebooks, len(kinds)), layout.pad_id, dtype=np.int64)
    codes[0, : len(head)] = head
    codes[:, len(head):] = np.concatenate([p, t], axis=1)
    mask = np.broadcast_to(kinds == TARGET, codes.shape).copy()  # (K, L)
    return Example({CODES: codes, KINDS: kinds}, {CODES: mask})


def delayed_example(phonemes: Ints, prompt: Ints | None, target: Ints, layout: ValleLayout,
                    delays: Sequence[int] | None = None, eos: bool = True) -> Example:
    """Streams ``codes`` (K, L) and ``kinds`` (L,) of the delay pattern (see the module doc).

    Audio steps are ``PROMPT`` up to the prompt's last frame and ``TARGET`` after it (the
    model reads all K rows at both); the codes' mask holds the target's values and the EOS.
    ``eos=False`` gives the prompt form (no EOS, no extra step).
    """
    head, p, t = layout.head(phonemes), layout.code_ids(prompt), layout.code_ids(target)
    k, tp = layout.n_codebooks, p.shape[1]
    ds = musicgen_delays(k) if delays is None else [int(d) for d in delays]
    frames = np.concatenate([p, t], axis=1)  # (K, Tp + T)
    n = frames.shape[1]
    audio = delayed_ids(frames, layout.pad_id, ds).numpy()  # (K, n + D)
    is_target = np.broadcast_to(np.arange(n) >= tp, (k, n)).astype(np.int64)
    keep = delay_mask(n, ds).numpy() & delayed_ids(is_target, 0, ds).numpy().astype(bool)
    if eos:
        if max(ds) == 0:  # no delay step after the last frame: add one for EOS
            audio = np.concatenate([audio, np.full((k, 1), layout.pad_id)], axis=1)
            keep = np.concatenate([keep, np.zeros((k, 1), dtype=bool)], axis=1)
        audio[0, n], keep[0, n] = layout.eos_id, True
    steps = audio.shape[1]
    codes = np.full((k, len(head) + steps), layout.pad_id, dtype=np.int64)
    codes[0, : len(head)] = head
    codes[:, len(head):] = audio
    kinds = np.concatenate([np.full(len(head), TOKEN),
                            np.where(np.arange(steps) < tp, PROMPT, TARGET)]).astype(np.int64)
    mask = np.concatenate([np.zeros((k, len(head)), dtype=bool), keep], axis=1)
    return Example({CODES: codes, KINDS: kinds}, {CODES: mask})


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch of one layout's examples, keyed as the models' ``forward`` args.

    AR examples -> ``input_ids``, ``attention_mask`` (B, L) and ``labels`` (B, L: the ids where
    the mask is True, ``IGNORE`` elsewhere). NAR / delayed -> ``codes`` (B, K, L), ``kinds``
    (B, L: ``PAD`` on padding) and ``loss_mask`` (B, K, L).
    """
    width = max(len(e) for e in examples)

    def pad(arrays: list[np.ndarray], fill: int | bool) -> torch.Tensor:
        out = np.full((len(arrays), *np.shape(arrays[0])[:-1], width), fill,
                      dtype=np.asarray(arrays[0]).dtype)
        for i, a in enumerate(arrays):
            out[i, ..., : np.shape(a)[-1]] = a
        return torch.from_numpy(out)

    if TOKENS in examples[0].streams:
        ids = pad([e.streams[TOKENS] for e in examples], pad_id)
        mask = pad([e.masks[TOKENS] for e in examples], False)
        valid = pad([np.ones(len(e), dtype=np.int64) for e in examples], 0)
        return {"input_ids": ids, "attention_mask": valid,
                "labels": torch.where(mask, ids, IGNORE)}
    return {"codes": pad([e.streams[CODES] for e in examples], pad_id),
            "kinds": pad([e.streams[KINDS] for e in examples], PAD),
            "loss_mask": pad([e.masks[CODES] for e in examples], False)}


# ---- the formats: a token-dataset row (codec ``codes`` + ``text``) -> a training example ------
FORMAT_PARAMS = {"prompt_fraction": 0.0, "language": "en-us"}


def row_example(row: dict, vocab: SpeechVocab, rng: np.random.Generator, layout_fn,
                prompt_fraction: float = 0.0, language: str = "en-us",
                condition: str = "phonemes") -> Example:
    """One row as ``layout_fn(condition tokens, prompt, target, layout)``. The condition is the
    text's phonemes (espeak, ``language``) or the row's semantic ``units`` (AudioLM); the
    row's codes are split at a prompt of up to ``prompt_fraction`` of its frames (drawn
    uniformly; 0: no prompt, the whole utterance is the target)."""
    from speechlm.corpus.phones import phoneme_indices

    if not 0.0 <= prompt_fraction < 1.0:
        raise ConfigError(f"prompt_fraction: must be in [0, 1), got {prompt_fraction}")
    layout = ValleLayout.from_vocab(vocab)
    codes = np.asarray(row[CODES], dtype=np.int64)[: layout.n_codebooks]
    n_prompt = int(rng.integers(0, int(prompt_fraction * codes.shape[1]) + 1))
    prompt, target = prompt_split(codes, n_prompt)
    tokens = np.asarray(row["units"], dtype=np.int64) if condition == "units" \
        else phoneme_indices(row["text"] or "", language)
    return layout_fn(tokens, prompt, target, layout)


def _register(name: str, layout_fn, summary: str, condition: str = "phonemes") -> None:
    from speechlm.sequences.formats import CODECS, register_format

    def fn(row, vocab, rng, **params):
        return row_example(row, vocab, rng, layout_fn, condition=condition, **params)

    params = FORMAT_PARAMS if condition == "phonemes" else {"prompt_fraction": 0.0}
    column = "text" if condition == "phonemes" else "units"
    # a row without a transcript has nothing to condition speech on: left out
    needs = {"text": None} if condition == "phonemes" else {"units": None}
    register_format(name, columns=(CODES, column), ranges=(condition, CODECS),
                    params=params, summary=summary, needs=needs, fallback="skip")(fn)


_register("valle_ar", ar_example, "VALL-E AR: BOS phonemes [SPEECH] c0 EOS (loss on c0, EOS)")
_register("valle_nar", nar_example, "VALL-E NAR: phonemes, prompt frames, target frames")
_register("codec_delayed", delayed_example, "phonemes, then the delay pattern of all codebooks")
# AudioLM's acoustic stages: the same layouts with semantic units where VALL-E has phonemes
_register("audiolm_coarse", ar_example, "AudioLM coarse: semantic units [SPEECH] c0 EOS",
          condition="units")
_register("audiolm_fine", nar_example, "AudioLM fine: semantic units, prompt, target frames",
          condition="units")
