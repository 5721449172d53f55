"""Full-duplex interaction scenarios: what an assistant hears and what it says (LSLM, Moshi, VITA).

``synthesize_duplex`` writes ``out_dir/audio/<id>.wav`` (16 kHz, 16-bit, stereo: channel 0 is
what the assistant's microphone hears, the user, other people and noise; channel 1 is the
assistant's own speech), ``out_dir/scenarios.jsonl`` (one scenario per line, each with its
``split``) and ``out_dir/summary.json``. Each scenario lasts about 6-15 s, with 0.3-1.0 s of
silence before the first sound and 0.5-1.0 s after the last. Kinds (``ALL_KINDS``):

- ``query``: the user asks a question (an instruction item's prompt, a context sentence and a
  question); a gap after the user's last word (gamma, mean 0.35 s, clipped to 0.1-1.0 s) the
  assistant says the item's response.
- ``interrupt``: a query answered at length (the response and one or two more sentences of the
  story, >= 3 s); the user cuts in at least 0.8 s after the answer's onset and 1 s before its
  end, and the assistant stops a reaction time (0.15-0.35 s) after the user's onset, its audio
  faded out over 10 ms. Subkind ``command`` ("stop.", "wait." ...: it stays silent) or
  ``question`` (another query, answered a gap after it ends).
- ``nonquery``: speech not addressed to the assistant, which must stay silent (VITA): subkind
  ``statement`` (the user says one or two declarative sentences), ``sidetalk`` (two other people
  exchange 2-4 short turns, 2-3 when a query follows) or ``noise`` (one or two 1-3 s bursts of
  white, pink or brown noise or babble at -35 to -15 dBFS; espeak's speech is about -20 dBFS).
  Every other such scenario then goes on with a query the assistant answers.
- ``backchannel`` (Moshi): the user tells 3-5 sentences of a story with 0.4-1.0 s pauses; in
  about 60% of the pauses the assistant says "mm-hmm", "yeah" or "right" 0.1-0.3 s into it (the
  pause is lengthened where needed so that it ends 0.1 s before the user goes on); a gap after
  the story it reacts ("okay.", "i see.", "oh.").

Kinds take turns (scenario ``i`` is ``kinds[i % len(kinds)]``) and so do subkinds and whether a
non-query goes on with a query, so even a small set holds every combination. A scenario whose
own content would last under ``MIN_SECONDS`` (estimated from its word counts) opens with a
query and its answer. Three scenarios in ten have a noise floor on channel 0 (white, pink or
brown, 20-40 dB below the speech heard there, or below -20 dBFS when only noise is).

Splits: ``train`` scenarios are spoken by the training voices whose gold word times are their
voice activity (``dialogue.DIALOGUE_VOICES``); ``valid`` and ``test`` by ``HELDOUT_VOICES`` only.
Queries are ``instruction_items`` of the split of the same name (fixed pools per seed), so the
stories asked about in valid and test never occur in train; statements, side talk, babble and
the told stories come from the same grammar in every split. The assistant always speaks with
``ASSISTANT`` (espeak's plain en-us voice, used by no split).

As in ``speechlm.corpus.dialogue``, everything random is drawn in the parent from ``(seed,
split, index)`` and each scenario is spoken in a fresh process, so a scenario is the same
whatever the worker count and the other counts; ``scenarios.partial.jsonl`` lets an interrupted
run resume; a folder made with other settings is refused.

A record (see ``read_scenarios``; times in seconds from the start of the scenario)::

    {"id", "split", "kind", "subkind" (or null), "audio": "audio/<id>.wav", "duration",
     "sample_rate": 16000, "noise_floor": null | {"color", "snr_db"},
     "user": [{"start", "end", "text", "kind": "query" | "command" | "statement" | "sidetalk"
               | "noise" | "story", "addressed", "speaker": voice or null,
               "words": [[w, s, e], ...]}],
     "assistant": [{"start", "end", "text", "kind": "answer" | "backchannel" | "reaction",
                    "interrupted", "words": [[w, s, e], ...]}],
     "states": [{"time", "token": "answer" | "silent" | "irq" | "backchannel"}]}

``user`` entries are channel 0 in time order; a noise burst has ``text`` "", no words and
``noise`` (its colour) and ``level_db``. An interrupted answer ends at the cut; its ``text`` is
the words said (``planned`` holds the whole answer) and its words are those that started
before the cut, the last one ending at the cut at the latest. ``states`` are the assistant's
decision points: ``answer`` at each answer or reaction onset, ``backchannel`` at each
backchannel onset, ``irq`` at each cut, ``silent`` where an answer would have started after a
non-query segment (its end plus a gap as an answer's; after side talk: after the exchange).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.corpus import lexicon as lx
from speechlm.corpus.dialogue import (
    BACKCHANNELS,
    DIALOGUE_VOICES,
    FADE,
    GAP_SCALE,
    GAP_SHAPE,
    REACTIONS,
    Piece,
    _place,
    _write_records,
    question,
)
from speechlm.corpus.fresh import FreshProcesses
from speechlm.corpus.grammar import STORIES, Grammar, story_ending, words_of
from speechlm.corpus.instructions import QUESTIONS, instruction_items
from speechlm.corpus.synth import (
    HELDOUT_VOICES,
    PITCH_RANGE,
    RATE_RANGE,
    SAMPLE_RATE,
)
from speechlm.errors import ConfigError, ManifestError

logger = logging.getLogger("speechlm")

ALL_KINDS = ("query", "interrupt", "nonquery", "backchannel")
SUBKINDS: dict[str, tuple[str | None, ...]] = {
    "query": (None,), "interrupt": ("command", "question"),
    "nonquery": ("statement", "sidetalk", "noise"), "backchannel": (None,)}
SPLITS = ("train", "valid", "test")
SPLIT_VOICES = {"train": DIALOGUE_VOICES, "valid": HELDOUT_VOICES, "test": HELDOUT_VOICES}
# voice, rate, pitch: one product voice, in no split's list and not one of the
# TRAILING_VOICES, so its gold word ends are where its sound ends (measured: within 6 ms)
ASSISTANT = ("en-us", 175, 50)
# drawn from per seed, whatever the counts: a scenario does not depend on how many are made
QA_POOL = {"train": 4000, "valid": 400, "test": 400}

COMMANDS = ("stop.", "wait.", "hold on.", "stop please.")
DUPLEX_BACKCHANNELS = tuple(b for b in BACKCHANNELS if b != "okay")  # okay is a reaction here
DUPLEX_REACTIONS = tuple(r for r in REACTIONS if r != "right.")  # right is a backchannel here
LEAD_RANGE, TAIL_RANGE = (0.3, 1.0), (0.5, 1.0)
ANSWER_GAP_SCALE = 0.175  # gamma(GAP_SHAPE, this): mean 0.35 s, mode 0.175 s
ANSWER_GAP_RANGE = (0.1, 1.0)
SIDETALK_GAP_RANGE = (0.05, 1.0)  # the other people's gaps: dialogue's gamma, clipped
FOLLOW_PAUSE = (0.3, 1.0)  # after a non-query's "silent" point, before the user's query
LONG_ANSWER_WORDS = 12  # a long answer adds story sentences until it has this many words
CUT_AFTER_ONSET, CUT_BEFORE_END = 0.8, 1.0  # where the user may cut into a long answer
REACTION_RANGE = (0.15, 0.35)  # the assistant stops this long after the user's onset
STORY_SENTENCES = (3, 6)  # integers() range: 3-5 sentences
STORY_PAUSE = (0.4, 1.0)
BACKCHANNEL_P, BACKCHANNEL_DELAY = 0.6, (0.1, 0.3)
# a backchannel ends this long before the user resumes (the pause is lengthened for it: with
# ASSISTANT's "mm-hmm", 0.57 s, it stays under 0.3 + 0.57 + 0.1 < 1.0 s)
BACKCHANNEL_CLEAR = 0.1
SIDETALK_TURNS = (2, 5)  # integers() range: 2-4 turns (2-3 when a query follows)
MIN_SECONDS = 6.0  # a scenario estimated shorter opens with a query and its answer
OPENING_PAUSE = (0.5, 1.5)  # from the end of that answer to the scenario's own first segment
SECONDS_PER_WORD = 0.83  # espeak's words last this x 60 / rate (mean over 60 scenarios' texts)
NOISE_COLORS = ("white", "pink", "brown", "babble")
BURSTS, BURST_SECONDS, BURST_LEVEL_DB = (1, 3), (1.0, 3.0), (-35.0, -15.0)  # 1-2 bursts
BABBLE_VOICES, BURST_FADE = 4, 0.02
FLOOR_P, FLOOR_SNR_DB = 0.3, (20.0, 40.0)
SPEECH_LEVEL_DB = -20.0  # espeak's speech level, the floor's reference when no one speaks


# -- the plan ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Say:
    """An utterance: its text, who says it (voice, rate, pitch) and espeak's rand() seed."""

    text: str
    voice: str
    rate: int
    pitch: int
    seed: int


