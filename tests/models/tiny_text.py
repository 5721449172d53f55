"""What the tests of models built around a text LM (LLaMA-Omni, Spectron) share: a tiny Llama
and a speech-text vocabulary trained on three sentences."""

from __future__ import annotations

from collections.abc import Sequence

from speechlm.sequences.vocab import SpeechVocab, with_default_markers

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2)
SENTENCES = ["the dog sees a cat .", "a small cat sleeps .", "the cat runs ."]


def text_vocab(markers: Sequence[str]) -> SpeechVocab:
    """A 60-token BPE of SENTENCES extended by 4 units and ``markers``."""
    from speechlm.train.textlm import train_text_tokenizer

    tok = train_text_tokenizer(SENTENCES * 20, vocab_size=60)
    return SpeechVocab.extend(tok, 4, markers=with_default_markers(markers))
