"""run_training end to end on toy data: model dir contents, plain-transformers reload, formats."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import tiny_cfg
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechlm.errors import ConfigError
from speechlm.models import load_speech_lm
from speechlm.train import TrainConfig, run_training


@pytest.fixture(scope="module")
def trained(toy_tokens, toy_eval_tokens, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    m = run_training(TrainConfig(**tiny_cfg(toy_tokens, out, max_steps=8, eval_steps=4,
                                            eval_data=str(toy_eval_tokens))))
    return out, m


def test_model_dir_is_complete(trained):
    out, m = trained
    for name in ("config.json", "model.safetensors", "tokenizer.json", "speech_vocab.json",
                 "speechlm.json", "metrics.json", "loss.png", "speech_tokenizer/config.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.bin")), "no pickle files"
    assert list((out / "tensorboard").iterdir())
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s for s, _ in metrics["train_loss"]] == list(range(1, 9))
    assert [s for s, _ in metrics["eval_loss"]] == [4, 8]
    assert metrics["train_loss"][-1][1] < metrics["train_loss"][0][1]
    assert metrics["tokens_per_second"] > 0 and metrics["parameters"] > 0
    meta = json.loads((out / "speechlm.json").read_text())
    assert meta["init"]["init"] == "cold" and meta["vocab"]["mode"] == "speech_only"


def test_reloads_with_plain_transformers(trained):
    out, _ = trained
    lm = load_speech_lm(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    ids = lm.speech_ids([3, 1, 4])
    assert ids == [lm.vocab.bos_id, lm.vocab.speech_id, lm.vocab.unit_offset + 3,
                   lm.vocab.unit_offset + 1, lm.vocab.unit_offset + 4]
    assert tok("<s> [SPEECH] <u3> <u1> <u4>", add_special_tokens=False)["input_ids"] == ids
    x = torch.tensor([ids])
    with torch.no_grad():
        assert torch.allclose(model(x).logits, lm.model(x).logits)


def test_text_formats_need_text_vocab(toy_tokens, tmp_path):
    with pytest.raises(ConfigError, match="^formats.interleaved: needs text tokens"):
        run_training(TrainConfig(**tiny_cfg(toy_tokens, tmp_path, formats={"interleaved": 1.0})))


def test_bad_data_dir_is_named(tmp_path):
    with pytest.raises(ConfigError, match="info.json not found"):
        run_training(TrainConfig(**tiny_cfg(tmp_path / "nope", tmp_path / "o")))
