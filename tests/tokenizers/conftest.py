"""Tiny random encoder and codec checkpoints, saved to a temp dir and loaded back by path."""

from __future__ import annotations

from pathlib import Path

import pytest

SMALL_W2V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def _save(model, path: Path, extractor=None) -> Path:
    model.save_pretrained(path)
    if extractor is not None:
        extractor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def encoder_dirs(tmp_path_factory) -> dict[str, Path]:
    """kind -> folder of a tiny random HuBERT / wav2vec2 / WavLM / w2v-BERT 2.0."""
    import torch
    from transformers import (
        HubertConfig,
        HubertModel,
        SeamlessM4TFeatureExtractor,
        Wav2Vec2BertConfig,
        Wav2Vec2BertModel,
        Wav2Vec2Config,
        Wav2Vec2Model,
        WavLMConfig,
        WavLMModel,
    )

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("encoders")
    return {
        "hubert": _save(HubertModel(HubertConfig(**SMALL_W2V)), root / "hubert"),
        "wav2vec2": _save(Wav2Vec2Model(Wav2Vec2Config(
            **SMALL_W2V, feat_extract_norm="layer", do_stable_layer_norm=True)), root / "w2v2"),
        "wavlm": _save(WavLMModel(WavLMConfig(**SMALL_W2V, num_buckets=8,
                                              max_bucket_distance=20)), root / "wavlm"),
        "w2v-bert": _save(Wav2Vec2BertModel(Wav2Vec2BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            output_hidden_size=32, conv_depthwise_kernel_size=3,
            feature_projection_input_dim=160)), root / "w2vbert", SeamlessM4TFeatureExtractor()),
    }


@pytest.fixture(scope="session")
def codec_dirs(tmp_path_factory) -> dict[str, Path]:
    """kind -> folder of a tiny random EnCodec / Mimi / DAC at 16 kHz."""
    import torch
    from transformers import (
        DacConfig,
        DacModel,
        EncodecConfig,
        EncodecModel,
        MimiConfig,
        MimiModel,
    )

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("codecs")
    return {
        "encodec": _save(EncodecModel(EncodecConfig(
            sampling_rate=16000, num_filters=4, hidden_size=16, codebook_dim=16,
            codebook_size=64, upsampling_ratios=[4, 4, 2], num_lstm_layers=1,
            target_bandwidths=[6.0, 12.0])), root / "encodec"),
        "mimi": _save(MimiModel(MimiConfig(
            sampling_rate=16000, frame_rate=12.5, num_filters=4, hidden_size=16,
            codebook_dim=16, codebook_size=64, num_quantizers=4, num_semantic_quantizers=1,
            intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=2, head_dim=8, upsampling_ratios=[8, 5, 4, 2], sliding_window=16,
            upsample_groups=16, vector_quantization_hidden_dimension=16)), root / "mimi"),
        "dac": _save(DacModel(DacConfig(
            sampling_rate=16000, encoder_hidden_size=4, decoder_hidden_size=16, hidden_size=16,
            codebook_size=64, codebook_dim=4, n_codebooks=3, downsampling_ratios=[2, 4, 4],
            upsampling_ratios=[4, 4, 2], hop_length=32)), root / "dac"),
    }


@pytest.fixture(scope="session")
def tiny_wavs(tiny_corpus) -> list:
    """The first few utterances of the tiny corpus as 16 kHz float32 arrays."""
    from speechlm.corpus.manifest import read_manifest
    from speechlm.tokenizers.reading import read_utterance

    return [read_utterance(u, 16000) for u in read_manifest(tiny_corpus / "manifest.jsonl")[:4]]