@dataclass(frozen=True)
class Noise:
    """A burst of noise of ``seconds`` at ``level_db`` dBFS RMS; babble mixes ``babble``."""

    color: str
    seconds: float
    level_db: float
    seed: int
    babble: tuple[Say, ...] = ()


@dataclass(frozen=True)
class Step:
    """One segment of a scenario on ``channel`` (0: heard, 1: the assistant's).

    It starts ``delay`` s after the end of step ``after`` (-1: the end of the lead-in silence)
    and, with ``waits``, at least ``BACKCHANNEL_CLEAR`` after step ``waits`` ends. With
    ``cut_in = (where, reaction)`` it cuts into assistant step ``after`` instead: its onset is
    ``where`` (0-1) into the allowed window and ``after`` stops ``reaction`` s later.
    ``silent_gap`` marks a non-query segment: a "silent" state that long after its end.
    """

    channel: int
    kind: str
    source: Say | Noise
    after: int = -1
    delay: float = 0.0
    addressed: bool = True
    waits: int | None = None
    cut_in: tuple[float, float] | None = None
    silent_gap: float | None = None


@dataclass(frozen=True)
class ScenarioPlan:
    """Everything one scenario's audio depends on."""

    id: str
    split: str
    kind: str
    subkind: str | None
    lead: float
    tail: float
    steps: tuple[Step, ...]
    floor: tuple[str, float, int] | None  # noise floor: colour, SNR in dB, seed


