"""Codec decoding through the codec tokenizer, wrapped as a vocoder (tiny random DAC)."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.streams import Streams
from speechlm.vocoders import load_vocoder
from speechlm.vocoders.codec import CodecVocoder


@pytest.fixture(scope="module")
def dac_tokenizer(tmp_path_factory):
    import torch
    from transformers import DacConfig, DacModel

    from speechlm.tokenizers.codecs import CodecTokenizer

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("dac")
    DacModel(DacConfig(sampling_rate=16000, encoder_hidden_size=4, decoder_hidden_size=16,
                       hidden_size=16, codebook_size=64, codebook_dim=4, n_codebooks=2,
                       downsampling_ratios=[2, 4, 4], upsampling_ratios=[4, 4, 2],
                       hop_length=32)).save_pretrained(d)
    return CodecTokenizer("dac", str(d))


def test_codec_vocoder_decodes_codes_and_roundtrips(dac_tokenizer, tmp_path):
    wav = (0.1 * np.sin(np.arange(4000) / 10)).astype(np.float32)
    streams = dac_tokenizer.encode([wav], 16000)[0]
    voc = CodecVocoder(dac_tokenizer)
    audio = voc.synthesize(streams)
    np.testing.assert_allclose(audio, dac_tokenizer.decode([streams])[0], atol=1e-6)
    assert abs(len(audio) - len(wav)) <= 32
    voc.save(tmp_path / "v")
    again = load_vocoder(tmp_path / "v")
    assert again.kind == "codec" and again.sample_rate == 16000
    np.testing.assert_allclose(again.synthesize(streams), audio, atol=1e-5)
    with pytest.raises(SpeechLMError, match="codes"):
        voc.synthesize(Streams(50.0, units=np.array([1, 2])))
