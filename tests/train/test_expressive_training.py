"""run_training with architecture expressive on toy tokens with pitch and style: cold and warm."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset
from train_helpers import TINY_LLAMA, tiny_cfg

from speechlm.models import load_speech_lm
from speechlm.models.sampling import Sampling
from speechlm.tokenizers.streams import Streams
from speechlm.train import TrainConfig, run_training
from speechlm.train.data import load_rows
from speechlm.train.toydata import write_toy_token_dataset


@pytest.fixture(scope="module")
def toy_prosody(tmp_path_factory):
    return write_toy_token_dataset(tmp_path_factory.mktemp("toy_prosody"), n_rows=60, seed=0,
                                   n_pitch=8, n_style=4)


def _prompts(data, n: int = 2) -> list[Streams]:
    return [Streams(50.0, units=np.asarray(r["units"]), durations=np.asarray(r["durations"]),
                    pitch=np.asarray(r["pitch"]), style=np.asarray(r["style"]),
                    pitch_rate=12.5, style_rate=1.0)
            for r in load_rows(data).select(range(n))]


def test_cold_expressive_model_trains_scores_and_generates(toy_prosody, tmp_path):
    out = tmp_path / "model"
    metrics = run_training(TrainConfig(**tiny_cfg(
        toy_prosody, out, architecture="expressive", formats={"expressive": 1.0},
        max_steps=8, precision="fp32")))
    losses = [loss for _, loss in metrics["train_loss"]]
    assert losses[-1] < losses[0]
    assert json.loads((out / "speechlm.json").read_text())["architecture"] == "expressive"
    lm = load_speech_lm(out)
    assert lm.architecture.name == "expressive"
    assert (lm.vocab.range("pitch")[1], lm.vocab.range("style")[1]) == (8, 4)
    prompts = _prompts(toy_prosody)
    scores = lm.score([lm.speech_example(p) for p in prompts])
    assert np.isfinite(scores).all() and (scores[:, 0] < 0).all()
    for new, _ in lm.generate(prompts, Sampling(seed=0), max_new=[6, 6]):
        assert len(new.units) <= 6 and (new.pitch < 8).all() and (new.style < 4).all()


def _warm_expressive(data, tmp_path):
    """SpiRit-LM's set-up: a tiny text LM extended by units, pitch and style, trained with text
    spans (two steps)."""
    from speechlm.models.init import cold_init
    from speechlm.train.textlm import train_text_tokenizer

    labels = " ".join(f"w{i}" for i in range(30))
    tok = train_text_tokenizer([labels] * 20, vocab_size=60)

    class TextVocab:
        size, bos_id = len(tok), tok.bos_token_id
        eos_id, pad_id = tok.eos_token_id, tok.pad_token_id

    text_lm = tmp_path / "text_lm"
    cold_init(dict(TINY_LLAMA), TextVocab(), seed=1).save_pretrained(text_lm)
    tok.save_pretrained(text_lm)
    cfg = tiny_cfg(data, tmp_path / "model", architecture="expressive", init="warm",
                   init_from=str(text_lm), vocab_mode="extend",
                   formats={"expressive": {"p_switch": 0.5}}, max_steps=2, precision="fp32")
    del cfg["model"]
    run_training(TrainConfig(**cfg))
    return load_speech_lm(tmp_path / "model")


def test_warm_expressive_model_interleaves_text(toy_prosody, tmp_path):
    """SpiRit-LM's set-up: a text LM extended by units, pitch and style, with text spans."""
    from speechlm.train.textlm import train_text_tokenizer

    lm = _warm_expressive(toy_prosody, tmp_path)
    tok = train_text_tokenizer([" ".join(f"w{i}" for i in range(30))] * 20, vocab_size=60)
    assert lm.vocab.has_text and lm.vocab.text_to_ids("w3") == tok("w3")["input_ids"]
    (blocks,) = (tmp_path / "model" / "examples").glob("data-*.arrow")
    trained_on = np.concatenate(Dataset.from_file(str(blocks))["s:tokens"])
    assert (trained_on == lm.vocab.text_id).any() and (trained_on == lm.vocab.speech_id).any()
    assert lm.vocab.has_range("pitch") and lm.vocab.has_range("style")
    assert np.isfinite(lm.score([lm.speech_example(p) for p in _prompts(toy_prosody)])).all()


