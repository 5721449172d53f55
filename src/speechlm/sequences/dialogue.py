"""Two-channel dialogue examples for dGSLM's Dialogue LM: inputs, next-unit and duration targets.

dGSLM (Nguyen et al. 2022) models a conversation as two parallel streams of frame-rate units, one
per speaker, **not** de-duplicated: a unit lasting four frames appears four times. Arrays here are
one channel, ``(T,)``, or both, ``(2, T)``; time is the last axis. Every target is indexed by the
position whose output predicts it ("at t"), as fairseq's ``speech_dlm`` does::

    t                   0   1   2   3   4   5
    units               5   5   7   7   7   2
    next                5   7   7   7   2   -    units[t + 1]
    edge                F   T   F   F   T   F    units[t + 1] != units[t]: the next unit changes
    frames_left         2   1   3   2   1   1    frames from t to the end of t's run
    duration, delayed   -   -   3   -   -   1    at a run's first frame t: its length (default)
    duration, at edge   -   3   -   -   1   -    at an edge t: the length of the run at t + 1

- **Edge-unit prediction** (fairseq's ``edge`` target) takes the unit loss only where the next
  unit differs from the current one; inside a run the model is not asked to copy.
- **Delayed duration prediction** (fairseq's ``duration`` target with ``delayed_duration_target``,
  the setting of the paper's best model, DLM-5): the length of the run that starts at ``t + 1`` is
  predicted at ``t + 1``, once the model has read that unit, not at the edge ``t`` where the unit is
  still being chosen. fairseq's criterion reads the duration head at ``edge_indices + 1``; here the
  target sits at that position directly. The non-delayed variant puts it at the edge ``t``.
- A run's length counts the whole run in the dialogue, capped at ``max_duration`` (fairseq's
  ``max_target_durations``, 256): a run cut by a window's end keeps its full length, as fairseq
  counts the rest of the run in the next block.

:func:`dialogue_example` prepends BOS to both channels, so position 0 (BOS) is always an edge and
the first run gets a duration target too. :func:`windows` cuts a long dialogue into ``seq_len``
chunks after the targets are computed on the whole dialogue, so every target (the one at a
window's last position included, which is the next window's first unit) is taken exactly once and
a window has no artefacts at its start: it begins mid-conversation, without BOS, as fairseq's
``--sample-break-mode none`` blocks do (fairseq also counts each block's first target as an edge,
even inside a run; here an edge is an edge of the dialogue). :func:`collate` pads a batch on the
right for ``DialogueLM.forward`` (causal attention keeps right padding invisible to real
positions).

The ``dialogue`` format (:func:`dialogue`) is :func:`dialogue_example` on a token-dataset row
holding each channel's frame units (columns :data:`CHANNEL_A`, :data:`CHANNEL_B`, as the recipe's
``dialogue_tokens`` stage writes them); the ``dialogue`` objective passes the model's
``delayed_duration`` and ``max_duration`` as its parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from speechlm.sequences.example import IGNORE, Example
from speechlm.sequences.formats import register_format
from speechlm.sequences.vocab import SpeechVocab

UNITS = "units"  # (2, N) input ids, BOS first
NEXT = "next"  # (2, N) next-unit ids (masked where the dialogue ends)
DURATIONS = "durations"  # (2, N) duration targets in frames (masked where none; 0 there)
CHANNELS = 2
MAX_DURATION = 256  # fairseq's --max-target-durations default
CHANNEL_A, CHANNEL_B = "units_a", "units_b"  # token-dataset columns: each channel's frame units


def next_units(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``units[..., t + 1]`` at ``t`` and its mask (False at the last position, 0 there)."""
    units = np.asarray(units, dtype=np.int64)
    nxt = np.zeros_like(units)
    nxt[..., :-1] = units[..., 1:]
    mask = np.ones(units.shape, dtype=bool)
    mask[..., -1:] = False
    return nxt, mask


def edge_mask(units: np.ndarray) -> np.ndarray:
    """True at ``t`` where ``units[t + 1] != units[t]`` (False at the last position)."""
    units = np.asarray(units)
    edges = np.zeros(units.shape, dtype=bool)
    edges[..., :-1] = units[..., 1:] != units[..., :-1]
    return edges


def frames_left(units: np.ndarray, max_duration: int = MAX_DURATION) -> np.ndarray:
    """Frames from ``t`` to the end of its run, ``t`` included (a run's length at its first frame),
    capped at ``max_duration``."""
    units = np.asarray(units)
    if units.ndim > 1:
        return np.stack([frames_left(row, max_duration) for row in units])
    if units.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])  # (runs,)
    ends = np.r_[starts[1:], len(units)]  # (runs,) one past each run's last frame
    run_of = np.repeat(np.arange(len(starts)), ends - starts)  # (T,) run index of each frame
    return np.minimum(ends[run_of] - np.arange(len(units)), max_duration).astype(np.int64)


