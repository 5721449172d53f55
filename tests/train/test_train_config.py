"""TrainConfig validation: every error names the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from speechlm.errors import ConfigError
from speechlm.train import TrainConfig


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="^lerning_rate: unknown key"):
        TrainConfig.from_dict({"data": "d", "output_dir": "o", "lerning_rate": 1e-3})


@pytest.mark.parametrize("key,value", [("max_steps", "ten"), ("lr", "fast"), ("fsdp", 3),
                                       ("model", [1]), ("seq_len", 1.5)])
def test_wrong_type_is_named(key, value):
    with pytest.raises(ConfigError, match=f"^{key}: expected"):
        TrainConfig(data="d", output_dir="o", **{key: value})


def test_bad_values_are_named():
    with pytest.raises(ConfigError, match="^init:"):
        TrainConfig(data="d", output_dir="o", init="hot")
    with pytest.raises(ConfigError, match="^init_from:"):
        TrainConfig(data="d", output_dir="o", init="warm")
    with pytest.raises(ConfigError, match="^formats.speech_onyl: unknown format"):
        TrainConfig(data="d", output_dir="o", formats={"speech_onyl": 1})
    with pytest.raises(ConfigError, match="^data: required"):
        TrainConfig.from_dict({"output_dir": "o"})


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: d\noutput_dir: o\nlr: 1\nmodel: {model_type: opt, hidden_size: 64}\n")
    cfg = TrainConfig.from_yaml(p, ["max_steps=7", "model.hidden_size=32", "lr=2e-3",
                                    "formats={speech_only: 1, speech_text: 0.5}"])
    assert cfg.max_steps == 7 and cfg.lr == 2e-3 and isinstance(cfg.lr, float)
    assert cfg.model == {"model_type": "opt", "hidden_size": 32}
    assert cfg.formats == {"speech_only": 1, "speech_text": 0.5}
    with pytest.raises(ConfigError, match="^warmup: unknown"):
        TrainConfig.from_yaml(p, ["warmup=3"])


def test_cli_reports_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: d\noutput_dir: o\n")
    r = subprocess.run([sys.executable, "-m", "speechlm.cli", "train", str(p), "batch_size=big"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "error: batch_size: expected int" in r.stderr
