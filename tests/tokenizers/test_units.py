"""Unit tokenizers fitted on the tiny synthetic corpus: save/load, dedup, errors, prosody."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speechlm.errors import ConfigError
from speechlm.tokenizers import fit_tokenizer, load_tokenizer


def test_tiny_tokenizer_save_load_identical(tiny_tokenizer, tiny_wavs, tmp_path):
    tok = load_tokenizer(tiny_tokenizer)
    spec = json.loads((tiny_tokenizer / "tokenizer.json").read_text())
    assert spec["kind"] == "mfcc" and spec["n_units"] == 20 and spec["class"] == "units"
    assert tok.n_units == 20 and tok.frame_rate == 50.0 and tok.sample_rate == 16000
    a = tok.encode(tiny_wavs, 16000)
    tok.save(tmp_path / "copy")
    b = load_tokenizer(tmp_path / "copy").encode(tiny_wavs, 16000)
    assert all(x.equals(y) for x, y in zip(a, b, strict=True))
    for s, w in zip(a, tiny_wavs, strict=True):
        assert s.units.dtype == np.int64 and s.durations.dtype == np.int64
        assert (np.diff(s.units) != 0).all()  # de-duplicated
        assert s.durations.sum() == len(w) // 320 + 1  # every frame accounted for
        assert s.units.min() >= 0 and s.units.max() < 20
    assert not list(tiny_tokenizer.glob("*.pt")) and not list(tiny_tokenizer.glob("*.pkl"))


def test_resampled_input_gives_same_length(tiny_tokenizer, tiny_wavs):
    import soxr

    tok = load_tokenizer(tiny_tokenizer)
    w8 = soxr.resample(tiny_wavs[0], 16000, 8000)
    s = tok.encode([w8], 8000)[0]
    assert abs(int(s.durations.sum()) - (len(tiny_wavs[0]) // 320 + 1)) <= 1


def test_logmel_no_dedup_and_prosody(tiny_corpus, tiny_wavs, tmp_path):
    out = fit_tokenizer(tiny_corpus / "manifest.jsonl", "logmel", 16, tmp_path / "t",
                        dedup=False, prosody={"n_pitch": 8, "n_style": 4}, max_frames=5000,
                        max_hours=0.015)
    tok = load_tokenizer(out)
    s = tok.encode(tiny_wavs[:1], 16000, speakers=["nobody"])[0]
    assert (s.durations == 1).all() and len(s.units) == len(tiny_wavs[0]) // 320 + 1
    assert len(s.f0) == len(s.units) and s.f0.max() <= 32 and (s.f0 > 0).any()
    secs = len(tiny_wavs[0]) / 16000
    assert s.pitch_rate == 12.5 and abs(len(s.pitch) - secs * 12.5) <= 1
    assert s.style_rate == 1.0 and len(s.style) == int(np.ceil(secs * 100 / 100))
    assert s.pitch.max() < 8 and s.style.max() < 4
    again = load_tokenizer(out).encode(tiny_wavs[:1], 16000, speakers=["nobody"])[0]
    assert s.equals(again)


def test_unknown_kind_and_missing_dir(tmp_path, tiny_corpus):
    with pytest.raises(ConfigError, match="valid kinds: .*mfcc"):
        fit_tokenizer(tiny_corpus / "manifest.jsonl", "plp", 10, tmp_path / "x")
    with pytest.raises(ConfigError, match="not a tokenizer directory"):
        load_tokenizer(tmp_path)
    with pytest.raises(ConfigError, match="frame_rat"):
        fit_tokenizer(tiny_corpus / "manifest.jsonl", "mfcc", 10, tmp_path / "x", frame_rat=50)


def test_smooth_path_removes_flicker_keeps_real_changes():
    from speechlm.tokenizers.kmeans import smooth_path

    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1, 2], 10)  # three sounds of 10 frames each
    dist = rng.uniform(1.0, 2.0, (30, 4))
    dist[np.arange(30), truth] = 0.2
    dist[5, 3] = 0.0  # a one-frame detour to unit 3 inside the first sound
    assert (smooth_path(dist, 0.0) == dist.argmin(1)).all()  # no penalty: nearest centroid
    assert smooth_path(dist, 0.0)[5] == 3
    assert (smooth_path(dist, 1.0) == truth).all()  # detour gone, both boundaries kept
    assert len(set(smooth_path(dist, 100.0))) == 1  # a huge penalty leaves one segment
    assert smooth_path(np.zeros((0, 4)), 1.0).shape == (0,)


def test_smoothing_shortens_units_and_round_trips(tiny_corpus, tiny_tokenizer, tiny_wavs,
                                                  tmp_path):
    out = fit_tokenizer(tiny_corpus / "manifest.jsonl", "mfcc", 20, tmp_path / "s",
                        smoothing=0.5)
    spec = json.loads((out / "tokenizer.json").read_text())
    assert spec["switch_penalty"] > 0
    plain = load_tokenizer(tiny_tokenizer).encode(tiny_wavs, 16000)
    smooth = load_tokenizer(out).encode(tiny_wavs, 16000)
    assert sum(len(s.units) for s in smooth) < 0.9 * sum(len(s.units) for s in plain)
    for s, w in zip(smooth, tiny_wavs, strict=True):
        assert (np.diff(s.units) != 0).all() and s.durations.sum() == len(w) // 320 + 1
    again = load_tokenizer(out).encode(tiny_wavs, 16000)
    assert all(x.equals(y) for x, y in zip(smooth, again, strict=True))
    with pytest.raises(ConfigError, match="smoothing"):
        fit_tokenizer(tiny_corpus / "manifest.jsonl", "mfcc", 20, tmp_path / "n", smoothing=-1)
