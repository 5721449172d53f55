"""Causal MFCC/log-mel units: streamed frame by frame they equal the offline causal path."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from speechlm.errors import ConfigError
from speechlm.tokenizers import fit_tokenizer, load_tokenizer
from speechlm.tokenizers.features import SpectralFeatures, SpectralSpec
from speechlm.tokenizers.kmeans import KMeansQuantizer
from speechlm.tokenizers.streaming import StreamingUnits, frame_units
from speechlm.tokenizers.units import UnitTokenizer

SR, HOP = 16000, 320


def _clip(seed: int, seconds: float) -> np.ndarray:
    """A rising tone under a slow tremolo, then noise: frames that differ, cheaply."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    freq = 150 + rng.uniform(800, 2500) * t / seconds
    wav = 0.3 * np.sin(2 * np.pi * np.cumsum(freq) / SR) * (0.6 + 0.4 * np.sin(7 * t))
    wav[n // 2 :] += rng.normal(0, 0.05, n - n // 2)
    return wav.astype(np.float32)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """Four 2-second clips (16-bit WAV) and their manifest."""
    from speechlm.audio import save_audio
    from speechlm.corpus.manifest import Utterance, write_manifest

    d = tmp_path_factory.mktemp("causal_corpus")
    for i in range(4):
        save_audio(d / f"{i}.wav", _clip(i, 2.0), SR)
    write_manifest(d / "manifest.jsonl", [Utterance(id=str(i), audio=f"{i}.wav", duration=2.0,
                                                    sample_rate=SR) for i in range(4)])
    return d / "manifest.jsonl"


@pytest.fixture(scope="module")
def causal_dir(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("causal_tok")
    return fit_tokenizer(manifest, "mfcc", 8, out, causal=True, n_iter=10)


@pytest.fixture(scope="module")
def tok(causal_dir):
    return load_tokenizer(causal_dir)


def _stream(tok, wav: np.ndarray, chunks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Push ``wav`` in chunks cycling through ``chunks``: (units, features) of every frame."""
    s = StreamingUnits(tok)
    units, feats, i, k = [], [], 0, 0
    while i < len(wav):
        out = s.push_frames(wav[i : i + chunks[k % len(chunks)]])
        i, k = i + chunks[k % len(chunks)], k + 1
        units.append(out.units)
        feats.append(out.features)
    return np.concatenate(units), np.concatenate(feats)


@pytest.mark.parametrize("chunks", [[1], [37], [5000, 1, 319, 321, 640, 7, 2], [10**6]],
                         ids=["1-sample", "37", "irregular", "whole"])
def test_streaming_equals_offline(tok, chunks):
    wav = _clip(9, 1.0 if chunks == [1] else 3.0)[:-123]  # not a whole number of frames
    offline_units = frame_units(tok, wav, SR)
    offline_feats = tok.frontend([wav])[0].numpy()
    units, feats = _stream(tok, wav, chunks)
    assert len(units) == len(offline_units) == len(wav) // HOP
    np.testing.assert_allclose(feats, offline_feats, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(units, offline_units)
    assert len(set(units.tolist())) > 2  # a real sequence, not one unit throughout


def test_reset_starts_a_new_signal(tok):
    wav = _clip(3, 0.5)
    s = StreamingUnits(tok)
    s.push(_clip(4, 0.7))
    s.reset()
    np.testing.assert_array_equal(s.push(wav), frame_units(tok, wav, SR))


@pytest.mark.parametrize("n", [0, 1, HOP - 1, HOP, HOP + 1, 16000, 16001])
def test_n_samples_give_n_over_hop_frames(tok, n):
    wav = np.random.default_rng(n).normal(0, 0.1, n).astype(np.float32)
    assert len(frame_units(tok, wav, SR)) == len(StreamingUnits(tok).push(wav)) == n // HOP
    assert tok.frontend.n_frames(n) == n // HOP
    assert tok.frontend([wav])[0].shape == (n // HOP, 39)


def test_causality_with_a_known_answer(tok):
    wav, t = _clip(5, 1.0), 20
    end = (t + 1) * HOP  # frame t uses samples < end
    later = wav.copy()
    later[end:] = np.random.default_rng(0).normal(0, 0.5, len(wav) - end)
    f0, f1 = (tok.frontend([w])[0].numpy() for w in (wav, later))
    u0, u1 = (frame_units(tok, w, SR) for w in (wav, later))
    np.testing.assert_array_equal(f1[: t + 1], f0[: t + 1])
    np.testing.assert_array_equal(u1[: t + 1], u0[: t + 1])
    assert not np.allclose(f1[t + 1], f0[t + 1])
    last = wav.copy()
    last[end - 1] += 1.0  # the window's last weighted sample: frame t moves, frame t - 1 not
    f2 = tok.frontend([last])[0].numpy()
    np.testing.assert_array_equal(f2[:t], f0[:t])
    assert not np.allclose(f2[t, :13], f0[t, :13], rtol=0, atol=1e-6)
    s = StreamingUnits(tok)  # and the stream returns frame t with that sample, not before
    assert len(s.push(wav[: end - 1])) == t and len(s.push(wav[end - 1 : end])) == 1


def test_frame_offset_is_the_causal_window_centre(tok):
    # the 400-sample window ends at (t + 1) * 320: centred 120 samples after t * 320
    assert tok.frontend.frame_offset == pytest.approx(120 / SR)
    assert SpectralFeatures.frame_offset == 0.0  # the offline default is untouched


def test_global_stats_are_fitted_saved_and_reloaded(manifest, causal_dir, tok, tmp_path):
    spec = json.loads((causal_dir / "tokenizer.json").read_text())["features"]
    assert spec["causal"] is True and len(spec["mean"]) == len(spec["std"]) == 39
    from speechlm.audio import load_audio

    raw = SpectralFeatures(SpectralSpec(causal=True, normalize=False))
    wavs = [load_audio(p, SR) for p in sorted(manifest.parent.glob("*.wav"))]
    x = torch.cat(raw(wavs)).double()  # every training frame (as read back), un-normalised
    np.testing.assert_allclose(spec["mean"], x.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(spec["std"], x.std(0, unbiased=False), rtol=1e-4)
    again = load_tokenizer(tok.save(tmp_path / "copy"))
    assert again.frontend.stats == tok.frontend.stats
    wav = _clip(11, 2.0)
    np.testing.assert_array_equal(frame_units(again, wav, SR), frame_units(tok, wav, SR))
    feats = tok.frontend([wav])[0]
    assert feats.mean().abs() < 1.0 and 0.3 < feats.std() < 3  # normalised, not raw


def test_offline_default_is_unchanged():
    f = SpectralFeatures(SpectralSpec())
    wav = np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)
    w = torch.from_numpy(wav)
    spec = torch.stft(w, 512, HOP, 400, torch.hann_window(400), center=True,
                      return_complex=True)  # (F, T): the centred STFT
    c = torch.log(spec.abs().square().T @ f.fb + 1e-6) @ f.dct  # (T, 13)

    def delta(x):  # HTK regression over +-2 frames, edges replicated
        p = torch.cat([x[:1], x[:1], x, x[-1:], x[-1:]])
        return (p[3:-1] - p[1:-3] + 2 * (p[4:] - p[:-4])) / 10

    x = torch.cat([c, delta(c), delta(delta(c))], 1)
    x = (x - x.mean(0)) / (x.std(0, unbiased=False) + 1e-5)  # per-utterance CMVN
    torch.testing.assert_close(f([wav])[0], x, atol=1e-4, rtol=1e-4)
    assert f.n_frames(8000) == 8000 // HOP + 1 and f.frame_offset == 0.0
    assert set(f.to_dict()) == {"kind", "sample_rate", "frame_rate", "win_ms", "n_fft", "n_mels",
                                "n_mfcc", "deltas", "normalize", "fmin", "fmax"}  # same JSON


@pytest.mark.parametrize("opts", [dict(kind="logmel", n_mels=24), dict(frame_rate=25.0)],
                         ids=["logmel", "n_fft<hop"])
def test_unnormalised_front_ends_stream_too(opts):
    """No stats needed without normalisation; a hop longer than n_fft drops samples alike."""
    front = SpectralFeatures(SpectralSpec(causal=True, normalize=False, **opts))
    centroids = torch.randn(6, front.dim, generator=torch.Generator().manual_seed(0)) * 5
    tok = UnitTokenizer(front, KMeansQuantizer(centroids))
    wav = _clip(2, 1.5)
    units, feats = _stream(tok, wav, [101, 3, 997])
    assert len(units) == len(wav) // front.hop
    np.testing.assert_allclose(feats, front([wav])[0].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(units, frame_units(tok, wav, SR))


def test_refusals(manifest, tmp_path):
    offline = UnitTokenizer(SpectralFeatures(SpectralSpec()), KMeansQuantizer(np.zeros((4, 39))))
    for call in (lambda: StreamingUnits(offline), lambda: frame_units(offline, np.zeros(400), SR)):
        with pytest.raises(ConfigError, match=r"fit it with causal=True"):
            call()
    ssl = SimpleNamespace(kind="hubert", frontend=SimpleNamespace(kind="hubert"),
                          quantizer=offline.quantizer)
    with pytest.raises(ConfigError, match="SSL encoder has no causal front end"):
        StreamingUnits(ssl)
    with pytest.raises(ConfigError, match=r"^causal: only the spectral front ends"):
        fit_tokenizer(manifest, "hubert", 8, tmp_path / "h", causal=True, model="m")
    with pytest.raises(ConfigError, match=r"^smoothing: 0.5 cannot be used with causal=True"):
        fit_tokenizer(manifest, "mfcc", 8, tmp_path / "s", causal=True, smoothing=0.5)
    with pytest.raises(ConfigError, match=r"needs global mean/std .* causal=True"):
        SpectralFeatures(SpectralSpec(causal=True))  # normalize=True without fitted stats


def test_recipe_and_cli_options(manifest, tmp_path):
    from typer.testing import CliRunner

    from speechlm.cli import app
    from speechlm.recipes import load_recipe

    with pytest.raises(ConfigError, match=r"smoothing: 0.5 cannot be used with causal: true"):
        load_recipe("gslm", "tiny", ["tokenizer.causal=true"])  # gslm smooths by default
    conf = load_recipe("gslm", "tiny", ["tokenizer.causal=true", "tokenizer.smoothing=0"])
    assert conf.confs["tokenizer"].options()["causal"] is True
    with pytest.raises(ConfigError, match=r"causal: not an option of kind 'hubert'"):
        load_recipe("gslm", "tiny", ["tokenizer.kind=hubert", "tokenizer.model=m",
                                     "tokenizer.smoothing=0", "tokenizer.causal=true"])
    r = CliRunner().invoke(app, ["tokenizer", "fit", "--manifest", str(manifest), "--kind",
                                 "mfcc", "--units", "4", "--out", str(tmp_path / "t"),
                                 "--causal"])
    assert r.exit_code == 0, r.output
    assert StreamingUnits(load_tokenizer(tmp_path / "t")).frontend.causal
