"""The tokenisation job: Parquet + info.json + errors.jsonl, shards, workers, kill-and-resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speechlm.corpus.manifest import read_manifest, write_manifest
from speechlm.errors import ConfigError
from speechlm.tokenizers import load_tokenizer
from speechlm.tokenizers.job import load_token_dataset, tokenize_manifest
from speechlm.tokenizers.reading import read_utterance


@pytest.fixture(scope="module")
def manifest_with_bad(tiny_corpus, tmp_path_factory) -> Path:
    """The tiny corpus plus a corrupt file and a missing file in the middle."""
    d = tmp_path_factory.mktemp("bad")
    utts = read_manifest(tiny_corpus / "manifest.jsonl")
    (d / "corrupt.wav").write_bytes(b"RIFF....not really a wav")
    bad = [type(utts[0])(id="corrupt", audio=str(d / "corrupt.wav"), duration=1.0,
                         sample_rate=16000),
           type(utts[0])(id="missing", audio=str(d / "missing.wav"), duration=1.0,
                         sample_rate=16000)]
    write_manifest(d / "manifest.jsonl", utts[:5] + bad + utts[5:])
    return d / "manifest.jsonl"


def _rows(directory: Path) -> list[dict]:
    return load_token_dataset(directory).to_list()


def test_tiny_tokens_dataset(tiny_tokens, tiny_tokenizer, tiny_corpus):
    info = json.loads((tiny_tokens / "info.json").read_text())
    # relative to the dataset, so a moved run directory still finds its tokenizer
    assert not Path(info["tokenizer"]).is_absolute()
    assert (tiny_tokens / info["tokenizer"]).resolve() == Path(tiny_tokenizer).resolve()
    assert info["n_units"] == 20 and info["frame_rate"] == 50.0
    utts = read_manifest(tiny_corpus / "manifest.jsonl")
    ds = load_token_dataset(tiny_tokens)
    assert ds.num_rows == len(utts) and ds["id"] == [u.id for u in utts]
    assert {"id", "speaker", "text", "duration", "words", "units", "durations"} <= set(
        ds.column_names)
    row = ds[0]
    assert row["words"][0]["label"] == utts[0].words[0][0]
    tok = load_tokenizer(tiny_tokenizer)
    s = tok.encode([read_utterance(utts[0], 16000)], 16000)[0]
    assert row["units"] == s.units.tolist() and row["durations"] == s.durations.tolist()
    assert (tiny_tokens / "errors.jsonl").read_text() == ""
    # readable by plain HF datasets, no speechlm code
    import datasets

    files = sorted(str(p) for p in (tiny_tokens / "data").glob("*.parquet"))
    plain = datasets.load_dataset("parquet", data_files=files, split="train",
                                  cache_dir=str(tiny_tokens / ".cache2"))
    assert plain["id"] == ds["id"]


def test_bad_audio_is_skipped_and_listed(manifest_with_bad, tiny_tokenizer, tmp_path):
    res = tokenize_manifest(manifest_with_bad, tiny_tokenizer, tmp_path / "t", chunk_size=4,
                            progress=False)
    errors = [json.loads(x) for x in (tmp_path / "t" / "errors.jsonl").read_text().splitlines()]
    assert sorted(e["id"] for e in errors) == ["corrupt", "missing"] and res["errors"] == 2
    assert "missing.wav" in next(e["error"] for e in errors if e["id"] == "missing")
    ids = load_token_dataset(tmp_path / "t")["id"]
    assert "corrupt" not in ids and len(ids) == res["rows"] == len(read_manifest(
        manifest_with_bad)) - 2


def test_a_clip_shorter_than_one_window_is_listed_not_a_one_unit_row(tiny_corpus, tiny_tokenizer,
                                                                      tmp_path):
    import numpy as np
    import soundfile as sf

    utts = read_manifest(tiny_corpus / "manifest.jsonl")[:2]
    clips = {"blip": 160, "window": 400}  # 10 ms: no whole 25-ms window; 25 ms: one frame
    for name, n in clips.items():
        sf.write(tmp_path / f"{name}.wav", 0.1 * np.sin(np.arange(n) / 5), 16000)
    extra = [type(utts[0])(id=name, audio=str(tmp_path / f"{name}.wav"), duration=n / 16000,
                           sample_rate=16000) for name, n in clips.items()]
    write_manifest(tmp_path / "m.jsonl", [*utts, *extra])
    res = tokenize_manifest(tmp_path / "m.jsonl", tiny_tokenizer, tmp_path / "t", progress=False)
    assert res["rows"] == 3 and res["errors"] == 1
    (err,) = [json.loads(x) for x in (tmp_path / "t" / "errors.jsonl").read_text().splitlines()]
    assert err == {"id": "blip", "audio": str(tmp_path / "blip.wav"),
                   "error": "too short to tokenise (0.010s gave no frame)"}
    row = next(r for r in _rows(tmp_path / "t") if r["id"] == "window")
    assert sum(row["durations"]) == 2  # 400 samples, centred frames at 0 and 320


def test_shards_partition_the_corpus(tiny_corpus, tiny_tokenizer, tiny_tokens, tmp_path):
    m = tiny_corpus / "manifest.jsonl"
    for i in range(3):
        tokenize_manifest(m, tiny_tokenizer, tmp_path / "s", shard=(i, 3), chunk_size=8,
                          progress=False)
    assert _rows(tmp_path / "s") == _rows(tiny_tokens)
    with pytest.raises(ConfigError, match="shards"):
        tokenize_manifest(m, tiny_tokenizer, tmp_path / "s", shard=(0, 2), chunk_size=8)
    with pytest.raises(ConfigError, match="shard"):
        tokenize_manifest(m, tiny_tokenizer, tmp_path / "x", shard=(3, 3))


@pytest.fixture(scope="module")
def small_manifest(tiny_corpus, tmp_path_factory) -> Path:
    """The first 20 utterances of the tiny corpus (keeps the subprocess tests short)."""
    path = tmp_path_factory.mktemp("small") / "manifest.jsonl"
    write_manifest(path, read_manifest(tiny_corpus / "manifest.jsonl")[:20])
    return path


@pytest.mark.slow
def test_workers_give_the_same_rows(small_manifest, tiny_tokenizer, tmp_path):
    tokenize_manifest(small_manifest, tiny_tokenizer, tmp_path / "one", chunk_size=5,
                      progress=False)
    tokenize_manifest(small_manifest, tiny_tokenizer, tmp_path / "w", workers=2, chunk_size=5,
                      progress=False)
    assert _rows(tmp_path / "w") == _rows(tmp_path / "one")


@pytest.mark.slow
def test_killed_job_resumes_to_the_same_rows(small_manifest, tiny_tokenizer, tmp_path):
    """SIGKILL a real ``speechlm tokenize`` once some parts exist, rerun, compare."""
    m = small_manifest
    ref = tmp_path / "ref"
    tokenize_manifest(m, tiny_tokenizer, ref, chunk_size=1, progress=False)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", "from speechlm.cli import main; main()", "tokenize",
           "--manifest", str(m), "--tokenizer", str(tiny_tokenizer), "--out", str(out),
           "--chunk-size", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "data").glob("*.done"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_chunks = len(read_manifest(m))
    done = {p.name: p.with_suffix(".parquet").stat().st_mtime_ns
            for p in (out / "data").glob("*.done")}
    assert 3 <= len(done) < n_chunks, "the job must be killed mid-run"
    res = tokenize_manifest(m, tiny_tokenizer, out, chunk_size=1, progress=False)
    assert res["skipped_chunks"] == len(done)
    for name, mtime in done.items():  # finished chunks are not recomputed
        assert (out / "data" / name).with_suffix(".parquet").stat().st_mtime_ns == mtime
    assert _rows(out) == _rows(ref)  # no duplicates, nothing lost, same order
    assert not list((out / "data").glob("*.tmp"))
    shutil.rmtree(out / ".cache", ignore_errors=True)


def test_optional_streams_are_stored(small_manifest, tmp_path):
    """Continuous frames are stored as float16, codec codes as K lists, prosody as columns."""
    from speechlm.tokenizers import fit_tokenizer

    m4 = tmp_path / "m4.jsonl"
    write_manifest(m4, read_manifest(small_manifest)[:4])
    cont = fit_tokenizer(m4, "continuous", 0, tmp_path / "c", features="logmel")
    tokenize_manifest(m4, cont, tmp_path / "dc", progress=False)
    ds = load_token_dataset(tmp_path / "dc")
    assert str(ds.features["feats"].feature.feature.dtype) == "float16"
    assert len(ds[0]["feats"][0]) == 80 and "units" not in ds.column_names
    pro = fit_tokenizer(m4, "mfcc", 8, tmp_path / "p", prosody={"n_pitch": 4, "n_style": 2})
    tokenize_manifest(m4, pro, tmp_path / "dp", progress=False)
    row = load_token_dataset(tmp_path / "dp")[0]
    assert len(row["f0"]) == len(row["units"]) and row["pitch"] and row["style"]


def test_changed_manifest_or_tokenizer_is_not_silently_reused(small_manifest, tiny_corpus,
                                                             tmp_path):
    from speechlm.tokenizers import fit_tokenizer

    tok = fit_tokenizer(tiny_corpus / "manifest.jsonl", "mfcc", 8, tmp_path / "tok",
                        max_frames=3000)
    m = tmp_path / "m.jsonl"
    shutil.copy(small_manifest, m)
    out = tmp_path / "tokens"
    tokenize_manifest(m, tok, out, progress=False)
    tokenize_manifest(m, tok, out, progress=False)  # same content: reused, fine
    # the same path with other rows
    write_manifest(m, read_manifest(m)[:-1])
    with pytest.raises(ConfigError, match="manifest_sha256: the manifest changed since this "
                                          "folder was tokenised"):
        tokenize_manifest(m, tok, out, progress=False)
    shutil.copy(small_manifest, m)
    # the same tokenizer folder, refitted with other units
    fit_tokenizer(tiny_corpus / "manifest.jsonl", "mfcc", 8, tok, max_frames=3000, seed=1)
    with pytest.raises(ConfigError, match="tokenizer_sha256: the tokenizer changed"):
        tokenize_manifest(m, tok, out, progress=False)


@pytest.mark.slow
def test_killed_job_takes_its_pool_workers_with_it(small_manifest, tiny_tokenizer, tmp_path):
    out = tmp_path / "t"
    cmd = [sys.executable, "-m", "speechlm.cli", "tokenize", "--manifest", str(small_manifest),
           "--tokenizer", str(tiny_tokenizer), "--out", str(out), "--chunk-size", "1",
           "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children() -> set[int]:
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == proc.pid:  # the parent pid
                found.add(int(stat.parent.name))
        return found

    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "data").glob("*.done")):
        time.sleep(0.05)
    workers = children()
    assert len(workers) >= 2, "the pool has started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    def running(pid: int) -> bool:
        try:
            return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
        except OSError:
            return False

    deadline = time.time() + 20
    while time.time() < deadline and any(running(p) for p in workers):
        time.sleep(0.1)
    alive = [p for p in workers if running(p)]
    assert not alive, f"workers {alive} outlived their killed parent"
