"""``speechlm eval duplex``: how a duplex model behaves live, after Full-Duplex-Bench (Lin et al.,
2025) and VITA's silence-mode checks.

Each held-out scenario's microphone channel is played into a live session of the engine frame
by frame (``speechlm.realtime.engine``), exactly as the server would; what the model says is
read off its own unit stream: a frame is speech when its unit is not the silence unit, and
speech frames closer than ``min_silence`` merge into the model's IPUs (those shorter than
``min_speech`` are dropped: a stray unit is not a turn). Against the scenario's gold timeline
(``speechlm.corpus.duplex``):

- **turn-taking**: at every point where the scenario's assistant answers (``answer`` states), the
  user's addressed turn that ended just before; the model *takes the turn* if one of its IPUs
  starts within ``[end - early, end + window]``. ``takeover_rate_turn`` is the share taken,
  ``response_latency_s`` the median onset minus end; ``answer_rate`` is the same on questions
  only (user segments of kind ``query``).
- **pauses** (the user's pauses between the sentences of a story): ``takeover_rate_pause`` is
  the share of pauses in which the model starts an IPU longer than ``backchannel_max`` (it took
  the floor instead of waiting); shorter IPUs while the user holds the floor are backchannels
  (``backchannels_per_min`` of user story, beside the data's own rate).
- **interruption** (``irq`` states): the user's onset while the model speaks; the model *yields*
  if its IPU ends within ``window`` of the onset. ``takeover_rate_interrupt`` is the share
  yielded, ``interruption_latency_s`` the median stop minus onset. The cut-in is timed on the
  model (``adaptive_interruptions``, :func:`run_interruption`): it comes once the model has
  answered ``interrupt_after`` seconds, as a user who cuts in on what they hear would.
  Interruptions that still find the model silent (it never answered, or stopped before) are
  counted apart (``interrupt_not_speaking``). The control plays the same scenario with the
  cut-in muted: ``uninterrupted_stop_s`` is how soon the model stops anyway (median from the
  would-be onset), so that yielding is told from an answer that was ending;
  ``stop_within_0_5s`` and ``uninterrupted_stop_within_0_5s`` are the shares stopping within
  0.5 s in each case.
- **silence mode** (``silent`` states): ``false_reply_rate`` is the share of non-query segments
  (statements, side talk, noise) during or after which the model starts an IPU before the next
  addressed turn (at most ``window`` after the segment); ``false_replies_by_source`` splits it
  by the kind of segment.
- **engine**: ``step_time_ratio`` is the median time of a frame (unit assignment, model step,
  sampling, vocoding) divided by the frame period (< 1: faster than real time), with its p90.

Output: ``OUT/duplex.json`` (the aggregate under ``duplex``, per kind, per scenario) and
``OUT/timelines.png`` for the first scenarios (gold user, gold assistant, model speech).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import ConfigError

Segment = tuple[float, float]


@dataclass
class DuplexEvalSettings:
    min_silence: float = 0.2  # s: speech frames closer than this are one IPU
    min_speech: float = 0.1  # s: shorter IPUs are dropped
    early: float = 0.5  # s before the user's end a response may start (overlapping turn-taking)
    window: float = 2.0  # s after the user's end (or onset) the response (or stop) must come in
    backchannel_max: float = 1.0  # s: a model IPU this short during the user's floor is a
    # backchannel, a longer one takes the floor
    adaptive_interruptions: bool = True  # time each cut-in on the model's answer
    interrupt_after: float = 0.5  # s of the model's answer before the user cuts in

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if not isinstance(v, bool) and v <= 0:
                raise ConfigError(f"{k}: must be > 0, got {v}")



def model_ipus(speaking: Sequence[bool], frame_rate: float, min_silence: float,
               min_speech: float) -> list[Segment]:
    """The model's IPUs from its per-frame speaking flags (frame f ends at (f + 1) / rate)."""
    from speechlm.evaluate.turns import merge_ipus

    s = np.asarray(speaking, dtype=bool)
    if not s.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], s.astype(np.int8), [0]])))
    runs = [(a / frame_rate, b / frame_rate) for a, b in zip(edges[::2], edges[1::2],
                                                              strict=True)]
    return [(a, b) for a, b in merge_ipus(runs, min_silence) if b - a >= min_speech]


def _user_before(record: dict, t: float, addressed: bool | None = None) -> dict | None:
    """The user segment that ended last at or before ``t`` (of the addressed kind if given)."""
    segs = [u for u in record["user"] if u["end"] <= t + 1e-6
            and (addressed is None or bool(u["addressed"]) == addressed)]
    return max(segs, key=lambda u: u["end"]) if segs else None


