"""PNMI / purity and the ``speechlm tokenizer`` / ``speechlm tokenize`` command lines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from speechlm.tokenizers.quality import frame_labels, purity_pnmi


def test_pnmi_perfect_random_and_merged():
    rng = np.random.default_rng(0)
    phones = rng.integers(0, 10, 50_000)
    perfect = purity_pnmi(phones, (phones * 7 + 3) % 10)  # a relabelling loses nothing
    assert perfect["pnmi"] == pytest.approx(1.0) and perfect["phone_purity"] == pytest.approx(1)
    random = purity_pnmi(phones, rng.integers(0, 10, 50_000))
    assert random["pnmi"] < 0.01 and random["phone_purity"] < 0.15
    split = purity_pnmi(phones, phones * 2 + rng.integers(0, 2, 50_000))  # 2 units per phone
    assert split["pnmi"] == pytest.approx(1.0) and split["cluster_purity"] == pytest.approx(0.5,
                                                                                            abs=.02)


def test_frame_labels_use_frame_centres():
    labels = frame_labels([("a", 0.0, 0.05), ("b", 0.07, 0.1)], 6, 50.0)
    assert labels == ["a", "a", "<sil>", "b", "b", "<sil>"]  # centres 0.01, 0.03, ... s


def test_cli_fit_tokenize_report(tiny_corpus, tiny_tokenizer, tmp_path):
    from speechlm.cli import app

    runner = CliRunner()
    m = str(tiny_corpus / "manifest.jsonl")
    r = runner.invoke(app, ["tokenizer", "report", "--tokenizer", str(tiny_tokenizer),
                            "--manifest", m, "--out", str(tmp_path / "q.json"),
                            "--max-utterances", "20"])
    assert r.exit_code == 0, r.output
    q = json.loads((tmp_path / "q.json").read_text())
    assert 0.1 < q["pnmi"] < 1 and 0 < q["phone_purity"] <= 1 and q["utterances"] == 20
    assert q["units_per_second"] < 50  # de-duplicated 50 Hz frames
    r = runner.invoke(app, ["tokenizer", "fit", "--manifest", m, "--kind", "logmel",
                            "--units", "8", "--out", str(tmp_path / "t"), "--max-frames", "3000"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "t" / "tokenizer.json").read_text())["n_units"] == 8
    r = runner.invoke(app, ["tokenize", "--manifest", m, "--tokenizer", str(tmp_path / "t"),
                            "--out", str(tmp_path / "d"), "--shard", "1/4"])
    assert r.exit_code == 0, r.output
    assert "0 errors" in r.output
    info = json.loads((tmp_path / "d" / "info.json").read_text())
    assert (tmp_path / "d" / info["tokenizer"]).resolve() == (tmp_path / "t").resolve()
    assert info["shards"] == 4
    r = runner.invoke(app, ["tokenize", "--manifest", m, "--tokenizer", str(tmp_path / "t"),
                            "--out", str(tmp_path / "d"), "--shard", "x"])
    assert r.exit_code != 0
