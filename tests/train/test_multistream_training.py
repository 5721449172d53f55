"""run_training with architecture multistream: trains, saves, loads, scores, samples, streams."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import TINY_LLAMA, tiny_cfg

from speechlm.errors import ConfigError
from speechlm.models import load_speech_lm
from speechlm.models.modeling_multistream import MultiStreamLM
from speechlm.models.sampling import Sampling
from speechlm.tokenizers.streams import Streams
from speechlm.train import TrainConfig, run_training
from speechlm.train.data import load_rows
from speechlm.train.toydata import write_toy_token_dataset

STREAMS = {"durations": {"size": 8, "delay": 1}, "f0": {"size": 9, "delay": 1}}


def ms_cfg(data, out, **kw) -> dict:
    """A few-second multistream TrainConfig on toy tokens with F0 (8 bins + unvoiced)."""
    base = {"architecture": "multistream", "formats": {"multistream": 1.0},
            "model": {**TINY_LLAMA, "streams": STREAMS}}
    return tiny_cfg(data, out, **{**base, **kw})


@pytest.fixture(scope="module")
def toy_f0(tmp_path_factory):
    return write_toy_token_dataset(tmp_path_factory.mktemp("toy_f0"), n_rows=200, seed=0,
                                   f0_bins=8)


@pytest.fixture(scope="module")
def trained(toy_f0, tmp_path_factory):
    out = tmp_path_factory.mktemp("ms_run")
    eval_data = write_toy_token_dataset(tmp_path_factory.mktemp("toy_f0_eval"), n_rows=40,
                                        seed=1, f0_bins=8)
    metrics = run_training(TrainConfig(**ms_cfg(toy_f0, out, max_steps=20, seq_len=64,
                                                batch_size=8, eval_steps=10, save_steps=10,
                                                precision="fp32",
                                                eval_data=str(eval_data))))
    return out, metrics


def _prompts(data, n: int = 3, length: int = 6) -> list[Streams]:
    rows = load_rows(data).select(range(n))
    return [Streams(50.0, units=np.asarray(r["units"][:length]),
                    durations=np.asarray(r["durations"][:length]),
                    f0=np.asarray(r["f0"][:length])) for r in rows]


def test_trains_and_writes_a_multistream_model_dir(trained):
    out, metrics = trained
    losses = [loss for _, loss in metrics["train_loss"]]
    assert losses[0] == pytest.approx(np.log(26) + np.log(8) + np.log(9), abs=0.1)  # uniform
    assert losses[-1] < losses[0] - 0.5
    # the Trainer computes held-out losses for a model without ``labels``
    (s10, e10), (s20, e20) = metrics["eval_loss"]
    assert (s10, s20) == (10, 20) and e20 < e10
    assert json.loads((out / "config.json").read_text())["model_type"] == "speechlm_multistream"
    assert json.loads((out / "speechlm.json").read_text())["architecture"] == "multistream"
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))


def test_loaded_model_scores_and_generates(trained, toy_f0):
    out, _ = trained
    lm = load_speech_lm(out)
    assert isinstance(lm.model, MultiStreamLM) and lm.architecture.name == "multistream"
    prompts = _prompts(toy_f0)
    scores = lm.score([lm.speech_example(p) for p in prompts])
    assert scores.shape == (3, 2) and np.isfinite(scores).all() and (scores[:, 0] < 0).all()
    results = lm.generate(prompts, Sampling(seed=0), max_new=[5, 7, 9], min_new=[5, 7, 9])
    for (new, stopped), n in zip(results, [5, 7, 9], strict=True):
        assert not stopped and len(new.units) == len(new.durations) == len(new.f0) == n
        assert (new.units < 20).all() and (new.durations >= 1).all() and (new.f0 <= 8).all()


def test_streaming_steps_give_the_full_forward_logits(trained, toy_f0):
    out, _ = trained
    lm = load_speech_lm(out)
    ex = lm.architecture.prompt(lm, _prompts(toy_f0, n=1, length=10)[0], eos=True)
    streams = {k: torch.tensor(v)[None] for k, v in ex.streams.items()}  # (1, L)
    with torch.no_grad():
        full = lm.model(streams).logits
    with lm.streaming() as stepper:
        for t in range(len(ex)):
            step = stepper.step({k: v[:, t:t + 1] for k, v in streams.items()})
            for name, logits in step.items():
                torch.testing.assert_close(logits, full[name][:, t], atol=1e-5, rtol=0)


def test_delays_come_from_the_model_only(toy_f0, tmp_path):
    with pytest.raises(ConfigError, match=r"^formats.multistream.delays: set by the model"):
        TrainConfig(**ms_cfg(toy_f0, tmp_path, formats={"multistream": {"delays": {"f0": 2}}}))
    with pytest.raises(ConfigError, match="^formats.speech_only: objective multistream trains"):
        TrainConfig(**ms_cfg(toy_f0, tmp_path, formats={"speech_only": 1.0}))


def test_data_must_hold_every_stream_and_fit_its_classes(toy_f0, toy_tokens, tmp_path):
    with pytest.raises(ConfigError, match=r"^model.streams.f0: data .* has no 'f0' column"):
        run_training(TrainConfig(**ms_cfg(toy_tokens, tmp_path / "a")))
    small = {**TINY_LLAMA, "streams": {**STREAMS, "f0": {"size": 5}}}
    with pytest.raises(ConfigError, match=r"^model.streams.f0.size: 5 classes, but data has "
                                          r"values up to 8"):
        run_training(TrainConfig(**ms_cfg(toy_f0, tmp_path / "b", model=small)))
