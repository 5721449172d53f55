"""File-system failures anywhere become one line naming the path (no traceback)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile as sf


def speechlm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechlm.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_out_naming_a_file_is_one_line(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    r = speechlm("synth", "benchmark", "--out", str(f), "--pairs", "2")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"error: {f}: a file stands where a folder is needed; "
                                "choose another --out")


def test_full_disk_is_one_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "a.wav", np.zeros(1600, np.float32), 16000)
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").symlink_to("/dev/full")  # every write there fails with ENOSPC
    r = speechlm("corpus", "import", str(src), "--format", "folder", "--out", str(out))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().endswith("the disk is full; free space or write elsewhere")


def test_broken_yaml_is_one_line_naming_file_line_and_column(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("data: d\nmodel: {hidden_size: 32\n")
    r = speechlm("train", str(cfg))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"error: {cfg}:3:1: invalid YAML: expected ',' or '}}', but got "
                                "'<stream end>'")
