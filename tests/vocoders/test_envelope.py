"""The envelope vocoder: lossless cepstral targets, training, exact resume, save/load, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechlm.errors import ConfigError, SpeechLMError
from speechlm.tokenizers.streams import Streams
from speechlm.vocoders import dsp, load_vocoder
from speechlm.vocoders.envelope import train as envelope_train
from speechlm.vocoders.envelope.model import (
    EnvelopeConfig,
    cepstrum_basis,
    envelope_to_cepstrum,
    position_features,
    preset,
)
from speechlm.vocoders.envelope.train import train_envelope

SR, RATE, HOP = 16000, 50.0, 320
TINY = {"channels": 16, "unit_dim": 8, "dilations": [1, 2], "segment_frames": 64,
        "batch_size": 8, "warmup_steps": 2, "logging_steps": 10, "valid_fraction": 0.2}


def test_cepstrum_targets_reproduce_the_envelope_exactly():
    rng = np.random.default_rng(0)
    wav = np.convolve(rng.standard_normal(SR), np.hanning(30), mode="same").astype(np.float32)
    env = dsp.log_envelope(wav, dsp.frame_centers(40, RATE, SR))
    back = envelope_to_cepstrum(env).astype(np.float64) @ cepstrum_basis(env.shape[1]).numpy()
    np.testing.assert_allclose(back, env, atol=1e-3)
    flat = envelope_to_cepstrum(np.full((1, 257), 2.0, np.float32))  # a flat spectrum: c0 only
    np.testing.assert_allclose(flat[0], [2.0] + [0.0] * (flat.shape[1] - 1), atol=1e-6)


def test_position_features_place_each_frame_in_its_unit():
    pos = position_features(np.array([2, 1, 0, 4]))
    np.testing.assert_allclose(pos[:, 0], [0.25, 0.75, 0.5, 0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(pos[:, 1], np.log([2, 2, 1, 4, 4, 4, 4]))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="envelope.chanels: unknown key"):
        preset("tiny", chanels=8)
    with pytest.raises(ConfigError, match="kernel: must be odd"):
        EnvelopeConfig(kernel=4)
    with pytest.raises(ConfigError, match="dilations"):
        EnvelopeConfig(dilations=[])
    with pytest.raises(ConfigError, match="preset 'huge' is unknown"):
        preset("huge")


@pytest.fixture(scope="module")
def trained(tiny_corpus, tiny_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("envelope")
    train_envelope(tiny_corpus / "manifest.jsonl", tiny_tokenizer, out,
                   preset("tiny", **TINY, max_steps=60, save_steps=30), max_hours=0.02)
    return out


def test_training_lowers_the_loss_and_keeps_the_best_step(trained):
    logs = [json.loads(x) for x in (trained / "log.jsonl").read_text().splitlines()]
    train = [x["loss"] for x in logs if "loss" in x]
    assert len(train) == 6 and train[-1] < 0.8 * train[0]
    valid = {x["step"]: x["valid_loss"] for x in logs if "valid_loss" in x}
    cfg = json.loads((trained / "vocoder.json").read_text())
    assert set(valid) == {30, 60} and cfg["best_step"] == min(valid, key=valid.get)
    assert cfg["valid_utterances"] >= 1 and cfg["kind"] == "envelope"


def test_save_load_reproduces_output_bit_for_bit(trained, tmp_path):
    voc = load_vocoder(trained)
    s = Streams(RATE, units=np.array([3, 7, 1, 7]), durations=np.array([4, 2, 5, 3]))
    a = voc.synthesize(s)
    assert a.shape == (14 * HOP,) and a.dtype == np.float32 and np.abs(a).max() > 1e-3
    voc.save(tmp_path / "copy")
    np.testing.assert_array_equal(load_vocoder(tmp_path / "copy").synthesize(s), a)
    np.testing.assert_array_equal(voc.synthesize(s), a)  # and the same call twice


def test_voice_conditioning_follows_the_reference(trained, tiny_corpus):
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_manifest

    voc = load_vocoder(trained)
    utts = read_manifest(tiny_corpus / "manifest.jsonl")
    by_voice = {}
    for u in utts:
        by_voice.setdefault(u.speaker, u)
    a, b = (load_audio(u.audio, SR) for u in list(by_voice.values())[:2])
    va, vb = voc.voice_of(a, SR), voc.voice_of(b, SR)
    assert va.shape == (256,) and abs(float(np.linalg.norm(va)) - 1.0) < 1e-3
    assert voc.voice_of(np.zeros(SR, np.float32), SR) is None  # silence: the mean voice
    s = Streams(RATE, units=np.array([3, 7, 1, 7]), durations=np.array([4, 2, 5, 3]))
    out_a, out_b = voc.synthesize(s, voice=va), voc.synthesize(s, voice=vb)
    assert out_a.shape == out_b.shape and not np.array_equal(out_a, out_b)
    np.testing.assert_array_equal(voc.synthesize(s, voice=va), out_a)
    mean = voc.net.voice_mean.numpy()
    np.testing.assert_array_equal(voc.synthesize(s, voice=mean), voc.synthesize(s))


def test_predicted_durations_when_absent(trained):
    voc = load_vocoder(trained)
    units = np.array([3, 7, 1, 7])
    durs = voc.durations.predict_durations(units)
    assert (durs >= 1).all()
    assert voc.synthesize(Streams(RATE, units=units)).shape == (int(durs.sum()) * HOP,)


def test_bad_units_raise_a_clear_error(trained):
    voc = load_vocoder(trained)
    with pytest.raises(SpeechLMError, match="unit ids must be in"):
        voc.synthesize(Streams(RATE, units=np.array([999]), durations=np.array([2])))
    with pytest.raises(SpeechLMError, match="2 units but 1 durations"):
        voc.synthesize(Streams(RATE, units=np.array([1, 2]), durations=np.array([2])))


def test_precision_is_checked_recorded_and_bf16_trains_like_fp32(tiny_corpus, tiny_tokenizer,
                                                                   tmp_path):
    with pytest.raises(ConfigError, match="precision"):
        preset("tiny", precision="fp16")
    first_loss = {}
    for precision in ("fp32", "bf16"):
        out = train_envelope(tiny_corpus / "manifest.jsonl", tiny_tokenizer, tmp_path / precision,
                             preset("tiny", **{**TINY, "logging_steps": 1}, max_steps=4,
                                    save_steps=4, precision=precision), max_hours=0.02)
        assert json.loads((out / "vocoder.json").read_text())["precision"] == precision
        logs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
        first_loss[precision] = logs[0]["loss"]  # step 1: same init, same batch
    assert first_loss["bf16"] == pytest.approx(first_loss["fp32"], rel=0.02)
    assert first_loss["bf16"] != first_loss["fp32"]  # autocast did run in bf16


def test_a_killed_run_resumes_to_the_same_weights(tiny_corpus, tiny_tokenizer, tmp_path,
                                                   monkeypatch):
    from safetensors.torch import load_file

    cfg = preset("tiny", **TINY, max_steps=12, save_steps=4)
    args = (tiny_corpus / "manifest.jsonl", tiny_tokenizer)
    train_envelope(*args, tmp_path / "whole", cfg, max_hours=0.02)

    calls = {"n": 0}
    real = envelope_train.losses

    def dies_at_step_7(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # killed after the step-4 checkpoint
        return real(*a, **k)

    monkeypatch.setattr(envelope_train, "losses", dies_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train_envelope(*args, tmp_path / "killed", cfg, max_hours=0.02)
    monkeypatch.setattr(envelope_train, "losses", real)
    train_envelope(*args, tmp_path / "killed", cfg, max_hours=0.02)
    a = load_file(str(tmp_path / "whole" / "checkpoints" / "step-12" / "weights.safetensors"))
    b = load_file(str(tmp_path / "killed" / "checkpoints" / "step-12" / "weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="different config"):
        train_envelope(*args, tmp_path / "killed", preset("tiny", **{**TINY, "channels": 8}),
                       max_hours=0.02)


def test_train_cli_kind_envelope_and_errors(tiny_corpus, tiny_tokenizer, tmp_path):
    from typer.testing import CliRunner

    from speechlm.cli import app

    base = ["vocoder", "train", "--manifest", str(tiny_corpus / "manifest.jsonl"),
            "--tokenizer", str(tiny_tokenizer), "--out", str(tmp_path / "v"), "--max-hours",
            "0.01", "--kind"]
    tiny = [f"{k}={json.dumps(v)}" for k, v in TINY.items()]
    r = CliRunner().invoke(app, base + ["envelope", *tiny, "max_steps=4", "save_steps=4"])
    assert r.exit_code == 0, r.output
    assert load_vocoder(tmp_path / "v").kind == "envelope"
    r = CliRunner().invoke(app, base + ["envelope", "chanels=8"])
    assert r.exit_code != 0 and "envelope.chanels: unknown key" in str(r.exception)
    r = CliRunner().invoke(app, base + ["wavenet"])
    assert r.exit_code != 0 and "'wavenet' is not a trainable vocoder" in str(r.exception)
