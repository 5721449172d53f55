"""Full-duplex scenarios: every kind on two channels, the timing each kind promises (gaps,
cuts, silence, backchannels in pauses), voices per split, determinism, resuming, refusals."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from speechlm.cli import app
from speechlm.corpus.duplex import (
    ALL_KINDS,
    ANSWER_GAP_RANGE,
    ASSISTANT,
    BACKCHANNEL_CLEAR,
    BACKCHANNEL_DELAY,
    COMMANDS,
    DUPLEX_BACKCHANNELS,
    DUPLEX_REACTIONS,
    REACTION_RANGE,
    SPEECH_LEVEL_DB,
    STORY_PAUSE,
    SUBKINDS,
    Noise,
    Say,
    plan_scenario,
    qa_pools,
    read_scenarios,
    synthesize_duplex,
)
from speechlm.corpus.instructions import story_key
from speechlm.corpus.synth import HELDOUT_VOICES, TRAIN_VOICES
from speechlm.errors import ConfigError

COUNTS = {"train": 24, "valid": 2, "test": 4}  # 24: every subkind with and without a query
EPS = 2e-3  # word times are rounded to 0.1 ms and placed on samples


@pytest.fixture(scope="module")
def duplex(tmp_path_factory):
    out = tmp_path_factory.mktemp("duplex")
    synthesize_duplex(out, COUNTS, seed=0, workers=2, progress=False)
    return out


@pytest.fixture(scope="module")
def records(duplex):
    return read_scenarios(duplex / "scenarios.jsonl")


@pytest.fixture(scope="module")
def audio(records):
    return {r["id"]: sf.read(r["audio"], dtype="float32") for r in records}


def _span(wav: np.ndarray, start: float, end: float, channel: int) -> np.ndarray:
    return wav[int(round(start * 16000)):int(round(end * 16000)), channel]


def _db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20)


def _follows(rec: dict) -> bool:
    first = next(u["end"] for u in rec["user"] if not u["addressed"])
    return any(u["addressed"] and u["start"] > first for u in rec["user"])


def test_every_kind_is_made_in_stereo_with_its_silences(duplex, records, audio):
    summary = json.loads((duplex / "summary.json").read_text())
    assert summary["scenarios"] == len(records) == sum(COUNTS.values())
    assert [r["split"] for r in records] == [s for s, n in COUNTS.items() for _ in range(n)]
    assert read_scenarios(duplex / "scenarios.jsonl", split="test") == records[-4:]
    assert read_scenarios(duplex) == records  # the folder names its scenarios.jsonl
    made = {(r["kind"], r["subkind"], r["kind"] == "nonquery" and _follows(r)) for r in records}
    assert made == {(k, s, f) for k in ALL_KINDS for s in SUBKINDS[k]
                    for f in ((False, True) if k == "nonquery" else (False,))}
    assert any(r["noise_floor"] for r in records) and not all(r["noise_floor"] for r in records)
    for rec in records:
        wav, rate = audio[rec["id"]]
        assert wav.shape[1] == 2 and rate == rec["sample_rate"] == 16000
        assert abs(len(wav) / rate - rec["duration"]) < 1e-3
        assert 4.0 < rec["duration"] < 17.0, rec["id"]
        segments = rec["user"] + rec["assistant"]
        assert 0.3 - EPS <= min(s["start"] for s in segments) <= 1.0 + EPS
        assert 0.5 - EPS <= rec["duration"] - max(s["end"] for s in segments) <= 1.0 + EPS
        for seg in segments:
            assert all(seg["start"] - EPS <= s <= e <= seg["end"] + EPS
                       for _, s, e in seg["words"])
        # the assistant's channel is silent away from its own words
        talk = sorted((a["start"] - 0.02, a["end"] + 0.02) for a in rec["assistant"])
        edges = [0.0, *[t for span in talk for t in span], rec["duration"]]
        for s, e in zip(edges[::2], edges[1::2], strict=True):
            assert np.abs(_span(wav, s, e, 1)).max(initial=0) < 1e-4, (rec["id"], s, e)
        for u in rec["user"]:  # every user segment is heard on channel 0
            assert np.sqrt(np.mean(_span(wav, u["start"], u["end"], 0) ** 2)) > 0.005
        # the training voices' releases outlast their gold word ends by up to ~40 ms
        heard = sorted((u["start"] - 0.02, u["end"] + 0.06) for u in rec["user"])
        edges = [0.0, *[t for span in heard for t in span], rec["duration"]]
        quiet = np.concatenate([_span(wav, s, e, 0) for s, e in zip(edges[::2], edges[1::2],
                                                                     strict=True)])
        if rec["noise_floor"] is None:
            assert np.abs(quiet).max() < 1e-3  # -60 dBFS: the faintest of those releases
        else:  # the floor sits its SNR below the speech heard
            speech = [_span(wav, u["start"], u["end"], 0) for u in rec["user"] if u["words"]]
            snr = (_db(np.concatenate(speech)) if speech else SPEECH_LEVEL_DB) - _db(quiet)
            assert abs(snr - rec["noise_floor"]["snr_db"]) < 6, (rec["id"], snr)  # brown: loose


def test_answers_start_a_gap_after_the_users_question(records):
    n = 0
    for rec in records:
        onsets = {s["time"] for s in rec["states"] if s["token"] == "answer"}
        for a in rec["assistant"]:
            if a["kind"] == "backchannel":
                continue
            before = max((u for u in rec["user"] if u["end"] <= a["start"]),
                         key=lambda u: u["end"])
            assert before["addressed"] and before["kind"] in ("query", "story"), rec["id"]
            gap = a["start"] - before["end"]
            assert ANSWER_GAP_RANGE[0] - EPS <= gap <= ANSWER_GAP_RANGE[1] + EPS, rec["id"]
            assert a["start"] in onsets
            n += 1
    assert n >= len(records)


def test_an_interrupted_assistant_stops_a_reaction_time_after_the_user(records, audio):
    cuts = [r for r in records if r["kind"] == "interrupt"]
    assert {r["subkind"] for r in cuts} == {"command", "question"}
    for rec in cuts:
        wav, _ = audio[rec["id"]]
        irq = [s["time"] for s in rec["states"] if s["token"] == "irq"]
        cut_answer = next(a for a in rec["assistant"] if a["interrupted"])
        cut = cut_answer["end"]
        assert irq == [cut] and cut_answer["words"][-1][2] <= cut
        assert all(s < cut for _, s, _ in cut_answer["words"])
        user = next(u for u in rec["user"] if cut_answer["start"] < u["start"] < cut)
        assert REACTION_RANGE[0] - EPS <= cut - user["start"] <= REACTION_RANGE[1] + EPS
        assert user["start"] >= cut_answer["start"] + 0.8 - EPS
        later = [a["start"] for a in rec["assistant"] if a["start"] > cut]
        quiet = _span(wav, cut + 0.02, later[0] - 0.01 if later else rec["duration"], 1)
        assert np.abs(quiet).max() < 1e-4  # nothing after the cut until the next answer
        assert np.abs(_span(wav, cut - 0.3, cut - 0.02, 1)).max() > 0.01  # it was talking
        if rec["subkind"] == "command":
            assert user["kind"] == "command" and user["text"] in COMMANDS and not later
        else:
            assert user["kind"] == "query" and len(later) == 1


def test_nonquery_speech_gets_a_silent_state_and_no_answer(records, audio):
    nonq = [r for r in records if r["kind"] == "nonquery"]
    for rec in nonq:
        wav, _ = audio[rec["id"]]
        silent = [s["time"] for s in rec["states"] if s["token"] == "silent"]
        heard = [u for u in rec["user"] if not u["addressed"]]
        kinds = {u["kind"] for u in heard}
        assert kinds == {{"statement": "statement", "sidetalk": "sidetalk",
                          "noise": "noise"}[rec["subkind"]]}
        # one per segment; side talk is one exchange by two other people
        assert len(silent) == (1 if rec["subkind"] == "sidetalk" else len(heard))
        if rec["subkind"] == "sidetalk":
            speakers = [u["speaker"] for u in heard]
            assert len(set(speakers)) == 2 and 2 <= len(heard) <= 4
            assert not set(speakers) & {u["speaker"] for u in rec["user"] if u["addressed"]}
        if rec["subkind"] == "noise":
            assert all(u["words"] == [] and u["noise"] for u in heard)
            assert all(1.0 - EPS <= u["end"] - u["start"] <= 3.0 + EPS for u in heard)
        ends = [heard[-1]["end"]] if rec["subkind"] == "sidetalk" else [u["end"] for u in heard]
        for end, t in zip(ends, silent, strict=True):
            assert ANSWER_GAP_RANGE[0] - EPS <= t - end <= ANSWER_GAP_RANGE[1] + EPS
        start, stop = heard[0]["start"], silent[-1]
        assert not any(start < a["end"] and a["start"] < stop for a in rec["assistant"])
        assert np.abs(_span(wav, start, stop, 1)).max() < 1e-4


def test_backchannels_lie_inside_the_users_pauses(records):
    stories = [r for r in records if r["kind"] == "backchannel"]
    assert sum(a["kind"] == "backchannel" for r in stories for a in r["assistant"]) >= 2
    for rec in stories:
        told = [u for u in rec["user"] if u["kind"] == "story"]
        assert 3 <= len(told) <= 5
        pauses = list(zip(told, told[1:], strict=False))
        assert all(STORY_PAUSE[0] - EPS <= b["start"] - a["end"] <= STORY_PAUSE[1] + EPS
                   for a, b in pauses)
        onsets = [s["time"] for s in rec["states"] if s["token"] == "backchannel"]
        backs = [a for a in rec["assistant"] if a["kind"] == "backchannel"]
        assert onsets == [b["start"] for b in backs]
        for b in backs:
            assert b["text"].rstrip(".") in DUPLEX_BACKCHANNELS
            a, nxt = next((a, n) for a, n in pauses if a["end"] < b["start"] < n["start"])
            assert BACKCHANNEL_DELAY[0] - EPS <= b["start"] - a["end"] \
                <= BACKCHANNEL_DELAY[1] + EPS
            assert b["end"] <= nxt["start"] - BACKCHANNEL_CLEAR + EPS
        reaction = rec["assistant"][-1]
        assert reaction["kind"] == "reaction" and reaction["text"] in DUPLEX_REACTIONS
        assert reaction["start"] > told[-1]["end"]


def test_heldout_voices_and_stories_only_in_valid_and_test(records):
    for rec in records:
        voices = {u["speaker"] for u in rec["user"] if u["speaker"]}
        assert voices <= set(HELDOUT_VOICES if rec["split"] != "train" else TRAIN_VOICES)
    pools = qa_pools(0)
    train_stories = {story_key(i) for i in pools["train"]}
    for split in ("train", "valid", "test"):
        by_prompt = {i["prompt"]: i for i in pools[split]}
        for index in range(40):
            plan = plan_scenario(0, split, index)
            assert plan == plan_scenario(0, split, index) != plan_scenario(1, split, index)
            says = [s.source for s in plan.steps if isinstance(s.source, Say)]
            says += [b for s in plan.steps if isinstance(s.source, Noise)
                     for b in s.source.babble]
            for step in plan.steps:
                if step.channel == 1:  # one product voice
                    assert (step.source.voice, step.source.rate, step.source.pitch) == ASSISTANT
                elif step.kind == "query":
                    item = by_prompt[step.source.text]  # the split's own items
                    assert (story_key(item) in train_stories) == (split == "train")
            heard = {s.voice for s in says} - {ASSISTANT[0]}
            assert heard <= set(TRAIN_VOICES if split == "train" else HELDOUT_VOICES)


def _digest(folder, ids):
    return {i: hashlib.sha256((folder / "audio" / f"{i}.wav").read_bytes()).hexdigest()
            for i in ids}


def test_same_scenarios_for_any_workers_and_counts_and_an_interrupted_run_resumes(
        duplex, records, tmp_path):
    out = tmp_path / "a"
    res = CliRunner().invoke(app, ["synth", "duplex", "--out", str(out), "--train", "6",
                                   "--valid", "0", "--test", "2", "--workers", "1"])
    assert res.exit_code == 0, res.output
    small = [json.loads(line) for line in (out / "scenarios.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in small]
    assert ids == [f"train{i:06d}" for i in range(6)] + ["test000000", "test000001"]
    big = {r["id"]: r for r in read_scenarios(duplex / "scenarios.jsonl", resolve=False)}
    assert small == [big[i] for i in ids]  # one worker, other counts: the same scenarios
    assert _digest(out, ids) == _digest(duplex, ids)
    # interrupted after three scenarios, the fourth line cut: three are kept
    settings = {k: v for k, v in json.loads((out / "summary.json").read_text()).items()
                if k in ("kind", "counts", "kinds", "seed", "assistant", "voices")}
    lines = (out / "scenarios.jsonl").read_text().splitlines()
    (out / "scenarios.partial.jsonl").write_text(
        "\n".join([json.dumps(settings), *lines[:3], lines[3][:50]]))
    (out / "summary.json").unlink()
    (out / "scenarios.jsonl").unlink()
    for i in ids[4:]:
        (out / "audio" / f"{i}.wav").unlink()
    first = out / "audio" / f"{ids[0]}.wav"
    stamp = first.stat().st_mtime_ns
    synthesize_duplex(out, {"train": 6, "test": 2}, workers=2, progress=False)
    assert first.stat().st_mtime_ns == stamp
    assert (out / "scenarios.jsonl").read_text().splitlines() == lines
    assert _digest(out, ids) == _digest(duplex, ids)
    shutil.rmtree(out / "audio")  # finished: not made again
    assert synthesize_duplex(out, {"train": 6, "test": 2}, progress=False)["scenarios"] == 8
    with pytest.raises(ConfigError, match=r"out_dir: .* other settings \(seed: 0 there, 1"):
        synthesize_duplex(out, {"train": 6, "test": 2}, seed=1, progress=False)


@pytest.mark.parametrize("counts, kinds, message", [
    ({"train": -1}, ALL_KINDS, "counts.train: must be an integer >= 0, got -1"),
    ({"dev": 3}, ALL_KINDS, "counts: unknown split(s) ['dev']"),
    ({"train": 0}, ALL_KINDS, "counts: no scenario to make"),
    ({"train": 2}, ["query", "chat"], "kinds: unknown or repeated kind(s) ['chat']"),
])
def test_bad_settings_are_refused(tmp_path, counts, kinds, message):
    with pytest.raises(ConfigError) as err:
        synthesize_duplex(tmp_path / "x", counts, kinds=kinds, progress=False)
    assert message in str(err.value)
    assert not (tmp_path / "x").exists()


def test_the_cli_names_a_bad_option(tmp_path):
    res = CliRunner().invoke(app, ["synth", "duplex", "--out", str(tmp_path / "x"),
                                   "--kinds", "query,chat"])
    assert res.exit_code != 0 and "kinds: unknown" in str(res.exception)
