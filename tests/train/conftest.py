"""Toy token datasets (contract layout, no audio) and a tiny training config for train tests."""

from __future__ import annotations

import pytest

from speechlm.train.toydata import write_toy_token_dataset

TINY_LLAMA = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2}


@pytest.fixture(scope="session")
def toy_tokens(tmp_path_factory):
    """200 toy utterances (20 units) with word alignments."""
    return write_toy_token_dataset(tmp_path_factory.mktemp("toy_tokens"), n_rows=200, seed=0)


@pytest.fixture(scope="session")
def toy_eval_tokens(tmp_path_factory, toy_tokens):
    """Held-out toy utterances (another seed, same lexicon seed is not needed for loss checks)."""
    return write_toy_token_dataset(tmp_path_factory.mktemp("toy_eval"), n_rows=40, seed=1)


def tiny_cfg(data, out, **kw) -> dict:
    """Keyword arguments of a few-second TrainConfig."""
    cfg = dict(data=str(data), output_dir=str(out), init="cold", model=dict(TINY_LLAMA),
               seq_len=32, batch_size=4, max_steps=6, lr=3e-3, warmup_steps=2, save_steps=1000,
               eval_steps=1000, logging_steps=1, seed=0, progress=False)
    cfg.update(kw)
    return cfg
