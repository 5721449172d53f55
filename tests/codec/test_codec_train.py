"""Codec training: config errors, the saved folder as a ``dac`` codec tokenizer (exact round trip
after save/load), exact resume after a crash, unreadable audio, the command's one-line errors,
and that training lowers the reconstruction loss."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from speechlm.codec import CodecTrainConfig, preset, train_codec
from speechlm.codec.train import CodecTrainer, crop_batch
from speechlm.errors import ConfigError, SpeechLMError

# a few seconds on a CPU: 4 codebooks of 16 codes, 1-channel decoder output stage
TINY = {"model": {"encoder_hidden_size": 2, "decoder_hidden_size": 16, "n_codebooks": 4,
                  "codebook_size": 16},
        "crop_seconds": 0.16, "batch_size": 2, "max_steps": 6, "lr": 1e-3, "lr_gamma": 1.0,
        "mel_scales": [[256, 64, 20], [512, 128, 40]], "lambda_wav": 1.0,
        "code_restart_steps": 3, "init": "torch", "max_grad_norm": 10.0, "save_steps": 2,
        "logging_steps": 1, "progress": False}


def tiny_cfg(manifest, out, **keys) -> CodecTrainConfig:
    return CodecTrainConfig.from_dict({**TINY, "manifest": str(manifest), "output_dir": str(out),
                                       **keys})


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("codec")
    train_codec(tiny_cfg(tiny_corpus / "manifest.jsonl", out))
    return out


# ---- config --------------------------------------------------------------------------------
def test_config_errors_name_the_key(tmp_path):
    base = {"manifest": "m.jsonl", "output_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"^crop_secs: unknown key; valid keys: .*crop_seconds"):
        CodecTrainConfig.from_dict({**base, "crop_secs": 1})
    with pytest.raises(ConfigError, match=r"^model\.n_codebook: unknown key .*n_codebooks"):
        CodecTrainConfig.from_dict({**base, "model": {"n_codebook": 4}})
    with pytest.raises(ConfigError, match=r"^model\.codebook_size: must be a power of 2"):
        CodecTrainConfig.from_dict({**base, "model": {"codebook_size": 1000}})
    with pytest.raises(ConfigError, match=r"^mel_scales: each scale is \[n_fft, hop, n_mels\]"):
        CodecTrainConfig.from_dict({**base, "mel_scales": [[256, 64]]})
    with pytest.raises(ConfigError, match=r"^crop_seconds: .*under two codec frames"):
        CodecTrainConfig.from_dict({**base, "crop_seconds": 0.03})
    with pytest.raises(ConfigError, match=r"^preset: unknown 'huge'; valid: tiny, paper"):
        preset("huge")


def test_presets_build_and_tiny_has_50hz_frames(tmp_path):
    for name in ("tiny", "paper"):
        cfg = CodecTrainConfig.from_dict({**preset(name), "manifest": "m",
                                          "output_dir": str(tmp_path)})
        dac = cfg.dac_config()
        assert dac.hop_length == 320 and dac.sampling_rate == 16000
    assert dac.n_codebooks == 12 and cfg.batch_size == 72  # paper: DAC 16 kHz


def test_a_24khz_codec_trains_and_codes_at_its_rate(tiny_corpus, tmp_path):
    """``model.sampling_rate`` sets the codec's rate: crops, losses and codes follow it
    (50 Hz frames at 24 kHz with a hop of 480)."""
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.tokenizers.codecs import CodecTokenizer

    model = {**TINY["model"], "sampling_rate": 24000, "downsampling_ratios": [2, 4, 6, 10]}
    cfg = tiny_cfg(tiny_corpus / "manifest.jsonl", tmp_path / "c24", model=model, max_steps=2)
    assert cfg.sample_rate == 24000 and cfg.crop_samples == int(0.16 * 24000) // 480 * 480
    train_codec(cfg)
    tok = CodecTokenizer("dac", str(tmp_path / "c24"), device="cpu")
    assert (tok.sample_rate, tok.frame_rate) == (24000, 50)
    wav = load_audio(read_manifest(tiny_corpus / "manifest.jsonl")[0].audio, 16000)
    s = tok.encode([wav], 16000)[0]  # resampled to 24 kHz by the tokenizer
    assert s.codes.shape == (4, round(len(wav) * 1.5) // 480)
    with pytest.raises(ConfigError, match=r"^model\.sampling_rate: an integer rate"):
        tiny_cfg("m", tmp_path, model={**TINY["model"], "sampling_rate": 100})


# ---- the saved codec ------------------------------------------------------------------------
def test_saved_codec_is_a_dac_tokenizer_with_exact_roundtrip(trained, tiny_corpus, tmp_path):
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.tokenizers import fit_tokenizer, load_tokenizer
    from speechlm.tokenizers.codecs import CodecTokenizer

    assert (trained / "config.json").is_file() and (trained / "model.safetensors").is_file()
    for f in ("train_config.json", "log.jsonl", "metrics.json", "errors.jsonl"):
        assert (trained / f).is_file(), f
    tok = CodecTokenizer("dac", str(trained), n_codebooks=2, device="cpu")
    assert (tok.n_units, tok.max_codebooks, tok.frame_rate, tok.sample_rate) == (16, 4, 50, 16000)
    wav = load_audio(read_manifest(tiny_corpus / "manifest.jsonl")[0].audio, 16000)
    s = tok.encode([wav], 16000)[0]
    assert s.codes.shape == (2, len(wav) // 320) and s.codes.max() < 16
    audio = tok.decode([s])[0]
    assert audio.dtype == np.float32 and abs(len(audio) - len(wav)) <= 320

    fitted = fit_tokenizer(tiny_corpus / "manifest.jsonl", "dac", 0, tmp_path / "tok",
                           model=str(trained), n_codebooks=2)
    copied = {p.name for p in (tmp_path / "tok" / "codec").iterdir()}
    assert copied == {"config.json", "model.safetensors"}  # the weights, not the training state
    again = load_tokenizer(fitted)
    s2 = again.encode([wav], 16000)[0]
    np.testing.assert_array_equal(s2.codes, s.codes)
    np.testing.assert_array_equal(again.decode([s2])[0], audio)


def test_crash_then_resume_matches_uninterrupted(trained, tiny_corpus, tmp_path, monkeypatch):
    """Killed after the step-2 checkpoint (in step 4, past a code restart at step 3): running
    again resumes at step 2 and ends with the uninterrupted run's weights, bit for bit."""
    cfg = tiny_cfg(tiny_corpus / "manifest.jsonl", tmp_path / "crash", save_steps=3)
    step = CodecTrainer.train_step

    def crash_in_step_5(self, wav):
        if self.step == 4:
            raise KeyboardInterrupt("killed")
        return step(self, wav)

    monkeypatch.setattr(CodecTrainer, "train_step", crash_in_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_codec(cfg)
    monkeypatch.setattr(CodecTrainer, "train_step", step)
    assert not (tmp_path / "crash" / "model.safetensors").exists()
    metrics = train_codec(cfg)
    assert metrics["resumed_from"].endswith("step-3") and metrics["steps"] == 6
    want = load_file(str(trained / "model.safetensors"))
    got = load_file(str(tmp_path / "crash" / "model.safetensors"))
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k
    # a finished run stays finished; other settings in the same folder are refused
    assert train_codec(cfg)["steps"] == 6
    with pytest.raises(ConfigError, match="other settings .*lr: 0.001 -> 0.002"):
        train_codec(tiny_cfg(tiny_corpus / "manifest.jsonl", tmp_path / "crash", lr=2e-3))


def test_training_lowers_the_reconstruction_loss(tiny_corpus, tmp_path):
    """The mel L1 of held-fixed crops, all codebooks, before vs after 40 steps."""
    from speechlm.codec.train import usable_utterances
    from speechlm.ssl.data import CropDataset

    cfg = tiny_cfg(tiny_corpus / "manifest.jsonl", tmp_path / "run", max_steps=40,
                   save_steps=40, logging_steps=10, lr=3e-3, batch_size=4,
                   model={**TINY["model"], "encoder_hidden_size": 4, "decoder_hidden_size": 32})
    (tmp_path / "run").mkdir()
    data = CropDataset(None, usable_utterances(cfg, tmp_path / "run"), cfg.crop_samples, 320,
                       320, seed=1)
    fixed = torch.from_numpy(crop_batch(data, cfg, 10**6))

    def mel_l1(trainer, weights=None) -> float:
        model = trainer.plain_model()  # (weight norm folded in)
        if weights is not None:
            model.load_state_dict(load_file(str(weights)))
        with torch.no_grad():
            fake = model(fixed).audio_values[:, None]
            return float(trainer.mel(fake, fixed[..., :fake.shape[-1]]))

    before = mel_l1(CodecTrainer(cfg))
    train_codec(cfg)
    after = mel_l1(CodecTrainer(cfg), tmp_path / "run" / "model.safetensors")
    assert after < 0.8 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 30, 40]
    assert all(r["audio_s_per_s"] > 0 and len(r["code_usage"]) == 4 for r in log)


