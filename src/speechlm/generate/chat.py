"""Answering one spoken or written question (``speechlm chat``).

A SpeechGPT-style model is a plain causal LM fine-tuned on :mod:`speechlm.sequences.speechgpt`'s
template. Decoding follows the template's parts, each restricted to the ids it may hold, with
the KV cache carried across them:

- ``chain`` (chain of modality): the transcript after ``[tq]`` and the text answer after
  ``[ta]`` greedily (text ids only, until the next part's marker), then the spoken answer
  after ``[ua] <sosp>`` by sampling unit ids until ``<eosp>``;
- a written question starts at ``[ta]`` (no transcript to write);
- ``direct``: units only, after ``<sosp>``;
- ``spectron`` (architecture ``spectron``): the chain's text parts up to ``[SPEC]``, then log-mel
  frames from the spectrogram head, inverted by Griffin-Lim (not streamed);
- ``omni`` (architecture ``omni``): the question's frames through LLaMA-Omni's adapter, the text
  greedily, its units streamed from the CTC decoder (``speechlm.generate.omni``).

The spoken answer is vocoded in chunks of ``chunk_units`` as the units are sampled, so the
time to first audio (from the call to the first chunk's samples) is what a streaming client
would wait. ``context`` puts earlier turns (ids, e.g. COSMIC's in-context examples) before the
question.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from speechlm.errors import ConfigError, SpeechLMError

OMNI, SPECTRON = "omni", "spectron"
MODES = ("chain", "direct", OMNI, SPECTRON)
OWN_MODES = (OMNI, SPECTRON)  # modes of their own architecture
CHAIN_FORMATS = ("speechgpt_chain", "speechgpt_text_qa")


@dataclass
class ChatReply:
    """What the model answered: its transcript of the question (chain), the text answer, the
    spoken answer's units and audio, and timings."""

    mode: str
    question_text: str = ""
    text: str = ""
    units: list[int] = field(default_factory=list)
    audio: np.ndarray | None = None
    sample_rate: int = 0
    time_to_first_audio_s: float | None = None
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        """A JSON-able summary (no audio samples)."""
        return {"mode": self.mode, "question_text": self.question_text, "text": self.text,
                "units": len(self.units), "audio_seconds": round(
                    len(self.audio) / self.sample_rate, 3) if self.audio is not None else 0.0,
                "time_to_first_audio_s": None if self.time_to_first_audio_s is None
                else round(self.time_to_first_audio_s, 4), "seconds": round(self.seconds, 4)}


def default_mode(lm: Any) -> str:
    """``omni`` for a LLaMA-Omni model; ``chain`` if the model was fine-tuned on
    chain-of-modality data, else ``direct``."""
    if lm.architecture.name in OWN_MODES:
        return lm.architecture.name
    formats = set(lm.meta.get("formats") or {})
    if formats & set(CHAIN_FORMATS):
        return "chain"
    if "speechgpt_direct" in formats:
        return "direct"
    raise ConfigError(f"{lm.dir}: not a SpeechGPT-style model (trained on formats "
                      f"{sorted(formats) or 'unknown'}); fine-tune one with the speechgpt "
                      "recipe")


class _Voice:
    """Vocodes units in chunks of ``chunk_units`` as they arrive (``finish`` speaks the rest)
    and notes when the first audio was ready."""

    def __init__(self, vocoder: Any, frame_rate: float, chunk_units: int, start: float,
                 on_audio: Callable[[np.ndarray], None] | None) -> None:
        self.vocoder, self.frame_rate, self.chunk = vocoder, frame_rate, max(1, chunk_units)
        self.start, self.on_audio = start, on_audio
        self.pending: list[int] = []
        self.chunks: list[np.ndarray] = []
        self.first: float | None = None

    def add(self, units: Sequence[int]) -> None:
        self.pending += units
        while len(self.pending) >= self.chunk:
            self._speak(self.pending[:self.chunk])
            self.pending = self.pending[self.chunk:]

    def _speak(self, units: list[int]) -> None:
        from speechlm.tokenizers.streams import Streams

        if self.vocoder is None:
            return
        wav = np.asarray(self.vocoder.synthesize(Streams(self.frame_rate,
                                                         units=np.asarray(units))), np.float32)
        if self.first is None and len(wav):
            self.first = time.perf_counter() - self.start
        self.chunks.append(wav)
        if self.on_audio is not None:
            self.on_audio(wav)

    def finish(self, out: ChatReply) -> None:
        """Speak what is pending and put the audio and its timing into ``out``."""
        if self.pending:
            self._speak(self.pending)
            self.pending = []
        if self.vocoder is not None:
            out.sample_rate = int(self.vocoder.sample_rate)
            out.audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
            out.time_to_first_audio_s = self.first


