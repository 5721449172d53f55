"""The kept model is the best one on held-out data; budgets follow the data; precision resolves."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from train_helpers import tiny_cfg

from speechlm.errors import ConfigError
from speechlm.train import TrainConfig, run_training


@pytest.fixture(scope="module")
def overfit(toy_tokens, toy_eval_tokens, tmp_path_factory):
    """200 toy rows, 60 steps at a high rate: the held-out loss (another lexicon) turns up."""
    out = tmp_path_factory.mktemp("overfit")
    cfg = TrainConfig(**tiny_cfg(toy_tokens, out, max_steps=60, eval_steps=5, save_steps=5,
                                 save_total_limit=1, lr=1e-2, warmup_steps=2,
                                 eval_data=str(toy_eval_tokens), precision="fp32"))
    return out, cfg, run_training(cfg)


def test_kept_model_is_the_best_checkpoint_not_the_last(overfit):
    out, cfg, m = overfit
    losses = dict(m["eval_loss"])
    best_step = min(losses, key=losses.get)
    assert m["kept_step"] == best_step < 60
    assert m["final_eval_loss"] == pytest.approx(losses[best_step])
    assert m["final_eval_loss"] <= 1.02 * min(losses.values())
    assert m["last_eval_loss"] == losses[60] > m["final_eval_loss"]
    # the weights in the model directory are that checkpoint's: re-evaluating gives its loss
    from speechlm.models import load_speech_lm
    from speechlm.sequences.formats import parse_formats
    from speechlm.train.data import BlockDataset, format_examples
    from speechlm.train.objectives import lm_collate

    lm = load_speech_lm(out)
    blocks = BlockDataset(format_examples(cfg.eval_data, lm.vocab, parse_formats(
        {"speech_only": 1}), cfg.seed, out / "examples", key="eval_data", progress=False),
        cfg.seq_len)
    import torch

    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(blocks), cfg.batch_size):
            batch = lm_collate([blocks[j] for j in range(i, min(i + cfg.batch_size, len(blocks)))])
            logits = lm.model(input_ids=batch["input_ids"]).logits[:, :-1]
            lp = torch.log_softmax(logits, -1).gather(-1, batch["input_ids"][:, 1:, None])
            total -= lp.sum().item()
            n += lp.numel()
    assert total / n == pytest.approx(m["final_eval_loss"], abs=2e-4)


def test_loss_plot_and_metrics_record_the_kept_step(overfit):
    out, _, m = overfit
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["kept_step"] == m["kept_step"] and saved["keep"] == "best"
    assert (out / "loss.png").stat().st_size > 5000


def test_early_stopping_stops_after_patience(toy_tokens, toy_eval_tokens, tmp_path):
    cfg = TrainConfig(**tiny_cfg(
        toy_tokens, tmp_path, max_steps=200, eval_steps=5, save_steps=5, lr=1e-2,
        warmup_steps=2, eval_data=str(toy_eval_tokens), early_stopping_patience=2,
        precision="fp32"))
    m = run_training(cfg)
    losses = dict(m["eval_loss"])
    best = min(losses, key=losses.get)
    assert m["stopped_early"] and m["steps"] == best + 2 * 5  # two evaluations without a gain
    assert m["kept_step"] == best
    # started again, the stopped run stays stopped: no step, the same kept model
    weights = (tmp_path / "model.safetensors").read_bytes()
    again = run_training(cfg)
    assert again["steps"] == m["steps"] and again["steps_this_run"] == 0
    assert again["kept_step"] == best and again["eval_loss"] == m["eval_loss"]
    assert (tmp_path / "model.safetensors").read_bytes() == weights


def test_a_finished_run_started_again_takes_no_step(overfit, tmp_path):
    """transformers 5 resumed at max_steps takes one more step; the run must stay as it was.
    The copy also moves the run: the best checkpoint is found at its new place."""
    import dataclasses
    import shutil

    out, cfg, m = overfit
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    again = run_training(dataclasses.replace(cfg, output_dir=str(moved)))
    assert again["steps"] == 60 and again["steps_this_run"] == 0
    assert again["kept_step"] == m["kept_step"] and again["train_loss"] == m["train_loss"]
    assert (moved / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_max_epochs_caps_the_step_budget(toy_tokens, tmp_path):
    m = run_training(TrainConfig(**tiny_cfg(toy_tokens, tmp_path, max_steps=1000, max_epochs=0.5,
                                            batch_size=4)))
    assert m["steps"] == m["max_steps"] == math.ceil(0.5 * m["train_blocks"] / 4)
    assert m["epochs"] == pytest.approx(m["steps"] * 4 / m["train_blocks"], abs=1e-3)


def test_precision_auto_follows_the_hardware(toy_tokens, tmp_path):
    from speechlm.train.hardware import native_bf16

    m = run_training(TrainConfig(**tiny_cfg(toy_tokens, tmp_path, max_steps=2)))
    assert m["precision"] == ("bf16" if native_bf16() else "fp32")
    assert np.isfinite(m["final_train_loss"])


@pytest.mark.parametrize("kw, needle", [
    (dict(eval_steps=4, save_steps=6), "^save_steps: 6 must be a multiple of eval_steps"),
    (dict(early_stopping_patience=2, eval_data=None), "^early_stopping_patience: needs eval_data"),
    (dict(max_epochs=0), "^max_epochs: must be > 0"),
    (dict(precision="fp16"), "^precision: must be one of auto, fp32, bf16"),
])
def test_bad_generalisation_settings_are_named(toy_tokens, tmp_path, kw, needle):
    kw = {"eval_data": "somewhere", **kw}
    with pytest.raises(ConfigError, match=needle):
        TrainConfig(**tiny_cfg(toy_tokens, tmp_path, **kw))


def test_resuming_checkpoints_under_other_settings_is_refused(toy_tokens, tmp_path):
    import subprocess
    import sys

    import yaml

    kw = dict(max_steps=6, save_steps=3, precision="fp32")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_cfg(toy_tokens, tmp_path / "o", **kw)))
    crash = ("import sys\nfrom speechlm.train import TrainConfig, run_training\n"
             "from speechlm.train.trainer import StopAfterSave\n"
             "run_training(TrainConfig.from_yaml(sys.argv[1]), callbacks=[StopAfterSave(3)])")
    r = subprocess.run([sys.executable, "-c", crash, str(cfg_file)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 137, r.stderr[-2000:]  # killed right after checkpoint 3
    with pytest.raises(ConfigError, match=r"the checkpoints there were made with other settings "
                                          r"\(lr: 0\.003 -> 0\.001\)"):
        run_training(TrainConfig(**tiny_cfg(toy_tokens, tmp_path / "o", lr=1e-3, **kw)))
    m = run_training(TrainConfig(**tiny_cfg(toy_tokens, tmp_path / "o", **kw)))  # same: resumes
    assert m["resumed_from"].endswith("checkpoint-3") and m["steps"] == 6
