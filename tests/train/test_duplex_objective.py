"""The duplex objective's state weighting: known counts give known class weights."""

from types import SimpleNamespace

import numpy as np
import pytest

from speechlm.sequences.duplex import SPECIALS
from speechlm.train.duplex import state_loss_weights


def test_state_weights_balance_the_states_and_average_the_weight():
    vocab = list(SPECIALS)  # <pad> <bos> <unk> <answer> <silent> <irq> <bc>
    a, s = vocab.index("<answer>"), vocab.index("<silent>")
    labels = np.zeros(400, dtype=np.int64)
    labels[[10, 50, 90, 130, 170, 210]] = a  # 6 answers
    labels[[250, 300]] = s  # 2 silences, no <irq> and no <bc>
    labels[-5:] = -100
    ds = SimpleNamespace(items=[{"text_labels": labels[:200]}, {"text_labels": labels[200:]}])
    w = state_loss_weights(ds, vocab, 10.0)
    assert w == {"<answer>": pytest.approx(10 * 8 / (2 * 6), abs=1e-4),
                 "<silent>": pytest.approx(10 * 8 / (2 * 2), abs=1e-4)}
    # each state carries the same total weight, and the state frames average the weight asked
    assert 6 * w["<answer>"] == pytest.approx(2 * w["<silent>"], rel=1e-4)
    assert (6 * w["<answer>"] + 2 * w["<silent>"]) / 8 == pytest.approx(10.0, rel=1e-4)
