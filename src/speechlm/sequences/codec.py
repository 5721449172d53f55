"""Codec token layouts: how K codebooks x T frames of codes become model inputs, and back.

Pure functions on integer tensors of codes ``[K, T]`` (or ``[B, K, T]``; the codebook axis is
always ``-2`` and time ``-1``), each code in ``[0, size_k)``. A :class:`Codebooks` says where
codebook ``k`` lives in one id space (``id = offsets[k] + code``), normally the vocabulary's
``codec0`` ... ``codec{K-1}`` ranges (:meth:`Codebooks.from_vocab`). Functions named ``*_ids``
make model ids from codes; their inverses return codes, and refuse an id outside its codebook.

| layout   | model input                                         | used by              |
| -------- | --------------------------------------------------- | -------------------- |
| flat     | ``[T*K]``: t0c0 t0c1 .. t0cK-1 t1c0 .. (one stream) | SpeechX, UniAudio    |
| parallel | ``[K, T]``: K streams, embeddings summed            | MusicGen, VALL-E NAR |
| delayed  | ``[K, T+D]``: codebook k shifted right by ``d_k``   | MusicGen, Moshi      |
| AR + NAR | codebook 0 (AR); stage j: codebooks < j in, j out   | VALL-E               |

The delay pattern is the batched torch form of :func:`speechlm.sequences.example.delay` on one
``(K, T)`` stream: ``d_k`` pads, the ``T`` values, ``D - d_k`` pads, with ``D = max(d)``.
Markers, BOS/EOS and prompts are the formats' business, not this module's.

Errors: a bad layout parameter (delays, stage, codebook table) is a ``ConfigError``; bad data
(shape, a code or id out of its codebook's range) a ``ValueError``, as in ``SpeechVocab.to_ids``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from speechlm.errors import ConfigError
from speechlm.sequences.vocab import SpeechVocab

_CODEC_RANGE = re.compile(r"codec(\d+)$")
Ints = torch.Tensor | np.ndarray | Sequence  # integer codes or ids, any of these array forms


@dataclass(frozen=True)
class Codebooks:
    """Where each codebook's codes land in one id space: codebook ``k``, code ``c`` -> id
    ``offsets[k] + c``, for ``c`` in ``[0, sizes[k])``. The id ranges never overlap, so an id
    names its codebook (one embedding table serves all of them)."""

    offsets: tuple[int, ...]
    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets", tuple(int(o) for o in self.offsets))
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        if not self.offsets or len(self.offsets) != len(self.sizes):
            raise ConfigError(f"codebooks: {len(self.offsets)} offsets for {len(self.sizes)} "
                              "sizes (need one of each per codebook, at least one codebook)")
        if min(self.sizes) <= 0 or min(self.offsets) < 0:
            raise ConfigError(f"codebooks: sizes must be positive and offsets >= 0, got "
                              f"offsets {list(self.offsets)}, sizes {list(self.sizes)}")
        spans = sorted((o, o + self.sizes[k], k) for k, o in enumerate(self.offsets))
        for (_, end, a), (start, _, b) in pairwise(spans):
            if start < end:  # an id of both would not say which codebook it came from
                raise ConfigError(f"codebooks {a} and {b} overlap in the id space "
                                  f"(offsets {list(self.offsets)}, sizes {list(self.sizes)})")

    @classmethod
    def stacked(cls, n_codebooks: int, size: int, start: int = 0) -> Codebooks:
        """``n_codebooks`` codebooks of ``size`` codes, back to back from id ``start``."""
        return cls(tuple(start + k * size for k in range(n_codebooks)), (size,) * n_codebooks)

    @classmethod
    def from_vocab(cls, vocab: SpeechVocab, n_codebooks: int | None = None) -> Codebooks:
        """The vocabulary's ``codec0`` .. ``codec{K-1}`` ranges (all of them when ``n_codebooks``
        is None); a missing range is a ``ConfigError`` listing the ranges there are."""
        if n_codebooks is None:
            n_codebooks = sum(1 for name in vocab.layout.ranges if _CODEC_RANGE.match(name))
            if n_codebooks == 0:
                vocab.range("codec0")  # raises, naming the ranges the vocabulary has
        spans = [vocab.range(f"codec{k}") for k in range(n_codebooks)]
        return cls(tuple(o for o, _ in spans), tuple(n for _, n in spans))

    @property
    def n_codebooks(self) -> int:
        """Number of codebooks ``K``."""
        return len(self.offsets)


# ---- flat: one stream, time-major ------------------------------------------------------------
def flat_ids(codes: Ints, books: Codebooks) -> torch.Tensor:
    """Codes ``[..., K, T]`` -> ids ``[..., T*K]``, frame by frame (t0c0 t0c1 .. t1c0 ..)."""
    ids = parallel_ids(codes, books)  # (..., K, T)
    return ids.transpose(-1, -2).reshape(*ids.shape[:-2], -1)  # (..., T, K) -> (..., T*K)


def flat_codes(ids: Ints, books: Codebooks) -> torch.Tensor:
    """Invert :func:`flat_ids`: ids ``[..., T*K]`` -> codes ``[..., K, T]``.

    A length that is not a multiple of K (a cut-off frame), or an id outside the range of the
    codebook its position belongs to, is a ``ValueError`` naming the position.
    """
    ids = _as_long(ids, "flat ids")
    k = books.n_codebooks
    if ids.dim() < 1 or ids.shape[-1] % k:
        raise ValueError(f"a flat codec sequence of {k} codebooks needs a multiple of {k} "
                         f"tokens, got {ids.shape[-1] if ids.dim() else 'a scalar'}")
    frames = ids.reshape(*ids.shape[:-1], -1, k).transpose(-1, -2)  # (..., T, K) -> (..., K, T)
    return _codes(frames, books, lambda kk, t: f"token {t * k + kk} (frame {t}, codebook {kk})")


# ---- parallel: K streams, one embedding table --------------------------------------------------
def parallel_ids(codes: Ints, books: Codebooks) -> torch.Tensor:
    """Codes ``[..., K, T]`` -> ids ``[..., K, T]``: each codebook shifted by its offset.

    The K rows are read together at each step (embeddings summed), as MusicGen's parallel
    pattern and VALL-E's NAR input; a code outside ``[0, size_k)`` is a ``ValueError``.
    """
    codes = _as_codes(codes, books)
    sizes = _column(books.sizes, codes)
    bad = (codes < 0) | (codes >= sizes)
    if bad.any():
        *batch, k, t = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{_item(batch)}codebook {k}, frame {t}: code "
                         f"{int(codes[(*batch, k, t)])} is outside [0, {books.sizes[k]})")
    return codes + _column(books.offsets, codes)


def parallel_codes(ids: Ints, books: Codebooks) -> torch.Tensor:
    """Invert :func:`parallel_ids`: ids ``[..., K, T]`` -> codes ``[..., K, T]``."""
    ids = _as_codes(ids, books, "parallel ids")
    return _codes(ids, books, lambda k, t: f"codebook {k}, frame {t}")


# ---- delayed: codebook k starts d_k steps late ---------------------------------------------------
def musicgen_delays(n_codebooks: int) -> list[int]:
    """MusicGen's stair (the default): codebook ``k`` delayed by ``k`` steps."""
    return list(range(n_codebooks))


