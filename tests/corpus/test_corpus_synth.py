"""Synthetic corpora: gold alignments, determinism, the CLI."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest
import soundfile as sf
from typer.testing import CliRunner

from speechlm.cli import app
from speechlm.corpus.grammar import vocabulary, words_of
from speechlm.corpus.manifest import read_manifest
from speechlm.corpus.synth import HELDOUT_VOICES, TRAIN_VOICES, synthesize_corpus


def test_voices_disjoint():
    assert len(TRAIN_VOICES) >= 10 and len(HELDOUT_VOICES) >= 3
    assert not set(TRAIN_VOICES) & set(HELDOUT_VOICES)


def test_tiny_corpus_layout_and_summary(tiny_corpus):
    summary = json.loads((tiny_corpus / "summary.json").read_text())
    utts = read_manifest(tiny_corpus / "manifest.jsonl")
    assert summary["utterances"] == len(utts) > 20
    assert 0.05 <= summary["hours"] < 0.06
    assert abs(sum(u.duration for u in utts) / 3600 - summary["hours"]) < 1e-3
    assert summary["words"] == sum(len(u.words) for u in utts)
    assert summary["speakers"] == len({u.speaker for u in utts}) > 5
    assert {u.speaker for u in utts} <= set(TRAIN_VOICES)
    for u in utts[:10]:
        info = sf.info(u.audio)
        assert info.samplerate == u.sample_rate == 16000 and info.channels == 1
        assert abs(info.frames / 16000 - u.duration) < 1e-3


def test_gold_alignments(tiny_corpus):
    for u in read_manifest(tiny_corpus / "manifest.jsonl"):
        assert [w for w, _, _ in u.words] == words_of(u.text)  # the transcript's words
        assert set(words_of(u.text)) <= vocabulary()
        prev_start, prev_end = -1.0, 0.0
        for _, start, end in u.words:
            assert start > prev_start and start >= prev_end - 1e-6  # increasing, no overlap
            assert start < end <= u.duration  # inside the audio, non-empty
            prev_start, prev_end = start, end
        phones = u.phones
        assert phones and all(0 <= s < e <= u.duration for _, s, e in phones)
        assert all(a[2] <= b[1] + 1e-6 for a, b in zip(phones, phones[1:], strict=False))
        # every word covers at least one phone that starts inside it
        for _, start, end in u.words:
            assert any(start - 1e-6 <= s < end for _, s, _ in phones)


def test_words_are_zipf_like(tiny_corpus):
    counts = Counter(w for u in read_manifest(tiny_corpus / "manifest.jsonl")
                     for w, _, _ in u.words)
    ranked = [n for _, n in counts.most_common()]
    assert ranked[0] > 10 * ranked[len(ranked) // 2]


def _digest(folder):
    """sha256 of what synthesize_corpus writes (other stages may add files beside it)."""
    files = sorted([folder / "manifest.jsonl", folder / "summary.json",
                    *(folder / "wav").glob("*.wav")])
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


def test_same_seed_same_bytes_any_worker_count(tiny_corpus, tmp_path):
    """`speechlm synth corpus --hours 0.05` with 1 worker remakes the 2-worker fixture exactly."""
    res = CliRunner().invoke(app, ["synth", "corpus", "--out", str(tmp_path / "a"),
                                   "--hours", "0.05", "--seed", "0", "--workers", "1"])
    assert res.exit_code == 0, res.output
    a, b = _digest(tmp_path / "a"), _digest(tiny_corpus)
    assert len(a) > 20 and a == b
    synthesize_corpus(tmp_path / "c", hours=0.003, seed=6, workers=1)
    first = read_manifest(tmp_path / "c" / "manifest.jsonl")[0]
    assert first.text != read_manifest(tiny_corpus / "manifest.jsonl")[0].text


def test_finished_corpus_is_not_remade(tmp_path):
    first = synthesize_corpus(tmp_path, hours=0.002, seed=1, workers=1)
    stamp = (tmp_path / "manifest.jsonl").stat().st_mtime_ns
    assert synthesize_corpus(tmp_path, hours=0.002, seed=1, workers=1) == first
    assert (tmp_path / "manifest.jsonl").stat().st_mtime_ns == stamp


def test_forkserver_preloads_what_the_calling_script_imported(monkeypatch, tmp_path):
    """Children re-run ``__main__``; its imports must already be loaded (CPython gh-137996)."""
    import sys
    from types import ModuleType

    import speechlm.audio  # noqa: F401
    import speechlm.cli  # noqa: F401
    from speechlm.corpus.fresh import main_imports

    script = tmp_path / "script"  # a console script has no .py suffix
    script.write_text("#!/usr/bin/env python\nimport json, numpy as np\n"
                      "from speechlm.cli import main\nfrom speechlm.corpus import synth\n"
                      "if True:\n    import speechlm.audio\n"
                      "def later():\n    import xml.dom.minidom\n"
                      "import not_a_module_anywhere\n")
    main = ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert main_imports() == ["json", "numpy", "speechlm.audio", "speechlm.cli",
                               "speechlm.corpus", "speechlm.corpus.synth"]
    del main.__file__  # `python -c` or an interactive session: nothing to preload
    assert main_imports() == []


@pytest.mark.parametrize("args, needle", [
    (["synth", "corpus", "--hours", "-1"], "hours: must be > 0, got -1.0"),
    (["synth", "corpus", "--hours", "0"], "hours: must be > 0, got 0.0"),
    (["synth", "benchmark", "--pairs", "0"], "pairs: must be a positive integer, got 0"),
])
def test_non_positive_sizes_are_refused_and_nothing_is_marked_done(args, needle, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "speechlm.cli", *args, "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {needle}"
    assert not (out / "summary.json").exists() and not (out / "benchmarks.json").exists()