class _Decoder:
    """Greedy or sampled decoding of a causal LM with its KV cache, fed part by part."""

    def __init__(self, model: Any, ids: Sequence[int], limit: int, seed: int) -> None:
        self.model, self.limit, self.n = model, limit, 0
        self.ids: list[int] = []  # everything read so far
        self.cache: Any = None
        self.logits: Any = None
        self.generator = __import__("torch").Generator().manual_seed(seed)
        self.feed(ids)

    def feed(self, ids: Sequence[int]) -> None:
        import torch

        if self.n + len(ids) > self.limit:
            raise SpeechLMError(f"the conversation needs more than the model's context of "
                                f"{self.limit} tokens; give a shorter question or fewer "
                                "examples")
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([list(ids)]), cache=self.cache,
                             use_cache=True)
        self.cache, self.logits, self.n = out.cache, out.logits[0, -1], self.n + len(ids)
        self.ids += ids

    def room(self) -> int:
        return self.limit - self.n

    def step(self, allowed: Any, temperature: float = 0.0, top_k: int = 0) -> int:
        """One id among ``allowed`` (bool mask): the best (``temperature`` 0), or a draw."""
        from speechlm.models.multistream import sample

        logits = self.logits.float().masked_fill(~allowed, float("-inf"))
        if temperature > 0:
            tok = int(sample(logits[None], temperature, self.generator, top_k)[0])
        else:
            tok = int(logits.argmax())
        self.feed([tok])
        return tok


def _mask(size: int, ids: Sequence[int] | range) -> Any:
    import torch

    m = torch.zeros(size, dtype=torch.bool)
    m[list(ids) if not isinstance(ids, range) else slice(ids.start, ids.stop)] = True
    return m


def reply(lm: Any, audio: np.ndarray | None = None, sample_rate: int = 0,
          text: str | None = None, mode: str | None = None, max_text_tokens: int = 48,
          max_seconds: float = 6.0, min_seconds: float = 0.3, temperature: float = 0.8,
          top_k: int = 20, seed: int = 0, vocoder: Any = None, speak: bool = True,
          chunk_units: int = 10, context: Sequence[int] = (),
          on_audio: Callable[[np.ndarray], None] | None = None) -> ChatReply:
    """Answer a spoken (``audio`` at ``sample_rate``) or written (``text``) question.

    The text parts are greedy; the spoken answer's units are drawn at ``temperature`` after
    ``top_k`` filtering (``temperature`` 0: greedy). ``speak=False`` skips the vocoder.
    """
    from speechlm.generate.continuation import check_waveform, resolve_vocoder
    from speechlm.models.modeling_spectron import SPEC
    from speechlm.sequences import speechgpt as sg

    start = time.perf_counter()
    mode = mode or default_mode(lm)
    if mode not in MODES:
        raise ConfigError(f"mode: one of {', '.join(MODES)}, got {mode!r}")
    if (audio is None) == (text is None):
        raise ConfigError("give the question as audio or as text (exactly one)")
    if (mode in OWN_MODES or lm.architecture.name in OWN_MODES) \
            and mode != lm.architecture.name:
        raise ConfigError(f"mode {mode}: the model is a {lm.architecture.name} model")
    if mode == OMNI:
        return _omni_reply(lm, audio, sample_rate, text, max_text_tokens, speak, vocoder,
                           chunk_units, on_audio, start)
    vocab = lm.vocab
    tok = lm.speech_tokenizer
    if audio is not None:
        streams = tok.encode([check_waveform(audio, "question")], sample_rate)[0]
        if streams.units is None or len(streams.units) == 0:
            raise SpeechLMError("question: too short to tokenise; record at least a word")
        human = sg.human_speech(vocab, streams.units)
        units_per_s = len(streams.units) / max(len(audio) / sample_rate, 1e-3)
        start_ids = [vocab.marker(sg.SOSP if mode == "direct" else sg.TQ)]
    else:
        if mode == "direct":
            raise ConfigError("mode direct answers speech with speech; a written question "
                              "needs a chain model")
        if not text.strip():
            raise ConfigError("text: the question is empty")
        human = vocab.text_to_ids(text.strip().lower())
        units_per_s = tok.frame_rate / 2  # a de-duplicated stream: about half the frames
        start_ids = [vocab.marker(sg.TA)]
    # Spectron's text comes from its LM; its spectrogram head continues after [SPEC]
    text_lm = lm.model.lm if mode == SPECTRON else lm.model
    limit = int(getattr(text_lm.config, "max_position_embeddings", 0) or 2048)
    dec = _Decoder(text_lm, [*context, *sg.prompt_ids(vocab, human, start_ids)], limit, seed)
    out = ChatReply(mode=mode, question_text=text.strip().lower() if text else "")
    size = text_lm.config.vocab_size
    m = vocab.marker
    text_ids = [i for i in range(vocab.layout.n_text)
                if i not in (vocab.bos_id, vocab.eos_id, vocab.pad_id)]

    def write_text(until: str) -> str:
        allowed, got = _mask(size, [*text_ids, m(until)]), []
        for _ in range(min(max_text_tokens, dec.room() - 1)):
            t = dec.step(allowed)
            if t == m(until):
                break
            got.append(t)
        else:
            dec.feed([m(until)])
        return vocab.tokenizer.decode(got, skip_special_tokens=True).strip()

    if start_ids == [m(sg.TQ)]:
        out.question_text = write_text(sg.TA)
    if mode == SPECTRON:
        out.text = write_text(SPEC)
        _speak_spectrogram(lm, dec.ids, max_seconds, speak, out, start)
        return out
    if mode == "chain":
        out.text = write_text(sg.UA)
        dec.feed([m(sg.SOSP)])
    # the spoken answer: unit ids until <eosp>, which may not come before min_seconds
    offset, n_units = vocab.unit_offset, vocab.n_units
    units_only = _mask(size, range(offset, offset + n_units))
    units_or_end = units_only | _mask(size, [m(sg.EOSP)])
    max_units = max(1, min(int(max_seconds * units_per_s), dec.room() - 1))
    min_units = int(min_seconds * units_per_s)
    voice = _Voice(resolve_vocoder(lm, vocoder) if speak else None, tok.frame_rate,
                   chunk_units, start, on_audio)
    for _ in range(max_units):
        t = dec.step(units_only if len(out.units) < min_units else units_or_end,
                     temperature, top_k)
        if t == m(sg.EOSP):
            break
        out.units.append(t - offset)
        voice.add([t - offset])
    voice.finish(out)
    out.seconds = time.perf_counter() - start
    return out


