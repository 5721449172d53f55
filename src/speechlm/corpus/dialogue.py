"""Two-speaker dialogues: synthetic ones spoken by two espeak-ng voices, and imported stereo ones.

``synthesize_dialogues`` writes ``out_dir/audio/<id>.wav`` (16 kHz, 16-bit, stereo: channel 0 is
speaker A, channel 1 speaker B), ``out_dir/manifest.jsonl`` (one dialogue per line) and
``out_dir/summary.json``. A dialogue is a script of alternating turns built from the grammar:
questions (made from a grammar clause) and their answers, story requests and the story's
sentences, statements and short reactions. Its timing is drawn with it: gaps between turns
(gamma, mean 0.4 s), some of them negative (the next turn starts before the previous one ends),
pauses between the sentences of a turn (log-normal, mean about 0.55 s), interruptions (the next
speaker starts mid-turn and the current one stops at the end of the word it is saying about a
reaction time later) and backchannels ("mm-hmm", "yeah", "right", "okay") said by the listener
after a word of the speaker's turn.

Everything random is drawn in the parent from ``(seed, dialogue index)`` before any audio is
made; each dialogue is then spoken and laid out in a fresh worker process (libespeak-ng keeps
hidden state between utterances, see ``speechlm.corpus.synth``), so the corpus is identical for
any worker count and a dialogue can be remade alone. Finished dialogues are appended to
``manifest.partial.jsonl``: an interrupted run resumes from there.

A manifest record (see ``read_dialogues``)::

    {"id", "audio", "duration", "sample_rate",
     "channels": [{"channel": 0, "speaker", "voice", "rate", "pitch", "words": [[w, s, e], ...]},
                  {"channel": 1, ...}],
     "events": [{"type": "turn" | "backchannel" | "interruption" | "overlap", "channel", "start",
                 "end", ...}, ...]}

``turn`` events carry ``text`` (what was said) and ``interrupted``; ``backchannel`` events
``text``; ``interruption`` events have ``channel`` the interrupter, ``start`` its onset, ``end``
where the interrupted speaker (``interrupted``) stopped; ``overlap`` events are every stretch
where both channels' words (merged into IPUs as ``speechlm.evaluate.turns`` does) overlap, with
``channel`` the one that entered it and ``kind`` between/within.

``speechlm.corpus.dialogue_import`` makes the same records from a folder of real two-channel
recordings (Fisher-style), with words when a CTM is given and transcript segments when a Fisher
transcript is.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.corpus.fresh import FreshProcesses
from speechlm.corpus.grammar import Grammar, render, story_ending, words_of
from speechlm.corpus.synth import PITCH_RANGE, RATE_RANGE, SAMPLE_RATE, TRAIN_VOICES
from speechlm.errors import ConfigError, ManifestError

# the training voices whose sound outlasts their words' gold end by 0.05-0.35 s (an echo or a
# long release, measured on four sentences): their gold times would not be their voice activity
TRAILING_VOICES = {f"en-us+{v}" for v in ("m2", "f4", "announcer", "Marco", "RicishayMax",
                                          "RicishayMax2", "RicishayMax3", "robosoft",
                                          "robosoft6", "robosoft8")}
DIALOGUE_VOICES = [v for v in TRAIN_VOICES if v not in TRAILING_VOICES]
BACKCHANNELS = ("mm-hmm", "yeah", "right", "okay")
REACTIONS = ("okay.", "right.", "oh.", "i see.")  # a listener's whole turn after a story
# the words dialogues add to the grammar's: question forms, answers, requests, backchannels
DIALOGUE_WORDS = {"what", "did", "does", "do", "yes", "tell", "me", "about", "oh", "i", "see",
                  *BACKCHANNELS}

TURNS_RANGE = (8, 17)  # turns per dialogue (a dialogue lasts about 30-90 s)
ASK_P = 0.55  # a turn asks a question, requests a story or states something for the other
EXTRA_P = 0.35  # a turn that answers adds a sentence of its own: pauses inside turns
# gamma: mean 0.4 s, mode 0.2 s (the modal gap of conversation, Levinson & Torreira 2015)
GAP_SHAPE, GAP_SCALE = 2.0, 0.2
GAP_RANGE = (0.05, 2.0)
OVERLAP_P = 0.2  # share of turn changes where the next speaker starts early
OVERLAP_SHAPE, OVERLAP_SCALE = 2.0, 0.12  # how early: gamma, mean 0.24 s
OVERLAP_MAX = 0.6
PAUSE_MEDIAN, PAUSE_SIGMA = 0.5, 0.4  # log-normal pauses between a turn's sentences (mean 0.55)
PAUSE_RANGE = (0.25, 1.5)  # at least 0.25 s, so each one splits IPUs at the 0.2-s threshold
INTERRUPT_P, INTERRUPT_MIN_WORDS = 0.15, 6
REACTION_RANGE = (0.2, 0.5)  # an interrupted speaker stops at the first word end this much later
BACKCHANNEL_P, BACKCHANNEL_MIN_WORDS = 0.7, 8
BACKCHANNEL_DELAY = (0.05, 0.35)  # after the word it follows
BACKCHANNEL_CLEAR = 0.4  # the listener's own speech keeps this far from a backchannel
OWN_PAUSE = 0.3  # a speaker's next turn starts at least this long after its previous speech
LEAD_IN, TAIL = 0.5, 0.5  # silence before the first word and after the last sound
FADE = 0.01  # seconds of fade-out where an interrupted speaker's audio is cut


# -- the script -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backchannel:
    """A backchannel by the listener, said ``delay`` s after the end of word ``word`` of a turn."""

    text: str
    word: int
    delay: float
    seed: int


@dataclass(frozen=True)
class PlannedTurn:
    """One turn and how it starts: ``gap`` s after the previous turn's last word (negative: an
    overlap), or, with ``interrupt = (where, reaction)``, at the onset of the word ``where``
    (0-1) into the previous turn, whose speaker then stops ``reaction`` s later at a word end."""

    channel: int
    sentences: tuple[str, ...]
    pauses: tuple[float, ...]  # silence before each of sentences[1:]
    seeds: tuple[int, ...]  # espeak's rand() seed per sentence
    gap: float
    interrupt: tuple[float, float] | None = None
    backchannels: tuple[Backchannel, ...] = ()

    @property
    def n_words(self) -> int:
        return sum(len(words_of(s)) for s in self.sentences)


@dataclass(frozen=True)
class DialoguePlan:
    """Everything one dialogue's audio depends on."""

    id: str
    voices: tuple[str, str]
    rates: tuple[int, int]
    pitches: tuple[int, int]
    turns: tuple[PlannedTurn, ...]


