"""SSL-encoder unit tokenizers and continuous latents: tiny random checkpoints loaded by path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.errors import ConfigError
from speechlm.tokenizers import fit_tokenizer, load_tokenizer
from speechlm.tokenizers.encoders import SSLEncoder


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2", "wavlm", "w2v-bert"])
def test_encoder_unit_tokenizer_round_trip(kind, encoder_dirs, tiny_corpus, tiny_wavs, tmp_path):
    out = fit_tokenizer(tiny_corpus / "manifest.jsonl", kind, 8, tmp_path / "tok",
                        model=str(encoder_dirs[kind]), layer=1, max_hours=0.004)
    assert (out / "encoder" / "config.json").exists()  # self-contained copy of a local encoder
    tok = load_tokenizer(out)
    assert tok.kind == kind and tok.n_units == 8 and tok.frame_rate == 50.0
    a = tok.encode(tiny_wavs[:2], 16000)
    b = load_tokenizer(out).encode(tiny_wavs[:2], 16000)
    assert all(x.equals(y) for x, y in zip(a, b, strict=True))
    for s, w in zip(a, tiny_wavs[:2], strict=True):
        assert abs(int(s.durations.sum()) - len(w) / 320) <= 2


def test_long_audio_is_chunked(encoder_dirs):
    enc = SSLEncoder("hubert", str(encoder_dirs["hubert"]), layer=2, max_chunk_seconds=1.0)
    wav = np.random.default_rng(0).normal(0, 0.1, 16000 * 3 + 8000).astype(np.float32)
    (h,) = enc([wav])
    assert h.shape == (49 * 3 + 24, 32)  # three 1 s chunks (49 frames each) + 0.5 s (24)
    whole = SSLEncoder("hubert", str(encoder_dirs["hubert"]), layer=2, max_chunk_seconds=10)
    (h1,) = whole([wav[:16000]])
    assert torch.allclose(h[:49], h1, atol=1e-5)


def test_layer_and_model_type_are_checked(encoder_dirs):
    with pytest.raises(ConfigError, match="layer"):
        SSLEncoder("hubert", str(encoder_dirs["hubert"]), layer=7)
    with pytest.raises(ConfigError, match="not 'wavlm'"):
        SSLEncoder("wavlm", str(encoder_dirs["hubert"]))


def test_continuous_latents_and_logmel_are_float16(encoder_dirs, tiny_corpus, tiny_wavs,
                                                   tmp_path):
    m = tiny_corpus / "manifest.jsonl"
    lat = load_tokenizer(fit_tokenizer(m, "continuous", 0, tmp_path / "lat", features="hubert",
                                       model=str(encoder_dirs["hubert"]), layer=2))
    mel = load_tokenizer(fit_tokenizer(m, "continuous", 0, tmp_path / "mel", features="logmel",
                                       frame_rate=100))
    s = lat.encode(tiny_wavs[:1], 16000)[0]
    assert s.feats.dtype == np.float16 and s.feats.shape[1] == 32 and s.units is None
    r = mel.encode(tiny_wavs[:1], 16000)[0]
    assert r.feats.dtype == np.float16 and r.feats.shape == (len(tiny_wavs[0]) // 160 + 1, 80)
    assert mel.frame_rate == 100.0 and lat.frame_rate == 50.0


def test_a_clip_too_short_for_the_encoder_is_skipped_and_listed(encoder_dirs, tiny_corpus,
                                                                 tmp_path):
    import json

    import soundfile as sf

    from speechlm.corpus.manifest import read_manifest, write_manifest
    from speechlm.tokenizers.job import tokenize_manifest

    tok = fit_tokenizer(tiny_corpus / "manifest.jsonl", "hubert", 4, tmp_path / "tok",
                        model=str(encoder_dirs["hubert"]), layer=1, max_frames=2000)
    utts = read_manifest(tiny_corpus / "manifest.jsonl")[:3]
    sf.write(tmp_path / "blip.wav", np.zeros(160, np.float32), 16000)  # 10 ms: no HuBERT frame
    blip = type(utts[0])(id="blip", audio=str(tmp_path / "blip.wav"), duration=0.01,
                         sample_rate=16000)
    write_manifest(tmp_path / "m.jsonl", [*utts, blip])
    res = tokenize_manifest(tmp_path / "m.jsonl", tok, tmp_path / "t", progress=False)
    assert res["rows"] == 3 and res["errors"] == 1
    (err,) = [json.loads(x) for x in (tmp_path / "t" / "errors.jsonl").read_text().splitlines()]
    assert err["id"] == "blip"
    assert err["error"] == "too short to tokenise (0.010s gave no frame)"
