"""Turn-taking statistics of two-channel dialogues, as dGSLM measures them (Nguyen et al. 2022).

Each channel holds one speaker. Its voice activity (silero-vad, or a deterministic energy
threshold) is merged into **IPUs** (inter-pausal units: speech bounded by silences of at least
``min_silence``, 0.2 s). From the two channels' IPUs:

- a **pause** is a silence between two IPUs of the same speaker with no speech of the other
  speaker in between;
- a **gap** is a silence between IPUs of different speakers (the floor changes hands);
- an **overlap** is a stretch where both channels speak. Following Heldner & Edlund (2010) it is
  ``between`` when the speaker changes across it (the one who spoke before it stops first) and
  ``within`` when the speaker before it also speaks after it (a backchannel inside a turn);
  ``overlap_*`` counts both, ``overlap_between_*`` and ``overlap_within_*`` each kind.

Silences before the first and after the last IPU of a file are neither pauses nor gaps. When both
channels change at the same instant, ties are resolved toward a pause (the same speaker is
taken to continue).

The pure part (``merge_ipus``, ``turn_events``, ``summarize``) takes segments in seconds and
does no audio I/O; ``evaluate_turns`` reads files, runs the VAD and writes ``turns.json``.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speechlm.errors import AudioError, ConfigError, SpeechLMError

Segment = tuple[float, float]
MIN_SILENCE = 0.2  # dGSLM: IPUs are bounded by silences of at least 200 ms
SAMPLE_RATE = 16000
KINDS = ("ipu", "pause", "gap", "overlap", "overlap_between", "overlap_within")
# one set of bin edges for every kind, so histograms of files and sets add up; counts[i] holds
# durations in [edges[i], edges[i+1]), the last bin everything from edges[-1] on
HIST_EDGES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0,
              7.5, 10.0, 15.0, 20.0]
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus", ".sph"}
VADS = ("silero", "energy")


# -- the pure part: segments in, events and figures out ---------------------------------------
def merge_ipus(segments: Sequence[Segment], min_silence: float = MIN_SILENCE) -> list[Segment]:
    """One channel's speech segments as IPUs: sorted, with silences shorter than
    ``min_silence`` (and overlaps) bridged; empty segments dropped."""
    ipus: list[list[float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in segments if e > s):
        # the tolerance keeps a silence of exactly min_silence (2.5 - 2.3 in floats) a split
        if ipus and start - ipus[-1][1] < min_silence - 1e-9:
            ipus[-1][1] = max(ipus[-1][1], end)
        else:
            ipus.append([start, end])
    return [(s, e) for s, e in ipus]


@dataclass
class TurnEvents:
    """The turn-taking events of one two-channel file (times in seconds)."""

    ipus: list[list[Segment]]  # per channel
    pauses: list[tuple[int, float, float]] = field(default_factory=list)  # (speaker, start, end)
    gaps: list[tuple[int, float, float]] = field(default_factory=list)  # (next speaker, ...)
    # (channel that entered the overlap, start, end, "between" | "within")
    overlaps: list[tuple[int, float, float, str]] = field(default_factory=list)

    def durations(self, kind: str) -> list[float]:
        """Durations of one kind of event (a name from ``KINDS``)."""
        if kind == "ipu":
            return [e - s for ch in self.ipus for s, e in ch]
        if kind in ("pause", "gap"):
            return [e - s for _, s, e in (self.pauses if kind == "pause" else self.gaps)]
        wanted = kind.removeprefix("overlap").lstrip("_") or None
        return [e - s for _, s, e, k in self.overlaps if wanted in (None, k)]


def turn_events(channels: Sequence[Sequence[Segment]],
                min_silence: float = MIN_SILENCE) -> TurnEvents:
    """IPUs, pauses, gaps and overlaps of two channels' speech segments (see the module doc)."""
    if len(channels) != 2:
        raise ConfigError(f"channels: turn-taking needs exactly 2 channels, got {len(channels)}")
    ipus = [merge_ipus(ch, min_silence) for ch in channels]
    events = TurnEvents(ipus)
    # silences: sweep all IPUs by start; `cover` is where the speech so far ends and `last` who
    # was speaking then. Sorting a same-instant start of `last` first makes ties a pause.
    todo = sorted((s, e, c) for c in (0, 1) for s, e in ipus[c])
    cover, last = None, -1
    i = 0
    while i < len(todo):
        s, e, c = todo[i]
        if cover is not None and s > cover:
            same = [j for j in range(i, len(todo)) if todo[j][0] == s]
            nxt = last if any(todo[j][2] == last for j in same) else c
            (events.pauses if nxt == last else events.gaps).append((nxt, cover, s))
        if cover is None or e >= cover:
            cover, last = e, c  # equal ends: the later starter is the one who spoke last
        i += 1
    # overlaps: the intersections of the two channels' IPUs (two pointers)
    a, b = ipus
    i = j = 0
    while i < len(a) and j < len(b):
        (s0, e0), (s1, e1) = a[i], b[j]
        start, end = max(s0, s1), min(e0, e1)
        if end > start:
            entered = 1 if s1 > s0 else 0  # a shared start counts as channel 0 entering
            before = 1 - entered if s0 != s1 else None
            after = 0 if e0 > e1 else (1 if e1 > e0 else None)
            kind = "within" if before is not None and before == after else "between"
            events.overlaps.append((entered, start, end, kind))
        if e0 < e1:
            i += 1
        else:
            j += 1
    return events


