"""libespeak-ng (from the ``espeakng-loader`` wheel) driven through ctypes, with gold alignments.

``Espeak`` synthesises text (or ``[[...]]`` phoneme mnemonics) in synchronous mode; its synth
callback collects the samples and the WORD and PHONEME events, which give every word's and
phone's start sample. Word ends are the end of the word's last non-pause phone (so pauses
between words are not counted inside words). Audio is resampled from espeak's 22050 Hz to the
requested rate with ``soxr``.

The library keeps global state, so use one ``Espeak`` per process (``Espeak.get()``). Its
output depends slightly on what it said before in the same process (not reset by
re-initialising), and it draws voice roughness from the C ``rand()``: ``speak(seed=...)`` seeds
that, and callers that need identical bytes run a fixed sequence of calls in a fresh process
(see ``speechlm.corpus.synth``).
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass

import numpy as np
import soxr

from speechlm.errors import SpeechLMError

# espeak_AUDIO_OUTPUT / initialise options / espeak_PARAMETER / synth flags (speak_lib.h)
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
RATE, VOLUME, PITCH, RANGE, WORDGAP = 1, 2, 3, 4, 7
CHARS_UTF8 = 1
PHONEMES = 0x100  # allow [[...]] phoneme input
ENDPAUSE = 0x1000
POS_CHARACTER = 1
EVENT_WORD, EVENT_PHONEME = 1, 7
ESPEAK_RATE = 22050
PAUSE_PHONES = {"_", "_:", "_!", "_;", "_^_", "||", "|"}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass
class Spoken:
    """One synthesised utterance: audio plus word and phone alignments in seconds."""

    wav: np.ndarray  # float32, mono, at ``sample_rate``
    sample_rate: int
    words: list[tuple[str, float, float]]
    phones: list[tuple[str, float, float]]

    @property
    def duration(self) -> float:
        return len(self.wav) / self.sample_rate


class Espeak:
    """A process-wide handle on libespeak-ng; ``speak`` returns audio with alignments."""

    _instance: Espeak | None = None

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.libc = ctypes.CDLL(None)  # espeak draws noise from the process-wide rand()
        data = espeakng_loader.get_data_path().encode()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        rate = self.lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, data, INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise SpeechLMError(f"espeak-ng failed to initialise with data at {data.decode()}")
        self.rate = rate
        self._samples: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                                   ctypes.c_int]
        self._voice: str | None = None
        self._counts: dict[str, int] = {}

    @classmethod
    def get(cls) -> Espeak:
        """The per-process instance (initialised on first use)."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _on_synth(self, wav, n, events) -> int:
        if n > 0:
            self._samples.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            e = events[i]
            label = e.id.string.decode("ascii", "replace") if e.type == EVENT_PHONEME else ""
            self._events.append((e.type, e.sample, e.text_position, e.length, label))
            i += 1
        return 0

    def set_voice(self, voice: str) -> None:
        """Select a voice such as ``en-us+m3`` (language + variant under voices/!v)."""
        if voice != self._voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise SpeechLMError(f"espeak-ng has no voice '{voice}'")
            self._voice = voice

    def phonemes(self, text: str) -> str:
        """espeak's phoneme mnemonics for ``text`` in the current voice (stress marks kept;
        ``en-us`` if none was chosen: libespeak-ng crashes the process without one)."""
        if self._voice is None:
            self.set_voice("en-us")
        buf = ctypes.c_char_p(text.encode())
        parts = []
        while buf.value:
            out = self.lib.espeak_TextToPhonemes(ctypes.byref(buf), CHARS_UTF8, 0)
            if out:
                parts.append(out.decode().strip())
        return " ".join(parts)

    def phone_count(self, word: str) -> int:
        """How many phones espeak speaks for ``word`` alone (cached; splits merged words)."""
        if word not in self._counts:
            saved = self._samples, self._events
            self._samples, self._events = [], []
            data = word.encode() + b"\0"
            self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8 | PHONEMES,
                                  None, None)
            self._counts[word] = sum(1 for e in self._events
                                     if e[0] == EVENT_PHONEME and e[4] not in PAUSE_PHONES)
            self._samples, self._events = saved
        return self._counts[word]

    def speak(self, text: str, voice: str, rate: int = 175, pitch: int = 50,
              sample_rate: int = 16000, seed: int = 0, range: int = 50, volume: int = 100,
              wordgap: int = 0) -> Spoken:
        """Synthesise ``text`` (``[[...]]`` spans are phoneme mnemonics) with alignments.

        ``rate`` is in words per minute; ``pitch`` and ``range`` (0 is monotone) on espeak's
        0-100 scale, relative to the voice's own pitch; ``volume`` 0-200 (espeak clips its int16
        output, so loud settings saturate rather than overflow); ``wordgap`` adds pauses between
        words in units of 10 ms. The defaults are libespeak-ng's own (``param_defaults``), so a
        call without them sounds as espeak does out of the box.

        ``seed`` seeds the C library's ``rand()``, which espeak uses for voice roughness and
        noise, so the same call gives the same samples.

        Words are labelled with the whitespace-separated tokens of ``text`` (punctuation
        stripped); a mismatch between those and espeak's word events raises ``SpeechLMError``.
        """
        self.set_voice(voice)
        self.lib.espeak_SetParameter(RATE, int(rate), 0)
        self.lib.espeak_SetParameter(PITCH, int(pitch), 0)
        # set on every call: parameters persist in the library, so a styled utterance would
        # otherwise leak its delivery into the next one
        self.lib.espeak_SetParameter(RANGE, int(range), 0)
        self.lib.espeak_SetParameter(VOLUME, int(volume), 0)
        self.lib.espeak_SetParameter(WORDGAP, int(wordgap), 0)
        self._samples, self._events = [], []
        self.libc.srand(ctypes.c_uint(seed))
        data = text.encode() + b"\0"
        flags = CHARS_UTF8 | PHONEMES | ENDPAUSE
        err = self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, flags, None, None)
        if err != 0:
            raise SpeechLMError(f"espeak-ng failed ({err}) on text {text!r}")
        raw = np.concatenate(self._samples) if self._samples else np.zeros(0, np.int16)
        wav = raw.astype(np.float32) / 32768.0
        if sample_rate != self.rate:
            wav = soxr.resample(wav, self.rate, sample_rate, quality="HQ").astype(np.float32)
        words, phones = _alignments(self._events, len(raw), text, self.phone_count)
        scale = 1.0 / self.rate
        dur = len(wav) / sample_rate
        return Spoken(
            wav=wav, sample_rate=sample_rate,
            words=[(w, round(min(s * scale, dur), 4), round(min(e * scale, dur), 4))
                   for w, s, e in words],
            phones=[(p, round(min(s * scale, dur), 4), round(min(e * scale, dur), 4))
                    for p, s, e in phones],
        )


