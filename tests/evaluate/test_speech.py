"""``speechlm eval speech``: known answers on identical, shifted, silent and mismatched audio."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm.corpus.manifest import Utterance, read_manifest, write_manifest
from speechlm.errors import SpeechLMError
from speechlm.evaluate.speech import (
    SAMPLE_RATE,
    f0_agreement,
    parse_metrics,
    pesq_wb,
    stoi_score,
)


def _voiced(seconds: float = 1.0, ratio: float = 1.0) -> np.ndarray:
    """A harmonic tone gliding 120 -> 200 Hz (times ``ratio``): Praat tracks it exactly."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = ratio * (120.0 + 80.0 * t / seconds)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


def test_f0_agreement_known_answers():
    ref = _voiced()
    same = f0_agreement(ref, ref)
    assert same["f0_rmse_cents"] == 0.0 and same["vde"] == 0.0
    assert same["f0_corr"] == pytest.approx(1.0) and same["f0_frames"] > 80
    # a semitone up is 100 cents everywhere, and still perfectly correlated
    up = f0_agreement(ref, _voiced(ratio=2 ** (1 / 12)))
    assert up["f0_rmse_cents"] == pytest.approx(100.0, abs=5.0)
    assert up["f0_corr"] > 0.99 and up["vde"] < 0.03
    # the second half silenced: about half the frames change their voicing decision
    half = ref.copy()
    half[len(half) // 2:] = 0.0
    assert f0_agreement(ref, half)["vde"] == pytest.approx(0.5, abs=0.05)


def test_stoi_and_pesq_of_identical_and_noisy_audio():
    ref = _voiced(2.0)
    noisy = ref + 0.3 * np.random.default_rng(0).standard_normal(len(ref)).astype(np.float32)
    assert stoi_score(ref, ref) == pytest.approx(1.0, abs=1e-6)
    assert stoi_score(ref, noisy) < 0.9
    assert pesq_wb(ref, ref) > 4.5 > pesq_wb(ref, noisy)
    assert pesq_wb(ref[:2000], ref[:2000]) is None  # under PESQ's 0.25 s: undefined, not a crash


def test_cer_counts_character_edits_over_reference_characters():
    from speechlm.evaluate.asr import cer

    assert cer("Abc d.", "abd d") == pytest.approx(1 / 5)  # one of 5 characters (space counts)
    assert cer(["ab", "", "cd"], ["ab", "x", ""]) == pytest.approx(2 / 4)  # empty ref skipped


def test_metric_names_are_checked():
    assert parse_metrics("mos, wer") == ["wer", "mos"]  # registry order
    with pytest.raises(SpeechLMError, match="known: wer, speaker, mos, intrusive"):
        parse_metrics("wer,pesq")


# -- the command on the tiny synthetic corpus ------------------------------------------------
def _usable(corpus: Path) -> list[Utterance]:
    """Utterances long enough for every metric whose speaker has another one (for baselines)."""
    utts = read_manifest(corpus / "manifest.jsonl")
    count = Counter(u.speaker for u in utts)
    return [u for u in utts if u.duration > 2.0 and count[u.speaker] >= 2]


def _invoke(*args: str):
    from typer.testing import CliRunner

    from speechlm.cli import app

    return CliRunner().invoke(app, ["eval", "speech", *args])


@pytest.fixture(scope="module")
def scored(tiny_corpus, tmp_path_factory):
    """Every metric on two copies of reference audio and six files that cannot be scored."""
    tmp = tmp_path_factory.mktemp("speech")
    good = _usable(tiny_corpus)
    gen = tmp / "gen"
    gen.mkdir()
    for u in good[:2]:
        shutil.copy(u.audio, gen / f"{u.id}.wav")
    wav, rate = sf.read(good[5].audio, dtype="float32")
    bad = {
        good[2].id: "silent",
        "not_in_manifest": "no utterance 'not_in_manifest'",
        good[3].id: "not a readable audio file",
        good[4].id: "too short",
        good[5].id: "8000 Hz, below the 16000 Hz",
        good[6].id: "manifest says 22050 Hz",
    }
    sf.write(gen / f"{good[2].id}.wav", np.zeros(3 * rate, np.float32), rate)
    shutil.copy(good[0].audio, gen / "not_in_manifest.wav")
    (gen / f"{good[3].id}.wav").write_bytes(b"not audio at all")
    sf.write(gen / f"{good[4].id}.wav", wav[: rate // 2], rate)
    sf.write(gen / f"{good[5].id}.wav", wav[::2], rate // 2)
    shutil.copy(good[6].audio, gen / f"{good[6].id}.wav")
    # the manifest lies about good[6]'s rate
    utts = read_manifest(tiny_corpus / "manifest.jsonl")
    for u in utts:
        if u.id == good[6].id:
            u.sample_rate = 22050
    write_manifest(tmp / "manifest.jsonl", utts)
    out = tmp / "out"
    res = _invoke("--audio", str(gen), "--manifest", str(tmp / "manifest.jsonl"),
                  "--out", str(out))
    assert res.exit_code == 0, res.output
    return {"out": out, "output": res.output, "bad": bad, "gen": gen,
            "result": json.loads((out / "speech.json").read_text())}


def test_identical_audio_gets_perfect_intrusive_scores_and_speaker_similarity(scored):
    r = scored["result"]
    assert [f["id"] for f in r["files"]] == sorted(f["id"] for f in r["files"])
    assert len(r["files"]) == 2
    for f in r["files"]:
        assert f["aligned"] and f["length_difference"] == 0.0
        assert f["stoi"] == pytest.approx(1.0, abs=1e-6) and f["pesq_wb"] > 4.5
        assert f["f0_rmse_cents"] == 0.0 and f["vde"] == 0.0 and f["f0_frames"] > 0
        assert f["speaker_similarity"] == pytest.approx(1.0, abs=1e-5)
        # the same audio through the same deterministic models: the same figures
        assert f["dnsmos_ovrl"] == f["reference_dnsmos_ovrl"] and 1.0 <= f["dnsmos_ovrl"] <= 5.0
        assert f["transcript"] == f["reference_transcript"]
        # baselines on original audio: the reference against other utterances
        assert f["same_speaker_id"] not in (None, f["id"]) and f["different_speaker_id"]
    agg = r["aggregate"]
    assert agg["n_aligned"] == 2 and agg["stoi"] == pytest.approx(1.0, abs=1e-6)


def test_wer_of_reference_audio_equals_the_ceiling(scored):
    agg = scored["result"]["aggregate"]
    assert agg["wer_files"] == 2 and agg["wer"] is not None
    assert agg["wer"] == agg["ceiling_wer"] and agg["cer"] == agg["ceiling_cer"]
    assert (scored["out"] / "asr_lm" / "domain.arpa").exists()  # the LM of the references


def test_bad_files_are_skipped_listed_and_counted(scored):
    r = scored["result"]
    reasons = {s["id"]: s["reason"] for s in r["skipped"]}
    assert set(reasons) == set(scored["bad"])
    for stem, expected in scored["bad"].items():
        assert expected in reasons[stem], reasons[stem]
        assert "\n" not in reasons[stem]
        # one line each, naming the file, while the command runs
        line = next(ln for ln in scored["output"].splitlines()
                    if ln.strip().startswith(f"skipped {scored['gen'] / stem}.wav"))
        assert expected in line
    assert r["aggregate"]["n_skipped"] == 6 and r["aggregate"]["n_files"] == 8
    assert "Traceback" not in scored["output"]
    md = (scored["out"] / "speech.md").read_text()
    assert "## Skipped" in md and "| WER (reference: the ceiling) |" in md
    assert all(f"{stem}.wav" in md for stem in scored["bad"])


def test_another_speaker_scores_lower_than_the_same_speaker(tiny_corpus, tmp_path):
    good = _usable(tiny_corpus)
    gen = tmp_path / "gen"
    gen.mkdir()
    # each file holds another speaker's utterance (a different one each) under this one's id
    donors = good[4:]
    for u in good[:4]:
        donor = next(o for o in donors if o.speaker != u.speaker)
        donors.remove(donor)
        shutil.copy(donor.audio, gen / f"{u.id}.wav")
    out = tmp_path / "out"
    res = _invoke("--audio", str(gen), "--manifest", str(tiny_corpus / "manifest.jsonl"),
                  "--out", str(out), "--metrics", "speaker")
    assert res.exit_code == 0, res.output
    r = json.loads((out / "speech.json").read_text())
    agg = r["aggregate"]
    assert len(r["files"]) == 4 and set(agg) >= {"speaker_similarity"}
    assert "wer" not in agg and "dnsmos_ovrl" not in agg  # only the chosen group ran
    assert agg["speaker_similarity"] < agg["same_speaker_similarity"]
    assert agg["different_speaker_similarity"] < agg["same_speaker_similarity"]
    assert all(f["speaker_similarity"] < 0.95 for f in r["files"])


def test_nothing_scorable_is_one_error_line_without_traceback(tmp_path, tiny_corpus):
    gen = tmp_path / "gen"
    gen.mkdir()
    sf.write(gen / "syn0000000.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    r = subprocess.run([sys.executable, "-m", "speechlm.cli", "eval", "speech", "--audio",
                        str(gen), "--manifest", str(tiny_corpus / "manifest.jsonl"), "--out",
                        str(tmp_path / "out"), "--metrics", "intrusive"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "error: eval speech: none of the 1 files could be scored")
    skipped = json.loads((tmp_path / "out" / "speech.json").read_text())["skipped"]
    assert skipped[0]["reason"].endswith("silent (RMS below -60 dBFS)")
