"""The warm-start study (``python -m speechlm.train.experiment``) on the tiny run's tokens."""

from __future__ import annotations

import json

import pytest
from train_helpers import TINY_LLAMA

from speechlm.train import experiment


@pytest.fixture
def tiny_run(tiny_tokens, tiny_benchmark, tmp_path, monkeypatch):
    """A run directory with the study's inputs, and two-step source LMs of the tiny size."""
    run = tmp_path / "run"
    (run / "tokens").mkdir(parents=True)
    (run / "tokens" / "train").symlink_to(tiny_tokens)
    (run / "tokens" / "valid").symlink_to(tiny_tokens)
    (run / "benchmark").symlink_to(tiny_benchmark)
    monkeypatch.setitem(experiment.SOURCE_LMS, "text", {
        "source": "grammar", "n_sentences": 64, "steps": 2, "model": dict(TINY_LLAMA),
        "batch_size": 2, "seq_len": 32, "vocab_size": 40, "progress": False})
    monkeypatch.setitem(experiment.ARMS, "cold", (None, {"model": dict(TINY_LLAMA)}))
    return run


def _study(run, out, *extra: str) -> None:
    experiment.main(["--run", str(run), "--out", str(out), "--budgets", "10", "--batch-size", "2",
                     "--seq-len", "64", "--precision", "fp32", *extra])


def test_each_arm_trains_with_its_settings_and_a_rerun_reuses_it(tiny_run, tmp_path,
                                                                 monkeypatch, capsys):
    out = tmp_path / "study"
    _study(tiny_run, out, "--arms", "cold,text-freeze", "--lr", "1e-3", "--warmup", "0.3")
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"cold", "text-freeze"}
    for arm, per in results.items():
        f = per["10"]
        for task in experiment.TASKS:  # each arm is scored on every pair of the benchmark
            scored = json.loads((out / arm / "10" / "eval" / task / "dev_results.json")
                                .read_text())[task]
            assert (f[task], scored["n_pairs"]) == (scored["accuracy"], 12), (arm, task)
        assert f["heldout_loss"] == min(loss for _, loss in f["eval_curve"]), arm
        cfg = json.loads((out / arm / "10" / "model" / "train_config.json").read_text())
        # --lr and --warmup reach every arm; the warm-up is that share of the budget
        assert (cfg["lr"], cfg["warmup_steps"], cfg["max_steps"]) == (1e-3, 3, 10), arm
    warm = json.loads((out / "text-freeze" / "10" / "model" / "train_config.json").read_text())
    assert (warm["init"], warm["vocab_mode"], warm["new_rows"]) == ("warm", "replace", "normal")
    assert warm["init_from"] == str(out / "lm_text")
    assert warm["freeze_body_steps"] == 1  # "10%" of 10 steps
    assert "| cold | 10 |" in (out / "results.md").read_text()
    assert (out / "curves_10.png").stat().st_size > 0

    # a second call trains only what is missing and keeps the earlier arms in its tables
    def no_training(cfg):
        raise AssertionError(f"{cfg.output_dir} was trained again")

    monkeypatch.setattr("speechlm.train.run_training", no_training)
    _study(tiny_run, out, "--arms", "cold", "--lr", "1e-3", "--warmup", "0.3")
    assert json.loads((out / "results.json").read_text()) == results


def test_an_unknown_arm_or_an_unfinished_run_is_refused(tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _study(tiny_run, tmp_path / "s", "--arms", "cold,warmest")
    assert "--arms: unknown warmest" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _study(tmp_path / "nowhere", tmp_path / "s", "--arms", "cold")
    assert "tokens/train is missing" in capsys.readouterr().err
