"""The full-duplex format: three frame-synchronous streams per scenario (LSLM, Moshi, VITA).

At every frame t (the unit tokenizer's rate, 50 Hz) a duplex model reads what its microphone
heard (``listen``: the user channel's unit at t), what it said itself at t-1 (``speak``) and its
own text/control token at t-1 (``text``), and predicts its unit and text token at t. The text
stream is mostly ``<pad>`` ("nothing new at this frame") and carries:

- the state tokens of the scenario's decision points: ``<answer>`` where a response starts,
  ``<silent>`` where one would have started after audio not addressed to the model (VITA's
  silence mode), ``<irq>`` where the model stops because the user cut in (LSLM's interrupt
  token), ``<bc>`` where a backchannel starts;
- with ``words``, each word the model says, at its start frame (Moshi's inner monologue: the
  text leads the audio of the word), so the model's transcript is read off the stream.

Optionally a fourth stream, ``transcript``, is a training target only (never an input): at every
frame inside a word spoken on the microphone channel (the user, or other people's side talk),
that word's id in the transcript vocabulary (:func:`transcript_vocab`), ``IGNORE`` elsewhere.
Predicting it makes the model transcribe what it hears, so that its state decisions can rest on
the words (a question to it, a statement, two other people talking) rather than on the sound
alone.

Two tokens never share a frame: a token whose frame is taken moves to the next free one (a
state and the first word of the answer it opens are one frame apart).

:func:`scenario_row` makes a token row from a scenario record (``speechlm.corpus.duplex``) and
the per-frame units of its two channels; :func:`duplex_windows` cuts a row into training
windows with the streams shifted; :func:`duplex_collate` pads a batch for ``DuplexLM``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from speechlm.sequences.example import IGNORE

PAD, BOS, UNK = "<pad>", "<bos>", "<unk>"
ANSWER, SILENT, IRQ, BACKCHANNEL = "<answer>", "<silent>", "<irq>", "<bc>"
SPECIALS = (PAD, BOS, UNK, ANSWER, SILENT, IRQ, BACKCHANNEL)
STATE_TOKENS = {"answer": ANSWER, "silent": SILENT, "irq": IRQ, "backchannel": BACKCHANNEL}
COLUMNS = ("listen", "speak", "text")  # a token row (plus "transcript" when it has one)
COLUMNS_IN = ("listen", "speak_in", "text_in", "speak_labels", "text_labels")  # a window
TRANSCRIPT = "transcript"  # a row's optional transcript stream (window: "transcript_labels")


def text_vocab(records: Iterable[Mapping], words: bool = True) -> list[str]:
    """The text/control vocabulary: :data:`SPECIALS`, then (with ``words``) every word the
    assistant says in ``records`` (sorted, so the same records give the same ids)."""
    said = set()
    if words:
        for rec in records:
            for seg in rec.get("assistant", []):
                said.update(w for w, _, _ in seg.get("words", []))
    return [*SPECIALS, *sorted(said - set(SPECIALS))]


def transcript_vocab(records: Iterable[Mapping]) -> list[str]:
    """The transcript vocabulary: ``<unk>``, then every word spoken on the microphone channel
    of ``records`` (sorted, so the same records give the same ids)."""
    said = {w for rec in records for seg in rec.get("user", []) for w, _, _ in
            seg.get("words", [])}
    return [UNK, *sorted(said - {UNK})]


def transcript_stream(record: Mapping, n_frames: int, frame_rate: float, vocab: Sequence[str]
                 ) -> np.ndarray:
    """(n_frames,) ids of ``vocab``: each word heard on the microphone channel over the frames
    it spans (at least its start frame), ``<unk>`` for a word not in ``vocab``, ``IGNORE`` where
    no word is heard (silence, noise, the assistant)."""
    ids = {w: i for i, w in enumerate(vocab)}
    out = np.full(n_frames, IGNORE, dtype=np.int64)
    for seg in record.get("user", []):
        for w, start, end in seg.get("words", []):
            a = min(max(int(round(float(start) * frame_rate)), 0), n_frames - 1)
            b = min(max(int(round(float(end) * frame_rate)), a + 1), n_frames)
            out[a:b] = ids.get(w, ids[UNK])
    return out


def text_stream(record: Mapping, n_frames: int, frame_rate: float, vocab: Sequence[str],
                words: bool = True) -> np.ndarray:
    """The scenario's text stream: (n_frames,) ids of ``vocab``, ``<pad>`` where nothing new."""
    ids = {tok: i for i, tok in enumerate(vocab)}
    items = [(float(s["time"]), 0, ids[STATE_TOKENS[s["token"]]]) for s in record["states"]]
    if words:
        for seg in record.get("assistant", []):
            items += [(float(start), 1, ids.get(w, ids[UNK])) for w, start, _ in seg["words"]]
    out = np.zeros(n_frames, dtype=np.int64)  # <pad> is id 0
    taken = np.zeros(n_frames, dtype=bool)
    for time, _, tid in sorted(items):
        f = min(max(int(round(time * frame_rate)), 0), n_frames - 1)
        free = np.flatnonzero(~taken[f:])
        if len(free) == 0:
            continue  # at the very end of the scenario: nothing left to say it in
        out[f + free[0]], taken[f + free[0]] = tid, True
    return out


