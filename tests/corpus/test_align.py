"""Word alignment of transcribed clips (``speechlm corpus align``): known word times from espeak
spoken by another voice at another rate, pauses, leading noise, bad rows and resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from speechlm.corpus.align import Aligner, align_manifest, transcript_words
from speechlm.corpus.espeak import Espeak
from speechlm.corpus.manifest import Utterance, read_manifest, write_manifest

SR = 16000
FIRST, SECOND = "the little girl found a red ball.", "yesterday two dogs ran to the market."


@pytest.fixture(scope="module")
def spoken():
    """Two sentences by a voice the reference is not (held-out ``Mike``, slower than espeak's
    default), 0.3 s of silence before, 0.6 s between: audio and gold word times."""
    es = Espeak.get()
    parts, words, t = [np.zeros(int(0.3 * SR), np.float32)], [], 0.3
    for text in (FIRST, SECOND):
        s = es.speak(text, "en-us+Mike", rate=140, pitch=40, sample_rate=SR)
        words += [(w, t + a, t + b) for w, a, b in s.words]
        parts += [s.wav.astype(np.float32), np.zeros(int(0.6 * SR), np.float32)]
        t += len(s.wav) / SR + 0.6
    return np.concatenate(parts), words


@pytest.fixture(scope="module")
def aligner() -> Aligner:
    return Aligner()


def test_transcript_words_strip_punctuation_and_keep_case():
    assert transcript_words("  HELLO, world! It's a well-known \"fact\"... ") == [
        "HELLO", "world", "It's", "a", "well-known", "fact"]
    assert transcript_words(" ... ") == []


def test_word_times_of_another_voice_and_rate(spoken, aligner):
    wav, gold = spoken
    # upper case, as LibriSpeech writes transcripts: the labels keep it
    got = aligner.align(wav, (FIRST + " " + SECOND).upper())
    assert [w for w, _, _ in got] == [w.upper() for w, _, _ in gold]
    errors = np.abs(np.array([[s, e] for _, s, e in got]) - np.array([[s, e] for _, s, e in gold]))
    assert np.mean(errors < 0.05) >= 0.9, errors
    assert errors.max() < 0.15, errors
    # the pause between the sentences stays outside both words around it
    ball, yesterday = got[6], got[7]
    assert abs(ball[2] - gold[6][2]) < 0.05 and abs(yesterday[1] - gold[7][1]) < 0.05
    assert yesterday[1] - ball[2] > 0.5


def test_leading_noise_is_not_speech(spoken, aligner):
    wav, gold = spoken
    rng = np.random.default_rng(0)
    noisy = np.concatenate([np.zeros(SR, np.float32), wav])
    noise = rng.standard_normal(len(noisy)).astype(np.float32)
    noisy += noise * np.sqrt(np.mean(wav ** 2) / 100.0)  # 20 dB below the speech
    got = aligner.align(noisy, FIRST + " " + SECOND)
    assert abs(got[0][1] - (gold[0][1] + 1.0)) < 0.05
    assert abs(got[-1][2] - (gold[-1][2] + 1.0)) < 0.05


def test_nothing_to_align_is_an_error(aligner):
    from speechlm.errors import SpeechLMError

    with pytest.raises(SpeechLMError, match="no words"):
        aligner.align(np.ones(SR, np.float32), " ,.; ")
    with pytest.raises(SpeechLMError, match="silent"):
        aligner.align(np.zeros(SR, np.float32), "hello")
    with pytest.raises(SpeechLMError, match="over 120s: cut it into utterances"):
        aligner.align(np.ones(121 * SR, np.float32), "hello")


def _manifest(tmp_path, spoken):
    wav, gold = spoken
    sf.write(tmp_path / "good.wav", wav, SR)
    sf.write(tmp_path / "quiet.wav", np.zeros(SR, np.float32), SR)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav file")
    dur = len(wav) / SR
    rows = [Utterance("a", "good.wav", dur, SR, text=FIRST + " " + SECOND),
            Utterance("b", "good.wav", dur, SR),  # no transcript
            Utterance("c", "bad.wav", 1.0, SR, text="hello"),
            Utterance("d", "quiet.wav", 1.0, SR, text="hello"),
            # a segment of the file: times are inside the segment
            Utterance("e", "good.wav", 1.2, SR, text=SECOND, start=gold[7][1] - 0.2,
                      end=gold[-1][2] + 0.2),
            # words it already has are kept
            Utterance("f", "good.wav", dur, SR, text="x", words=[("x", 0.0, 0.5)])]
    write_manifest(tmp_path / "m.jsonl", rows)
    return tmp_path / "m.jsonl"


def test_manifest_gets_words_and_lists_what_it_could_not_align(tmp_path, spoken):
    _, gold = spoken
    summary = align_manifest(_manifest(tmp_path, spoken), tmp_path / "out")
    assert (summary["utterances"], summary["aligned"], summary["kept_words"],
            summary["errors"]) == (6, 2, 1, 3)
    rows = {u.id: u for u in read_manifest(tmp_path / "out" / "manifest.jsonl")}
    assert list(rows) == ["a", "b", "c", "d", "e", "f"]  # every row, in order
    assert len(rows["a"].words) == 14 and rows["b"].words is None
    assert [list(w) for w in rows["f"].words] == [["x", 0.0, 0.5]]
    seg = rows["e"].words
    assert [w for w, _, _ in seg] == transcript_words(SECOND)
    assert abs(seg[0][1] - 0.2) < 0.05 and abs(seg[-1][2] - (gold[-1][2] - gold[7][1] + 0.2)) < 0.05
    errors = {e["id"]: e["error"] for e in map(json.loads,
                                               open(tmp_path / "out" / "errors.jsonl"))}
    assert set(errors) == {"b", "c", "d"}
    assert "no transcript" in errors["b"] and "bad.wav" in errors["c"]
    assert "silent" in errors["d"]
    assert not (tmp_path / "out" / "partial.jsonl").exists()


def test_killed_job_resumes_without_redoing_finished_rows(tmp_path, spoken, monkeypatch):
    m = _manifest(tmp_path, spoken)
    out = tmp_path / "out"
    out.mkdir()
    # what a job killed after row "a" (and mid-write of the next line) leaves behind
    (out / "partial.jsonl").write_text(
        json.dumps({"id": "a", "words": [["done", 0.0, 1.0]], "error": None}) + "\n{\"id\": \"e")
    calls = []
    real = Aligner.align
    monkeypatch.setattr(Aligner, "align", lambda self, wav, text: calls.append(text) or
                        real(self, wav, text))
    summary = align_manifest(m, out)
    # not "a" (finished), "b" (no text), "c" (unreadable) nor "f" (has words)
    assert calls == ["hello", SECOND]
    assert summary["aligned"] == 2
    rows = {u.id: u for u in read_manifest(out / "manifest.jsonl")}
    assert [list(w) for w in rows["a"].words] == [["done", 0.0, 1.0]]


def test_cli_writes_the_manifest_and_names_the_errors(tmp_path, spoken):
    from typer.testing import CliRunner

    from speechlm.cli import app

    m = _manifest(tmp_path, spoken)
    r = CliRunner().invoke(app, ["corpus", "align", "--manifest", str(m), "--out",
                                 str(tmp_path / "o"), "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{"):])["aligned"] == 2
    assert f"3 row(s) not aligned: see {tmp_path / 'o' / 'errors.jsonl'}" in r.stderr
    assert len(read_manifest(tmp_path / "o" / "manifest.jsonl")[0].words) == 14
