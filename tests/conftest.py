"""Session fixtures shared by the test suite: each stage's tiny output is built once per run.

Each fixture imports its stage lazily, so a test only pays for (and depends on) what it uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (`make test` runs two workers) each worker gets its share of the cores:
# two workers at two threads each on two cores ran the suite 1.2x slower than at one each.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(
        1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A ~3-minute synthetic corpus with gold word/phone alignments: returns its folder."""
    from speechlm.corpus.synth import synthesize_corpus

    out = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(out, hours=0.05, seed=0, workers=2)
    return out


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory) -> Path:
    """Small synthetic sWUGGY/sBLIMP/StoryCloze sets spoken by held-out voices."""
    from speechlm.corpus.benchmarks import build_benchmarks

    out = tmp_path_factory.mktemp("benchmark")
    build_benchmarks(out, seed=0, pairs=12)
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_corpus, tmp_path_factory) -> Path:
    """An MFCC k-means tokenizer with 20 units fitted on the tiny corpus."""
    from speechlm.tokenizers import fit_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    fit_tokenizer(tiny_corpus / "manifest.jsonl", "mfcc", 20, out)
    return out


@pytest.fixture(scope="session")
def tiny_tokens(tiny_corpus, tiny_tokenizer, tmp_path_factory) -> Path:
    """The tiny corpus tokenised with the tiny tokenizer (a token dataset folder)."""
    from speechlm.tokenizers.job import tokenize_manifest

    out = tmp_path_factory.mktemp("tokens")
    tokenize_manifest(tiny_corpus / "manifest.jsonl", tiny_tokenizer, out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_tokens, tmp_path_factory) -> Path:
    """A 2-layer Llama speech LM trained for a few steps: a complete model directory."""
    from speechlm.train import TrainConfig, run_training

    out = tmp_path_factory.mktemp("model")
    cfg = TrainConfig(
        data=str(tiny_tokens), output_dir=str(out), init="cold",
        model={"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
               "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2},
        seq_len=64, batch_size=4, max_steps=10, lr=3e-3, warmup_steps=2,
        save_steps=1000, eval_steps=1000, logging_steps=5, seed=0, precision="fp32",
    )
    run_training(cfg)
    return out
