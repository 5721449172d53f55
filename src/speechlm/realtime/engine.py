"""The streaming full-duplex engine: microphone audio in, the model's audio and events out, at the
frame rate.

Per frame (50 Hz), a session:

1. assigns the user's unit from the microphone samples that complete the frame, causally
   (``speechlm.tokenizers.streaming.StreamingUnits``: no look-ahead, no per-utterance statistics);
2. steps the duplex model once with its KV cache (``DuplexLM.step`` under ``model.streaming``):
   the user's unit, its own unit and text token of the previous frame in; the logits of its unit
   and text token at this frame out; both are sampled;
3. turns the text token into events (``<answer>``, ``<silent>``, ``<irq>``, ``<bc>``, words);
   with ``stop_on_irq`` (LSLM), ``<irq>`` ends its turn at once: its units are silence (and read
   back as silence) until it opens a turn again with ``<answer>`` or ``<bc>``;
4. vocodes its units in chunks of ``chunk_frames`` with ``context_frames`` of left context (the
   vocoder is not causal: the context keeps chunk edges smooth), so its audio lags its units by
   one chunk; a chunk of silence units is not vocoded at all.

The session keeps everything it needs in its own objects (``StreamingUnits``, ``DuplexState``,
a sampling generator, buffers): sessions share only the engine's read-only model, tokenizer and
vocoder, so one engine serves many connections.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import ConfigError
from speechlm.realtime.events import Event, EventKind, Output

STATE_EVENTS = {"<answer>": EventKind.ANSWERING, "<silent>": EventKind.SILENT,
                "<irq>": EventKind.INTERRUPTED, "<bc>": EventKind.BACKCHANNEL}
OPENS_TURN = {"<answer>", "<bc>"}  # after <irq>, the model speaks again only after one


@dataclass
class EngineSettings:
    """Sampling and vocoding of a live session."""

    temperature: float = 1.0  # of the model's own units
    text_temperature: float = 1.0  # of its text/control tokens (states must stay reachable)
    chunk_frames: int = 5  # units vocoded at a time (0.1 s at 50 Hz): the audio's extra delay
    context_frames: int = 10  # units of left context given to the vocoder with each chunk
    seed: int = 0
    vocode: bool = True  # False: units and events only (evaluation without audio)
    # LSLM: the interrupt token stops the speech (False: the model's own units decide when)
    stop_on_irq: bool = True

    def __post_init__(self) -> None:
        for key in ("temperature", "text_temperature"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        if self.chunk_frames < 1 or self.context_frames < 0:
            raise ConfigError("chunk_frames must be >= 1 and context_frames >= 0")


class DuplexEngine:
    """A trained duplex model directory ready to run live (see the module docstring)."""

    def __init__(self, model: Any, tokenizer: Any, vocoder: Any | None,
                 settings: EngineSettings | None = None) -> None:
        from speechlm.tokenizers.streaming import StreamingUnits

        StreamingUnits(tokenizer)  # refuses a non-causal tokenizer here, not in a session
        self.model, self.tokenizer, self.vocoder = model, tokenizer, vocoder
        self.settings = settings or EngineSettings()
        self.sample_rate = int(tokenizer.sample_rate)
        self.frame_rate = float(tokenizer.frame_rate)
        self.frame_samples = int(round(self.sample_rate / self.frame_rate))
        cfg = model.config
        self.silence = int(cfg.silence_unit)
        self.text_vocab = list(cfg.text_vocab)
        if vocoder is not None and int(vocoder.sample_rate) != self.sample_rate:
            raise ConfigError(f"vocoder: speaks at {vocoder.sample_rate} Hz, the tokenizer "
                              f"listens at {self.sample_rate} Hz; they must agree")

    def session(self) -> DuplexSession:
        return DuplexSession(self)


def load_engine(model_dir: str | Path, settings: EngineSettings | None = None,
                device: str = "cpu") -> DuplexEngine:
    """The engine of a duplex model directory (its tokenizer and ``vocoder/`` with it)."""
    from speechlm.generate.continuation import resolve_vocoder
    from speechlm.models import load_speech_lm

    lm = load_speech_lm(model_dir, device)
    if lm.architecture.name != "duplex":
        raise ConfigError(f"{model_dir}: a {lm.architecture.name} model; speechlm serve and "
                          "speechlm eval duplex run duplex models (recipes lslm, duplex, "
                          "vita-silence)")
    settings = settings or EngineSettings()
    vocoder = resolve_vocoder(lm) if settings.vocode else None
    return DuplexEngine(lm.model, lm.speech_tokenizer, vocoder, settings)


@dataclass
class FrameLog:
    """What a session did at each frame (for evaluation): units, text ids, step seconds."""

    listen: list[int] = field(default_factory=list)
    speak: list[int] = field(default_factory=list)
    text: list[int] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)


class DuplexSession:
    """One conversation (see ``speechlm.realtime.events.Session``)."""

    def __init__(self, engine: DuplexEngine) -> None:
        import torch

        from speechlm.tokenizers.streaming import StreamingUnits

        self.engine = engine
        self.units = StreamingUnits(engine.tokenizer)
        self._streaming = engine.model.streaming(1)
        self.state = self._streaming.__enter__()
        self.gen = torch.Generator().manual_seed(engine.settings.seed)
        cfg = engine.model.config
        self.prev_speak, self.prev_text = int(cfg.n_units), int(cfg.text_bos_id)
        self.frames = 0
        self.yielded = False  # <irq> said and no turn opened since (stop_on_irq)
        self.log = FrameLog()
        self._said: list[int] = []  # units to vocode next: left context + pending ones
        self._pending = 0
        self._audio: deque[np.ndarray] = deque()  # vocoded samples waiting to be sent

    def push(self, pcm: np.ndarray) -> list[Output]:
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        return [self._frame(int(u)) for u in self.units.push(pcm)]

    def _frame(self, listen: int) -> Output:
        import torch

        e, s = self.engine, self.engine.settings
        t0 = time.perf_counter()
        speak_logits, text_logits = e.model.step(
            self.state, torch.tensor([listen]), torch.tensor([self.prev_speak]),
            torch.tensor([self.prev_text]))
        unit = _sample(speak_logits[0], s.temperature, self.gen)
        text = _sample(text_logits[0], s.text_temperature, self.gen)
        token = e.text_vocab[text]
        if s.stop_on_irq:
            if token == "<irq>":
                self.yielded = True
            elif token in OPENS_TURN:
                self.yielded = False
            if self.yielded:
                unit = e.silence
        self.prev_speak, self.prev_text = unit, text
        self.frames += 1
        now = self.frames / e.frame_rate
        events = []
        if token in STATE_EVENTS:
            events.append(Event(STATE_EVENTS[token], now))
        elif text != 0 and not token.startswith("<"):
            events.append(Event(EventKind.WORD, now, token))
        audio = self._vocode(unit) if e.vocoder is not None else \
            np.zeros(e.frame_samples, np.float32)
        self.log.listen.append(listen)
        self.log.speak.append(unit)
        self.log.text.append(text)
        self.log.step_s.append(time.perf_counter() - t0)
        return Output(audio=audio, events=events, speaking=unit != e.silence)

    def _vocode(self, unit: int) -> np.ndarray:
        """This frame's audio: the oldest vocoded samples (silence until the first chunk)."""
        e, s = self.engine, self.engine.settings
        self._said.append(unit)
        self._pending += 1
        if self._pending == s.chunk_frames:
            n = s.chunk_frames * e.frame_samples
            said = np.asarray(self._said)
            if (said[-s.chunk_frames:] == e.silence).all():
                wav = np.zeros(n, np.float32)
            else:
                wav = _speak(e.vocoder, said, e.frame_rate)[-n:]
                wav = np.pad(wav, (n - len(wav), 0)) if len(wav) < n else wav
            self._audio.append(wav.astype(np.float32))
            self._said = self._said[len(self._said) - s.context_frames:] \
                if s.context_frames else []
            self._pending = 0
        return self._take(e.frame_samples)

    def _take(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        filled = 0
        while filled < n and self._audio:
            head = self._audio[0]
            k = min(n - filled, len(head))
            out[filled:filled + k] = head[:k]
            filled += k
            if k == len(head):
                self._audio.popleft()
            else:
                self._audio[0] = head[k:]
        return out

    def close(self) -> None:
        self._streaming.__exit__(None, None, None)
        self._audio.clear()
        self._said = []


def _sample(logits: Any, temperature: float, gen: Any) -> int:
    import torch

    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


def _speak(vocoder: Any, frames: np.ndarray, frame_rate: float) -> np.ndarray:
    """Frame units (one per frame) through the vocoder: their runs as units with durations."""
    from speechlm.models.dialogue import run_lengths
    from speechlm.tokenizers.streams import Streams

    units, durations = run_lengths(frames)
    return np.asarray(vocoder.synthesize(Streams(frame_rate, units=units, durations=durations)),
                      dtype=np.float32)
