"""Checkpoints load from safetensors only; a pickle-only, corrupt or missing one is one line."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

from speechlm.errors import ConfigError
from speechlm.models import load_speech_lm, warm_init


def _bin_only(src, dst):
    """A copy of an HF checkpoint whose weights are a pickle (pytorch_model.bin) only."""
    from transformers import AutoModelForCausalLM

    shutil.copytree(src, dst)
    model = AutoModelForCausalLM.from_pretrained(src)
    (dst / "model.safetensors").unlink()
    torch.save(model.state_dict(), dst / "pytorch_model.bin")
    return dst


def test_pickle_only_checkpoint_is_refused_not_unpickled(tiny_model, tmp_path, monkeypatch):
    d = _bin_only(tiny_model, tmp_path / "bin")
    # if anything tried to unpickle it, this would be called
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(ConfigError, match=r"holds only pickled weights \(pytorch_model.bin\); "
                                          "speechlm loads safetensors only"):
        load_speech_lm(d)
    with pytest.raises(ConfigError, match="^init_from: .*holds only pickled weights"):
        warm_init(str(d), "replace", n_units=4)


@pytest.mark.parametrize("damage, needle", [
    ("model.safetensors", "corrupt safetensors weights"),
    ("config.json", "cannot load the speech LM"),
    ("speechlm.json", "speechlm.json: not valid JSON"),
])
def test_damaged_model_dir_is_one_line_naming_the_path(tiny_model, tmp_path, damage, needle):
    d = tmp_path / "m"
    shutil.copytree(tiny_model, d)
    (d / damage).write_bytes(b"{garbage" * 8)
    r = subprocess.run([sys.executable, "-m", "speechlm.cli", "generate", "--model", str(d),
                        "--prompt", str(tmp_path / "p.wav"), "--out", str(tmp_path / "o.wav")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {d}") and needle in line, r.stderr[-800:]
