"""Unit HiFi-GAN: shapes, gradients, a few steps reduce the mel loss, durations, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechlm.errors import ConfigError
from speechlm.tokenizers.streams import Streams
from speechlm.vocoders import load_vocoder
from speechlm.vocoders.hifigan.config import HifiganConfig, preset
from speechlm.vocoders.hifigan.discriminators import Discriminators
from speechlm.vocoders.hifigan.generator import UnitGenerator
from speechlm.vocoders.hifigan.train import Example, Trainer, _duration_batch
from speechlm.vocoders.hifigan.vocoder import HifiganVocoder

HOP = 320


def _cfg(**kw) -> HifiganConfig:
    return preset("tiny", n_units=10, **kw)


def test_generator_output_length_is_frames_times_hop():
    gen = UnitGenerator(_cfg(use_f0=True, n_f0_bins=5, n_speakers=3))
    units = torch.randint(0, 10, (2, 7))
    wav = gen(units, torch.randint(0, 5, (2, 7)), torch.tensor([0, 2]))
    assert wav.shape == (2, 1, 7 * HOP)
    assert wav.abs().max() <= 1.0
    assert gen.predict_log_durations(units).shape == (2, 7)


def test_discriminators_and_backward():
    cfg = _cfg()
    gen, disc = UnitGenerator(cfg), Discriminators(cfg.mpd_periods, cfg.disc_channels)
    wav = gen(torch.randint(0, 10, (2, 8)))
    logits, feats = disc(wav)
    assert len(logits) == len(cfg.mpd_periods) + 3 and len(feats) == len(logits)
    sum(x.mean() for x in logits).backward()
    assert gen.unit_emb.weight.grad is not None and gen.unit_emb.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters())


def test_a_few_steps_reduce_the_mel_loss():
    cfg = _cfg(batch_size=2, segment_frames=8, lr=3e-3, upsample_channels=32, disc_channels=4)
    trainer = Trainer(cfg)
    rng = np.random.default_rng(0)
    t = np.arange(8 * HOP) / 16000
    wav = torch.tensor(np.stack([0.5 * np.sin(2 * np.pi * 200 * t),
                                 0.2 * rng.standard_normal(len(t))]), dtype=torch.float32)[:, None]
    units = torch.tensor([[1] * 8, [2] * 8])
    ex = [Example(np.array([1, 2]), np.array([3, 5]), None, np.zeros(8 * HOP, np.float32), 0)]
    dur = _duration_batch(ex, np.array([0, 0]))
    first = trainer.train_step(units, units * 0, torch.tensor([0, 0]), wav, dur)
    for _ in range(9):
        last = trainer.train_step(units, units * 0, torch.tensor([0, 0]), wav, dur)
    assert last["mel_l1"] < 0.8 * first["mel_l1"]
    assert last["dur_mse"] < first["dur_mse"]


def test_vocoder_length_with_given_and_predicted_durations(tmp_path):
    voc = HifiganVocoder(UnitGenerator(_cfg()))
    durs = np.array([2, 5, 1])
    wav = voc.synthesize(Streams(50.0, units=np.array([1, 4, 9]), durations=durs))
    assert wav.shape == (durs.sum() * HOP,) and wav.dtype == np.float32
    units = np.array([3, 1, 4, 1, 5])
    predicted = voc.durations(units)
    assert len(predicted) == 5 and (predicted >= 1).all()
    assert len(voc.synthesize(Streams(50.0, units=units))) == predicted.sum() * HOP
    voc.save(tmp_path / "v")
    again = load_vocoder(tmp_path / "v")
    s = Streams(50.0, units=np.array([1, 2]), durations=np.array([3, 3]))
    np.testing.assert_allclose(voc.synthesize(s), again.synthesize(s), atol=1e-6)
    assert json.loads((tmp_path / "v" / "vocoder.json").read_text())["kind"] == "hifigan"


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="upsample_rates"):
        HifiganConfig(upsample_rates=[4, 4])
    with pytest.raises(ConfigError, match="unknown key 'lrr'"):
        HifiganConfig.from_dict({"lrr": 1})
    with pytest.raises(ConfigError, match="'batch_size' has type str"):
        HifiganConfig.from_dict({"batch_size": "8"})


@pytest.mark.slow
def test_train_cli_runs_and_resumes(tiny_corpus, tiny_tokenizer, tmp_path):
    from typer.testing import CliRunner

    from speechlm.cli import app

    args = ["vocoder", "train", "--manifest", str(tiny_corpus / "manifest.jsonl"),
            "--tokenizer", str(tiny_tokenizer), "--out", str(tmp_path / "v"), "--max-hours",
            "0.005", "max_steps=4", "save_steps=2", "logging_steps=2", "batch_size=2"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    logs = [json.loads(x) for x in (tmp_path / "v" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logs] == [2, 4]
    r = CliRunner().invoke(app, args[:-4] + ["max_steps=6", "save_steps=2", "logging_steps=2",
                                             "batch_size=2"])  # resumes from step 4
    assert r.exit_code == 0, r.output
    logs = [json.loads(x) for x in (tmp_path / "v" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logs] == [2, 4, 6]
    r = CliRunner().invoke(app, args[:-1] + ["batch_size=3"])
    assert r.exit_code != 0 and "different config" in str(r.exception)
    voc = load_vocoder(tmp_path / "v")
    assert voc.synthesize(Streams(50.0, units=np.array([1, 2]), durations=np.array([2, 2]))
                          ).shape == (4 * HOP,)