# ---- data and command errors ------------------------------------------------------------------
def test_unreadable_audio_is_skipped_and_listed(tiny_corpus, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    rows = [json.loads(x) for x in (tiny_corpus / "manifest.jsonl").read_text().splitlines()[:3]]
    rows = [{**r, "audio": str(tiny_corpus / r["audio"])} for r in rows]
    row = {**rows[0], "id": "broken", "audio": str(bad)}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in [*rows, row]))
    metrics = train_codec(tiny_cfg(manifest, tmp_path / "out", max_steps=1))
    assert metrics["unreadable"] == 1 and metrics["utterances"] == 3
    (err,) = [json.loads(x) for x in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert err["id"] == "broken" and str(bad) in err["error"]

    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text(json.dumps(row) + "\n")
    with pytest.raises(SpeechLMError, match=r"no usable audio .*1 unreadable file"):
        train_codec(tiny_cfg(only_bad, tmp_path / "out2"))


def speechlm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechlm.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_bad_override_and_preset_are_one_line_errors(tmp_path):
    r = speechlm("codec", "train", "--manifest", "m.jsonl", "--out", str(tmp_path / "o"),
                 "max_stpes=5")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: max_stpes: unknown key; valid keys: manifest, ")
    r = speechlm("codec", "train", "--manifest", "m.jsonl", "--out", str(tmp_path / "o"),
                 "--preset", "big")
    assert r.returncode == 1 and r.stderr.strip() == ("error: preset: unknown 'big'; valid: "
                                                      "tiny, paper")
    assert not (tmp_path / "o").exists()