@functools.lru_cache(maxsize=4)
def qa_pools(seed: int) -> dict[str, list[dict]]:
    """The instruction items queries are drawn from, per split (held-out stories in valid and
    test; see ``instruction_items``)."""
    return instruction_items(QA_POOL["train"], QA_POOL["valid"], QA_POOL["test"], seed)


def _template_regex(template: str) -> re.Pattern:
    """A regex matching ``template`` with its ``{slot}``s as named groups (repeats must agree)."""
    pattern, seen = re.escape(template), set()
    for slot in re.findall(r"\{(\w+)\}", template):
        pattern = pattern.replace(re.escape("{" + slot + "}"),
                                  rf"(?P={slot})" if slot in seen else rf"(?P<{slot}>\w+)", 1)
        seen.add(slot)
    return re.compile(pattern)


def story_rest(item: dict, g: Grammar) -> list[str]:
    """The sentences of an instruction item's story that its context does not tell, in order,
    with the item's fillers (read back from its text) and fresh ones for slots it never names."""
    text = f"{item['prompt']} {item['response']}"
    context, ending = STORIES[item["scenario"]]
    for q in QUESTIONS:
        if q.scenario != item["scenario"] or q.qtype != item["qtype"]:
            continue
        told = " ".join(context[i].replace("{he}", "{name}") for i in q.sentences)
        if m := _template_regex(f"{told} {q.question} {q.response}").fullmatch(text):
            he = dict(lx.NAMES)[item["name"]]
            slots = {**g.story_slots(), **m.groupdict(), "he": he,
                     "his": "his" if he == "he" else "her"}
            return [s.format(**slots) for i, s in enumerate(context) if i not in q.sentences] \
                + [story_ending(item["scenario"], slots)]
    raise ValueError(f"instruction item {item['id']} matches none of its questions")


class _Planner:
    """Draws one scenario's steps; every draw comes from the scenario's own generators."""

    def __init__(self, seed: int, split: str, index: int):
        s = SPLITS.index(split)
        self.rng = np.random.default_rng([seed, 53, s, index])
        self.g = Grammar(np.random.default_rng([seed, 54, s, index]))
        self.pool = qa_pools(seed)[split]
        self.voices = SPLIT_VOICES[split]
        order = self.rng.permutation(len(self.voices))[:3]
        # the user and two other people (side talk)
        self.user, self.other_a, self.other_b = (self.person(self.voices[int(k)]) for k in order)
        self.steps: list[Step] = []

    def person(self, voice: str) -> tuple[str, int, int]:
        return voice, int(self.rng.integers(*RATE_RANGE)), int(self.rng.integers(*PITCH_RANGE))

    def say(self, who: tuple[str, int, int], text: str) -> Say:
        return Say(text, *who, seed=int(self.rng.integers(2**31)))

    def add(self, step: Step) -> int:
        self.steps.append(step)
        return len(self.steps) - 1

    def gap(self) -> float:
        return float(np.clip(self.rng.gamma(GAP_SHAPE, ANSWER_GAP_SCALE), *ANSWER_GAP_RANGE))

    def uniform(self, bounds: tuple[float, float]) -> float:
        return float(self.rng.uniform(*bounds))

    def pick(self, options: Sequence):
        return options[int(self.rng.integers(len(options)))]

    def item(self, avoid: dict | None = None) -> dict:
        while (item := self.pick(self.pool)) is avoid:
            pass
        return item