def question(g: Grammar) -> tuple[str, str]:
    """A question made from a grammar clause and its answer (the clause itself)."""
    parts = g.clause()
    subj, tense = parts["subject"], parts["tense"]
    if parts["kind"] == "copula":  # was the cat happy? / yes, the cat was happy.
        q = [parts["verb"], *subj.words, *parts["rest"]]
        return " ".join(q) + "?", "yes, " + render(parts)
    aux = "did" if tense == "past" else ("does" if subj.number == "sg" else "do")
    base = parts["verb_forms"][0]
    if parts["kind"] == "transitive":  # what did the dog see? / the dog saw a bird.
        return " ".join(["what", aux, *subj.words, base]) + "?", render(parts)
    # did the dog run? / yes, the dog ran in the park.
    return " ".join([aux, *subj.words, base]) + "?", "yes, " + render(parts)


def script(g: Grammar, n_turns: int) -> list[tuple[str, ...]]:
    """The sentences of ``n_turns`` alternating turns: each answers what the previous one asked
    (a question, a story request; after a story: a reaction), may add a statement of its own
    and may ask or state something new."""
    turns: list[tuple[str, ...]] = []
    pending: list[str] = []  # what the next turn owes: an answer, a story
    react = story_next = False
    for _ in range(n_turns):
        said = [REACTIONS[int(g.rng.integers(len(REACTIONS)))]] if react else []
        said += pending
        react, pending, story_next = story_next, [], False
        if said and not react and g.chance(EXTRA_P):  # keeps talking (unless telling a story)
            said.append(g.sentence())
        r = g.rng.random()
        if r < ASK_P or not said:
            if r < 0.6 * ASK_P:
                q, a = question(g)
                said.append(q)
                pending = [a]
            elif r < 0.8 * ASK_P or not said:
                said.append(g.sentence())
            else:
                context, scenario, slots = g.story()
                said.append(f"tell me about {slots['name']}.")
                pending, story_next = [*context, story_ending(scenario, slots)], True
        turns.append(tuple(said))
    return turns