def histogram(durations: Sequence[float]) -> list[int]:
    """Counts of ``durations`` in the ``HIST_EDGES`` bins (the last one open)."""
    idx = np.searchsorted(HIST_EDGES, np.asarray(durations, dtype=float), side="right") - 1
    return np.bincount(np.clip(idx, 0, len(HIST_EDGES) - 1),
                       minlength=len(HIST_EDGES)).tolist()


def summarize(events: Sequence[TurnEvents], seconds: float) -> dict:
    """Figures of one file's events, or of several pooled (``seconds``: their total length).

    For each kind in ``KINDS``: ``n_<kind>``, ``<kind>_per_min``, ``<kind>_mean_s``,
    ``<kind>_median_s``, ``<kind>_total_s`` (mean and median are None without events), and its
    histogram under ``histograms`` (edges in ``histogram_edges_s``). Also ``speech_ratio``
    (share of the time at least one channel speaks) and ``overlap_ratio`` (both speak).
    """
    if seconds <= 0:
        raise ConfigError(f"seconds: must be > 0, got {seconds}")
    minutes = seconds / 60.0
    out: dict = {"seconds": round(seconds, 3), "minutes": round(minutes, 4)}
    hists = {}
    for kind in KINDS:
        d = [x for ev in events for x in ev.durations(kind)]
        out[f"n_{kind}"] = len(d)
        out[f"{kind}_per_min"] = round(len(d) / minutes, 4)
        out[f"{kind}_mean_s"] = round(float(np.mean(d)), 4) if d else None
        out[f"{kind}_median_s"] = round(float(np.median(d)), 4) if d else None
        out[f"{kind}_total_s"] = round(float(np.sum(d)), 4)
        hists[kind] = histogram(d)
    # the union of the two channels' speech: both IPU totals less their intersection
    out["speech_ratio"] = round((out["ipu_total_s"] - out["overlap_total_s"]) / seconds, 4)
    out["overlap_ratio"] = round(out["overlap_total_s"] / seconds, 4)
    out["histogram_edges_s"] = list(HIST_EDGES)
    out["histograms"] = hists
    return out