def moshi_delays(n_codebooks: int, acoustic_delay: int = 1) -> list[int]:
    """Moshi's pattern: codebook 0 (semantic) on time, every acoustic codebook ``acoustic_delay``
    steps late (``[0, 1, 1, ...]``)."""
    return [0] + [acoustic_delay] * (n_codebooks - 1)


def delayed_ids(codes: Ints, pad_id: int, delays: Sequence[int] | None = None) -> torch.Tensor:
    """Shift codebook ``k`` of ``[..., K, T]`` right by ``delays[k]`` -> ``[..., K, T + D]``.

    ``D = max(delays)``; row ``k`` is ``d_k`` pads, its ``T`` values, then ``D - d_k`` pads.
    ``delays`` defaults to :func:`musicgen_delays`. The values are not checked, so this lays out
    raw codes (with MusicGen's ``pad_id = codebook_size``) or :func:`parallel_ids` (with the
    vocabulary's pad) alike; :func:`delay_mask` marks where the values are.
    """
    codes = _as_long(codes, "codes")
    ds = _delays(delays, codes)
    t, span = codes.shape[-1], max(ds)
    out = codes.new_full((*codes.shape[:-1], t + span), pad_id)  # (..., K, T + D)
    for k, d in enumerate(ds):
        out[..., k, d : d + t] = codes[..., k, :]
    return out