def score_scenario(record: dict, ipus: list[Segment], st: DuplexEvalSettings) -> dict[str, Any]:
    """The behaviour counts of one scenario (see the module docstring)."""
    out: dict[str, list] = {k: [] for k in (
        "turn", "turn_latency", "query", "pause", "backchannels", "interrupt", "irq_latency",
        "irq_not_speaking", "nonquery", "nonquery_source")}
    onsets = np.asarray([a for a, _ in ipus])
    states = record["states"]
    for s in states:
        t = float(s["time"])
        if s["token"] == "answer":
            user = _user_before(record, t, addressed=True)
            if user is None:
                continue
            end = float(user["end"])
            hit = onsets[(onsets >= end - st.early) & (onsets <= end + st.window)]
            out["turn"].append(bool(len(hit)))
            if len(hit):
                out["turn_latency"].append(float(hit[0] - end))
            if user["kind"] == "query":
                out["query"].append(bool(len(hit)))
        elif s["token"] == "irq":
            starts = [u for u in record["user"] if u["start"] <= t]
            if not starts:
                continue
            onset = float(max(starts, key=lambda u: u["start"])["start"])
            during = [(a, b) for a, b in ipus if a <= onset < b]
            if not during:
                out["irq_not_speaking"].append(True)
                continue
            stop = during[0][1]
            out["interrupt"].append(stop - onset <= st.window)
            out["irq_latency"].append(float(stop - onset))
        elif s["token"] == "silent":
            seg = _user_before(record, t, addressed=False)
            if seg is None:
                continue
            later = [u["start"] for u in record["user"] if u["addressed"] and u["start"] >= t]
            until = min([float(seg["end"]) + st.window, *later])
            out["nonquery"].append(bool(((onsets >= seg["start"]) & (onsets < until)).any()))
            out["nonquery_source"].append(seg["kind"])  # statement, sidetalk, noise
    story = sorted((u for u in record["user"] if u["kind"] == "story"), key=lambda u: u["start"])
    for prev, nxt in zip(story, story[1:], strict=False):
        gap = (float(prev["end"]), float(nxt["start"]))
        long = [(a, b) for a, b in ipus if gap[0] <= a < gap[1] and b - a > st.backchannel_max]
        out["pause"].append(bool(long))
    if story:
        floor = (float(story[0]["start"]), float(story[-1]["end"]))
        out["backchannels"] = [b - a for a, b in ipus if floor[0] <= a < floor[1]
                               and b - a <= st.backchannel_max]
        out["story_seconds"] = [floor[1] - floor[0]]
        out["gold_backchannels"] = [sum(1 for a in record["assistant"]
                                        if a["kind"] == "backchannel")]
    return out


def _rate(flags: list) -> float | None:
    return round(float(np.mean(flags)), 4) if flags else None


def _median(xs: list) -> float | None:
    return round(float(np.median(xs)), 4) if xs else None


def _by_source(flags: list[bool], sources: list[str]) -> dict[str, dict[str, Any]]:
    """False-reply rate and count per kind of non-query audio (statement, side talk, noise)."""
    out = {}
    for src in sorted(set(sources)):
        mine = [f for f, s in zip(flags, sources, strict=True) if s == src]
        out[src] = {"rate": _rate(mine), "n": len(mine)}
    return out


def aggregate(scored: list[dict], step_s: list[float], frame_rate: float) -> dict[str, Any]:
    """The figures of ``duplex.json`` from the per-scenario counts (:func:`score_scenario`)."""
    def cat(key: str) -> list:
        return [x for s in scored for x in s.get(key, [])]

    minutes = sum(cat("story_seconds")) / 60
    steps = np.asarray(step_s) * frame_rate
    return {
        "takeover_rate_turn": _rate(cat("turn")), "turns": len(cat("turn")),
        "response_latency_s": _median(cat("turn_latency")),
        "answer_rate": _rate(cat("query")), "queries": len(cat("query")),
        "takeover_rate_pause": _rate(cat("pause")), "pauses": len(cat("pause")),
        "backchannels_per_min": round(len(cat("backchannels")) / minutes, 3) if minutes else None,
        "gold_backchannels_per_min": (round(sum(cat("gold_backchannels")) / minutes, 3)
                                      if minutes else None),
        "takeover_rate_interrupt": _rate(cat("interrupt")), "interruptions": len(cat("interrupt")),
        "interruption_latency_s": _median(cat("irq_latency")),
        # the same with the cut-in muted: how soon the model stops uninterrupted
        "uninterrupted_stop_s": _median(cat("irq_control_latency")),
        "stop_within_0_5s": _rate([x <= 0.5 for x in cat("irq_latency")]),
        "uninterrupted_stop_within_0_5s": _rate([x <= 0.5 for x in cat("irq_control_latency")]),
        "interrupt_not_speaking": len(cat("irq_not_speaking")),
        "false_reply_rate": _rate(cat("nonquery")), "nonqueries": len(cat("nonquery")),
        "false_replies_by_source": _by_source(cat("nonquery"), cat("nonquery_source")),
        "step_time_ratio": round(float(np.median(steps)), 4) if len(steps) else None,
        "step_time_ratio_p90": round(float(np.percentile(steps, 90)), 4) if len(steps) else None,
    }