def scenario_row(record: Mapping, listen: np.ndarray, speak: np.ndarray, frame_rate: float,
                 vocab: Sequence[str], words: bool = True,
                 transcript: Sequence[str] | None = None) -> dict[str, Any]:
    """A token row: the two channels' frame units (cut to the shorter), the text stream and,
    with a ``transcript`` vocabulary, the transcript stream."""
    n = min(len(listen), len(speak))
    row = {"id": record["id"], "kind": record["kind"], "subkind": record.get("subkind"),
           "listen": np.asarray(listen[:n], dtype=np.int32).tolist(),
           "speak": np.asarray(speak[:n], dtype=np.int32).tolist(),
           "text": text_stream(record, n, frame_rate, vocab, words).astype(np.int32).tolist()}
    if transcript is not None:
        row[TRANSCRIPT] = transcript_stream(record, n, frame_rate,
                                            transcript).astype(np.int32).tolist()
    return row


def shifted(row: Mapping, n_units: int, text_bos: int) -> dict[str, np.ndarray]:
    """A row's model inputs and targets over its whole length: ``listen``, ``speak_in`` and
    ``text_in`` (the previous frame's, BOS at frame 0), ``speak_labels``, ``text_labels`` and,
    when the row has a transcript stream, ``transcript_labels`` (the word heard at the frame:
    unshifted, the model reads that frame's listen unit)."""
    speak = np.asarray(row["speak"], dtype=np.int64)
    text = np.asarray(row["text"], dtype=np.int64)
    out = {"listen": np.asarray(row["listen"], dtype=np.int64),
           "speak_in": np.concatenate([[n_units], speak[:-1]]),
           "text_in": np.concatenate([[text_bos], text[:-1]]),
           "speak_labels": speak, "text_labels": text}
    if row.get(TRANSCRIPT) is not None:
        out["transcript_labels"] = np.asarray(row[TRANSCRIPT], dtype=np.int64)
    return out


def window_starts(n: int, seq_len: int) -> list[int]:
    """Starts of windows of ``seq_len`` frames covering ``n`` frames, half overlapping (the
    model meets every frame both early and late in its context, as the streaming engine,
    which keeps a sliding context, does)."""
    if n <= seq_len:
        return [0]
    starts = list(range(0, n - seq_len + 1, seq_len // 2))
    if starts[-1] != n - seq_len:
        starts.append(n - seq_len)
    return starts


def duplex_windows(row: Mapping, n_units: int, text_bos: int, seq_len: int
                   ) -> list[dict[str, np.ndarray]]:
    """The training windows of a row (:func:`shifted`, cut by :func:`window_starts`)."""
    full = shifted(row, n_units, text_bos)
    n = len(full["listen"])
    return [{k: v[s:s + seq_len] for k, v in full.items()} for s in window_starts(n, seq_len)]


def drop_own(speak_in: np.ndarray, p: float, silence: int, rng: np.random.Generator
             ) -> np.ndarray:
    """``speak_in`` with each frame of the model's own speech (not ``silence``) replaced by
    ``silence`` with probability ``p``; the first frame (BOS, or the frame before the window)
    is kept. Training only: see ``speechlm.train.duplex.DuplexWindows``."""
    drop = (speak_in != silence) & (rng.random(len(speak_in)) < p)
    drop[:1] = False
    return np.where(drop, silence, speak_in)


def duplex_collate(n_units: int):
    """Windows -> the batch ``DuplexLM.forward`` takes (right padding: the BOS/pad unit, text
    ``<pad>``, ignored labels, attention mask 0); ``transcript_labels`` when the windows have
    them."""
    import torch

    def fn(items: list[dict]) -> dict[str, Any]:
        b, t = len(items), max(len(it["listen"]) for it in items)
        batch = {"listen": torch.full((b, t), n_units, dtype=torch.long),
                 "speak_in": torch.full((b, t), n_units, dtype=torch.long),
                 "text_in": torch.zeros((b, t), dtype=torch.long),
                 "speak_labels": torch.full((b, t), IGNORE, dtype=torch.long),
                 "text_labels": torch.full((b, t), IGNORE, dtype=torch.long),
                 "attention_mask": torch.zeros((b, t), dtype=torch.long)}
        keys = COLUMNS_IN
        if "transcript_labels" in items[0]:
            batch["transcript_labels"] = torch.full((b, t), IGNORE, dtype=torch.long)
            keys = (*COLUMNS_IN, "transcript_labels")
        for i, it in enumerate(items):
            k = len(it["listen"])
            for key in keys:
                batch[key][i, :k] = torch.as_tensor(np.asarray(it[key]), dtype=torch.long)
            batch["attention_mask"][i, :k] = 1
        return batch

    return fn