def plan_dialogue(seed: int, index: int, voices: list[str]) -> DialoguePlan:
    """The script and timing of dialogue ``index`` (drawn from ``(seed, index)`` alone)."""
    if len(voices) < 2:
        raise ConfigError(f"voices: a dialogue needs 2 different voices, got {voices}")
    rng = np.random.default_rng([seed, 7, index])
    g = Grammar(np.random.default_rng([seed, 8, index]))
    pair = rng.choice(len(voices), size=2, replace=False)
    plan_voices = (voices[int(pair[0])], voices[int(pair[1])])
    rates = tuple(int(rng.integers(*RATE_RANGE)) for _ in range(2))
    pitches = tuple(int(rng.integers(*PITCH_RANGE)) for _ in range(2))
    first = int(rng.integers(2))
    turns: list[PlannedTurn] = []
    for i, sentences in enumerate(script(g, int(rng.integers(*TURNS_RANGE)))):
        pauses = tuple(float(np.clip(PAUSE_MEDIAN * np.exp(PAUSE_SIGMA * rng.standard_normal()),
                                     *PAUSE_RANGE)) for _ in sentences[1:])
        if rng.random() < OVERLAP_P:
            gap = -float(min(rng.gamma(OVERLAP_SHAPE, OVERLAP_SCALE), OVERLAP_MAX))
        else:
            gap = float(np.clip(rng.gamma(GAP_SHAPE, GAP_SCALE), *GAP_RANGE))
        interrupt = None
        if turns and turns[-1].n_words >= INTERRUPT_MIN_WORDS and rng.random() < INTERRUPT_P:
            interrupt = (float(rng.uniform(0.3, 0.8)), float(rng.uniform(*REACTION_RANGE)))
        seeds = tuple(int(rng.integers(2**31)) for _ in sentences)
        n = sum(len(words_of(s)) for s in sentences)
        backs = []
        if n >= BACKCHANNEL_MIN_WORDS and rng.random() < BACKCHANNEL_P:
            ends = np.cumsum([len(words_of(s)) for s in sentences])[:-1] - 1  # sentence ends
            for _ in range(1 + (n > 20)):
                # half at a sentence end (into the pause), half after any word (over speech)
                word = int(rng.choice(ends)) if len(ends) and rng.random() < 0.5 else \
                    int(rng.integers(1, n - 2))
                backs.append(Backchannel(BACKCHANNELS[int(rng.integers(len(BACKCHANNELS)))],
                                         word, float(rng.uniform(*BACKCHANNEL_DELAY)),
                                         int(rng.integers(2**31))))
        turns.append(PlannedTurn((first + i) % 2, tuple(sentences), pauses, seeds, gap,
                                 interrupt, tuple(sorted(backs, key=lambda b: b.word))))
    return DialoguePlan(f"dlg{index:06d}", plan_voices, rates, pitches, tuple(turns))


# -- layout: spoken pieces placed on two channels ---------------------------------------------
@dataclass
class Piece:
    """One synthesised stretch placed on a channel; ``words`` in seconds of the dialogue."""

    channel: int
    offset: int  # sample of the dialogue where the piece's audio starts
    wav: np.ndarray
    words: list[tuple[str, float, float]]


def _place(channel: int, spoken, at: float) -> Piece:
    """``spoken`` (an ``Espeak.speak`` result) placed so that its first word starts at ``at``."""
    shift = at - spoken.words[0][1]
    offset = int(round(shift * SAMPLE_RATE))
    shift = offset / SAMPLE_RATE  # word times agree with the samples exactly
    return Piece(channel, offset, spoken.wav,
                 [(w, round(s + shift, 4), round(e + shift, 4)) for w, s, e in spoken.words])


