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
        has_transcript = False

    ds = Windows([window([0, a, 0, s]), window([a, a, irq, s, 0])])
    figures = held_out_figures(Stub(), ds, batch_size=1)
    assert figures["answer_vs_silent_frames"] == 5
    assert figures["answer_vs_silent_accuracy"] == pytest.approx(3 / 5)
    assert figures["state_frames"] == 6 and figures["state_accuracy"] == pytest.approx(3 / 6)


def test_a_transcript_dataset_trains_a_transcript_head_and_reports_its_loss(tmp_path,
                                                                             monkeypatch):
    """The transcript stream from rows to the written dataset (its vocabulary in info.json), to
    windows with transcript labels, to a model built with the head, whose held-out figures add
    the transcript loss; a dataset without the stream gives neither."""
    import json
    from types import SimpleNamespace

    import torch

    import speechlm.tokenizers.duplex as tokdup
    from speechlm.models.duplex import build_duplex
    from speechlm.sequences.duplex import scenario_row, text_vocab, transcript_vocab
    from speechlm.train.duplex import DuplexWindows, held_out_figures

    monkeypatch.setattr(tokdup, "silence_unit", lambda tok: 0)
    tok = SimpleNamespace(n_units=6, frame_rate=50.0, kind="mfcc")
    record = {"id": "s0", "kind": "query", "states": [{"time": 0.5, "token": "answer"}],
              "user": [{"words": [["what", 0.1, 0.3], ["did", 0.3, 0.45]]}], "assistant": []}
    vocab, heard = text_vocab([record], words=False), transcript_vocab([record])
    rng = np.random.default_rng(0)
    listen, speak = rng.integers(0, 6, 40), rng.integers(0, 6, 40)
    model_cfg = {"model_type": "llama", "hidden_size": 16, "intermediate_size": 32,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
                 "max_position_embeddings": 64}
    for with_transcript in (True, False):
        out = tmp_path / str(with_transcript)
        row = scenario_row(record, listen, speak, 50.0, vocab,
                           transcript=heard if with_transcript else None)
        tokdup.write_duplex_tokens(out, [row], [], tok, tmp_path, vocab,
                                   heard if with_transcript else None)
        info = json.loads((out / "info.json").read_text())
        assert ("transcript_vocab" in info) is with_transcript
        ds = DuplexWindows(out, 6, vocab.index("<bos>"), 32)
        assert ds.has_transcript is with_transcript
        model = build_duplex(model_cfg, 6, vocab, transcript_vocab=info.get("transcript_vocab"))
        assert (model.transcript_head is not None) is with_transcript
        figures = held_out_figures(model, ds, batch_size=2)
        assert ("transcript_loss" in figures) is with_transcript
        if with_transcript:
            # labelled frames exist ("what": frames 5..14, "did" 15..21), so a real loss near
            # log(3) for an untrained head over 3 words
            assert np.isclose(figures["transcript_loss"], np.log(3), atol=0.3)
            # known answer: a head that always says "what" is right at the end of "what" only
            # (windows at frames 0 and 8 of 40, each holding both words: 2 of 4 word ends)

            class SaysWhat(torch.nn.Module):
                def forward(self, h):
                    out = torch.zeros(*h.shape[:-1], len(heard))
                    out[..., heard.index("what")] = 1.0
                    return out

            model.transcript_head = SaysWhat()
            figures = held_out_figures(model, ds, batch_size=2)
            assert figures["transcript_words"] == 4
            assert figures["transcript_word_accuracy"] == 0.5
        else:
            assert "transcript_word_accuracy" not in figures
