"""Tiny random model directories for the cross-modal evaluations: one whose vocabulary extends a
text tokenizer (text tokens, as ``vocab_mode: extend`` makes), one speech-only, both reading a
small MFCC tokenizer fitted here in seconds (no corpus fixture, no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_LLAMA = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2}


@pytest.fixture(scope="session")
def mfcc_tokenizer(tmp_path_factory) -> Path:
    """A 16-unit MFCC tokenizer fitted on eight grammar sentences by a training voice."""
    from speechlm.audio import save_audio
    from speechlm.corpus.espeak import Espeak
    from speechlm.corpus.grammar import sample_sentences
    from speechlm.corpus.manifest import Utterance, write_manifest
    from speechlm.tokenizers import fit_tokenizer

    out = tmp_path_factory.mktemp("xm_tokenizer")
    utts = []
    for i, text in enumerate(sample_sentences(8, seed=5)):
        spoken = Espeak.get().speak(text, "en-us+m3", 170, 50, 16000, seed=i)
        save_audio(out / f"u{i}.wav", spoken.wav, 16000)
        utts.append(Utterance(f"u{i}", f"u{i}.wav", spoken.duration, 16000, text))
    write_manifest(out / "manifest.jsonl", utts)
    return fit_tokenizer(out / "manifest.jsonl", "mfcc", 16, out / "tokenizer", n_iter=5)


def _model_dir(out: Path, tokenizer: Path, text: bool) -> Path:
    from speechlm.corpus.grammar import sample_sentences
    from speechlm.models.init import cold_init
    from speechlm.models.speech_lm import save_model_dir
    from speechlm.sequences.vocab import SpeechVocab
    from speechlm.tokenizers import load_tokenizer
    from speechlm.train.textlm import train_text_tokenizer

    n_units = int(load_tokenizer(tokenizer).n_units)
    if text:  # a BPE text tokenizer of the grammar's sentences, extended by the units
        text_tok = train_text_tokenizer(sample_sentences(300, seed=1), vocab_size=300)
        vocab = SpeechVocab.extend(text_tok, n_units)
    else:
        vocab = SpeechVocab.speech_only(n_units)
    return save_model_dir(out, cold_init(dict(TINY_LLAMA), vocab, seed=0), vocab, {}, tokenizer)


@pytest.fixture(scope="session")
def text_model(mfcc_tokenizer, tmp_path_factory) -> Path:
    """A random tiny Llama whose vocabulary holds text tokens, markers and units."""
    return _model_dir(tmp_path_factory.mktemp("xm_text_model"), mfcc_tokenizer, text=True)


@pytest.fixture(scope="session")
def speech_model(mfcc_tokenizer, tmp_path_factory) -> Path:
    """A random tiny Llama with a speech-only vocabulary."""
    return _model_dir(tmp_path_factory.mktemp("xm_speech_model"), mfcc_tokenizer, text=False)
