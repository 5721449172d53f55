"""Synthetic two-speaker dialogues: channels, gold word times, events, determinism, resuming,
the turn-taking figures measured on them, and importing real stereo dialogue."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from speechlm.cli import app
from speechlm.corpus.dialogue import (
    BACKCHANNELS,
    DIALOGUE_VOICES,
    DIALOGUE_WORDS,
    gold_turn_stats,
    plan_dialogue,
    read_dialogues,
    synthesize_dialogues,
    word_segments,
)
from speechlm.corpus.grammar import vocabulary
from speechlm.evaluate.turns import evaluate_turns


@pytest.fixture(scope="module")
def dialogues(tmp_path_factory):
    """About 72 s of dialogue (two dialogues) made with two workers."""
    out = tmp_path_factory.mktemp("dialogues")
    synthesize_dialogues(out, hours=0.02, seed=0, workers=2)
    return out


def _db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20)


def test_plans_are_seeded_with_two_voices_and_grammar_words():
    a, b = plan_dialogue(0, 3, DIALOGUE_VOICES), plan_dialogue(0, 3, DIALOGUE_VOICES)
    assert a == b and a != plan_dialogue(1, 3, DIALOGUE_VOICES)
    known = vocabulary() | DIALOGUE_WORDS
    for i in range(20):
        plan = plan_dialogue(0, i, DIALOGUE_VOICES)
        assert plan.voices[0] != plan.voices[1]
        assert [t.channel for t in plan.turns] == [(plan.turns[0].channel + k) % 2
                                                   for k in range(len(plan.turns))]
        for t in plan.turns:
            assert len(t.pauses) == len(t.sentences) - 1
            words = {w.strip(".,?") for s in t.sentences for w in s.split()}
            assert words <= known, words - known


def test_manifest_words_lie_inside_the_file_on_their_channel(dialogues):
    summary = json.loads((dialogues / "summary.json").read_text())
    recs = read_dialogues(dialogues / "manifest.jsonl")
    assert summary["dialogues"] == len(recs) >= 2 and 0.02 <= summary["hours"] < 0.04
    assert not (dialogues / "manifest.partial.jsonl").exists()
    for rec in recs:
        wav, rate = sf.read(rec["audio"], dtype="float32")
        assert wav.shape[1] == 2 and rate == rec["sample_rate"] == 16000
        assert abs(len(wav) / rate - rec["duration"]) < 1e-3
        voices = [c["voice"] for c in rec["channels"]]
        assert voices[0] != voices[1] and set(voices) <= set(DIALOGUE_VOICES)
        other_words = [word_segments(rec)[1], word_segments(rec)[0]]
        for c, chan in enumerate(rec["channels"]):
            words = chan["words"]
            assert words and all(0 <= s < e <= rec["duration"] for _, s, e in words)
            assert all(a[2] <= b[1] + 1e-6 for a, b in zip(words, words[1:], strict=False))
            peak = _db(wav[:, c]) + 20
            for _, s, e in words:
                span = wav[int(s * rate):int(e * rate)]
                assert _db(span[:, c]) > peak - 45  # the word is heard on its channel...
                if not any(s < oe and os < e for os, oe in other_words[c]):
                    assert _db(span[:, 1 - c]) < -60  # ...and the other channel is silent


def test_events_hold_overlaps_backchannels_and_interruptions(dialogues):
    recs = read_dialogues(dialogues / "manifest.jsonl")
    events = [e for r in recs for e in r["events"]]
    kinds = {e["type"] for e in events}
    assert kinds == {"turn", "overlap", "backchannel", "interruption"}
    summary = json.loads((dialogues / "summary.json").read_text())
    assert summary["overlaps"] == sum(e["type"] == "overlap" for e in events) > 0
    for rec in recs:
        words = word_segments(rec)
        turns = [e for e in rec["events"] if e["type"] == "turn"]
        assert all(a["channel"] != b["channel"] for a, b in zip(turns, turns[1:], strict=False))
        for e in rec["events"]:
            assert 0 <= e["start"] < e["end"] <= rec["duration"]
            if e["type"] == "overlap":  # both channels have words across it
                mid = (e["start"] + e["end"]) / 2
                for c in (0, 1):
                    assert any(s - 0.2 <= mid <= w + 0.2 for s, w in words[c])
            if e["type"] == "backchannel":
                assert e["text"] in BACKCHANNELS
                assert [e["text"], e["start"], e["end"]] in rec["channels"][e["channel"]]["words"]
                # said while the other speaker holds a turn
                assert any(t["channel"] != e["channel"] and t["start"] < e["start"] < t["end"]
                           + 0.5 for t in turns)
            if e["type"] == "interruption":  # the interrupted speaker stops at a word end
                ends = [w for _, _, w in rec["channels"][e["interrupted"]]["words"]]
                assert e["end"] in ends and e["start"] < e["end"]
                cut = next(t for t in turns if t["channel"] == e["interrupted"]
                           and t["end"] == e["end"])
                assert cut["interrupted"]


def test_measured_turn_stats_agree_with_the_gold_events(dialogues, tmp_path):
    """Energy VAD on the audio finds the IPUs, gaps and overlaps the gold word times imply."""
    recs = read_dialogues(dialogues / "manifest.jsonl")
    gold = gold_turn_stats(recs)
    got = evaluate_turns([dialogues / "audio"], tmp_path, vad="energy",
                         progress=False)["aggregate"]
    assert got["n_scored"] == len(recs)
    assert abs(got["n_ipu"] - gold["n_ipu"]) <= max(2, 0.05 * gold["n_ipu"])
    assert abs(got["n_gap"] - gold["n_gap"]) <= max(2, 0.1 * gold["n_gap"])
    assert got["n_overlap"] == pytest.approx(gold["n_overlap"], abs=2)
    for key in ("ipu_mean_s", "gap_mean_s", "overlap_mean_s"):
        assert got[key] == pytest.approx(gold[key], abs=0.05), key
    # every gold overlap of 0.1 s or more is found where the manifest says
    by_file = {f["file"].rsplit("/", 1)[-1]: f for f in
               json.loads((tmp_path / "turns.json").read_text())["files"]}
    for rec in recs:
        ipus = by_file[rec["audio"].rsplit("/", 1)[-1]]["ipus"]
        for e in rec["events"]:
            if e["type"] == "overlap" and e["end"] - e["start"] >= 0.1:
                mid = (e["start"] + e["end"]) / 2
                assert all(any(s <= mid <= w for s, w in ipus[c]) for c in (0, 1)), e


def _digest(folder):
    files = sorted([folder / "manifest.jsonl", folder / "summary.json",
                    *(folder / "audio").glob("*.wav")])
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


def test_same_seed_same_bytes_and_an_interrupted_run_resumes(dialogues, tmp_path):
    out = tmp_path / "a"
    res = CliRunner().invoke(app, ["synth", "dialogue", "--out", str(out), "--hours", "0.02",
                                   "--seed", "0", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert _digest(out) == _digest(dialogues)
    # interrupted after the first dialogue: it is kept, the rest is made again
    first = out / "audio" / "dlg000000.wav"
    stamp = first.stat().st_mtime_ns
    lines = (out / "manifest.jsonl").read_text().splitlines()
    settings = {k: json.loads((out / "summary.json").read_text())[k]
                for k in ("kind", "hours_requested", "seed", "voices")}
    (out / "manifest.partial.jsonl").write_text(
        json.dumps(settings) + "\n" + lines[0] + "\n" + lines[1][:40])  # a cut last line
    (out / "summary.json").unlink()
    (out / "manifest.jsonl").unlink()
    (out / "audio" / "dlg000001.wav").unlink()
    synthesize_dialogues(out, hours=0.02, seed=0, workers=1)
    assert first.stat().st_mtime_ns == stamp
    assert _digest(out) == _digest(dialogues)
    shutil.rmtree(out / "audio")  # finished: not made again
    assert synthesize_dialogues(out, hours=0.02, seed=0)["dialogues"] == len(lines)


def test_bad_sizes_are_refused(tmp_path):
    res = CliRunner().invoke(app, ["synth", "dialogue", "--out", str(tmp_path), "--hours", "0"])
    assert res.exit_code != 0 and "hours: must be > 0, got 0.0" in str(res.exception)
    assert not (tmp_path / "summary.json").exists()


def test_import_stereo_dialogue_with_ctm_and_fisher_transcripts(dialogues, tmp_path):
    rec = read_dialogues(dialogues / "manifest.jsonl")[0]
    src = tmp_path / "fisher"
    (src / "000").mkdir(parents=True)
    shutil.copy(rec["audio"], src / "000" / "fe_03_00001.wav")
    shutil.copy(rec["audio"], src / "000" / "fe_03_00002.wav")
    ctm = [f"fe_03_00001 {'AB'[c]} {s:.4f} {e - s:.4f} {w}"
           for c in (0, 1) for w, s, e in rec["channels"][c]["words"]]
    (src / "000" / "fe_03_00001.ctm").write_text(";; words\n" + "\n".join(ctm) + "\n")
    (src / "000" / "fe_03_00002.txt").write_text(
        "# fe_03_00002.sph\n\n0.50 1.90 A: hello there\n1.70 2.50 B: hi\n")
    sf.write(src / "000" / "mono.wav", np.zeros(8000, np.float32), 16000)
    (src / "000" / "fe_03_00003.wav").write_bytes(b"RIFF")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["corpus", "import", str(src), "--format", "dialogue",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 file(s) skipped" in res.output
    recs = read_dialogues(out / "manifest.jsonl")
    assert [r["id"] for r in recs] == ["000_fe_03_00001", "000_fe_03_00002"]
    one, two = recs
    assert [c["words"] for c in one["channels"]] == [c["words"] for c in rec["channels"]]
    assert [e for e in one["events"] if e["type"] == "overlap"] == \
        [e for e in rec["events"] if e["type"] == "overlap"]
    assert [c["speaker"] for c in one["channels"]] == ["000_fe_03_00001-A", "000_fe_03_00001-B"]
    assert two["channels"][0]["segments"] == [["hello there", 0.5, 1.9]]
    assert two["channels"][1]["segments"] == [["hi", 1.7, 2.5]]
    assert "words" not in two["channels"][0] and two["events"] == []
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert {e["id"] for e in errors} == {"000_mono", "000_fe_03_00003"}
    mono = next(e for e in errors if e["id"] == "000_mono")["error"]
    assert "mono.wav: 1 channel(s); a dialogue needs 2" in mono
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dialogues"] == 2 and summary["with_words"] == 1
    assert summary["turn_stats"]["n_overlap"] == len(one["events"])  # the one with words