def run_scenario(engine: Any, wav: np.ndarray, push_samples: int) -> Any:
    """Play ``wav`` (the microphone channel) into a fresh session; its frame log."""
    session = engine.session()
    try:
        for i in range(0, len(wav), push_samples):
            session.push(wav[i:i + push_samples])
        return session.log
    finally:
        session.close()


def interruption_point(record: dict) -> tuple[float, float] | None:
    """(end of the question the scenario's first answer follows, the user's onset that
    interrupts that answer) of an ``interrupt`` scenario; None for any other."""
    irq = [float(s["time"]) for s in record["states"] if s["token"] == "irq"]
    if not irq:
        return None
    onset = max(float(u["start"]) for u in record["user"] if u["start"] <= irq[0])
    asked = [float(u["end"]) for u in record["user"] if u["addressed"] and u["end"] <= onset]
    return (max(asked), onset) if asked else None


def run_interruption(engine: Any, wav: np.ndarray, record: dict, after: float
                     ) -> tuple[Any, float]:
    """Play an interrupt scenario with the cut-in timed on the model, not on the data.

    The recorded cut-in comes a fixed time into the data's answer, but the model's answer has
    its own onset and length: played as recorded, most cut-ins would land before or after the
    model speaks. So the silence the user keeps while the answer runs is played only until the
    model has spoken ``after`` seconds without a break; then the recording skips to the user's
    onset (the rest plays unchanged). Returns the frame log and the seconds skipped (the
    timeline after the onset moves that much earlier: :func:`shift_after`).
    """
    asked, onset = interruption_point(record)
    rate, fs = engine.sample_rate, engine.frame_samples
    need = max(1, int(round(after * engine.frame_rate)))
    session = engine.session()
    skipped, pos, run = 0.0, 0, 0
    try:
        while pos < len(wav):
            outs = session.push(wav[pos:pos + fs])
            pos += fs
            run = run + 1 if outs and outs[-1].speaking else 0
            if not skipped and asked * rate <= pos < onset * rate and run >= need:
                skipped = onset - pos / rate
                pos = int(round(onset * rate))
        return session.log, skipped
    finally:
        session.close()


def mute_cut_in(wav: np.ndarray, record: dict, sample_rate: int) -> np.ndarray:
    """``wav`` with the user's cut-in (the segment starting at the interruption onset) silent."""
    onset = interruption_point(record)[1]
    seg = next(u for u in record["user"] if abs(float(u["start"]) - onset) < 1e-6)
    out = wav.copy()
    out[int(onset * sample_rate):int(float(seg["end"]) * sample_rate)] = 0.0
    return out


def shift_after(record: dict, at: float, by: float) -> dict:
    """The record with every time at or after ``at`` moved ``by`` seconds earlier."""
    def move(t: float) -> float:
        return t - by if t >= at - 1e-6 else t

    out = dict(record)
    out["user"] = [{**u, "start": move(u["start"]), "end": move(u["end"])}
                   for u in record["user"]]
    out["assistant"] = [{**a, "start": move(a["start"]), "end": move(a["end"])}
                        for a in record["assistant"]]
    out["states"] = [{**s, "time": move(float(s["time"]))} for s in record["states"]]
    out["duration"] = float(record["duration"]) - by
    return out


