"""Toy token datasets (contract layout, no audio) and a tiny training config for train tests."""

from __future__ import annotations

import pytest
from train_helpers import tiny_cfg

from speechlm.train.toydata import write_toy_token_dataset


@pytest.fixture(scope="session")
def toy_tokens(tmp_path_factory):
    """200 toy utterances (20 units) with word alignments."""
    return write_toy_token_dataset(tmp_path_factory.mktemp("toy_tokens"), n_rows=200, seed=0)


@pytest.fixture(scope="session")
def toy_eval_tokens(tmp_path_factory, toy_tokens):
    """Held-out toy utterances (another seed, same lexicon seed is not needed for loss checks)."""
    return write_toy_token_dataset(tmp_path_factory.mktemp("toy_eval"), n_rows=40, seed=1)


@pytest.fixture(scope="session")
def toy_source_model(tmp_path_factory, toy_tokens):
    """A tiny speechlm model directory (cold, 4 steps on ``toy_tokens``) to fine-tune from."""
    from speechlm.train import TrainConfig, run_training

    out = tmp_path_factory.mktemp("source_model")
    run_training(TrainConfig(**tiny_cfg(toy_tokens, out, max_steps=4, precision="fp32")))
    return out


@pytest.fixture(scope="session")
def toy_instructions(tmp_path_factory, toy_tokens):
    """64 toy instructions (``prompt_units`` -> ``units`` by ``toy_answer``), 20 units.

    They share ``toy_tokens``' speech tokenizer, as fine-tuning data shares its model's.
    """
    from speechlm.train.data import read_info
    from speechlm.train.toydata import write_toy_instruction_dataset

    return write_toy_instruction_dataset(tmp_path_factory.mktemp("toy_instructions"), n_rows=64,
                                         seed=0, tokenizer_dir=read_info(toy_tokens)["tokenizer"])


@pytest.fixture(scope="session")
def toy_eval_instructions(tmp_path_factory, toy_tokens):
    """16 held-out toy instructions (another seed)."""
    from speechlm.train.data import read_info
    from speechlm.train.toydata import write_toy_instruction_dataset

    return write_toy_instruction_dataset(tmp_path_factory.mktemp("toy_eval_instructions"),
                                         n_rows=16, seed=1,
                                         tokenizer_dir=read_info(toy_tokens)["tokenizer"])


@pytest.fixture(scope="session")
def toy_preferences(tmp_path_factory, toy_tokens):
    """16 toy preference pairs: chosen = ``toy_answer(prompt)``, rejected = random units."""
    from speechlm.train.data import read_info
    from speechlm.train.toydata import write_toy_preference_dataset

    return write_toy_preference_dataset(tmp_path_factory.mktemp("toy_preferences"), n_rows=16,
                                        seed=0, tokenizer_dir=read_info(toy_tokens)["tokenizer"])
