"""Importers: good and bad files mixed in one tree; the import finishes and lists the bad ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from speechlm.cli import app
from speechlm.corpus.importers import import_corpus
from speechlm.corpus.manifest import read_manifest
from speechlm.errors import SpeechLMError


def tone(path, seconds=0.5, rate=16000, channels=1, subtype="PCM_16", nan=False):
    wav = (0.3 * np.sin(np.arange(int(seconds * rate)) / 10)).astype(np.float32)
    if nan:
        wav[10] = np.nan
    if channels > 1:
        wav = np.stack([wav] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    # NaN needs float samples: a float WAV under whatever name (libsndfile reads by content)
    sf.write(path, wav, rate, subtype=subtype, format="WAV" if nan else None)


def errors_of(out):
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


@pytest.fixture
def libri(tmp_path):
    """A LibriSpeech-style tree: 3 good utterances and 4 bad ones."""
    root = tmp_path / "LibriSpeech" / "dev-clean"
    ch = root / "84" / "121123"
    tone(ch / "84-121123-0000.flac")
    tone(ch / "84-121123-0001.flac", rate=22050, channels=2)
    (ch / "84-121123-0002.flac").write_bytes(b"not a flac at all")
    (ch / "84-121123-0003.flac").write_bytes(b"")
    tone(ch / "84-121123-0005.flac", subtype="FLOAT", nan=True)
    (ch / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n"
        "84-121123-0002 CORRUPT ONE\n84-121123-0003 EMPTY ONE\n84-121123-0004 MISSING ONE\n"
        "84-121123-0005 NAN ONE\n")
    ch2 = root / "174" / "50561"
    tone(ch2 / "174-50561-0000.flac", seconds=1.0)
    (ch2 / "174-50561.trans.txt").write_text("174-50561-0000 FORGOTTEN TOO\n")
    return tmp_path / "LibriSpeech"


def test_librispeech_mixed_tree(libri, tmp_path):
    out = tmp_path / "out"
    summary = import_corpus(libri, "librispeech", out)
    utts = read_manifest(out / "manifest.jsonl")
    assert sorted(u.id for u in utts) == ["174-50561-0000", "84-121123-0000", "84-121123-0001"]
    by_id = {u.id: u for u in utts}
    assert by_id["84-121123-0000"].text == "GO DO YOU HEAR"
    assert by_id["84-121123-0000"].speaker == "84"
    assert by_id["84-121123-0001"].sample_rate == 22050
    assert abs(by_id["174-50561-0000"].duration - 1.0) < 1e-3
    # referenced, not copied
    assert by_id["84-121123-0000"].audio == str(libri / "dev-clean/84/121123/84-121123-0000.flac")
    errs = {e["id"]: e["error"] for e in errors_of(out)}
    assert set(errs) == {"84-121123-0002", "84-121123-0003", "84-121123-0004", "84-121123-0005"}
    assert "not a readable audio file" in errs["84-121123-0002"]
    assert "zero-length" in errs["84-121123-0003"]
    assert "file not found" in errs["84-121123-0004"]
    assert "NaN or Inf" in errs["84-121123-0005"]
    assert summary["utterances"] == 3 and summary["errors"] == 4 and summary["speakers"] == 2


def test_folder_with_optional_transcripts_via_cli(tmp_path):
    src = tmp_path / "src"
    tone(src / "alice" / "a1.wav")
    (src / "alice" / "a1.txt").write_text("hello world\n")
    tone(src / "alice" / "a2.flac", rate=8000)
    tone(src / "top.wav", subtype="PCM_24")
    (src / "bob").mkdir()
    (src / "bob" / "broken.wav").write_bytes(b"RIFF\x00\x00")
    tone(src / "bob" / "empty.wav", seconds=0)
    (src / "notes.txt").write_text("not an audio file, ignored")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["corpus", "import", str(src), "--format", "folder",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    utts = {u.id: u for u in read_manifest(out / "manifest.jsonl")}
    assert set(utts) == {"alice_a1", "alice_a2", "top"}
    assert utts["alice_a1"].text == "hello world" and utts["alice_a1"].speaker == "alice"
    assert utts["alice_a2"].text is None and utts["top"].speaker is None
    errs = {e["id"]: e["error"] for e in errors_of(out)}
    assert set(errs) == {"bob_broken", "bob_empty"} and "zero-length" in errs["bob_empty"]


def test_hf_dataset_on_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    files = []
    for i in range(3):
        tone(tmp_path / "hfaudio" / f"{i}.wav")
        files.append(str(tmp_path / "hfaudio" / f"{i}.wav"))
    (tmp_path / "hfaudio" / "2.wav").write_bytes(b"junk")  # fails when checked
    ds = datasets.Dataset.from_dict({"audio": files, "text": ["a b", "c d", "e f"],
                                     "speaker_id": [1, 1, 2]})
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    ds.save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "out"
    summary = import_corpus(tmp_path / "ds", "hf", out)
    utts = read_manifest(out / "manifest.jsonl")
    assert summary["utterances"] == 2 and summary["errors"] == 1
    assert [u.text for u in utts] == ["a b", "c d"] and utts[0].speaker == "1"
    assert all(u.audio.endswith(".wav") for u in utts)


def test_unknown_format_and_missing_source(tmp_path):
    with pytest.raises(SpeechLMError, match="unknown corpus format 'kaldi'"):
        import_corpus(tmp_path, "kaldi", tmp_path / "o")
    with pytest.raises(SpeechLMError, match="source folder not found"):
        import_corpus(tmp_path / "none", "folder", tmp_path / "o")


def test_hf_inline_bytes_and_splits(tmp_path):
    datasets = pytest.importorskip("datasets")
    tone(tmp_path / "a.wav")
    data = (tmp_path / "a.wav").read_bytes()
    rows = {"audio": [{"bytes": data, "path": None}, {"bytes": data, "path": None}],
            "sentence": ["one", "two"]}
    ds = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(decode=False))
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    out = tmp_path / "out"
    summary = import_corpus(tmp_path / "dd", "hf", out)
    utts = read_manifest(out / "manifest.jsonl")
    assert summary["utterances"] == 3 and summary["errors"] == 0
    assert sorted(u.id for u in utts) == ["test_00000000", "train_00000000", "train_00000001"]
    assert all(u.audio.startswith(str((out / "audio").resolve())) for u in utts)  # written once
    assert {u.text for u in utts} == {"one", "two"}
    only = import_corpus(tmp_path / "dd", "hf", tmp_path / "out2", split="test")
    assert only["utterances"] == 1
    with pytest.raises(SpeechLMError, match="no split 'dev'"):
        import_corpus(tmp_path / "dd", "hf", tmp_path / "out3", split="dev")


def test_hf_decoded_arrays_without_the_audio_feature(tmp_path):
    # what Dataset.from_dict on decoded samples gives: a struct column, no Audio feature
    datasets = pytest.importorskip("datasets")
    wav = (0.3 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    rows = {"audio": [{"array": wav, "sampling_rate": 8000},
                      {"array": np.zeros(0, np.float32), "sampling_rate": 16000},
                      {"array": wav[:100], "sampling_rate": 0},
                      {"array": -wav, "sampling_rate": 16000}],
            "text": ["slow", "empty", "no rate", "fast"], "n": [1, 2, 3, 4]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    summary = import_corpus(tmp_path / "ds", "hf", tmp_path / "out")
    utts = {u.id: u for u in read_manifest(tmp_path / "out" / "manifest.jsonl")}
    assert summary["utterances"] == 2 and sorted(utts) == ["00000000", "00000003"]
    assert (utts["00000000"].duration, utts["00000000"].sample_rate) == (2.0, 8000)
    assert (utts["00000003"].text, utts["00000003"].duration) == ("fast", 1.0)
    np.testing.assert_array_equal(sf.read(utts["00000000"].audio, dtype="float32")[0], wav)
    errors = {e["id"]: e["error"] for e in errors_of(tmp_path / "out")}
    assert errors == {
        "00000001": f"{tmp_path / 'ds'}: row 1: expected a non-empty (T,) or (channels, T) "
                    "array, got shape (0,)",
        "00000002": f"{tmp_path / 'ds'}: row 2: sampling_rate must be a positive integer, got 0"}
    with pytest.raises(SpeechLMError, match="column 'n' is not audio"):
        import_corpus(tmp_path / "ds", "hf", tmp_path / "o2", audio_column="n")


def test_non_utf8_transcript_is_skipped_and_named_then_imports_with_its_encoding(tmp_path):
    src = tmp_path / "src"
    tone(src / "a.wav")
    (src / "a.txt").write_text("the cat", encoding="utf-8")
    tone(src / "b.wav")
    (src / "b.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    out = tmp_path / "out"
    summary = import_corpus(src, "folder", out)
    assert summary["utterances"] == 1 and summary["errors"] == 1
    (err,) = errors_of(out)
    assert err["id"] == "b" and "b.txt: transcript is not utf-8" in err["error"]
    assert "--transcript-encoding latin-1" in err["error"]
    import_corpus(src, "folder", tmp_path / "out2", transcript_encoding="latin-1")
    texts = {u.id: u.text for u in read_manifest(tmp_path / "out2" / "manifest.jsonl")}
    assert texts == {"a": "the cat", "b": "café crème"}


def test_latin1_librispeech_transcript_file_is_listed(libri, tmp_path):
    trans = next(libri.rglob("174-50561.trans.txt"))
    trans.write_bytes("174-50561-0000 MA\xceTRE\n".encode("latin-1"))
    r = CliRunner().invoke(app, ["corpus", "import", str(libri), "--format", "librispeech",
                                 "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert any("is not utf-8" in e["error"] and e["audio"] == str(trans)
               for e in errors_of(tmp_path / "m"))
    # the other chapter still imports
    assert {u.id for u in read_manifest(tmp_path / "m" / "manifest.jsonl")} == {
        "84-121123-0000", "84-121123-0001"}


@pytest.mark.parametrize("container", ["WAV", "WAVEX"])  # WAVEX: WAVE_FORMAT_EXTENSIBLE
def test_truncated_wav_is_refused_not_read_short(tmp_path, container):
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "good.wav", 0.3 * np.sin(np.arange(16000) / 10), 16000, subtype="PCM_16",
             format=container)
    full = (src / "good.wav").read_bytes()
    header = full.index(b"data") + 8
    (src / "cut.wav").write_bytes(full[: header + 100])  # header + 50 samples of a 1 s file
    summary = import_corpus(src, "folder", tmp_path / "out", check="header")
    assert summary["utterances"] == 1
    (err,) = errors_of(tmp_path / "out")
    assert err["id"] == "cut" and "truncated WAV" in err["error"]
    assert "32000 bytes" in err["error"] and "holds 100" in err["error"]
