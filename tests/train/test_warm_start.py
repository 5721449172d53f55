"""Warm-start options of the TWIST study: a frozen body phase, the other-modality source LM."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import TINY_LLAMA, tiny_cfg

from speechlm.errors import ConfigError
from speechlm.train import TrainConfig, run_training
from speechlm.train.textlm import digit_sentences, train_text_lm


@pytest.fixture(scope="module")
def digits_lm(tmp_path_factory):
    """A tiny LM trained two steps on digit images through the text LM's code path."""
    d = tmp_path_factory.mktemp("digits_lm")
    train_text_lm(d, n_sentences=64, steps=2, model=dict(TINY_LLAMA), batch_size=2, seq_len=32,
                  vocab_size=40, progress=False, source="digits")
    return d


def _body(model) -> dict[str, torch.Tensor]:
    emb = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return {k: p.detach().clone() for k, p in model.named_parameters() if id(p) not in emb}


def test_digit_sentences_are_images_as_rows_of_grey_letters():
    rows = digit_sentences(5, seed=0)
    assert len(rows) == 5 and rows == digit_sentences(5, seed=0) != digit_sentences(5, seed=1)
    for r in rows:
        words = r.split(" ")
        assert len(words) == 8 and all(len(w) == 8 and set(w) <= set("abcdefghijklmnopq")
                                       for w in words)


def test_digits_lm_is_a_plain_warm_start_source(digits_lm):
    meta = json.loads((digits_lm / "text_lm.json").read_text())
    assert meta["source"] == "digits" and meta["sentences"] == 64
    with pytest.raises(ConfigError, match="^source: must be one of grammar, digits"):
        train_text_lm(digits_lm / "x", n_sentences=2, steps=1, source="pixels")


@pytest.mark.parametrize("freeze", [0, 3])
def test_freeze_body_steps_keeps_the_body_for_that_many_steps(digits_lm, toy_tokens, tmp_path,
                                                              freeze):
    from transformers import AutoModelForCausalLM

    cfg = tiny_cfg(toy_tokens, tmp_path / "m", init="warm", init_from=str(digits_lm),
                   vocab_mode="replace", new_rows="normal", max_steps=3, keep="last",
                   freeze_body_steps=freeze, precision="fp32")
    del cfg["model"]
    run_training(TrainConfig(**cfg))
    start = _body(AutoModelForCausalLM.from_pretrained(digits_lm))
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    after = _body(trained)
    assert after.keys() == start.keys()
    same = [torch.equal(after[k], start[k]) for k in start]
    assert all(same) if freeze else not any(same)
    meta = json.loads((tmp_path / "m" / "speechlm.json").read_text())
    assert meta["init"]["new_row_init"] == "normal"


def test_freeze_body_steps_needs_a_warm_body(toy_tokens, tmp_path):
    with pytest.raises(ConfigError, match="^freeze_body_steps: only for init=warm"):
        TrainConfig(**tiny_cfg(toy_tokens, tmp_path, freeze_body_steps=2))


def test_tiny_text_tokenizer_reads_capitals_as_the_grammar_writes_them():
    from speechlm.train.textlm import train_text_tokenizer

    tok = train_text_tokenizer(["the dog ran home", "a cat saw the dog"] * 20, vocab_size=60)
    # LibriSpeech transcripts are all capitals; the grammar has none: same ids, no <unk>
    assert tok("THE DOG Ran")["input_ids"] == tok("the dog ran")["input_ids"]
    assert tok.unk_token_id not in tok("THE DOG Ran")["input_ids"]
    assert tok("<s> dog </s>")["input_ids"][0] == tok.bos_token_id  # specials stay whole
