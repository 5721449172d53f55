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


def test_answer_vs_silent_accuracy_counts_the_right_one_of_the_two():
    """A stub that always rates <answer> above <silent>: right at the answer frames, wrong at
    the silent ones; the <irq> frame is no answer-or-silence decision."""
    import torch
    from torch import nn

    from speechlm.train.duplex import held_out_figures

    vocab = list(SPECIALS)
    a, s, irq = (vocab.index(t) for t in ("<answer>", "<silent>", "<irq>"))

    class Stub(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))
            self.config = SimpleNamespace(n_units=4, text_vocab=vocab)

        def forward(self, listen, text_labels, **_):
            logits = torch.zeros(*listen.shape, len(vocab))
            logits[..., a], logits[..., s] = 2.0, 1.0
            return SimpleNamespace(speak_loss=torch.tensor(0.5), text_loss=torch.tensor(0.25),
                                   text_logits=logits)

    def window(labels):
        n = len(labels)
        return {"listen": np.zeros(n, int), "speak_in": np.zeros(n, int),
                "text_in": np.zeros(n, int), "speak_labels": np.zeros(n, int),
                "text_labels": np.array(labels)}

    class Windows(list):
        items = property(lambda self: self)

    ds = Windows([window([0, a, 0, s]), window([a, a, irq, s, 0])])
    figures = held_out_figures(Stub(), ds, batch_size=1)
    assert figures["answer_vs_silent_frames"] == 5
    assert figures["answer_vs_silent_accuracy"] == pytest.approx(3 / 5)
    assert figures["state_frames"] == 6 and figures["state_accuracy"] == pytest.approx(3 / 6)
