"""Exact resume after a crash, and 2-process DDP (gloo, CPU) == 1 process with the same batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from train_helpers import tiny_cfg

from speechlm.train import TrainConfig, run_training

CRASH = """
import sys
from speechlm.train import TrainConfig, run_training
from speechlm.train.trainer import StopAfterSave
cfg = TrainConfig.from_yaml(sys.argv[1])
run_training(cfg, callbacks=[StopAfterSave(3)])
"""


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.mark.slow
def test_kill_after_checkpoint_then_resume_matches_uninterrupted(toy_tokens, toy_eval_tokens,
                                                                 tmp_path):
    # fp32: exact equality across runs of any machine (precision auto may pick bf16)
    kw = dict(max_steps=6, save_steps=3, eval_data=str(toy_eval_tokens), eval_steps=3,
              precision="fp32")
    ref = run_training(TrainConfig(**tiny_cfg(toy_tokens, tmp_path / "ref", **kw)))

    cfg_file = tmp_path / "crash.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_cfg(toy_tokens, tmp_path / "crash", **kw)))
    r = subprocess.run([sys.executable, "-c", CRASH, str(cfg_file)], env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 137, r.stderr[-2000:]
    assert (tmp_path / "crash/checkpoints/checkpoint-3/trainer_state.json").is_file()
    assert not (tmp_path / "crash/model.safetensors").exists()

    resumed = run_training(TrainConfig.from_yaml(cfg_file))
    assert resumed["resumed_from"].endswith("checkpoint-3")
    assert resumed["steps_this_run"] == 3
    assert [s for s, _ in resumed["train_loss"]] == [1, 2, 3, 4, 5, 6]
    for (s, a), (_, b) in zip(ref["train_loss"], resumed["train_loss"], strict=True):
        assert a == pytest.approx(b, abs=1e-5), f"step {s}"
    assert resumed["final_eval_loss"] == pytest.approx(ref["final_eval_loss"], abs=1e-5)


@pytest.mark.slow
def test_torchrun_ddp_two_processes_matches_one(toy_tokens, tmp_path):
    # fp32: bf16 sums the batch in another order on 2 processes than on 1
    cfg = tiny_cfg(toy_tokens, tmp_path / "ddp", batch_size=2, max_steps=4, precision="fp32")
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", "-m", "speechlm.cli", "train", str(cfg_file)]
    r = subprocess.run(torchrun, env=_env(), capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp/metrics.json").read_text())
    assert ddp["processes"] == 2

    one = run_training(TrainConfig(**{**cfg, "output_dir": str(tmp_path / "one"),
                                      "batch_size": 4}))
    assert one["processes"] == 1
    assert len(ddp["train_loss"]) == len(one["train_loss"]) == 4
    for (s, a), (_, b) in zip(ddp["train_loss"], one["train_loss"], strict=True):
        assert a == pytest.approx(b, abs=1e-5), f"step {s}"
