"""The ``omni`` objective: trains LLaMA-Omni's adapter and unit decoder on a backbone model
directory for a few steps, writes a model directory that answers, resumes a finished run, and
refuses what it cannot train."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import TINY_LLAMA

from speechlm.errors import ConfigError
from speechlm.train import TrainConfig

SENTENCES = ["the dog sees a cat .", "a small cat sleeps .", "the cat runs .", "a dog runs ."]
N_UNITS, N_MELS = 12, 8
ARGS = {"stack": 5, "projector_dim": 16, "unit_layers": 1, "upsample": 4}


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    """A tiny speech-text LM model directory (random weights, text + unit vocabulary)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from speechlm.models.speech_lm import save_model_dir
    from speechlm.sequences.vocab import SpeechVocab
    from speechlm.train.textlm import train_text_tokenizer

    vocab = SpeechVocab.extend(train_text_tokenizer(SENTENCES * 20, vocab_size=60), N_UNITS)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**TINY_LLAMA,
                                                                  vocab_size=vocab.size))
    return save_model_dir(tmp_path_factory.mktemp("backbone"), model, vocab, {}, None)


@pytest.fixture(scope="module")
def omni_data(tmp_path_factory):
    """(train, eval) omni datasets: log-mel frames of tones, answers and their units."""
    from speechlm.tokenizers.continuous import ContinuousTokenizer
    from speechlm.tokenizers.frontends import make_frontend
    from speechlm.train.omni import write_omni_rows

    root = tmp_path_factory.mktemp("omni_data")
    tok = ContinuousTokenizer(make_frontend("logmel", {"n_mels": N_MELS}))
    tok.save(root / "features")
    rng = np.random.default_rng(0)

    def rows(n: int, seed: int) -> list[dict]:
        sr = tok.sample_rate
        waves = [np.sin(2 * np.pi * (200 + 50 * i) * np.arange(int(sr * (0.2 + 0.05 * i)))
                        / sr).astype(np.float32) for i in range(n)]
        out = []
        for i, s in enumerate(tok.encode(waves, sr)):
            text = SENTENCES[(i + seed) % len(SENTENCES)]
            u = rng.integers(0, N_UNITS, size=8)
            u = u[np.r_[True, u[1:] != u[:-1]]]  # de-duplicated
            out.append({"id": f"{seed}-{i}", "prompt_feats": s.feats, "prompt_text": text,
                        "response_text": text, "response_units": u})
        return out

    return (write_omni_rows(root / "train", rows(8, 0), root / "features", N_UNITS,
                            tok.frame_rate),
            write_omni_rows(root / "eval", rows(4, 1), root / "features", N_UNITS,
                            tok.frame_rate))


def _cfg(backbone_dir, omni_data, out, **kw) -> TrainConfig:
    train, evald = omni_data
    cfg = dict(data=str(train), eval_data=str(evald), output_dir=str(out), init="from_model",
               init_from=str(backbone_dir), objective="omni", objective_args=dict(ARGS),
               seq_len=128, batch_size=4, max_steps=3, lr=3e-3, warmup_steps=0, eval_steps=3,
               save_steps=3, logging_steps=1, precision="fp32", seed=0, progress=False)
    return TrainConfig(**{**cfg, **kw})


def test_omni_trains_writes_a_model_dir_and_resumes(backbone_dir, omni_data, tmp_path):
    from speechlm.generate.omni import answer
    from speechlm.models.speech_lm import load_speech_lm
    from speechlm.train import run_training
    from speechlm.train.data import load_rows

    out = tmp_path / "run"
    metrics = run_training(_cfg(backbone_dir, omni_data, out))
    assert metrics["steps"] == 3 and metrics["train_blocks"] == 8
    assert all(np.isfinite(v) for _, v in metrics["train_loss"])
    assert np.isfinite(metrics["eval"]["text_loss"]) and np.isfinite(metrics["eval"]["unit_loss"])
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in out.iterdir())
    lm = load_speech_lm(out)  # the model directory loads like any other
    model, vocab, meta = lm.model, lm.vocab, lm.meta
    assert meta["architecture"] == "omni" and "features" in meta["tokenizers"]
    assert (out / meta["tokenizers"]["features"] / "tokenizer.json").is_file()
    assert model.config.feat_dim == N_MELS and model.config.n_units == N_UNITS
    feats = load_rows(omni_data[1])[0]["prompt_feats"]
    res = answer(model, vocab, feats=np.asarray(feats), max_new_tokens=4)
    assert isinstance(res["text"], str)

    again = run_training(_cfg(backbone_dir, omni_data, out))  # finished: nothing more to train
    assert again["steps"] == 3 and again["resumed_from"].endswith("checkpoint-3")
    assert json.loads((out / "metrics.json").read_text())["steps"] == 3


def test_omni_refuses_what_it_cannot_train(backbone_dir, omni_data, tmp_path):
    from speechlm.models import load_speech_lm
    from speechlm.train.objectives import get_objective

    with pytest.raises(ConfigError, match="objective_args.depth"):
        _cfg(backbone_dir, omni_data, tmp_path, objective_args={"depth": 2})
    with pytest.raises(ConfigError, match="init"):
        TrainConfig(data=str(omni_data[0]), output_dir=str(tmp_path), objective="omni")
    # a plain causal LM (what run_training builds) is not the model this objective trains
    lm = load_speech_lm(backbone_dir)
    with pytest.raises(ConfigError, match="OmniSpeechLM"):
        get_objective("omni").datasets(_cfg(backbone_dir, omni_data, tmp_path), lm.vocab,
                                       lm.model)


def test_written_share_asks_that_share_of_rows_in_text(backbone_dir, omni_data):
    from speechlm.models.init import from_model_init
    from speechlm.models.modeling_omni import MARKERS, OmniSpeechLM
    from speechlm.train.omni import OmniDataset, omni_collate

    lm, vocab, _ = from_model_init(backbone_dir, list(MARKERS))
    spoken = OmniDataset(omni_data[0], vocab, 5, 4, 128)
    mixed = OmniDataset(omni_data[0], vocab, 5, 4, 128, written_share=0.5)
    written = [i for i in range(len(mixed)) if len(mixed[i]["speech_feats"]) == 0]
    assert written == [1, 3, 5, 7]  # half of the 8 rows, spread over them
    for i in written:
        text = vocab.text_to_ids(SENTENCES[i % len(SENTENCES)])
        ids = mixed[i]["input_ids"]
        assert ids[2:2 + len(text)] == text and vocab.speech_id not in ids
        # the same answer and units as the spoken row
        assert mixed[i]["labels"][-len(text) - 1:] == spoken[i]["labels"][-len(text) - 1:]
        assert mixed[i]["unit_targets"] == spoken[i]["unit_targets"]
    # a batch of written questions only still runs through the model
    torch.manual_seed(0)
    model = OmniSpeechLM.from_backbone(lm.model, N_MELS, N_UNITS, vocab.speech_id,
                                       projector_dim=16, unit_layers=1, upsample=4)
    out = model(**omni_collate(vocab.pad_id)([mixed[i] for i in written]))
    assert torch.isfinite(out.loss)


def test_written_share_must_be_a_fraction(backbone_dir, omni_data, tmp_path):
    from speechlm.train import run_training

    with pytest.raises(ConfigError, match="written_share: must be in"):
        run_training(_cfg(backbone_dir, omni_data, tmp_path / "o",
                        objective_args={**ARGS, "written_share": 1.0}))
