"""Model directories: sub-models and speech tokenizers by role, relocation, the causal LM's step."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from speechlm.errors import ConfigError
from speechlm.models import get_architecture, load_speech_lm, save_model_dir
from speechlm.sequences.vocab import SpeechVocab

TINY = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 2}


@pytest.fixture(scope="module")
def second_tokenizer(tiny_corpus, tmp_path_factory):
    """A second speech tokenizer (log-mel, 8 units) for the 'acoustic' role."""
    from speechlm.tokenizers import fit_tokenizer

    out = tmp_path_factory.mktemp("acoustic_tok")
    fit_tokenizer(tiny_corpus / "manifest.jsonl", "logmel", 8, out, max_frames=3000)
    return out


def test_two_submodels_and_two_tokenizers_save_load_and_move(tiny_tokenizer, second_tokenizer,
                                                             tmp_path):
    arch = get_architecture("causal_lm")
    vocab = SpeechVocab.speech_only(20)
    main, nar = arch.build(TINY, vocab, seed=0).eval(), arch.build(TINY, vocab, seed=1).eval()
    out = save_model_dir(tmp_path / "m", {"main": main, "nar": nar}, vocab, {"note": "two"},
                         {"speech": tiny_tokenizer, "acoustic": second_tokenizer})
    meta = json.loads((out / "speechlm.json").read_text())
    assert meta["submodels"] == {"main": ".", "nar": "nar"}
    assert meta["tokenizers"] == {"speech": "speech_tokenizer", "acoustic": "acoustic_tokenizer"}

    moved = tmp_path / "elsewhere" / "model"
    moved.parent.mkdir()
    shutil.move(out, moved)  # paths inside are relative: the moved directory loads
    lm = load_speech_lm(moved)
    assert set(lm.submodels) == {"main", "nar"} and lm.model is lm.submodels["main"]
    ids = torch.tensor([[vocab.bos_id, vocab.speech_id, *vocab.units_to_ids([3, 1, 4])]])
    with torch.no_grad():
        assert torch.equal(lm.submodels["main"](ids).logits, main(ids).logits)
        assert torch.equal(lm.submodels["nar"](ids).logits, nar(ids).logits)
        assert not torch.equal(main(ids).logits, nar(ids).logits)
    assert lm.speech_tokenizer.n_units == 20 and lm.tokenizer("acoustic").n_units == 8
    assert lm.tokenizer("acoustic").kind == "logmel"
    with pytest.raises(ConfigError, match="no 'semantic' speech tokenizer .*speech, acoustic"):
        lm.tokenizer("semantic")
    # the main sub-model stays a plain HF checkpoint
    assert AutoModelForCausalLM.from_pretrained(moved).config.vocab_size == vocab.size


def test_unknown_architecture_in_a_model_dir_is_named(tiny_model, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(tiny_model, d)
    meta = json.loads((d / "speechlm.json").read_text())
    (d / "speechlm.json").write_text(json.dumps({**meta, "architecture": "valle-x"}))
    with pytest.raises(ConfigError, match="unknown architecture 'valle-x'; valid: causal_lm"):
        load_speech_lm(d)
    (d / "speechlm.json").write_text("{not json")
    with pytest.raises(ConfigError, match="speechlm.json: not valid JSON"):
        load_speech_lm(d)


def test_model_dir_written_before_architectures_loads(tiny_model, tmp_path):
    d = tmp_path / "old"
    shutil.copytree(tiny_model, d)
    meta = json.loads((d / "speechlm.json").read_text())
    for key in ("format", "version", "architecture", "submodels", "tokenizers"):
        meta.pop(key)
    (d / "speechlm.json").write_text(json.dumps(meta))
    lm = load_speech_lm(d)
    assert lm.architecture.name == "causal_lm" and lm.speech_tokenizer.n_units == 20


def test_streaming_step_matches_the_full_forward(tiny_model):
    lm = load_speech_lm(tiny_model)
    ids = [lm.vocab.bos_id, lm.vocab.speech_id, *lm.vocab.units_to_ids([5, 2, 2, 9, 0, 7])]
    with torch.no_grad():
        full = lm.model(torch.tensor([ids])).logits[0]  # (T, V)
    with lm.streaming() as stream:
        first = stream.step(torch.tensor([ids[:3]]))  # a prompt, then one token at a time
        steps = [first] + [stream.step(torch.tensor([[t]])) for t in ids[3:]]
        assert stream.state.steps == len(ids)
    got = torch.cat(steps)  # logits after tokens 3..T
    np.testing.assert_allclose(got.numpy(), full[2:].numpy(), atol=1e-5)