def _cut(pieces: list[Piece], at: float) -> list[Piece]:
    """A turn's pieces with everything after time ``at`` (a word end) removed, faded out."""
    kept = []
    for p in pieces:
        if p.words[0][1] >= at:
            continue
        words = [w for w in p.words if w[2] <= at + 1e-6]
        end = int(round(at * SAMPLE_RATE)) - p.offset
        wav = p.wav
        if end < len(wav):
            fade = min(int(FADE * SAMPLE_RATE), end)
            wav = wav[:end].copy()
            wav[end - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        kept.append(Piece(p.channel, p.offset, wav, words))
    return kept


def _free(busy: list[tuple[float, float]], start: float, end: float) -> bool:
    return all(e + BACKCHANNEL_CLEAR <= start or s >= end + BACKCHANNEL_CLEAR for s, e in busy)


def layout(plan: DialoguePlan, spoken: dict) -> tuple[list[Piece], list[dict]]:
    """Place every turn and backchannel of ``plan`` in time; returns (pieces, events).

    ``spoken`` maps ``("s", turn, sentence)`` and ``("b", turn, k)`` to ``Espeak.speak``
    results. Pure: the same plan and audio give the same dialogue.
    """
    turns: list[list[Piece]] = []
    events: list[dict] = []
    own_end = [0.0, 0.0]
    for i, turn in enumerate(plan.turns):
        ch = turn.channel
        if turns:
            prev = turns[-1]
            words = [w for p in prev for w in p.words]
            # an early start never begins before the middle of the previous turn
            start = max(words[-1][2] + turn.gap, (words[0][1] + words[-1][2]) / 2,
                        own_end[ch] + OWN_PAUSE)
            if turn.interrupt is not None:
                where, reaction = turn.interrupt
                k = max(int(round(where * (len(words) - 1))), 1)
                # not before the interrupter's own previous turn has ended
                while k < len(words) and words[k][1] < own_end[ch] + OWN_PAUSE:
                    k += 1
                stop = next((j for j in range(k, len(words)) if words[j][2] >= words[k][1]
                             + reaction), len(words) - 1) if k < len(words) - 1 else k
                if stop < len(words) - 1:  # words were left unsaid: an interruption
                    start = words[k][1]
                    turns[-1] = _cut(prev, words[stop][2])
                    own_end[1 - ch] = words[stop][2]
                    events.append({"type": "interruption", "channel": ch, "start": start,
                                   "end": words[stop][2], "interrupted": 1 - ch})
        else:
            start = LEAD_IN
        pieces = []
        for j, _ in enumerate(turn.sentences):
            pieces.append(_place(ch, spoken[("s", i, j)], start))
            if j + 1 < len(turn.sentences):
                start = pieces[-1].words[-1][2] + turn.pauses[j]
        own_end[ch] = pieces[-1].words[-1][2]
        turns.append(pieces)
    # backchannels last: a turn's extent is final only once the next turn may have cut it
    busy: list[list[tuple[float, float]]] = [[], []]
    for pieces in turns:
        if pieces:
            busy[pieces[0].channel] += [(p.words[0][1], p.words[-1][2]) for p in pieces]
    backs: list[Piece] = []
    for i, (turn, pieces) in enumerate(zip(plan.turns, turns, strict=True)):
        words = [w for p in pieces for w in p.words]
        for k, b in enumerate(turn.backchannels):
            if b.word >= len(words) - 1:  # cut off before it, or at the turn's very end
                continue
            piece = _place(1 - turn.channel, spoken[("b", i, k)], words[b.word][2] + b.delay)
            s, e = piece.words[0][1], piece.words[-1][2]
            if _free(busy[piece.channel], s, e):
                busy[piece.channel].append((s, e))
                backs.append(piece)
                events.append({"type": "backchannel", "channel": piece.channel, "start": s,
                               "end": e, "text": b.text})
    for turn, pieces in zip(plan.turns, turns, strict=True):
        words = [w for p in pieces for w in p.words]
        events.append({"type": "turn", "channel": turn.channel, "start": words[0][1],
                       "end": words[-1][2], "text": " ".join(w for w, _, _ in words),
                       "interrupted": len(words) < turn.n_words})
    return [p for ps in turns for p in ps] + backs, events


def overlap_events(channel_words: list[list]) -> list[dict]:
    """Every stretch where both channels' words (merged into IPUs) overlap."""
    from speechlm.evaluate.turns import turn_events

    ev = turn_events([[(s, e) for _, s, e in words] for words in channel_words])
    return [{"type": "overlap", "channel": c, "start": round(s, 4), "end": round(e, 4),
             "kind": kind} for c, s, e, kind in ev.overlaps]


def make_dialogue(plan: DialoguePlan, path: str) -> dict:
    """Speak, lay out and write one dialogue (call in a fresh process); returns its record."""
    from speechlm.audio import save_audio
    from speechlm.corpus.espeak import Espeak

    espeak = Espeak.get()
    spoken = {}
    for i, turn in enumerate(plan.turns):  # a fixed order: espeak's output depends on it
        v, r, p = plan.voices[turn.channel], plan.rates[turn.channel], plan.pitches[turn.channel]
        for j, (text, seed) in enumerate(zip(turn.sentences, turn.seeds, strict=True)):
            spoken[("s", i, j)] = espeak.speak(text, v, r, p, SAMPLE_RATE, seed=seed)
        o = 1 - turn.channel
        for k, b in enumerate(turn.backchannels):
            spoken[("b", i, k)] = espeak.speak(b.text + ".", plan.voices[o], plan.rates[o],
                                               plan.pitches[o], SAMPLE_RATE, seed=b.seed)
    pieces, events = layout(plan, spoken)
    n = max(p.offset + len(p.wav) for p in pieces) + int(TAIL * SAMPLE_RATE)
    wav = np.zeros((n, 2), np.float32)
    for p in pieces:
        wav[p.offset:p.offset + len(p.wav), p.channel] += p.wav
    save_audio(path, wav, SAMPLE_RATE)
    words = [sorted((w for p in pieces if p.channel == c for w in p.words), key=lambda w: w[1])
             for c in (0, 1)]
    events += overlap_events(words)
    events.sort(key=lambda e: (e["start"], e["type"]))
    for e in events:
        e["start"], e["end"] = round(e["start"], 4), round(e["end"], 4)
    return {
        "id": plan.id, "audio": f"audio/{plan.id}.wav", "duration": round(n / SAMPLE_RATE, 4),
        "sample_rate": SAMPLE_RATE,
        "channels": [{"channel": c, "speaker": plan.voices[c], "voice": plan.voices[c],
                      "rate": plan.rates[c], "pitch": plan.pitches[c],
                      "words": [list(w) for w in words[c]]} for c in (0, 1)],
        "events": events,
    }


# -- the corpus -------------------------------------------------------------------------------
def _read_partial(path: Path, settings: dict, out: Path) -> list[dict]:
    """Records of an interrupted run with the same settings whose audio is there (in order);
    a line cut by the interruption ends them."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    kept: list[dict] = []
    for i, line in enumerate(lines):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            break
        if i == 0:
            if obj != settings:
                return []
        elif obj.get("id") == f"dlg{i - 1:06d}" and (out / obj["audio"]).exists():
            kept.append(obj)
        else:
            break
    return kept


def synthesize_dialogues(out_dir: str | Path, hours: float, seed: int = 0,
                         workers: int | None = None, voices: list[str] | None = None) -> dict:
    """Make about ``hours`` of two-speaker dialogue in ``out_dir``; returns the summary (also
    ``summary.json``, with the gold turn-taking figures of the words).

    Stops at the first dialogue that brings the total to ``hours``. A finished set with the
    same settings is not made again; an interrupted one resumes after its last finished
    dialogue. Workers are ``forkserver`` processes, so a script calling this must guard its top
    level with ``if __name__ == "__main__":``.
    """
    from speechlm.progress import progress_bar

    if not (isinstance(hours, int | float) and hours > 0):
        raise ConfigError(f"hours: must be > 0, got {hours!r}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers: must be >= 1, got {workers}")
    out = Path(out_dir)
    voices = list(voices or DIALOGUE_VOICES)
    settings = {"kind": "dialogue", "hours_requested": hours, "seed": seed, "voices": voices}
    summary_path = out / "summary.json"
    if summary_path.exists():
        old = json.loads(summary_path.read_text())
        if all(old.get(k) == v for k, v in settings.items()):
            return old
    (out / "audio").mkdir(parents=True, exist_ok=True)
    partial = out / "manifest.partial.jsonl"
    records = _read_partial(partial, settings, out)
    with open(partial, "w", encoding="utf-8") as f:  # rewritten: a cut last line is dropped
        f.write(json.dumps(settings) + "\n")
        f.writelines(json.dumps(r) + "\n" for r in records)
    target = hours * 3600.0
    total = sum(r["duration"] for r in records)
    workers = workers or min(4, os.cpu_count() or 1)
    plans = (plan_dialogue(seed, i, voices) for i in range(len(records), 10**9))
    pending: deque = deque()
    # one dialogue per fresh process: its audio does not depend on what a worker said before
    with FreshProcesses(workers, ["speechlm.corpus.dialogue", "speechlm.corpus.espeak",
                                  "speechlm.audio"]) as pool, \
            progress_bar(total=target, unit="s", desc="dialogues", leave=False,
                         initial=min(total, target)) as bar, \
            open(partial, "a", encoding="utf-8") as log:
        while total < target:
            per = total / len(records) if records else 60.0
            while len(pending) < workers and (
                    not pending or len(pending) * per < 1.5 * (target - total)):
                plan = next(plans)
                path = str(out / "audio" / f"{plan.id}.wav")
                pending.append((path, pool.submit(make_dialogue, plan, path,
                                                  name=f"dialogue {plan.id}")))
            path, task = pending.popleft()
            rec = task.get()
            records.append(rec)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            total += rec["duration"]
            bar.update(min(rec["duration"], target - bar.n))
    # dialogues still in flight were killed on leaving the pool
    for path, _ in pending:
        Path(path).unlink(missing_ok=True)
    _write_records(out / "manifest.jsonl", records)
    partial.unlink()
    summary = {"dialogues": len(records), "hours": round(total / 3600.0, 4),
               **event_counts(records), "sample_rate": SAMPLE_RATE, "channels": 2,
               "turn_stats": gold_turn_stats(records), **settings}
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def event_counts(records: list[dict]) -> dict:
    """How many events of each type the records hold, and their words and voices."""
    counts = {f"{t}s": 0 for t in ("turn", "backchannel", "interruption", "overlap")}
    for rec in records:
        for e in rec["events"]:
            counts[e["type"] + "s"] += 1
    return {**counts, "words": sum(len(c.get("words") or []) for r in records
                                   for c in r["channels"]),
            "speakers": len({c["speaker"] for r in records for c in r["channels"]})}


def word_segments(record: dict) -> list[list[tuple[float, float]]]:
    """Each channel's word times ``(start, end)``: the gold voice activity of a record."""
    return [[(s, e) for _, s, e in c.get("words") or []] for c in record["channels"]]


def gold_turn_stats(records: list[dict]) -> dict | None:
    """Turn-taking figures of the records' word times (as ``eval turns`` would measure them
    with a perfect VAD), histograms left out; None without words on both channels."""
    from speechlm.evaluate.turns import summarize, turn_events

    usable = [r for r in records if all(c.get("words") for c in r["channels"])]
    if not usable:
        return None
    stats = summarize([turn_events(word_segments(r)) for r in usable],
                      sum(r["duration"] for r in usable))
    stats.pop("histograms")
    stats.pop("histogram_edges_s")
    return stats


def _write_records(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    tmp.replace(path)


def read_dialogues(path: str | Path, resolve: bool = True) -> list[dict]:
    """Read a dialogue manifest; errors name the line and field. With ``resolve``, relative
    audio paths become absolute (relative to the manifest's folder)."""
    from speechlm.corpus.manifest import read_jsonl

    path = Path(path)
    records = []
    for where, _, rec in read_jsonl(path, "dialogue manifest"):
        for key, typ in (("id", str), ("audio", str), ("duration", (int, float)),
                         ("sample_rate", int), ("channels", list), ("events", list)):
            if not isinstance(rec.get(key), typ):
                raise ManifestError(f"{where}: field '{key}' missing or not "
                                    f"{getattr(typ, '__name__', 'a number')}")
        if len(rec["channels"]) != 2:
            raise ManifestError(f"{where}: field 'channels' must list 2 channels, "
                                f"got {len(rec['channels'])}")
        for c in rec["channels"]:
            for w in c.get("words") or []:
                if not (len(w) == 3 and 0 <= w[1] <= w[2] <= rec["duration"] + 1e-3):
                    raise ManifestError(f"{where}: channel {c.get('channel')} word {w} must be "
                                        "[word, start, end] inside the audio")
        if resolve and not Path(rec["audio"]).is_absolute():
            rec["audio"] = str((path.parent / rec["audio"]).resolve())
        records.append(rec)
    return records