def _speak_spectrogram(lm: Any, ids: list[int], max_seconds: float, speak: bool,
                       out: ChatReply, start: float) -> None:
    """Spectron: log-mel frames after the text (``ids``, ending in ``[SPEC]``), then
    Griffin-Lim. Not streamed: the phase is estimated over the whole spectrogram."""
    from speechlm.generate.spectron import continue_spectrogram, griffin_lim
    from speechlm.train.spectron import mel_frontend

    if speak:
        mel = mel_frontend(lm.meta["spectron"]["mel"])
        frames = continue_spectrogram(lm.model, ids, max_frames=max(1, int(
            max_seconds * mel.frame_rate)))
        out.audio = griffin_lim(frames, frontend=mel)
        out.sample_rate = mel.sample_rate
        out.time_to_first_audio_s = time.perf_counter() - start
    out.seconds = time.perf_counter() - start


def _omni_reply(lm: Any, audio: np.ndarray | None, sample_rate: int, text: str | None,
                max_text_tokens: int, speak: bool, vocoder: Any, chunk_units: int,
                on_audio: Callable[[np.ndarray], None] | None, start: float) -> ChatReply:
    """LLaMA-Omni: the speech encoder's frames through the adapter, the text answer greedily,
    its units from the CTC decoder as the text is written, vocoded in chunks."""
    from speechlm.generate.continuation import check_waveform, resolve_vocoder
    from speechlm.generate.omni import answer
    from speechlm.train.omni import FEATURES, UNITS

    feats = None
    if audio is not None:
        feats = lm.tokenizer(FEATURES).encode([check_waveform(audio, "question")],
                                              sample_rate)[0].feats
    elif not text.strip():
        raise ConfigError("text: the question is empty")
    units_tok = lm.tokenizer(UNITS if UNITS in lm.meta.get("tokenizers", {}) else "speech")
    voice = _Voice(resolve_vocoder(lm, vocoder) if speak else None, units_tok.frame_rate,
                   chunk_units, start, None if on_audio is None else on_audio)
    res = answer(lm.model, lm.vocab, feats=feats,
                 question=None if text is None else text.strip().lower(),
                 max_new_tokens=max_text_tokens, on_units=voice.add)
    out = ChatReply(mode=OMNI, question_text=text.strip().lower() if text else "",
                    text=res["text"], units=list(res["units"]))
    voice.finish(out)
    out.seconds = time.perf_counter() - start
    return out
