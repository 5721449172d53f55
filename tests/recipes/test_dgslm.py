"""The dgslm recipe: its dialogue stages on tiny settings, imported dialogues with bad files, and
`speechlm run dgslm` end to end at a scale far below the tiny recipe's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm.errors import ConfigError
from speechlm.recipes import load_recipe
from speechlm.recipes.stages.dialogue import DialoguesConfig, split_dialogues

# ~2 minutes of mono speech, ~2 minutes of dialogue each split, a 2-layer 32-wide DLM
SMALL = [
    "corpus.hours=0.03", "data.valid_fraction=0.2", "benchmark.pairs=8", "tokenizer.units=20",
    "dialogues.hours=0.03", "dialogues.valid_hours=0.02",
    "train.model.hidden_size=32", "train.model.intermediate_size=64",
    "train.model.num_hidden_layers=2", "train.model.num_attention_heads=2",
    "train.model.num_key_value_heads=2", "train.model.dialogue.cross_layers=1",
    "train.seq_len=64", "train.batch_size=4", "train.max_steps=8", "train.save_steps=4",
    "train.eval_steps=4", "train.warmup_steps=2", "train.logging_steps=2",
    "vocoder.max_hours=0.01", "vocoder.envelope.max_steps=2", "vocoder.envelope.save_steps=1",
    "vocoder.envelope.channels=16", "vocoder.envelope.batch_size=2",
    "dialogue_generate.prompt_seconds=3", "dialogue_generate.seconds=4",
    "dialogue_generate.max_prompts=2", "turns.vad=energy",
]


def speechlm(*args: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "speechlm.cli", *args], capture_output=True,
                          text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def _record(i: int, speakers: tuple[str, str]) -> dict:
    return {"id": f"d{i}", "audio": f"/x/d{i}.wav", "duration": 10.0, "sample_rate": 16000,
            "channels": [{"channel": c, "speaker": s} for c, s in enumerate(speakers)],
            "events": []}


def test_imported_dialogues_split_with_new_speakers_in_valid():
    records = [_record(i, (f"s{i}", f"s{i + 1}")) for i in range(10)]  # a chain of speakers
    train, valid, dropped = split_dialogues(records, 0.2, seed=0)
    held = {c["speaker"] for r in valid for c in r["channels"]}
    assert len(valid) == 2 and not any(c["speaker"] in held for r in train for c in r["channels"])
    assert len(train) + len(valid) + len(dropped) == 10 and dropped
    assert all(d["reason"] == "shares a speaker with a held-out dialogue" for d in dropped)
    assert split_dialogues(records, 0.2, seed=0) == (train, valid, dropped)  # seeded


def test_dialogue_settings_are_checked_at_load():
    with pytest.raises(ConfigError, match="^manifest: give either hours"):
        DialoguesConfig(hours=1.0, manifest="m.jsonl")
    with pytest.raises(ConfigError, match=r"^valid_voices: \['en-us\+m1'\] also speak"):
        DialoguesConfig(hours=1.0, valid_voices=["en-us+m1", "en-us+m7"])
    with pytest.raises(ConfigError, match="^dialogue_tokens.pad: two pads"):
        load_recipe("dgslm", "tiny", ["dialogue_tokens.pad=0.6"])
    with pytest.raises(ConfigError, match=r"^dialogue_eval\.tasks: a list of lexical"):
        load_recipe("dgslm", "tiny", ["dialogue_eval.tasks=[ssc]"])
    # the model stage trains on the dialogue stage's tokens, not the tokens stage's
    conf = load_recipe("dgslm", "tiny").confs["model"]
    assert (conf.data, conf.eval_data) == ("dialogue_tokens/train", "dialogue_tokens/valid")
    gslm = load_recipe("gslm", "tiny").confs["model"]
    assert (gslm.data, gslm.eval_data) == ("tokens/train", "tokens/valid")


def test_paper_scale_asks_for_its_dialogues(tmp_path):
    from speechlm.recipes.plan import format_plan

    text = format_plan(load_recipe("dgslm", "paper"))
    assert "needs dialogues.manifest=" in text and "needs --manifest" in text
    cfg = load_recipe("dgslm", "paper")
    assert cfg.confs["tokenizer"].layer == 12 and cfg.confs["tokenizer"].units == 500
    assert cfg.confs["model"].model["dialogue"]["cross_layers"] == 4
    assert cfg.confs["model"].model["num_hidden_layers"] == 6


@pytest.mark.slow
def test_imported_dialogues_skip_and_list_bad_files(tmp_path):
    from speechlm.corpus.dialogue import synthesize_dialogues

    src = tmp_path / "src"
    synthesize_dialogues(src, 0.03, seed=3, workers=2)
    records = [json.loads(line) for line in (src / "manifest.jsonl").read_text().splitlines()]
    for r in records:
        r["audio"] = str(src / r["audio"])
    mono = tmp_path / "mono.wav"  # a mono file among the dialogues
    sf.write(mono, np.zeros(16000, np.float32), 16000)
    records.append({**records[0], "id": "mono", "audio": str(mono), "duration": 1.0,
                    "channels": [{"channel": 0, "speaker": "m-A"}, {"channel": 1,
                                                                    "speaker": "m-B"}]})
    manifest = tmp_path / "dialogues.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    recipe = tmp_path / "dialogue_tokens.yaml"  # the dgslm stages up to the tokens
    recipe.write_text(
        "name: dialogue-tokens\nstages: [corpus, data, tokenizer, dialogues, dialogue_tokens]\n"
        "scales:\n  tiny:\n    corpus: {hours: 0.03, seed: 0}\n    data: {valid_fraction: 0.2}\n"
        "    tokenizer: {kind: mfcc, units: 20, smoothing: 0.5}\n"
        f"    dialogues: {{manifest: {manifest}, valid_fraction: 0.3, seed: 1}}\n"
        "    dialogue_tokens: {segments: speech}\n")
    out = tmp_path / "run"
    rc, log = speechlm("run", str(recipe), "--out", str(out))
    assert rc == 0, log[-3000:]
    info = json.loads((out / "dialogue_tokens" / ".done").read_text())["info"]
    listed = info["train"]["skipped_dialogues"] + info["valid"]["skipped_dialogues"]
    assert [e["id"] for e in listed] == ["mono"] and "mono (1 channel)" in listed[0]["error"]
    assert info["train"]["dialogues"] + info["valid"]["dialogues"] == len(records) - 1
    split = json.loads((out / "dialogues" / ".done").read_text())["info"]
    assert split["source"] == "imported" and split["valid"]["dialogues"] >= 1


@pytest.fixture(scope="module")
def dgslm_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "dgslm"
    rc, log = speechlm("run", "dgslm", "--out", str(out), *SMALL)
    assert rc == 0, log[-3000:]
    return out


@pytest.mark.slow
def test_run_writes_every_stage_the_turns_table_and_both_channels(dgslm_run):
    out = dgslm_run
    for stage in load_recipe("dgslm", "tiny").stages:
        assert (out / stage / ".done").exists(), stage
    results = json.loads((out / "results.json").read_text())
    turns = results["turns"]  # DESIGN's names: turns.SOURCE.ipu_per_min, ...
    for source in ("data", "resynth", "model", "baseline"):
        for key in ("ipu_per_min", "gap_mean_s", "pause_mean_s", "overlap_per_min"):
            assert key in turns[source], (source, key)
        assert turns[source]["n_scored"] == 2 and turns[source]["minutes"] == pytest.approx(
            2 * 4 / 60, abs=1e-3)
    assert set(turns["comparison"]["data"]["closer"]) == {"overlap_per_min_diff",
                                                          "gap_distance"}
    bench = results["benchmarks"]
    assert bench["lexical"]["n_pairs"] == bench["lexical_channel_b"]["n_pairs"] == 8
    assert bench["lexical"]["accuracy"] == bench["lexical_channel_b"]["accuracy"]
    diff = json.loads((out / "dialogue_eval" / ".done").read_text())["info"]
    assert diff["max_score_difference_a_b"]["lexical"] < 1e-2  # shared towers
    report = (out / "report.md").read_text()
    assert "## Turn-taking (eval turns): data vs dGSLM vs the cascaded baseline" in report
    assert "| overlap_per_min |" in report and "claim" in report
    assert results["data"]["dialogue_train_frames_per_channel"] > 0
    for source in ("data", "model", "baseline"):
        assert len(list((out / "dialogue_generate" / source).glob("*.wav"))) == 2
    # the model directory is a dgslm one, trained on the dialogue tokens, with its vocoder
    from speechlm.models import load_speech_lm

    lm = load_speech_lm(out / "model")
    assert lm.architecture.name == "dgslm" and lm.model.config.silence_unit is not None
    assert (out / "model" / "vocoder").is_dir() and (out / "model" / "speech_tokenizer").is_dir()
    assert results["model"]["objective"] == "dialogue" and results["model"]["steps"] == 8
    record = json.loads((out / "model" / ".done").read_text())["config"]
    assert "dialogue_tokens" in record and record["train"]["data"] == "dialogue_tokens/train"


@pytest.mark.slow
def test_second_run_does_no_work(dgslm_run):
    stamps = {p: p.stat().st_mtime_ns for p in dgslm_run.glob("*/.done")}
    rc, log = speechlm("run", "dgslm", "--out", str(dgslm_run), *SMALL)
    assert rc == 0, log[-3000:]
    assert log.count("skipped") == len(stamps) == 11
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.slow
def test_generate_continues_a_stereo_prompt_with_or_without_the_other_side(dgslm_run, tmp_path):
    """`speechlm generate` on a dgslm model: a stereo prompt gives a stereo continuation; with
    --fixed-channel b, channel b is the file's own last seconds and only a is generated."""
    from speechlm.models import load_speech_lm

    lm = load_speech_lm(dgslm_run / "model")
    assert lm.model.config.channel_tokens["segments"] == "speech"  # the tiny recipe
    prompt = sorted((dgslm_run / "dialogues" / "valid" / "audio").glob("*.wav"))[0]
    wav, rate = sf.read(prompt)
    assert wav.ndim == 2 and wav.shape[1] == 2

    both = tmp_path / "both.wav"
    rc, log = speechlm("generate", "--model", str(dgslm_run / "model"), "--prompt", str(prompt),
                       "--out", str(both), "--max-seconds", "1.5", "--seed", "3")
    assert rc == 0, log[-2000:]
    audio, out_rate = sf.read(both)
    assert audio.shape[1] == 2 and abs(len(audio) / out_rate - 1.5) < 0.05
    record = json.loads(both.with_suffix(".json").read_text())
    assert record["fixed_channel"] is None and len(record["units"]) == 2
    assert record["prompt_seconds"] == pytest.approx(len(wav) / rate, abs=0.05)

    given = tmp_path / "given.wav"
    rc, log = speechlm("generate", "--model", str(dgslm_run / "model"), "--prompt", str(prompt),
                       "--out", str(given), "--max-seconds", "1.5", "--fixed-channel", "b")
    assert rc == 0, log[-2000:]
    audio, out_rate = sf.read(given)
    record = json.loads(given.with_suffix(".json").read_text())
    assert record["fixed_channel"] == 1
    assert record["prompt_seconds"] == pytest.approx(len(wav) / rate - 1.5, abs=0.05)
    start = int(round(record["prompt_seconds"] * rate))
    own = wav[start: start + len(audio), 1]
    assert out_rate == rate and np.allclose(audio[: len(own), 1], own, atol=1e-3)

    rc, log = speechlm("generate", "--model", str(dgslm_run / "model"), "--prompt", str(prompt),
                       "--out", str(tmp_path / "x.wav"), "--fixed-channel", "c")
    assert rc != 0 and "--fixed-channel: a or b" in log