def _alignments(events, n_samples: int, text: str, phone_count):
    """Turn espeak events into (label, start_sample, end_sample) words and phones.

    A phone lasts until the next phone event. A word starts at its WORD event and ends where its
    last non-pause phone ends (phone events carry the word's text position), clipped to the next
    word's start, so pauses between words stay outside words. espeak speaks some function-word
    pairs ("in the") as one word: their phones are shared out by each word's own phone count
    (``phone_count(word)``).
    """
    phone_ev = [(s, pos, lab) for typ, s, pos, _, lab in events if typ == EVENT_PHONEME]
    phones, phone_pos = [], []
    for i, (s, pos, lab) in enumerate(phone_ev):
        e = phone_ev[i + 1][0] if i + 1 < len(phone_ev) else n_samples
        if e > s:
            phones.append((lab, s, e))
            phone_pos.append(pos)
    spans = [(m.start() + 1, m.end(), _clean(m.group())) for m in re.finditer(r"\S+", text)]
    spans = [sp for sp in spans if sp[2]]

    def token_of(pos: int) -> int | None:
        return next((k for k, (a, b, _) in enumerate(spans) if a <= pos <= b), None)

    first_event: dict[int, int] = {}  # token index -> sample of its first WORD event
    for typ, sample, pos, _, _ in events:
        k = token_of(pos) if typ == EVENT_WORD else None
        if k is not None and k not in first_event:
            first_event[k] = sample
    if 0 not in first_event:
        raise SpeechLMError(f"espeak-ng gave no word event for the first word of {text!r}")
    groups: list[tuple[int, list[int]]] = []  # (start sample, token indices spoken as one)
    for k in range(len(spans)):
        if k in first_event:
            groups.append((first_event[k], [k]))
        else:  # no event of its own: espeak spoke it merged with the previous word
            groups[-1][1].append(k)
    phone_tok = [token_of(pos) for pos in phone_pos]
    words = []
    for gi, (s, members) in enumerate(groups):
        nxt = groups[gi + 1][0] if gi + 1 < len(groups) else n_samples
        labels = [spans[k][2] for k in members]
        mine = [p for p, k in zip(phones, phone_tok, strict=True)
                if k in members and p[0] not in PAUSE_PHONES]
        if len(labels) == 1:
            e = mine[-1][2] if mine else nxt
            words.append((labels[0], s, max(min(e, nxt), s)))
            continue
        counts = np.array([max(1, phone_count(w)) for w in labels], dtype=float)
        cuts = np.round(np.cumsum(counts) / counts.sum() * len(mine)).astype(int)
        first = 0
        for j, (label, cut) in enumerate(zip(labels, cuts, strict=True)):
            part = mine[first:max(cut, first + 1)] if first < len(mine) else []
            start = s if j == 0 else (part[0][1] if part else words[-1][2])
            end = part[-1][2] if part else start
            words.append((label, start, max(min(end, nxt), start)))
            first = max(cut, first + 1)
    return words, phones


def _clean(token: str) -> str:
    if token.startswith("[["):
        return token
    return token.strip(".,;:!?\"'").lower()