def _query(p: _Planner, after: int = -1, delay: float = 0.0) -> int:
    """The user asks, the assistant answers a gap later; returns the query's step."""
    item = p.item()
    q = p.add(Step(0, "query", p.say(p.user, item["prompt"]), after, delay))
    p.add(Step(1, "answer", p.say(ASSISTANT, item["response"]), q, p.gap()))
    return q


def _interrupt(p: _Planner, subkind: str) -> None:
    item = p.item()
    q = p.add(Step(0, "query", p.say(p.user, item["prompt"]), -1))
    rest = story_rest(item, p.g)
    start = int(p.rng.integers(len(rest)))
    said = [item["response"]]
    for sentence in rest[start:] + rest[:start]:  # one or two: until the answer is long
        said.append(sentence)
        if len(said) == 3 or sum(len(s.split()) for s in said) >= LONG_ANSWER_WORDS:
            break
    a = p.add(Step(1, "answer", p.say(ASSISTANT, " ".join(said)), q, p.gap()))
    cut = (p.uniform((0.0, 1.0)), p.uniform(REACTION_RANGE))
    if subkind == "command":
        p.add(Step(0, "command", p.say(p.user, p.pick(COMMANDS)), a, cut_in=cut))
        return
    second = p.item(avoid=item)
    c = p.add(Step(0, "query", p.say(p.user, second["prompt"]), a, cut_in=cut))
    p.add(Step(1, "answer", p.say(ASSISTANT, second["response"]), c, p.gap()))


def _nonquery(p: _Planner, subkind: str, follow: bool) -> None:
    gap = p.gap()
    if subkind == "statement":
        text = " ".join(p.g.sentence() for _ in range(int(p.rng.integers(1, 3))))
        last = p.add(Step(0, "statement", p.say(p.user, text), addressed=False, silent_gap=gap))
    elif subkind == "sidetalk":
        # with a query after it, at most 3 turns: the scenario stays under about 15 s
        n, turns = int(p.rng.integers(SIDETALK_TURNS[0], SIDETALK_TURNS[1] - follow)), []
        while len(turns) < n:
            if len(turns) + 2 <= n and p.rng.random() < 0.5:
                turns += question(p.g)  # one asks, the other answers
            else:
                turns.append(p.g.sentence())
        last = -1
        for k, text in enumerate(turns):
            gap_k = p.rng.gamma(GAP_SHAPE, GAP_SCALE)
            delay = float(np.clip(gap_k, *SIDETALK_GAP_RANGE)) if k else 0.0
            last = p.add(Step(0, "sidetalk", p.say(p.other_b if k % 2 else p.other_a, text),
                              last, delay, addressed=False,
                              silent_gap=gap if k == n - 1 else None))
    else:
        last = -1
        for k in range(int(p.rng.integers(*BURSTS))):
            color = p.pick(NOISE_COLORS)
            babble = tuple(p.say(p.person(p.pick(p.voices)), f"{p.g.sentence()} {p.g.sentence()}")
                           for _ in range(BABBLE_VOICES)) if color == "babble" else ()
            noise = Noise(color, p.uniform(BURST_SECONDS), p.uniform(BURST_LEVEL_DB),
                          int(p.rng.integers(2**31)), babble)
            # the next burst starts after the previous one's "silent" point
            delay = p.steps[last].silent_gap + p.uniform(FOLLOW_PAUSE) if k else 0.0
            last = p.add(Step(0, "noise", noise, last, delay, addressed=False, silent_gap=gap))
            gap = p.gap()
    if follow:
        _query(p, last, p.steps[last].silent_gap + p.uniform(FOLLOW_PAUSE))


def _backchannel(p: _Planner) -> None:
    context, scenario, slots = p.g.story()
    sentences = [*context, story_ending(scenario, slots)][:int(p.rng.integers(*STORY_SENTENCES))]
    last, back = -1, None
    for k, text in enumerate(sentences):
        pause = p.uniform(STORY_PAUSE) if k else 0.0
        last = p.add(Step(0, "story", p.say(p.user, text), last, pause, waits=back))
        back = None
        if k + 1 < len(sentences) and p.rng.random() < BACKCHANNEL_P:
            back = p.add(Step(1, "backchannel", p.say(ASSISTANT, p.pick(DUPLEX_BACKCHANNELS)
                                                      + "."), last, p.uniform(BACKCHANNEL_DELAY)))
    p.add(Step(1, "reaction", p.say(ASSISTANT, p.pick(DUPLEX_REACTIONS)), last, p.gap()))


