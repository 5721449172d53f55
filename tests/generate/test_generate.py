"""Continuation from a spoken prompt, batch generation, resynthesis, and their errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from speechlm.errors import AudioError, SpeechLMError


@pytest.fixture(scope="module")
def model_with_vocoder(tiny_model, tiny_corpus, tmp_path_factory):
    """The tiny model directory plus a fallback vocoder fitted (through the CLI) on the corpus."""
    from speechlm.cli import app

    d = tmp_path_factory.mktemp("model_voc") / "model"
    shutil.copytree(tiny_model, d)
    r = CliRunner().invoke(app, ["vocoder", "fit-fallback", "--manifest",
                                 str(tiny_corpus / "manifest.jsonl"), "--tokenizer", str(d),
                                 "--out", str(d / "vocoder"), "--max-hours", "0.01"])
    assert r.exit_code == 0, r.output
    assert json.loads((d / "vocoder" / "vocoder.json").read_text())["kind"] == "fallback"
    return d


@pytest.fixture(scope="module")
def lm(model_with_vocoder):
    from speechlm.models import load_speech_lm

    return load_speech_lm(model_with_vocoder)


@pytest.fixture(scope="module")
def prompt(tiny_corpus):
    from speechlm.corpus.manifest import read_manifest

    return read_manifest(tiny_corpus / "manifest.jsonl")[0].audio, 16000


def test_continuation_is_reproducible_with_a_seed(lm, prompt):
    from speechlm.audio import load_audio
    from speechlm.generate import continue_speech

    wav = load_audio(prompt[0])
    a_streams, a = continue_speech(lm, wav, 16000, max_seconds=1.0, seed=3)
    b_streams, b = continue_speech(lm, wav, 16000, max_seconds=1.0, seed=3)
    c_streams, _ = continue_speech(lm, wav, 16000, max_seconds=1.0, seed=4, temperature=1.5)
    np.testing.assert_array_equal(a_streams.units, b_streams.units)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a_streams.units, c_streams.units)
    assert len(a_streams.units) > 0 and a_streams.units.max() < lm.vocab.n_units
    assert 0 < len(a) <= 16000  # capped at max_seconds


def test_batch_matches_its_own_rerun_and_respects_top_k(lm, prompt):
    from speechlm.audio import load_audio
    from speechlm.generate import Sampling, continue_speech_batch

    wav = load_audio(prompt[0])
    prompts = [wav, wav[: len(wav) // 2]]
    s = Sampling(max_seconds=0.5, top_k=1, seed=0)  # top-k 1 is greedy: both rows deterministic
    first = continue_speech_batch(lm, prompts, 16000, s, batch_size=2)
    again = continue_speech_batch(lm, prompts, 16000, s, batch_size=1)
    for x, y in zip(first, again, strict=True):  # left padding does not change greedy output
        np.testing.assert_array_equal(x.streams.units, y.streams.units)


def test_bad_prompts_and_settings_raise_clear_errors(lm):
    from speechlm.generate import Sampling, continue_speech

    with pytest.raises(SpeechLMError, match="NaN"):
        continue_speech(lm, np.array([0.0, np.nan] * 800, np.float32), 16000)
    with pytest.raises(SpeechLMError, match="mono"):
        continue_speech(lm, np.zeros((2, 1600), np.float32), 16000)
    with pytest.raises(SpeechLMError, match="top_p"):
        Sampling(top_p=0.0)


def test_generate_cli_writes_audio_units_and_errors(model_with_vocoder, prompt, tmp_path):
    from speechlm.audio import audio_info
    from speechlm.cli import app

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    runner = CliRunner()
    r = runner.invoke(app, ["generate", "--model", str(model_with_vocoder), "--prompt",
                            str(prompt[0]), "--out", str(tmp_path / "out.wav"),
                            "--max-seconds", "1", "--seed", "1"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "out.json").read_text())
    assert meta["units"] and meta["prompt_units"] and meta["sampling"]["seed"] == 1
    assert audio_info(tmp_path / "out.wav").samplerate == 16000

    r = runner.invoke(app, ["generate", "--model", str(model_with_vocoder), "--prompt",
                            str(corrupt), "--out", str(tmp_path / "bad.wav")])
    assert isinstance(r.exception, AudioError) and "corrupt.wav" in str(r.exception)

    r = runner.invoke(app, ["generate", "--model", str(model_with_vocoder), "--prompt",
                            str(prompt[0]), "--prompt", str(corrupt), "--out",
                            str(tmp_path / "many"), "--max-seconds", "0.5"])
    assert r.exit_code == 0, r.output
    errors = [json.loads(x) for x in (tmp_path / "many" / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 1 and "corrupt.wav" in errors[0]["prompt"]
    assert len(list((tmp_path / "many").glob("*.wav"))) == 1


def test_resynth_cli_keeps_the_length(model_with_vocoder, prompt, tmp_path):
    from speechlm.audio import audio_info
    from speechlm.cli import app

    r = CliRunner().invoke(app, ["resynth", "--model", str(model_with_vocoder), str(prompt[0]),
                                 str(tmp_path / "re.wav")])
    assert r.exit_code == 0, r.output
    n_in, n_out = audio_info(prompt[0]).frames, audio_info(tmp_path / "re.wav").frames
    assert abs(n_in - n_out) <= 2 * 320


def test_missing_vocoder_is_explained(tiny_model):
    from speechlm.generate.continuation import resolve_vocoder
    from speechlm.models import load_speech_lm

    with pytest.raises(SpeechLMError, match="fit-fallback"):
        resolve_vocoder(load_speech_lm(tiny_model))
