"""A tiny grammar text LM for the judge (a few steps: the tests need its interface, not skill)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_text_lm(tmp_path_factory):
    from speechlm.train.textlm import train_text_lm

    return train_text_lm(tmp_path_factory.mktemp("textlm"), n_sentences=300, steps=5,
                         vocab_size=200, progress=False,
                         model={"model_type": "llama", "hidden_size": 16, "intermediate_size": 32,
                                "num_hidden_layers": 1, "num_attention_heads": 2,
                                "num_key_value_heads": 2})


@pytest.fixture(scope="session")
def model_with_vocoder(tiny_model, tiny_corpus, tmp_path_factory):
    """The tiny model directory with a fallback vocoder fitted on the tiny corpus."""
    import shutil

    from speechlm.vocoders.fallback import fit_fallback_vocoder

    d = tmp_path_factory.mktemp("align_model") / "model"
    shutil.copytree(tiny_model, d)
    fit_fallback_vocoder(tiny_corpus / "manifest.jsonl", d / "speech_tokenizer", d / "vocoder",
                         max_hours=0.01)
    return d