def plan_scenario(seed: int, split: str, index: int,
                  kinds: Sequence[str] = ALL_KINDS) -> ScenarioPlan:
    """Scenario ``index`` of ``split`` (drawn from ``(seed, split, index)`` and ``kinds``)."""
    kind = kinds[index % len(kinds)]
    turn = index // len(kinds)  # how many of this kind came before: subkinds take turns
    subkind = SUBKINDS[kind][turn % len(SUBKINDS[kind])]
    p = _Planner(seed, split, index)
    lead, tail = p.uniform(LEAD_RANGE), p.uniform(TAIL_RANGE)
    if kind == "query":
        _query(p)
    elif kind == "interrupt":
        _interrupt(p, subkind)
    elif kind == "nonquery":
        _nonquery(p, subkind, follow=turn % 2 == 1)
    else:
        _backchannel(p)
    plan = ScenarioPlan(f"{split}{index:06d}", split, kind, subkind, lead, tail,
                        tuple(p.steps), None)
    if estimated_duration(plan) < MIN_SECONDS:  # too short: open with a query and its answer
        own, p.steps = p.steps, []
        _query(p)
        pause = p.uniform(OPENING_PAUSE)
        p.steps += [dataclasses.replace(
            s, after=s.after + 2 if s.after >= 0 else 1, delay=s.delay if s.after >= 0 else pause,
            waits=None if s.waits is None else s.waits + 2) for s in own]
    floor = None
    if p.rng.random() < FLOOR_P:
        floor = (p.pick(NOISE_COLORS[:3]), round(p.uniform(FLOOR_SNR_DB), 2),
                 int(p.rng.integers(2**31)))
    return dataclasses.replace(plan, steps=tuple(p.steps), floor=floor)


def estimated_duration(plan: ScenarioPlan) -> float:
    """How long ``plan`` will last, laid out with words of an estimated length."""
    from speechlm.corpus.espeak import Spoken

    def guess(say: Say) -> Spoken:
        d = SECONDS_PER_WORD * 60 / say.rate
        return Spoken(np.zeros(0, np.float32), SAMPLE_RATE,
                      [(w, k * d, (k + 1) * d) for k, w in enumerate(words_of(say.text))], [])

    spoken = {i: [] if isinstance(s.source, Noise) else guess(s.source)
              for i, s in enumerate(plan.steps)}
    return max(seg["end"] for segs in layout(plan, spoken)[1] for seg in segs) + plan.tail