# -- voice activity ---------------------------------------------------------------------------
def energy_vad(wav: np.ndarray, sample_rate: int, frame_s: float = 0.01,
               relative_db: float = -40.0, floor_db: float = -60.0,
               min_speech_s: float = 0.05) -> list[Segment]:
    """Speech segments of one channel by frame energy (deterministic; for clean audio).

    A 10-ms frame is speech when its RMS is within ``relative_db`` of the channel's loudest
    frame and above ``floor_db`` dBFS; runs shorter than ``min_speech_s`` (clicks) are dropped.
    Cross-talk (the other speaker leaking into a channel) counts as speech: use silero-vad for
    real recordings.
    """
    from speechlm.audio import frame_db

    hop = max(1, int(round(frame_s * sample_rate)))
    if len(wav) < hop:
        return []
    db = frame_db(wav, hop)
    active = db >= max(db.max() + relative_db, floor_db)
    # run boundaries: +1 where speech starts, -1 where it stops
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    step = hop / sample_rate
    return [(round(s * step, 4), round(e * step, 4)) for s, e in zip(starts, ends, strict=True)
            if (e - s) * step >= min_speech_s]


# silero-vad settings: 0.5 is its default threshold; its 30-ms padding is dropped because pauses
# and gaps are what is measured, and a pad shortens each of them by 60 ms
SILERO = {"threshold": 0.5, "min_speech_duration_ms": 100, "min_silence_duration_ms": 50,
          "speech_pad_ms": 0}


class SileroVAD:
    """silero-vad's model (shipped in its wheel) behind ``__call__(wav, rate) -> segments``."""

    _model = None

    def __init__(self, **settings) -> None:
        self.settings = {**SILERO, **settings}

    @classmethod
    def model(cls):
        if cls._model is None:
            import torch

            threads = torch.get_num_threads()
            try:
                from silero_vad import load_silero_vad
            except ImportError as e:
                raise SpeechLMError("--vad silero needs the silero-vad package: pip install "
                                    "silero-vad (or use --vad energy)") from e
            with warnings.catch_warnings():  # its loader's deprecation notices are not ours
                warnings.simplefilter("ignore", DeprecationWarning)
                cls._model = load_silero_vad()
            torch.set_num_threads(threads)  # importing silero_vad sets it to 1 process-wide
        return cls._model

    def __call__(self, wav: np.ndarray, sample_rate: int) -> list[Segment]:
        import torch
        from silero_vad import get_speech_timestamps

        if sample_rate != SAMPLE_RATE:
            raise ConfigError(f"sample_rate: silero-vad runs at {SAMPLE_RATE} Hz here, "
                              f"got {sample_rate}")
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(wav, np.float32)),
                                       self.model(), sampling_rate=sample_rate,
                                       return_seconds=True, time_resolution=3, **self.settings)
        return [(float(t["start"]), float(t["end"])) for t in stamps]


def make_vad(name: str):
    """``wav, rate -> segments`` for a VAD name (``VADS``)."""
    if name == "energy":
        return energy_vad
    if name == "silero":
        return SileroVAD()
    raise ConfigError(f"vad: unknown voice activity detector '{name}'; known: {', '.join(VADS)}")


# -- files ------------------------------------------------------------------------------------
def file_events(path: str | Path, vad, min_silence: float = MIN_SILENCE
                ) -> tuple[TurnEvents, float]:
    """(events, seconds) of one two-channel file; a mono or >2-channel file raises."""
    from speechlm.audio import load_audio

    wav = load_audio(path, SAMPLE_RATE, mono=False)
    if wav.shape[0] != 2:
        what = "mono (1 channel)" if wav.shape[0] == 1 else f"{wav.shape[0]} channels"
        raise AudioError(f"{path}: {what}; turn-taking needs 2 channels, one speaker each "
                         "(e.g. speechlm synth dialogue output or Fisher-style stereo)")
    return (turn_events([vad(ch, SAMPLE_RATE) for ch in wav], min_silence),
            wav.shape[1] / SAMPLE_RATE)


