"""The lslm recipe end to end at a scale far below the tiny recipe's (every duplex stage, the
three fusions), then its model live: `speechlm eval duplex` and `speechlm serve`'s WebSocket with
the real engine and vocoder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechlm.recipes import load_recipe

SMALL = [
    "corpus.hours=0.03", "data.valid_fraction=0.2", "tokenizer.units=20",
    "duplex_corpus.train=8", "duplex_corpus.valid=4", "duplex_corpus.test=4",
    "train.model.hidden_size=32", "train.model.intermediate_size=64",
    "train.model.num_hidden_layers=2", "train.model.num_attention_heads=2",
    "train.model.num_key_value_heads=2", "train.model.max_position_embeddings=128",
    "train.seq_len=128", "train.batch_size=4", "train.max_steps=6", "train.save_steps=3",
    "train.eval_steps=3", "train.warmup_steps=1", "train.logging_steps=2",
    "vocoder.max_hours=0.01", "vocoder.envelope.max_steps=2", "vocoder.envelope.save_steps=1",
    "vocoder.envelope.channels=16", "vocoder.envelope.batch_size=2",
    "duplex_eval.max_scenarios=3",
]
# DESIGN's figure names (results.json: duplex.*)
FIGURES = ("interruption_latency_s", "response_latency_s", "takeover_rate_turn",
           "takeover_rate_interrupt", "false_reply_rate", "answer_rate", "step_time_ratio")


def speechlm(*args: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "speechlm.cli", *args], capture_output=True,
                          text=True, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def lslm_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "lslm"
    rc, log = speechlm("run", "lslm", "--out", str(out), *SMALL)
    assert rc == 0, log[-3000:]
    return out


@pytest.mark.slow
def test_run_writes_every_stage_and_compares_three_fusions(lslm_run):
    out = lslm_run
    for stage in load_recipe("lslm", "tiny").stages:
        assert (out / stage / ".done").exists(), stage
    results = json.loads((out / "results.json").read_text())
    assert set(FIGURES) <= set(results["duplex"])
    assert set(results["duplex_fusion"]) == {"early", "middle", "late"}
    for fusion in ("early", "late"):  # trained beside the recipe's own (middle)
        cfg = json.loads((out / "fusions" / fusion / "model" / "config.json").read_text())
        assert cfg["fusion"] == fusion and cfg["listen_encoder"] == "gru"
        # no token id outside the backbone's one-row table (the Trainer copied the tokenizer's
        # pad 0, BOS 1, EOS 2 into it: transformers warned on every save and load)
        b = cfg["backbone"]
        assert (b["vocab_size"], b["bos_token_id"], b["eos_token_id"]) == (1, None, None)
        assert b["pad_token_id"] in (None, 0)
    middle = dict(results["duplex_fusion"]["middle"])
    loss = json.loads((out / "model" / "metrics.json").read_text())["final_eval_loss"]
    assert middle.pop("final_eval_loss") == loss and middle == results["duplex"]
    # the figures are the ones eval duplex wrote for the scenarios it played
    played = json.loads((out / "duplex_eval" / "duplex.json").read_text())
    assert played["scenarios"] == 3 and played["duplex"] == results["duplex"]
    queries = sum(len(s.get("query", [])) for s in played["per_scenario"])
    assert played["duplex"]["queries"] == queries > 0
    # lslm's text stream holds state tokens only, its scenarios queries and interruptions
    info = json.loads((out / "duplex_tokens" / "train" / "info.json").read_text())
    assert info["text_vocab"] == ["<pad>", "<bos>", "<unk>", "<answer>", "<silent>", "<irq>",
                                  "<bc>"]
    kinds = {json.loads(line)["kind"] for line in
             (out / "duplex_corpus" / "scenarios.jsonl").read_text().splitlines()}
    assert kinds == {"query", "interrupt"}
    report = (out / "report.md").read_text()
    assert "## Live interaction" in report
    assert all(f"| {f} |" in report for f in ("early", "middle", "late"))


@pytest.mark.slow
def test_eval_duplex_cli_on_the_runs_scenarios(lslm_run, tmp_path):
    rc, log = speechlm("eval", "duplex", "--model", str(lslm_run / "model"), "--out",
                       str(tmp_path), "--data", str(lslm_run / "duplex_corpus"),
                       "--max-scenarios", "2")
    assert rc == 0, log[-2000:]
    r = json.loads((tmp_path / "duplex.json").read_text())
    assert r["scenarios"] == 2 and "answer_rate" in log
    assert (tmp_path / "timelines.png").stat().st_size > 0


@pytest.mark.slow
def test_the_trained_model_speaks_over_the_websocket(lslm_run):
    """The real engine (causal units, model step, vocoder) behind the server: one output frame
    of audio per input frame."""
    from websockets.sync.client import connect

    from speechlm.audio import load_audio
    from speechlm.corpus.duplex import read_scenarios
    from speechlm.realtime.engine import load_engine
    from speechlm.realtime.server import serve_in_thread

    engine = load_engine(lslm_run / "model")
    # the recipe's vocoder, installed in the model directory, speaks at the tokenizer's rate
    assert (engine.vocoder.kind, engine.vocoder.sample_rate) == ("envelope", 16000)
    assert engine.frame_samples == 320 and engine.silence == json.loads(
        (lslm_run / "duplex_tokens" / "train" / "info.json").read_text())["silence_unit"]
    rec = read_scenarios(lslm_run / "duplex_corpus" / "scenarios.jsonl", split="test")[0]
    mic = load_audio(rec["audio"], engine.sample_rate, mono=False)[0][: engine.sample_rate]
    with serve_in_thread(engine) as server, \
            connect(f"ws://127.0.0.1:{server.port}/ws", max_size=None) as ws:
        ws.send(json.dumps({"type": "hello", "sample_rate": engine.sample_rate,
                            "format": "f32"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        for i in range(0, len(mic), engine.frame_samples):
            ws.send(np.asarray(mic[i:i + engine.frame_samples], dtype="<f4").tobytes())
        frames = 0
        while frames < len(mic) // engine.frame_samples:
            msg = ws.recv(timeout=20)
            if isinstance(msg, bytes):
                assert len(msg) == 4 * engine.frame_samples
                frames += 1
    assert frames == 50
