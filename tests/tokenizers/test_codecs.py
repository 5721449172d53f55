"""Codec tokenizers (EnCodec, Mimi, DAC) from tiny random checkpoints loaded by path."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.errors import ConfigError
from speechlm.tokenizers import fit_tokenizer, load_tokenizer


@pytest.mark.parametrize("kind", ["encodec", "mimi", "dac"])
def test_codec_encode_decode_save_load(kind, codec_dirs, tiny_corpus, tiny_wavs, tmp_path):
    out = fit_tokenizer(tiny_corpus / "manifest.jsonl", kind, 0, tmp_path / "t",
                        model=str(codec_dirs[kind]), n_codebooks=2)
    tok = load_tokenizer(out)
    wav = tiny_wavs[0][:8000]
    s = tok.encode([wav], 16000)[0]
    assert s.codes.dtype == np.int64 and s.codes.shape[0] == 2
    assert abs(s.codes.shape[1] - tok.frame_rate / 2) <= 1  # half a second of frames
    assert s.codes.max() < tok.n_units
    (audio,) = tok.decode([s])
    assert abs(len(audio) - 8000) <= tok.sample_rate / tok.frame_rate  # within one frame
    assert np.isfinite(audio).all()
    again = load_tokenizer(out).encode([wav], 16000)[0]
    assert again.equals(s)


def test_codebook_count_is_selectable_and_checked(codec_dirs, tiny_wavs):
    from speechlm.tokenizers.codecs import CodecTokenizer

    full = CodecTokenizer("dac", str(codec_dirs["dac"]))
    one = CodecTokenizer("dac", str(codec_dirs["dac"]), n_codebooks=1)
    wav = tiny_wavs[0][:8000]
    c3, c1 = full.encode([wav], 16000)[0].codes, one.encode([wav], 16000)[0].codes
    assert c3.shape[0] == 3 and c1.shape[0] == 1 and np.array_equal(c3[:1], c1)
    with pytest.raises(ConfigError, match="n_codebooks"):
        CodecTokenizer("dac", str(codec_dirs["dac"]), n_codebooks=9)
