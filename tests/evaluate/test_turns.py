"""Turn-taking statistics: exact events of hand-made segments, energy VAD on constructed stereo
files, silero-vad on a synthetic dialogue, the CLI and its handling of unusable files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from speechlm.cli import app
from speechlm.evaluate.turns import (
    HIST_EDGES,
    evaluate_turns,
    histogram,
    merge_ipus,
    summarize,
    turn_events,
)

# channel 0: A speaks, pauses, speaks again into an overlap with B, later once more after a gap
# channel 1: a backchannel inside A's first IPU, a turn, a pause, then a turn after a gap
CH0 = [(0.0, 2.0), (2.1, 3.0), (3.5, 5.0), (8.0, 9.0)]
CH1 = [(1.0, 1.3), (4.5, 6.0), (6.3, 7.0), (9.5, 10.0)]


def test_ipus_bridge_silences_shorter_than_the_minimum():
    assert merge_ipus([(2.3, 3.0), (0.0, 1.0), (1.1, 2.1), (0.5, 0.8)]) == [(0.0, 2.1), (2.3, 3.0)]
    # exactly 0.2 s of silence splits, also when the subtraction is inexact in floats
    assert merge_ipus([(1.0, 2.3), (2.5, 3.0)]) == [(1.0, 2.3), (2.5, 3.0)]
    assert merge_ipus([(1.0, 2.3), (2.5, 3.0)], min_silence=0.3) == [(1.0, 3.0)]
    assert merge_ipus([(1.0, 1.0), (2.0, 1.5)]) == []


def test_events_of_hand_made_segments_are_exact():
    ev = turn_events([CH0, CH1])
    assert ev.ipus == [[(0.0, 3.0), (3.5, 5.0), (8.0, 9.0)],
                       [(1.0, 1.3), (4.5, 6.0), (6.3, 7.0), (9.5, 10.0)]]
    # A's silence 3.0-3.5 is a pause although B spoke earlier inside A's IPU; B's 6.0-6.3 too
    assert ev.pauses == [(0, 3.0, 3.5), (1, 6.0, 6.3)]
    assert ev.gaps == [(0, 7.0, 8.0), (1, 9.0, 9.5)]
    assert ev.overlaps == [(1, 1.0, 1.3, "within"), (1, 4.5, 5.0, "between")]

    s = summarize([ev], seconds=12.0)  # 0.2 min
    assert (s["n_ipu"], s["n_pause"], s["n_gap"], s["n_overlap"]) == (7, 2, 2, 2)
    assert s["ipu_per_min"] == 35.0 and s["pause_per_min"] == 10.0
    assert s["gap_per_min"] == 10.0 and s["overlap_per_min"] == 10.0
    assert s["n_overlap_between"] == s["n_overlap_within"] == 1
    assert s["pause_mean_s"] == pytest.approx(0.4) and s["gap_mean_s"] == pytest.approx(0.75)
    assert s["gap_median_s"] == pytest.approx(0.75)
    assert s["overlap_mean_s"] == pytest.approx(0.4)
    assert s["overlap_between_mean_s"] == pytest.approx(0.5)
    assert s["overlap_within_mean_s"] == pytest.approx(0.3)
    assert s["ipu_mean_s"] == pytest.approx(8.5 / 7, abs=1e-4)
    assert s["ipu_median_s"] == pytest.approx(1.0)
    assert s["speech_ratio"] == pytest.approx((8.5 - 0.8) / 12, abs=1e-4)
    assert s["overlap_ratio"] == pytest.approx(0.8 / 12, abs=1e-4)
    assert s["histogram_edges_s"] == HIST_EDGES
    assert s["histograms"]["gap"] == histogram([1.0, 0.5])
    assert sum(s["histograms"]["ipu"]) == 7
    # pooling two copies: the same rates, twice the counts
    both = summarize([ev, ev], seconds=24.0)
    assert both["n_gap"] == 4 and both["gap_per_min"] == 10.0
    assert both["gap_mean_s"] == s["gap_mean_s"]


def test_ties_and_edges():
    # both start together after A's silence: taken as A continuing (a pause), not a gap
    ev = turn_events([[(0.0, 1.0), (2.0, 3.0)], [(2.0, 2.5)]])
    assert ev.pauses == [(0, 1.0, 2.0)] and ev.gaps == []
    assert ev.overlaps == [(0, 2.0, 2.5, "between")]
    # no events without speech on one side; silence at the file's edges counts as nothing
    ev = turn_events([[(1.0, 2.0)], []])
    assert (ev.pauses, ev.gaps, ev.overlaps) == ([], [], [])
    s = summarize([ev], 60.0)
    assert s["ipu_per_min"] == 1.0 and s["gap_mean_s"] is None and s["n_gap"] == 0
    assert histogram([0.0, 0.05, 0.1, 25.0]) == [2, 1] + [0] * (len(HIST_EDGES) - 3) + [1]


def _bursts(spans: list[tuple[float, float]], n: int, kind: str, rng) -> np.ndarray:
    x = np.zeros(n, np.float32)
    for s, e in spans:
        a, b = int(s * 16000), int(e * 16000)
        t = np.arange(b - a) / 16000
        x[a:b] = (0.3 * np.sin(2 * np.pi * 220 * t) if kind == "tone"
                  else 0.2 * rng.standard_normal(b - a))
    return x


A = [(0.5, 2.0), (2.5, 3.5), (4.7, 6.0)]  # pause 2.0-2.5
B = [(3.8, 5.0), (5.4, 5.7), (6.4, 7.0)]  # gap 3.5-3.8; overlap 4.7-5.0; within 5.4-5.7; gap
# 6.0-6.4; B's silence 5.0-5.4 lies inside A's speech, so it is no pause


@pytest.fixture
def stereo(tmp_path):
    rng = np.random.default_rng(0)
    n = int(7.5 * 16000)
    wav = np.stack([_bursts(A, n, "tone", rng), _bursts(B, n, "noise", rng)], axis=1)
    path = tmp_path / "in" / "dialogue.wav"
    path.parent.mkdir()
    sf.write(path, wav, 16000, subtype="PCM_16")
    return path


def test_energy_vad_finds_known_bursts(stereo, tmp_path):
    r = evaluate_turns([stereo], tmp_path / "s", vad="energy", progress=False)
    got = r["files"][0]
    want = summarize([turn_events([A, B])], 7.5)
    for key in ("n_ipu", "n_pause", "n_gap", "n_overlap", "n_overlap_between",
                "n_overlap_within"):
        assert got[key] == want[key], key
    assert (want["n_ipu"], want["n_pause"], want["n_gap"], want["n_overlap"]) == (6, 1, 2, 2)
    for key in ("ipu_mean_s", "pause_mean_s", "gap_mean_s", "overlap_mean_s"):
        assert got[key] == pytest.approx(want[key], abs=0.011), key  # one 10-ms frame
    for ch, spans in enumerate((A, B)):
        assert np.allclose(got["ipus"][ch], spans, atol=0.011)
    assert r["aggregate"]["ipu_per_min"] == got["ipu_per_min"]
    assert json.loads((tmp_path / "s" / "turns.json").read_text())["vad"] == "energy"


def test_cli_skips_mono_empty_and_unreadable_files(stereo, tmp_path):
    folder = stereo.parent
    sf.write(folder / "mono.wav", np.zeros(16000, np.float32), 16000)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.flac").write_text("not audio")
    out = tmp_path / "s"
    res = CliRunner().invoke(app, ["eval", "turns", str(folder), "--out", str(out),
                                   "--vad", "energy"])
    assert res.exit_code == 0, res.output
    assert "ipu: 48.00/min" in res.output and "scored 1 of 4 files" in res.output
    r = json.loads((out / "turns.json").read_text())
    assert r["aggregate"]["n_skipped"] == 3
    reasons = {s["file"].rsplit("/", 1)[-1]: s["reason"] for s in r["skipped"]}
    assert set(reasons) == {"mono.wav", "empty.wav", "notes.flac"}
    assert reasons["mono.wav"].startswith(str(folder / "mono.wav"))
    assert "mono (1 channel); turn-taking needs 2 channels" in reasons["mono.wav"]
    assert "mono.wav" in res.output  # named on stderr as it is skipped
    assert "empty" in reasons["empty.wav"] and "not a readable" in reasons["notes.flac"]
    # nothing usable: the report is written and the command fails with one line
    res = CliRunner().invoke(app, ["eval", "turns", str(folder / "mono.wav"), "--out",
                                   str(out), "--vad", "energy"])
    assert res.exit_code != 0 and "none of the 1 files could be used" in str(res.exception)
    res = CliRunner().invoke(app, ["eval", "turns", str(stereo), "--out", str(out),
                                   "--vad", "webrtc"])
    assert res.exit_code != 0 and "known: silero, energy" in str(res.exception)


def test_silero_on_a_synthetic_dialogue(tmp_path):
    """silero-vad finds about the IPUs and gaps of the gold word times."""
    from speechlm.corpus.dialogue import (
        DIALOGUE_VOICES,
        make_dialogue,
        plan_dialogue,
        word_segments,
    )

    rec = make_dialogue(plan_dialogue(3, 0, DIALOGUE_VOICES), str(tmp_path / "d.wav"))
    gold = summarize([turn_events(word_segments(rec))], rec["duration"])
    got = evaluate_turns([tmp_path / "d.wav"], tmp_path / "s", vad="silero",
                         progress=False)["files"][0]
    assert abs(got["n_ipu"] - gold["n_ipu"]) <= max(2, 0.15 * gold["n_ipu"])
    assert abs(got["n_gap"] - gold["n_gap"]) <= max(2, 0.2 * gold["n_gap"])
    assert got["gap_mean_s"] == pytest.approx(gold["gap_mean_s"], abs=0.1)
