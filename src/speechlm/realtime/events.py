"""What a real-time session exchanges with its caller: the engine side of the server protocol.

An ``Engine`` opens one ``Session`` per conversation. The caller pushes microphone audio (mono
float32 at ``Engine.sample_rate``, any number of samples) and gets back, for each model frame
completed by that audio, the frame's ``Output``: the audio the model says during that frame
(``frame_samples`` samples, silence included, so that output keeps the input's clock) and the
events that frame raised. Sessions share nothing but the engine's read-only weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np


class EventKind(StrEnum):
    """What the model decided at a frame (VITA's states, LSLM's interrupt, Moshi's monologue)."""

    ANSWERING = "answering"  # the model starts a response to a query
    SILENT = "silent"  # it heard non-query audio and stays silent (VITA's silence mode)
    INTERRUPTED = "interrupted"  # it stops speaking because the user cut in (LSLM's IRQ)
    BACKCHANNEL = "backchannel"  # a short listener response while the user speaks
    WORD = "word"  # a word of its inner text monologue (the live transcript of what it says)


@dataclass
class Event:
    kind: EventKind
    time: float  # seconds from the session's start (the end of the frame that raised it)
    text: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "time": round(self.time, 3), "text": self.text}


@dataclass
class Output:
    """One model frame: ``audio`` (float32, ``frame_samples`` long) and its events."""

    audio: np.ndarray
    events: list[Event] = field(default_factory=list)
    speaking: bool = False  # the model's own stream is not silence at this frame


class Session(Protocol):
    def push(self, pcm: np.ndarray) -> list[Output]:
        """Feed microphone samples; the outputs of every frame they complete, in order."""
        ...

    def close(self) -> None:
        """Free the session's state (caches, buffers)."""
        ...


class Engine(Protocol):
    sample_rate: int  # of the audio in and out
    frame_rate: float  # model frames per second
    frame_samples: int  # sample_rate / frame_rate

    def session(self) -> Session:
        """A new conversation with fresh state."""
        ...