# -- audio: speaking, placing, cutting and mixing ---------------------------------------------
def colored_noise(color: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of white, pink (power ~ 1/f) or brown (1/f^2) noise at unit RMS."""
    x = rng.standard_normal(n)
    if color != "white":
        spec = np.fft.rfft(x)
        f = np.fft.rfftfreq(n)
        f[0] = np.inf  # no DC
        spec /= f ** (0.5 if color == "pink" else 1.0)  # amplitude ~ f^(-alpha/2)
        x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


def _burst(noise: Noise, spoken: list) -> np.ndarray:
    """A noise burst's samples at its level, faded in and out."""
    n = int(round(noise.seconds * SAMPLE_RATE))
    rng = np.random.default_rng([noise.seed, 1])
    if noise.color == "babble":  # the voices, each from a random point of what it says
        x = np.zeros(n, np.float32)
        for s in spoken:
            start = int(rng.integers(max(1, len(s.wav) - n)))
            part = s.wav[start:start + n]
            x[:len(part)] += part
        x /= np.sqrt(np.mean(x ** 2)) + 1e-12
    else:
        x = colored_noise(noise.color, n, rng)
    x *= 10 ** (noise.level_db / 20)
    fade = min(int(BURST_FADE * SAMPLE_RATE), n // 2)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    x[:fade] *= ramp
    x[n - fade:] *= ramp[::-1]
    return x


def _cut(piece: Piece, at: float) -> Piece:
    """A piece stopped at time ``at``: silent from there, faded out over ``FADE`` before it;
    words that started before ``at`` are kept, ending there at the latest."""
    end = max(int(round(at * SAMPLE_RATE)) - piece.offset, 0)
    wav = piece.wav[:end].copy()
    fade = min(int(FADE * SAMPLE_RATE), len(wav))
    wav[len(wav) - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    words = [(w, s, round(min(e, at), 4)) for w, s, e in piece.words if s < at]
    return Piece(piece.channel, piece.offset, wav, words)


def layout(plan: ScenarioPlan, spoken: dict
           ) -> tuple[list[Piece], tuple[list[dict], list[dict]], list[dict]]:
    """Place every step of ``plan`` in time; returns (pieces, segments per channel in time
    order, states).

    ``spoken`` maps a step index to its ``Espeak.speak`` result, or to the list of its babble
    voices' results. Pure: the same plan and audio give the same scenario.
    """
    pieces: list[Piece] = []
    spans: list[tuple[float, float]] = []
    states: list[dict] = []
    for i, step in enumerate(plan.steps):
        if step.cut_in is not None:  # the window is the uncut answer's
            where, reaction = step.cut_in
            words = pieces[step.after].words
            lo, hi = words[0][1] + CUT_AFTER_ONSET, words[-1][2] - CUT_BEFORE_END
            if hi < lo:
                raise ValueError(f"{plan.id}: answer of step {step.after} too short to cut into")
            start = lo + where * (hi - lo)
            cut = round(start + reaction, 4)
            pieces[step.after] = _cut(pieces[step.after], cut)
            spans[step.after] = (spans[step.after][0], cut)
            states.append({"time": cut, "token": "irq"})
        else:
            start = (plan.lead if step.after < 0 else spans[step.after][1]) + step.delay
            if step.waits is not None:
                start = max(start, spans[step.waits][1] + BACKCHANNEL_CLEAR)
        if isinstance(step.source, Noise):
            offset = int(round(start * SAMPLE_RATE))
            wav = _burst(step.source, spoken[i])
            piece = Piece(step.channel, offset, wav, [])
            spans.append((offset / SAMPLE_RATE, (offset + len(wav)) / SAMPLE_RATE))
        else:
            piece = _place(step.channel, spoken[i], start)
            spans.append((piece.words[0][1], piece.words[-1][2]))
        pieces.append(piece)
        if step.channel == 1:
            token = "backchannel" if step.kind == "backchannel" else "answer"
            states.append({"time": spans[-1][0], "token": token})
        if step.silent_gap is not None:
            states.append({"time": spans[-1][1] + step.silent_gap, "token": "silent"})
    segments: tuple[list[dict], list[dict]] = ([], [])  # per channel
    for i, (step, piece, (s, e)) in enumerate(zip(plan.steps, pieces, spans, strict=True)):
        seg: dict = {"start": round(s, 4), "end": round(e, 4)}
        if isinstance(step.source, Noise):
            seg |= {"text": "", "kind": step.kind, "addressed": False, "speaker": None,
                    "noise": step.source.color, "level_db": round(step.source.level_db, 2)}
        elif step.channel == 0:
            seg |= {"text": step.source.text, "kind": step.kind, "addressed": step.addressed,
                    "speaker": step.source.voice}
        else:
            cut = len(piece.words) < len(spoken[i].words)
            seg |= {"text": " ".join(w for w, _, _ in piece.words) if cut else step.source.text,
                    "kind": step.kind, "interrupted": cut}
            if cut:
                seg["planned"] = step.source.text
        seg["words"] = [list(w) for w in piece.words]
        segments[step.channel].append(seg)
    for segs in segments:
        segs.sort(key=lambda seg: seg["start"])
    for st in states:
        st["time"] = round(st["time"], 4)
    states.sort(key=lambda st: (st["time"], st["token"]))
    return pieces, segments, states


def make_scenario(plan: ScenarioPlan, path: str) -> dict:
    """Speak, lay out, mix and write one scenario (call in a fresh process); its record."""
    from speechlm.audio import save_audio
    from speechlm.corpus.espeak import Espeak

    espeak = Espeak.get()

    def speak(say: Say):
        return espeak.speak(say.text, say.voice, say.rate, say.pitch, SAMPLE_RATE, seed=say.seed)

    spoken: dict = {}
    for i, step in enumerate(plan.steps):  # a fixed order: espeak's output depends on it
        src = step.source
        spoken[i] = [speak(s) for s in src.babble] if isinstance(src, Noise) else speak(src)
    pieces, segments, states = layout(plan, spoken)
    last = max(seg["end"] for segs in segments for seg in segs)
    n = int(round((last + plan.tail) * SAMPLE_RATE))
    wav = np.zeros((n, 2), np.float32)
    for p in pieces:  # past ``n`` only espeak's end padding: silence
        part = p.wav[:max(n - p.offset, 0)]
        wav[p.offset:p.offset + len(part), p.channel] += part
    floor = None
    if plan.floor is not None:
        color, snr, seed = plan.floor
        # the user's and other people's level while they speak (espeak's padding left out)
        speech = [p.wav[:int(round(p.words[-1][2] * SAMPLE_RATE)) - p.offset]
                  for p, step in zip(pieces, plan.steps, strict=True)
                  if step.channel == 0 and isinstance(step.source, Say)]
        level = 10 * np.log10(np.mean(np.concatenate(speech) ** 2) + 1e-12) if speech \
            else SPEECH_LEVEL_DB
        wav[:, 0] += colored_noise(color, n, np.random.default_rng([seed, 2])) \
            * 10 ** ((level - snr) / 20)
        floor = {"color": color, "snr_db": snr}
    save_audio(path, wav, SAMPLE_RATE)
    return {
        "id": plan.id, "split": plan.split, "kind": plan.kind, "subkind": plan.subkind,
        "audio": f"audio/{plan.id}.wav", "duration": round(n / SAMPLE_RATE, 4),
        "sample_rate": SAMPLE_RATE, "noise_floor": floor, "user": segments[0],
        "assistant": segments[1], "states": states,
    }


# -- the corpus -------------------------------------------------------------------------------
def check_settings(counts: dict, kinds: Sequence[str], workers: int | None) -> dict[str, int]:
    """Validated counts for every split (missing ones 0); raises ``ConfigError`` naming the
    key."""
    if not isinstance(counts, dict):
        raise ConfigError(f"counts: must map splits to numbers of scenarios, got {counts!r}")
    unknown = [s for s in counts if s not in SPLITS]
    if unknown:
        raise ConfigError(f"counts: unknown split(s) {unknown}; known: {list(SPLITS)}")
    for split, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"counts.{split}: must be an integer >= 0, got {n!r}")
    if not any(counts.values()):
        raise ConfigError(f"counts: no scenario to make, got {counts}")
    if isinstance(kinds, str) or not kinds:
        raise ConfigError(f"kinds: must be a non-empty list of {list(ALL_KINDS)}, got {kinds!r}")
    bad = [k for k in kinds if k not in ALL_KINDS]
    if bad or len(set(kinds)) < len(kinds):
        raise ConfigError(f"kinds: unknown or repeated kind(s) {bad or list(kinds)}; known: "
                          f"{list(ALL_KINDS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ConfigError(f"workers: must be an integer >= 1, got {workers!r}")
    return {split: counts.get(split, 0) for split in SPLITS}


def _differences(old: dict, settings: dict) -> str:
    return ", ".join(f"{k}: {old.get(k)!r} there, {v!r} asked" for k, v in settings.items()
                     if old.get(k) != v)


def _read_partial(path: Path, settings: dict, out: Path, ids: list[str]) -> list[dict]:
    """Records of an interrupted run (in order) whose audio is there; a line cut by the
    interruption ends them. Raises ``ConfigError`` when it was made with other settings."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        head = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        head = None
    if not isinstance(head, dict):  # cut before its settings were written: nothing to keep
        return []
    if head != settings:
        raise ConfigError(f"out_dir: {out} holds an unfinished duplex set made with other "
                          f"settings ({_differences(head, settings)}); finish it with those "
                          "settings, use another folder or delete this one")
    kept: list[dict] = []
    for line, uid in zip(lines[1:], ids, strict=False):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break
        if rec.get("id") != uid or not (out / rec["audio"]).exists():
            break
        kept.append(rec)
    return kept


def synthesize_duplex(out_dir: str | Path, counts: dict[str, int],
                      kinds: Sequence[str] = ALL_KINDS, seed: int = 0,
                      workers: int | None = None, progress: bool = True) -> dict:
    """Make ``counts[split]`` scenarios per split (``train``, ``valid``, ``test``) of ``kinds``
    in ``out_dir`` (see the module doc); returns the summary (also ``summary.json``).

    A finished set with the same settings is returned, not made again; an interrupted one
    resumes after its last finished scenario; a folder made with other settings is refused.
    Workers are ``forkserver`` processes, so a script calling this must guard its top level
    with ``if __name__ == "__main__":``.
    """
    from speechlm.progress import progress_bar

    counts = check_settings(counts, kinds, workers)
    out = Path(out_dir)
    settings = {"kind": "duplex", "counts": counts, "kinds": list(kinds), "seed": seed,
                "assistant": dict(zip(("voice", "rate", "pitch"), ASSISTANT, strict=True)),
                "voices": {"train": list(SPLIT_VOICES["train"]),
                           "heldout": list(HELDOUT_VOICES)}}
    summary_path = out / "summary.json"
    if summary_path.exists():
        old = json.loads(summary_path.read_text())
        if all(old.get(k) == v for k, v in settings.items()):
            return old
        raise ConfigError(f"out_dir: {out} holds a duplex set made with other settings "
                          f"({_differences(old, settings)}); use another folder or delete it")
    keys = [(split, i) for split in SPLITS for i in range(counts[split])]
    partial = out / "scenarios.partial.jsonl"
    records = _read_partial(partial, settings, out, [f"{s}{i:06d}" for s, i in keys])
    (out / "audio").mkdir(parents=True, exist_ok=True)
    with open(partial, "w", encoding="utf-8") as f:  # rewritten: a cut last line is dropped
        f.write(json.dumps(settings) + "\n")
        f.writelines(json.dumps(r) + "\n" for r in records)
    if records:
        logger.info("%s: resuming after %d finished scenario(s)", out, len(records))
    plans = (plan_scenario(seed, split, i, kinds) for split, i in keys[len(records):])
    tasks = ((plan, str(out / "audio" / f"{plan.id}.wav")) for plan in plans)
    # one scenario per fresh process: its audio does not depend on what a worker said before
    with FreshProcesses(workers or min(4, os.cpu_count() or 1),
                        ["speechlm.corpus.duplex", "speechlm.corpus.espeak",
                         "speechlm.audio"]) as pool, \
            progress_bar(total=len(keys), unit="scenario", desc="duplex", leave=False,
                         initial=len(records), disable=not progress) as bar, \
            open(partial, "a", encoding="utf-8") as log:
        for rec in pool.imap(_make, tasks, name=lambda task: f"scenario {task[0].id}"):
            records.append(rec)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            bar.update(1)
    _write_records(out / "scenarios.jsonl", records)
    partial.unlink()
    summary = {"scenarios": len(records),
               "hours": round(sum(r["duration"] for r in records) / 3600, 4),
               "splits": {split: _split_summary([r for r in records if r["split"] == split])
                          for split in SPLITS if counts[split]},
               "sample_rate": SAMPLE_RATE, "channels": 2,
               "noise_floor_snr_db": list(FLOOR_SNR_DB), **settings}
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")  # last: marks a finished set
    return summary


def _make(task: tuple[ScenarioPlan, str]) -> dict:
    return make_scenario(*task)


def _split_summary(records: list[dict]) -> dict:
    """Counts of one split's scenarios per kind and subkind, their hours, states and voices."""
    return {
        "scenarios": len(records),
        "hours": round(sum(r["duration"] for r in records) / 3600, 4),
        "kinds": dict(Counter(r["kind"] for r in records)),
        "subkinds": dict(Counter(f"{r['kind']}/{r['subkind']}" for r in records if r["subkind"])),
        "followed_by_query": sum(r["kind"] == "nonquery" and _query_follows(r) for r in records),
        "states": dict(Counter(s["token"] for r in records for s in r["states"])),
        "interrupted": sum(a["interrupted"] for r in records for a in r["assistant"]),
        "speakers": len({u["speaker"] for r in records for u in r["user"] if u["speaker"]}),
    }


def _query_follows(record: dict) -> bool:
    """Whether the user asks something after the record's first non-addressed segment."""
    first = next((u["end"] for u in record["user"] if not u["addressed"]), None)
    return first is not None and any(u["addressed"] and u["start"] > first
                                     for u in record["user"])


def read_scenarios(path: str | Path, split: str | None = None, resolve: bool = True
                   ) -> list[dict]:
    """Read ``scenarios.jsonl`` (or the one in the folder ``path``; of ``split`` only, when
    given); errors name the line and field. With ``resolve``, audio paths become absolute
    (relative to the file's folder)."""
    from speechlm.corpus.manifest import read_jsonl

    if split is not None and split not in SPLITS:
        raise ConfigError(f"split: unknown split {split!r}; known: {list(SPLITS)}")
    path = Path(path)
    if path.is_dir():
        path = path / "scenarios.jsonl"
    records = []
    for where, _, rec in read_jsonl(path, "duplex scenarios"):
        for key, typ in (("id", str), ("split", str), ("kind", str), ("audio", str),
                         ("duration", (int, float)), ("user", list), ("assistant", list),
                         ("states", list)):
            if not isinstance(rec.get(key), typ):
                raise ManifestError(f"{where}: field '{key}' missing or not "
                                    f"{getattr(typ, '__name__', 'a number')}")
        if split is not None and rec["split"] != split:
            continue
        if resolve and not Path(rec["audio"]).is_absolute():
            rec["audio"] = str((path.parent / rec["audio"]).resolve())
        records.append(rec)
    return records