def audio_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The files named, with each folder replaced by the audio files under it (sorted)."""
    files: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
        else:
            files.append(p)
    return files


def evaluate_turns(inputs: Sequence[str | Path], out_dir: str | Path, vad: str = "silero",
                   min_silence: float = MIN_SILENCE, progress: bool = True) -> dict:
    """Turn-taking figures of stereo dialogue files; writes and returns ``out_dir/turns.json``.

    ``inputs`` are files or folders of them. ``aggregate`` pools every scored file (per-minute
    rates over their total length); ``files`` holds each file's figures and IPUs; a file that
    cannot be used (unreadable, empty, not 2 channels) is listed in ``skipped`` with the reason,
    and the others are still scored. Raises ``SpeechLMError`` when none could be (after
    writing the report).
    """
    from speechlm.progress import progress_bar

    if min_silence <= 0:
        raise ConfigError(f"min_silence: must be > 0, got {min_silence}")
    detect = make_vad(vad)
    files = audio_files(inputs)
    if not files:
        raise SpeechLMError(f"eval turns: no audio files in {', '.join(map(str, inputs))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped, scored = [], [], []
    bar = progress_bar(files, unit="file", desc="turns", disable=not progress)
    for path in bar:
        try:
            events, seconds = file_events(path, detect, min_silence)
        except SpeechLMError as e:
            reason = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
            skipped.append({"file": str(path), "reason": reason})
            if progress:
                bar.write(f"skipped {reason}", file=sys.stderr)
            continue
        scored.append((events, seconds))
        row = {"file": str(path), **summarize([events], seconds)}
        row["ipus"] = [[[round(s, 3), round(e, 3)] for s, e in ch] for ch in events.ipus]
        rows.append(row)
    aggregate = {"n_files": len(files), "n_scored": len(rows), "n_skipped": len(skipped)}
    if scored:
        aggregate |= summarize([ev for ev, _ in scored], sum(s for _, s in scored))
    result = {"vad": vad, "min_silence_s": min_silence, "sample_rate": SAMPLE_RATE,
              "aggregate": aggregate, "files": rows, "skipped": skipped}
    (out / "turns.json").write_text(json.dumps(result, indent=2) + "\n")
    if not rows:
        raise SpeechLMError(f"eval turns: none of the {len(files)} files could be used; "
                            f"reasons in {out / 'turns.json'}")
    return result


# -- comparing sources ------------------------------------------------------------------------
def histogram_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """Total-variation distance between the shapes of two histograms on the same bins: half the
    L1 distance of their normalised counts (0: the same distribution, 1: no bin in common). A
    histogram without counts is at distance 1 from one with some (0 when both are empty)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.sum() == 0 or b.sum() == 0:
        return float(a.sum() != b.sum())
    return round(float(0.5 * np.abs(a / a.sum() - b / b.sum()).sum()), 4)


def compare_sources(stats: dict[str, dict], reference: str = "data",
                    systems: Sequence[str] = ("model", "baseline")) -> dict:
    """How far each system's turn-taking is from the reference's, as dGSLM's claim is checked.

    ``stats[source]`` is a :func:`summarize` result (histograms included). For each system:
    ``overlap_per_min_diff``, the absolute difference in overlaps per minute, and
    ``gap_distance``, :func:`histogram_distance` of the gap durations. ``closer`` says whether
    the first system is closer than the second on each; ``holds`` whether on both.
    """
    ref = stats[reference]
    out: dict = {"reference": reference, "overlap_per_min_diff": {}, "gap_distance": {}}
    for s in systems:
        out["overlap_per_min_diff"][s] = round(abs(stats[s]["overlap_per_min"]
                                                   - ref["overlap_per_min"]), 4)
        out["gap_distance"][s] = histogram_distance(stats[s]["histograms"]["gap"],
                                                    ref["histograms"]["gap"])
    first, second = systems[0], systems[1]
    out["closer"] = {key: out[key][first] < out[key][second]
                     for key in ("overlap_per_min_diff", "gap_distance")}
    out["holds"] = all(out["closer"].values())
    return out