def duration_targets(units: np.ndarray, delayed: bool = True,
                     max_duration: int = MAX_DURATION) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths in frames and their mask (values 0 where masked); see the module table.

    ``delayed``: at every run start ``t >= 1`` (``units[t] != units[t - 1]``), the length of the
    run starting at ``t``. Otherwise: at every edge ``t``, the length of the run at ``t + 1``.
    """
    units = np.asarray(units)
    left = frames_left(units, max_duration)
    edges = edge_mask(units)
    values = np.zeros(units.shape, dtype=np.int64)
    if delayed:
        mask = np.zeros(units.shape, dtype=bool)
        mask[..., 1:] = edges[..., :-1]  # t starts a run iff t - 1 is an edge
        values[mask] = left[mask]
    else:
        mask = edges
        values[..., :-1] = np.where(edges[..., :-1], left[..., 1:], 0)
    return values, mask


def dialogue_example(units_a: Sequence[int] | np.ndarray, units_b: Sequence[int] | np.ndarray,
                     vocab: SpeechVocab, delayed: bool = True,
                     max_duration: int = MAX_DURATION) -> Example:
    """One dialogue's two channels of frame units -> ``BOS + units`` with next and duration targets.

    Streams (each ``(2, T + 1)``, channel A first): :data:`UNITS` (vocabulary ids),
    :data:`NEXT` (the next id; masked at the end) and :data:`DURATIONS` (frames; masked where
    no duration is predicted). The edge mask is ``next != units`` where ``next`` is unmasked.
    """
    a, b = np.asarray(units_a), np.asarray(units_b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"the two channels must be 1-D and of one length (frame-aligned), got "
                         f"shapes {a.shape} and {b.shape}")
    if max_duration < 1:
        raise ValueError(f"max_duration must be >= 1, got {max_duration}")
    ids = np.stack([vocab.units_to_ids(a), vocab.units_to_ids(b)])  # (2, T)
    units = np.concatenate([np.full((CHANNELS, 1), vocab.bos_id), ids], axis=1)  # (2, N)
    nxt, next_mask = next_units(units)
    durations, duration_mask = duration_targets(units, delayed, max_duration)
    return Example({UNITS: units, NEXT: nxt, DURATIONS: durations},
                   {UNITS: np.ones(units.shape, dtype=bool), NEXT: next_mask,
                    DURATIONS: duration_mask})


@register_format("dialogue", columns=(CHANNEL_A, CHANNEL_B),
                 params={"delayed": True, "max_duration": MAX_DURATION},
                 summary="two channels of frame units, next-unit and duration targets (dGSLM)")
def dialogue(row: Any, vocab: SpeechVocab, rng: np.random.Generator | None = None,
             delayed: bool = True, max_duration: int = MAX_DURATION) -> Example:
    """One dialogue row (both channels' frame units) as :func:`dialogue_example`."""
    return dialogue_example(row[CHANNEL_A], row[CHANNEL_B], vocab, delayed, max_duration)


def windows(example: Example, seq_len: int) -> list[Example]:
    """Consecutive chunks of ``seq_len`` positions (the last may be shorter), targets kept."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    return [Example({k: v[..., i:i + seq_len] for k, v in example.streams.items()},
                    {k: v[..., i:i + seq_len] for k, v in example.masks.items()})
            for i in range(0, len(example), seq_len)]


def collate(examples: Sequence[Example], pad_id: int,
            length: int | None = None) -> dict[str, Any]:
    """Right-padded tensors for ``DialogueLM.forward``: ``units`` (B, 2, L) (``pad_id`` after
    the end), ``next_units`` (B, 2, L) (:data:`IGNORE` where no target) and ``durations``
    (B, 2, L) (0 where no target). ``length`` defaults to the longest example."""
    import torch

    width = length or max(len(e) for e in examples)
    if any(len(e) > width for e in examples):
        raise ValueError(f"an example is longer than length={width}; cut it with windows()")
    shape = (len(examples), CHANNELS, width)
    units = np.full(shape, pad_id, dtype=np.int64)
    nxt = np.full(shape, IGNORE, dtype=np.int64)
    durations = np.zeros(shape, dtype=np.int64)
    for i, e in enumerate(examples):
        n = len(e)
        units[i, :, :n] = e.streams[UNITS]
        nxt[i, :, :n] = np.where(e.masks[NEXT], e.streams[NEXT], IGNORE)
        durations[i, :, :n] = np.where(e.masks[DURATIONS], e.streams[DURATIONS], 0)
    return {"units": torch.from_numpy(units), "next_units": torch.from_numpy(nxt),
            "durations": torch.from_numpy(durations)}
