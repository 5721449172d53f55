"""Fitting a tokenizer on a manifest with bad items: listed and skipped; bad sizes refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from speechlm.corpus.manifest import read_manifest, write_manifest
from speechlm.errors import ConfigError
from speechlm.tokenizers import fit_tokenizer


def test_unreadable_and_truncated_files_are_listed(tiny_corpus, tmp_path):
    utts = read_manifest(tiny_corpus / "manifest.jsonl")[:6]
    cut = tmp_path / "cut.wav"
    cut.write_bytes(open(utts[0].audio, "rb").read()[:144])  # header + 50 samples
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....WAVEjunk")
    bad = [utts[1].__class__(**{**vars(utts[1]), "id": "cut", "audio": str(cut)}),
           utts[1].__class__(**{**vars(utts[1]), "id": "junk", "audio": str(junk)})]
    write_manifest(tmp_path / "m.jsonl", utts + bad)
    r = subprocess.run([sys.executable, "-m", "speechlm.cli", "tokenizer", "fit", "--manifest",
                        str(tmp_path / "m.jsonl"), "--kind", "mfcc", "--units", "4", "--out",
                        str(tmp_path / "tok"), "--max-frames", "2000"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    errors = [json.loads(x) for x in (tmp_path / "tok" / "fit_errors.jsonl").read_text()
              .splitlines()]
    assert {e["id"] for e in errors} == {"cut", "junk"}
    assert "truncated WAV" in next(e["error"] for e in errors if e["id"] == "cut")
    assert "2 utterance(s) left out of the fit" in r.stderr


@pytest.mark.parametrize("units, opts, needle", [
    (0, {}, "^units: must be an integer >= 2, got 0"),
    (-5, {}, "^units: must be an integer >= 2, got -5"),
    (8, {"max_frames": 0}, "^max_frames: must be > 0, got 0"),
])
def test_bad_sizes_are_refused_before_any_work(tiny_corpus, tmp_path, units, opts, needle):
    with pytest.raises(ConfigError, match=needle):
        fit_tokenizer(tiny_corpus / "manifest.jsonl", "mfcc", units, tmp_path / "t", **opts)
    assert not (tmp_path / "t").exists()
