"""LLaMA-Omni's model: the k-frame adapter, the speech slot, the text loss on the answer only,
the CTC unit decoder (a known-answer overfit), save / load, and streaming units that match a
single decoding pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_text import TINY, text_vocab
from transformers import AutoModel, LlamaConfig, LlamaForCausalLM

from speechlm.errors import ConfigError
from speechlm.generate.omni import answer, answer_units
from speechlm.models.modeling_omni import (
    MARKERS,
    OmniConfig,
    OmniSpeechLM,
    SpeechAdapter,
    ctc_collapse,
    prompt_ids,
    stacked_length,
)
from speechlm.sequences.example import IGNORE
from speechlm.sequences.instruction import ASSISTANT, HUMAN
from speechlm.sequences.vocab import SpeechVocab
from speechlm.train.omni import omni_collate, omni_example

D, K, N_UNITS = 8, 5, 6


@pytest.fixture(scope="module")
def vocab() -> SpeechVocab:
    return text_vocab(MARKERS)


def _model(vocab: SpeechVocab, seed: int = 0, **kw) -> OmniSpeechLM:
    torch.manual_seed(seed)
    backbone = LlamaForCausalLM(LlamaConfig(vocab_size=vocab.size, **TINY))
    args = dict(stack=K, projector_dim=16, upsample=4, unit_layers=1) | kw
    return OmniSpeechLM.from_backbone(backbone, D, N_UNITS, vocab.speech_id, seed=seed, **args)


def _row(n_frames: int, text: str, units: list[int], seed: int = 0) -> dict:
    feats = np.random.default_rng(seed).normal(size=(n_frames, D)).astype(np.float16)
    return {"prompt_feats": feats, "response_text": text, "response_units": units}


def test_adapter_stacks_k_frames_and_pads_a_partial_group():
    torch.manual_seed(0)
    adapter = SpeechAdapter(D, K, 16, 32)
    feats = torch.randn(2, 12, D)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    out, omask = adapter(feats, mask)
    assert out.shape == (2, 3, 32) and stacked_length(12, K) == 3
    assert omask.tolist() == [[True, True, True], [True, True, False]]
    # a padded row gives what it gives alone: padding frames are zeroed before stacking
    alone, _ = adapter(feats[1:, :7])
    torch.testing.assert_close(alone, out[1:, :2])
    # the projector is Linear(k*D) -> ReLU -> Linear(hidden)
    assert adapter.proj[0].in_features == K * D and adapter.proj[2].out_features == 32


def test_config_refuses_bad_sizes(vocab):
    with pytest.raises(ConfigError, match="stack"):
        _model(vocab, stack=0)
    with pytest.raises(ConfigError, match="speech_token_id"):
        OmniConfig(backbone={"model_type": "llama", "vocab_size": 10, **TINY},
                   speech_token_id=10)


def test_template_and_labels_cover_the_answer_only(vocab):
    ex = omni_example(_row(12, "the cat runs .", [1, 2]), vocab, K)
    n_answer = len(vocab.text_to_ids("the cat runs .")) + 1  # EOS
    prompt = prompt_ids(vocab, 3)
    assert prompt == [vocab.bos_id, vocab.marker(HUMAN), *[vocab.speech_id] * 3,
                      vocab.marker(ASSISTANT)]
    assert ex["input_ids"][:len(prompt)] == prompt and ex["input_ids"][-1] == vocab.eos_id
    assert ex["labels"] == [IGNORE] * len(prompt) + ex["input_ids"][len(prompt):]
    assert sum(v != IGNORE for v in ex["labels"]) == n_answer


def test_text_loss_is_the_mean_over_answer_tokens(vocab):
    model = _model(vocab).eval()
    batch = omni_collate(vocab.pad_id)([omni_example(_row(12, "the cat runs .", [1, 2]),
                                                     vocab, K),
                                        omni_example(_row(7, "a cat .", [3]), vocab, K)])
    out = model(**batch)
    logits, labels = out.logits[:, :-1], batch["labels"][:, 1:]
    keep = labels != IGNORE
    assert int(keep.sum()) == sum(len(vocab.text_to_ids(t)) + 1
                                  for t in ("the cat runs .", "a cat ."))
    manual = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(out.text_loss, manual)
    # only the predictions of labelled tokens get a gradient: the prompt's predictions none
    out.logits.retain_grad()
    out.text_loss.backward(retain_graph=True)
    counted = out.logits.grad.abs().sum(-1)[:, :-1] > 0  # (B, L-1): position t predicts t + 1
    assert torch.equal(counted, keep)
    assert torch.isfinite(out.unit_loss)
    torch.testing.assert_close(out.loss, out.text_loss + model.config.unit_loss_weight
                               * out.unit_loss)


def test_forward_runs_under_bf16_autocast(vocab):
    # the trainer's bf16 autocast computes the projector in bf16; the embeddings stay fp32
    model = _model(vocab).eval()
    batch = omni_collate(vocab.pad_id)([omni_example(_row(12, "a cat .", [1, 2]), vocab, K)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch)
    assert torch.isfinite(out.loss)


def test_speech_slot_must_match_the_frames(vocab):
    model = _model(vocab)
    ids = torch.tensor([prompt_ids(vocab, 2)])  # 2 slots, but 12 frames stack to 3
    with pytest.raises(ValueError, match="speech slots"):
        model(ids, speech_feats=torch.randn(1, 12, D))


def test_save_load_round_trip_gives_identical_outputs(vocab, tmp_path):
    from speechlm.pretrained import load_pretrained

    model = _model(vocab).eval()
    batch = omni_collate(vocab.pad_id)([omni_example(_row(9, "a small cat sleeps .", [0, 5]),
                                                     vocab, K)])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = load_pretrained(AutoModel, tmp_path).eval()
    assert isinstance(loaded, OmniSpeechLM) and loaded.config.upsample == 4
    a, b = model(**batch), loaded(**batch)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.unit_loss, b.unit_loss)


def test_from_backbone_copies_the_lm_weights(vocab):
    torch.manual_seed(3)
    backbone = LlamaForCausalLM(LlamaConfig(vocab_size=vocab.size, **TINY)).eval()
    model = OmniSpeechLM.from_backbone(backbone, D, N_UNITS, vocab.speech_id, stack=K,
                                       projector_dim=16).eval()
    ids = torch.tensor([[vocab.bos_id, *vocab.text_to_ids("the dog sees a cat .")]])
    torch.testing.assert_close(model(ids).logits, backbone(ids).logits)


def test_ctc_collapse_carries_the_previous_label():
    blank = 9
    assert ctc_collapse([1, 1, 9, 1, 2, 2, 9], blank) == [1, 1, 2]
    # the second chunk starts with the first's last label: one unit, not two
    assert ctc_collapse([2, 2, 3], blank, prev=2) == [3]


def test_ctc_overfits_a_known_answer(vocab):
    model = _model(vocab, upsample=3).train()
    target = [3, 1, 4, 0, 5, 2]
    row = _row(10, "the dog sees a cat .", target)
    ex = omni_example(row, vocab, K)
    batch = omni_collate(vocab.pad_id)([ex])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        out = model(**batch)
        assert torch.isfinite(out.unit_loss)
        opt.zero_grad()
        out.unit_loss.backward()
        opt.step()
        losses.append(out.unit_loss.item())
    assert losses[-1] < 0.2 * losses[0], losses
    answer_ids = ex["input_ids"][-(len(vocab.text_to_ids(row["response_text"])) + 1):]
    assert answer_units(model.eval(), vocab, answer_ids, feats=row["prompt_feats"]) == target


@pytest.mark.parametrize("chunk", [1, 3])
def test_streamed_units_are_those_of_one_pass(vocab, chunk):
    model = _model(vocab, seed=1).eval()
    feats = _row(11, "", []).get("prompt_feats")
    got: list[list[int]] = []
    res = answer(model, vocab, feats=feats, max_new_tokens=10, chunk=chunk, on_units=got.append)
    assert res["units"] and all(got)  # each callback brings new units
    assert sum(got, []) == res["units"] == answer_units(model, vocab, res["ids"], feats=feats)
    assert 0 <= res["time_to_first_units_s"] <= res["seconds"]
    assert isinstance(res["text"], str) and 1 <= len(res["ids"]) <= 10


def test_written_question_path(vocab):
    model = _model(vocab).eval()
    res = answer(model, vocab, question="the dog sees a cat .", max_new_tokens=5)
    assert res["units"] == answer_units(model, vocab, res["ids"], question="the dog sees a cat .")
    with pytest.raises(ValueError, match="feats"):
        answer(model, vocab, max_new_tokens=5)