def test_pitch_and_style_sizes_come_from_the_tokenizer_when_info_lacks_them(tmp_path):
    """The tokenisation job records them in its tokenizer's spec, not in info.json:
    ``read_info`` merges them in, so the vocabulary gets its pitch and style ranges."""
    from speechlm.errors import ConfigError
    from speechlm.tokenizers.base import FORMAT, SPEC_FILE
    from speechlm.train.data import read_info
    from speechlm.train.run import _data_ranges

    tok, data = tmp_path / "tok", tmp_path / "data"
    tok.mkdir(), data.mkdir()
    (tok / SPEC_FILE).write_text(json.dumps({"format": FORMAT, "version": 1, "prosody": {
        "n_pitch": 7, "n_style": 3, "pitch_rate": 12.5, "style_rate": 1.0}}))
    (data / "info.json").write_text(json.dumps({"n_units": 20, "frame_rate": 50.0,
                                                "tokenizer": "../tok"}))
    info = read_info(data)
    assert (info["pitch_rate"], info["style_rate"]) == (12.5, 1.0)
    assert _data_ranges(info, ["units", "pitch", "style"], "d") == {"units": 20, "pitch": 7,
                                                                    "style": 3}
    (tok / SPEC_FILE).write_text(json.dumps({"format": FORMAT, "version": 1}))
    with pytest.raises(ConfigError, match=r"no n_pitch .*`prosody` option"):
        _data_ranges(read_info(data), ["units", "pitch"], "d")


def test_warm_expressive_model_continues_across_modalities(toy_prosody, tmp_path):
    """S->T, T->T and T->S (SpiRit-LM's directions) from one interleaved expressive model:
    text continuations are text, speech continuations are units, pitch and style."""
    from speechlm.generate.crossmodal import (
        continue_as_speech,
        continue_as_text,
        speech_prefix,
        text_prefix,
        text_token_ids,
    )

    lm = _warm_expressive(toy_prosody, tmp_path)
    sampling = Sampling(seed=0)
    spoken = [speech_prefix(lm, p) for p in _prompts(toy_prosody)]
    written = [text_prefix(lm, "w1 w2 w3"), text_prefix(lm, "w4")]
    assert written[0][:2] == [lm.vocab.bos_id, lm.vocab.text_id]
    assert max(text_token_ids(lm.vocab)) < lm.vocab.layout.n_text <= lm.vocab.speech_id
    texts = continue_as_text(lm, [*spoken, *written], sampling, max_tokens=5)
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)
    # text only: no marker, unit, pitch or style token (added tokens re-encode to their ids)
    assert all(max(lm.vocab.text_to_ids(t), default=0) < lm.vocab.layout.n_text for t in texts)
    assert any(texts)
    again = continue_as_text(lm, [*spoken, *written], sampling, max_tokens=5)
    assert again == texts  # seeded
    rates = {"pitch_rate": 12.5, "style_rate": 1.0}  # the toy data has no tokenizer to read
    for s in continue_as_speech(lm, written, sampling, 12, frame_rate=50.0, rates=rates):
        assert s.units is not None and s.durations is None
        assert (s.units < lm.vocab.n_units).all() and (s.pitch < 8).all() and (s.style < 4).all()
        assert s.pitch_rate == 12.5 and s.style_rate == 1.0


def test_a_speech_only_vocabulary_refuses_text_continuations(toy_prosody, tmp_path):
    from speechlm.errors import ConfigError
    from speechlm.generate.crossmodal import text_prefix

    out = tmp_path / "model"
    run_training(TrainConfig(**tiny_cfg(toy_prosody, out, architecture="expressive",
                                        formats={"expressive": 1.0}, max_steps=1,
                                        precision="fp32")))
    with pytest.raises(ConfigError, match="vocab_mode: extend"):
        text_prefix(load_speech_lm(out), "w1")