def evaluate_duplex(model_dir: str | Path, scenarios: Sequence[dict], out_dir: str | Path,
                    settings: DuplexEvalSettings | None = None, engine_settings: Any = None,
                    push_ms: float = 20.0, plots: int = 4, progress: bool = True
                    ) -> dict[str, Any]:
    """Run every scenario through a live session and score it; writes ``duplex.json``."""
    import torch

    from speechlm.audio import load_audio
    from speechlm.errors import AudioError
    from speechlm.progress import progress_bar
    from speechlm.realtime.engine import EngineSettings, load_engine

    st = settings or DuplexEvalSettings()
    # units and events decide every figure; audio is not needed to score (the server speaks)
    engine = load_engine(model_dir, engine_settings or EngineSettings(vocode=False))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    push = max(1, int(round(push_ms / 1000 * engine.sample_rate)))
    scored, per, skipped, steps, timelines = [], [], [], [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a session steps on one core, as a server's do
    try:
        for rec in progress_bar(scenarios, unit="scenario", desc="duplex sessions",
                                disable=not progress):
            try:
                wav = load_audio(rec["audio"], engine.sample_rate, mono=False)[0]
            except AudioError as e:
                skipped.append({"id": rec["id"], "error": str(e)})
                continue
            skipped_s = 0.0
            control = None
            point = interruption_point(rec) if st.adaptive_interruptions else None
            if point:
                orig, onset = rec, point[1]
                log, skipped_s = run_interruption(engine, wav, orig, st.interrupt_after)
                rec = shift_after(orig, onset, skipped_s) if skipped_s else orig
                # the control: the same session with the cut-in muted; does the model stop
                # as soon without being interrupted?
                muted, _ = run_interruption(engine, mute_cut_in(wav, orig, engine.sample_rate),
                                            orig, st.interrupt_after)
                control = score_scenario(rec, model_ipus(
                    [u != engine.silence for u in muted.speak], engine.frame_rate,
                    st.min_silence, st.min_speech), st)
            else:
                log = run_scenario(engine, wav, push)
            speaking = [u != engine.silence for u in log.speak]
            ipus = model_ipus(speaking, engine.frame_rate, st.min_silence, st.min_speech)
            s = score_scenario(rec, ipus, st)
            if control is not None:
                s["irq_control_latency"] = control["irq_latency"]
            scored.append(s)
            steps += log.step_s
            per.append({"id": rec["id"], "kind": rec["kind"], "subkind": rec.get("subkind"),
                        "model_ipus": [[round(a, 2), round(b, 2)] for a, b in ipus],
                        **({"cut_in_earlier_s": round(skipped_s, 3)} if skipped_s else {}),
                        **{k: v for k, v in s.items() if v}})
            if len(timelines) < plots:
                timelines.append((rec, ipus))
    finally:
        torch.set_num_threads(threads)
    if not scored:
        raise ConfigError(f"data: none of the {len(scenarios)} scenarios could be read "
                          f"({skipped[0]['error'] if skipped else 'none given'})")
    kinds = sorted({p["kind"] for p in per})
    result = {
        "duplex": aggregate(scored, steps, engine.frame_rate),
        "by_kind": {k: aggregate([s for s, p in zip(scored, per, strict=True) if p["kind"] == k],
                                 [], engine.frame_rate) for k in kinds},
        "scenarios": len(scored), "skipped": skipped, "settings": asdict(st),
        "model": str(model_dir), "frame_rate": engine.frame_rate,
        "per_scenario": per,
    }
    (out / "duplex.json").write_text(json.dumps(result, indent=1))
    if timelines:
        plot_timelines(timelines, out / "timelines.png")
    return result


def plot_timelines(items: list[tuple[dict, list[Segment]]], path: Path) -> None:
    """Gold user and assistant speech against the model's, one panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(items), 1, figsize=(10, 1.3 * len(items) + 0.5), squeeze=False)
    for ax, (rec, ipus) in zip(axes[:, 0], items, strict=True):
        rows = [("user", [(u["start"], u["end"]) for u in rec["user"]], "tab:blue"),
                ("assistant (data)", [(a["start"], a["end"]) for a in rec["assistant"]],
                 "tab:green"), ("model", ipus, "tab:red")]
        for y, (_, segs, color) in enumerate(rows):
            ax.broken_barh([(a, b - a) for a, b in segs], (2 - y - 0.35, 0.7), color=color)
        for s in rec["states"]:
            ax.axvline(s["time"], color="k", lw=0.6, ls=":")
        ax.set_yticks([2, 1, 0], [r[0] for r in rows], fontsize=7)
        ax.set_xlim(0, rec["duration"])
        sub = f"/{rec['subkind']}" if rec.get("subkind") else ""
        ax.set_title(f"{rec['id']} ({rec['kind']}{sub})", fontsize=8)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