def delayed_codes(ids: Ints, delays: Sequence[int] | None = None) -> torch.Tensor:
    """Invert :func:`delayed_ids`: ``[..., K, L]`` -> ``[..., K, L - D]``, aligned again.

    The pad positions are dropped unread (a model may predict anything there), so this inverts
    on generated sequences too; fewer than ``D`` steps is a ``ValueError``.
    """
    ids = _as_long(ids, "delayed ids")
    ds = _delays(delays, ids)
    span = max(ds)
    t = ids.shape[-1] - span
    if t < 0:
        raise ValueError(f"a delayed sequence of {ids.shape[-1]} steps is shorter than the "
                         f"largest delay {span}")
    return torch.stack([ids[..., k, d : d + t] for k, d in enumerate(ds)], dim=-2)


def delay_mask(n_frames: int, delays: Sequence[int],
               device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``[K, T + D]``: True where :func:`delayed_ids` put a value of ``T`` frames, False on
    its pads (no loss there; broadcasts over a batch)."""
    ds = _check_delays(delays, len(delays))
    if n_frames < 0:
        raise ValueError(f"delay_mask: n_frames must be >= 0, got {n_frames}")
    steps = torch.arange(n_frames + max(ds), device=device)[None, :]  # (1, T + D)
    start = torch.tensor(ds, device=device)[:, None]  # (K, 1)
    return (steps >= start) & (steps < start + n_frames)


# ---- VALL-E: codebook 0 autoregressively, then one NAR stage per codebook ---------------------
@dataclass
class NarStage:
    """Input and target of VALL-E's NAR stage ``stage`` (1 .. K-1)."""

    stage: int  # j: predicts codebook j (the model embeds it as the stage id)
    inputs: torch.Tensor  # (..., j, T) ids of codebooks 0..j-1, embeddings summed at the input
    target: torch.Tensor  # (..., T) ids of codebook j (code = target - offsets[j])


def ar_nar_ids(codes: Ints, books: Codebooks) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes ``[..., K, T]`` -> ``(ar [..., T], nar [..., K-1, T])`` ids: the AR model's
    sequence (codebook 0) and the codebooks the NAR stages predict."""
    ids = parallel_ids(codes, books)
    return ids[..., 0, :], ids[..., 1:, :]


def nar_stage(codes: Ints, stage: int, books: Codebooks) -> NarStage:
    """Stage ``stage`` (1 .. K-1) of VALL-E's NAR model: codebooks ``< stage`` in, ``stage`` out."""
    if not 1 <= stage < books.n_codebooks:
        raise ConfigError(f"NAR stage {stage}: stages of {books.n_codebooks} codebooks are "
                          f"1..{books.n_codebooks - 1} (codebook 0 is the AR model's)")
    ids = parallel_ids(codes, books)
    return NarStage(stage, ids[..., :stage, :], ids[..., stage, :])


def nar_stages(codes: Ints, books: Codebooks) -> list[NarStage]:
    """Every NAR stage, 1 .. K-1 (empty with one codebook)."""
    return [nar_stage(codes, j, books) for j in range(1, books.n_codebooks)]


def ar_nar_codes(ar: Ints, nar: Ints | Sequence[Ints], books: Codebooks) -> torch.Tensor:
    """Invert :func:`ar_nar_ids`: AR ids ``[..., T]`` and NAR ids ``[..., K-1, T]`` (or a list of
    K-1 ``[..., T]`` stage outputs) -> codes ``[..., K, T]``."""
    ar = _as_long(ar, "AR ids")
    if ar.dim() < 1:
        raise ValueError("AR ids must be [..., T], got a scalar")
    if isinstance(nar, list | tuple):  # one [..., T] output per stage
        nar = (torch.stack([_as_long(x, "NAR ids") for x in nar], dim=-2) if nar
               else ar.new_empty((*ar.shape[:-1], 0, ar.shape[-1])))
    nar = _as_long(nar, "NAR ids")
    if nar.dim() != ar.dim() + 1 or nar.shape[:-2] + nar.shape[-1:] != ar.shape:
        raise ValueError(f"AR ids {tuple(ar.shape)} and NAR ids {tuple(nar.shape)} do not "
                         "align (need [..., T] and [..., K-1, T])")
    return parallel_codes(torch.cat([ar[..., None, :], nar], dim=-2), books)


# ---- helpers ------------------------------------------------------------------------------------
def _column(values: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Per-codebook values as a ``(K, 1)`` column on ``like``'s device (broadcasts over T)."""
    return torch.tensor(values, dtype=torch.long, device=like.device)[:, None]


def _as_long(x: Ints, what: str) -> torch.Tensor:
    """An integer tensor as int64 (lists and numpy arrays too); floats are refused."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{what} must be integers, got {t.dtype}")
    return t.long()


def _as_codes(x: Ints, books: Codebooks, what: str = "codes") -> torch.Tensor:
    """``[..., K, T]`` int64, with K the number of codebooks of ``books``."""
    t = _as_long(x, what)
    if t.dim() < 2 or t.shape[-2] != books.n_codebooks:
        raise ValueError(f"{what} must be [..., K={books.n_codebooks}, T], got shape "
                         f"{tuple(t.shape)}")
    return t


def _codes(ids: torch.Tensor, books: Codebooks, where: Callable[[int, int], str]) -> torch.Tensor:
    """Ids ``[..., K, T]`` -> codes; ``where(k, t)`` names a position in the caller's layout."""
    codes = ids - _column(books.offsets, ids)
    bad = (codes < 0) | (codes >= _column(books.sizes, ids))
    if bad.any():
        *batch, k, t = (int(i) for i in bad.nonzero()[0])
        lo = books.offsets[k]
        raise ValueError(f"{_item(batch)}{where(k, t)} holds id {int(ids[(*batch, k, t)])}, "
                         f"outside codebook {k}'s ids [{lo}, {lo + books.sizes[k]})")
    return codes


def _item(batch: list[int]) -> str:
    return f"item {tuple(batch) if len(batch) > 1 else batch[0]}: " if batch else ""


def _delays(delays: Sequence[int] | None, x: torch.Tensor) -> list[int]:
    if x.dim() < 2:
        raise ValueError(f"codes must be [..., K, T], got shape {tuple(x.shape)}")
    k = x.shape[-2]
    return musicgen_delays(k) if delays is None else _check_delays(delays, k)


def _check_delays(delays: Sequence[int], n_codebooks: int) -> list[int]:
    ds = [int(d) for d in delays]
    if len(ds) != n_codebooks or not ds:
        raise ConfigError(f"delays: {len(ds)} given for {n_codebooks} codebooks (need one each)")
    if min(ds) < 0:
        raise ConfigError(f"delays must be >= 0, got {ds}")
    return ds
