"""A scripted ``Engine`` for the server tests: turn-taking by energy, answers with a tone.

It keeps the engine protocol honestly (any push size, one ``Output`` per completed frame, state
per session) with rules simple enough for a test to predict every output:

- a frame is speech when its RMS is above ``threshold``;
- after speech followed by ``answer_after_s`` of silence it answers: ANSWERING, then a 440 Hz
  tone for ``answer_s`` with a WORD event every ``word_every_s``; an utterance shorter than
  ``min_query_s`` gets SILENT instead (not a query);
- speech while it talks stops the tone at once and raises INTERRUPTED (the speech then counts as
  the start of the next query);
- speech longer than ``backchannel_after_s`` raises one BACKCHANNEL ("mm-hm", no audio).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from speechlm.realtime.events import Event, EventKind, Output

WORDS = ["hello", "there", "how", "can", "I", "help", "you", "today"]


@dataclass
class ScriptedEngine:
    sample_rate: int = 16000
    frame_rate: float = 50.0
    threshold: float = 0.05
    answer_after_s: float = 0.3
    answer_s: float = 1.0
    min_query_s: float = 0.1
    backchannel_after_s: float = 2.0
    word_every_s: float = 0.2
    delay_s: float = 0.0  # sleep per frame: a slow model

    def __post_init__(self) -> None:
        self.frame_samples = int(round(self.sample_rate / self.frame_rate))
        self.lock = threading.Lock()
        self.open = 0  # sessions not yet closed
        self.opened = 0
        self.samples_pushed = 0  # over all sessions: the server received audio
        self.overlaps = 0  # close() called while a push ran (the server must never do it)

    def session(self) -> ScriptedSession:
        with self.lock:
            self.open += 1
            self.opened += 1
        return ScriptedSession(self)

    def frames(self, seconds: float) -> int:
        return int(round(seconds * self.frame_rate))


class ScriptedSession:
    def __init__(self, engine: ScriptedEngine) -> None:
        self.engine = engine
        self.buffer = np.zeros(0, np.float32)
        self.frame = 0
        self.speech_frames = 0  # of the current utterance
        self.silence_frames = 0  # since the utterance's end
        self.backchanneled = False
        self.talk_left = 0  # frames of answer still to say
        self.talk_done = 0
        self.phase = 0.0
        self.closed = False
        self.pushing = False

    def push(self, pcm: np.ndarray) -> list[Output]:
        assert not self.closed, "push after close"
        e = self.engine
        with e.lock:
            e.samples_pushed += len(pcm)
        self.pushing = True
        self.buffer = np.concatenate([self.buffer, np.asarray(pcm, np.float32)])
        outputs = []
        while len(self.buffer) >= e.frame_samples:
            frame, self.buffer = self.buffer[:e.frame_samples], self.buffer[e.frame_samples:]
            outputs.append(self.step(frame))
            if e.delay_s:
                time.sleep(e.delay_s)
        self.pushing = False
        return outputs

    def step(self, frame: np.ndarray) -> Output:
        e = self.engine
        self.frame += 1
        now = self.frame / e.frame_rate
        events = []
        speech = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) > e.threshold
        if speech:
            if self.talk_left:
                self.talk_left = 0
                events.append(Event(EventKind.INTERRUPTED, now))
            self.speech_frames += 1
            self.silence_frames = 0
            if self.speech_frames == e.frames(e.backchannel_after_s) and not self.backchanneled:
                self.backchanneled = True
                events.append(Event(EventKind.BACKCHANNEL, now, "mm-hm"))
        elif self.speech_frames:
            self.silence_frames += 1
            if self.silence_frames >= e.frames(e.answer_after_s):
                if self.speech_frames >= e.frames(e.min_query_s):
                    events.append(Event(EventKind.ANSWERING, now))
                    self.talk_left, self.talk_done = e.frames(e.answer_s), 0
                else:
                    events.append(Event(EventKind.SILENT, now))
                self.speech_frames = self.silence_frames = 0
                self.backchanneled = False
        audio = np.zeros(e.frame_samples, np.float32)
        if self.talk_left:
            if self.talk_done % e.frames(e.word_every_s) == 0:
                word = WORDS[(self.talk_done // e.frames(e.word_every_s)) % len(WORDS)]
                events.append(Event(EventKind.WORD, now, word))
            t = np.arange(e.frame_samples) / e.sample_rate
            audio = (0.3 * np.sin(self.phase + 2 * np.pi * 440 * t)).astype(np.float32)
            self.phase = (self.phase + 2 * np.pi * 440 * e.frame_samples / e.sample_rate) % (
                2 * np.pi)
            self.talk_left -= 1
            self.talk_done += 1
        return Output(audio=audio, events=events, speaking=bool(self.talk_left or audio.any()))

    def close(self) -> None:
        if self.pushing:
            with self.engine.lock:
                self.engine.overlaps += 1
        if not self.closed:
            self.closed = True
            with self.engine.lock:
                self.engine.open -= 1


def bursts(spans: list[tuple[float, float]], seconds: float, sample_rate: int = 16000,
           amplitude: float = 0.4) -> np.ndarray:
    """Speech-like test audio: voiced bursts (150 Hz with harmonics, syllable-rate envelope)
    over ``(start_s, end_s)`` spans, silence elsewhere; float32 mono."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    syllables = 0.6 + 0.4 * np.abs(np.sin(2 * np.pi * 4 * t))
    gate = np.zeros_like(t)
    for start, end in spans:
        gate[(t >= start) & (t < end)] = 1.0
    return (amplitude * voiced / 1.5 * syllables * gate).astype(np.float32)
