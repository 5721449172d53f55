"""Batched scoring: exact under padding, independent of batch size, equal to a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.batching import length_buckets
from speechlm.evaluate.scoring import score_sequences


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def seqs():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 50, int(n)).tolist() for n in rng.integers(2, 90, 70)]


def test_batch_size_does_not_change_scores(tiny_lm, seqs):
    one = score_sequences(tiny_lm, seqs, batch_size=1)
    many = score_sequences(tiny_lm, seqs, batch_size=32)
    assert one.shape == (len(seqs), 2)
    np.testing.assert_allclose(one, many, atol=1e-4, rtol=0)
    # a token budget that forces uneven batches gives the same numbers too
    np.testing.assert_allclose(score_sequences(tiny_lm, seqs, max_tokens=200), one, atol=1e-4)


def test_scores_match_unbatched_log_softmax(tiny_lm, seqs):
    got = score_sequences(tiny_lm, seqs[:5], batch_size=5)
    for s, (total, mean) in zip(seqs[:5], got, strict=True):
        ids = torch.tensor([s])
        with torch.no_grad():
            lp = torch.log_softmax(tiny_lm(ids).logits[0, :-1].double(), -1)
        want = lp[torch.arange(len(s) - 1), ids[0, 1:]]
        assert total == pytest.approx(want.sum().item(), abs=1e-4)
        assert mean == pytest.approx(want.mean().item(), abs=1e-5)


def test_single_token_sequence_has_nothing_to_predict(tiny_lm):
    out = score_sequences(tiny_lm, [[3], [3, 4]])
    assert out[0, 0] == 0.0 and np.isnan(out[0, 1])
    assert out[1, 0] < 0


def test_length_buckets_respect_limits():
    lengths = [5, 50, 3, 49, 7, 100, 2]
    batches = length_buckets(lengths, batch_size=3, max_tokens=120)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 120
    assert batches[0] == [5]  # longest first
