"""The ``dialogue`` objective on hand-made two-channel rows: blocks, targets, training with a
held-out loss, the kept checkpoint, the silence unit, refusals, and resuming."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from train_helpers import TINY_LLAMA, tiny_cfg

from speechlm.errors import ConfigError
from speechlm.models import load_speech_lm
from speechlm.sequences.dialogue import IGNORE, dialogue_example
from speechlm.sequences.formats import FORMATS, parse_formats
from speechlm.sequences.vocab import SpeechVocab
from speechlm.train import TrainConfig, run_training
from speechlm.train.toydata import write_token_rows

N_UNITS, SILENCE = 12, 0
SCHEMA = pa.schema([("id", pa.string()), ("units_a", pa.list_(pa.int32())),
                    ("units_b", pa.list_(pa.int32()))])


def toy_dialogues(out, n: int, seed: int):
    """Alternating turns: the speaker says words (units held 2-4 frames), the listener is
    silent; a gap of silence on both channels after each turn."""
    rng = np.random.default_rng(seed)
    words = [rng.integers(1, N_UNITS, size=rng.integers(2, 4)).tolist() for _ in range(8)]
    rows = []
    for i in range(n):
        a: list[int] = []
        b: list[int] = []
        for turn in range(5):
            said = [u for w in rng.integers(0, 8, size=3) for u in words[w]
                    for _ in range(int(rng.integers(2, 5)))]
            gap = [SILENCE] * int(rng.integers(4, 10))
            speaker, listener = (a, b) if (i + turn) % 2 == 0 else (b, a)
            speaker += said + gap
            listener += [SILENCE] * (len(said) + len(gap))
        rows.append({"id": f"d{i:03d}", "units_a": a, "units_b": b})
    return write_token_rows(out, rows, SCHEMA, N_UNITS, 50.0, silence_unit=SILENCE)


def dlm_cfg(data, out, **kw) -> dict:
    model = {**TINY_LLAMA, "dialogue": {"cross_layers": 1}}
    return tiny_cfg(data, out, **{"architecture": "dgslm", "model": model, "seq_len": 48,
                                  "batch_size": 8, "precision": "fp32", **kw})


@pytest.fixture(scope="module")
def dialogues(tmp_path_factory):
    return (toy_dialogues(tmp_path_factory.mktemp("dlg_train"), 48, 0),
            toy_dialogues(tmp_path_factory.mktemp("dlg_valid"), 8, 1))


@pytest.fixture(scope="module")
def trained(dialogues, tmp_path_factory):
    out = tmp_path_factory.mktemp("dlm_run")
    train, valid = dialogues
    metrics = run_training(TrainConfig(**dlm_cfg(train, out, eval_data=str(valid), max_steps=40,
                                                 lr=5e-3, eval_steps=10, save_steps=10)))
    return out, metrics


def test_the_format_is_the_dialogue_example():
    vocab = SpeechVocab.build({"units": N_UNITS})
    row = {"units_a": [1, 1, 2], "units_b": [0, 3, 3]}
    use, = parse_formats({"dialogue": 1.0})
    ex = FORMATS.get("dialogue").fn(row, vocab, None, **use.params)
    want = dialogue_example([1, 1, 2], [0, 3, 3], vocab)
    for name in want.streams:
        np.testing.assert_array_equal(ex.streams[name], want.streams[name])
        np.testing.assert_array_equal(ex.masks[name], want.masks[name])


def test_blocks_carry_the_hand_made_targets(dialogues, tmp_path):
    from speechlm.train.data import load_rows, read_info
    from speechlm.train.dialogue import DialogueObjective, dialogue_collate
    from speechlm.train.run import build_model

    train, _ = dialogues
    cfg = TrainConfig(**dlm_cfg(train, tmp_path, seq_len=16))
    uses = parse_formats(cfg.formats)
    _, model, vocab, _ = build_model(cfg, read_info(train), uses)
    ds, _ = DialogueObjective().datasets(cfg, vocab, model, uses, uses)
    batch = dialogue_collate(vocab.pad_id)([ds[0]])
    row = load_rows(train)[0]
    want = dialogue_example(row["units_a"], row["units_b"], vocab)
    units = torch.as_tensor(want.streams["units"][:, :16])
    assert torch.equal(batch["units"][0], units)
    nxt = np.where(want.masks["next"], want.streams["next"], IGNORE)[:, :16]
    assert torch.equal(batch["next_units"][0], torch.as_tensor(nxt))
    dur = np.where(want.masks["durations"], want.streams["durations"], 0)[:, :16]
    assert torch.equal(batch["durations"][0], torch.as_tensor(dur))
    assert model.config.silence_unit == SILENCE  # from the data's info.json


def test_trains_with_a_held_out_loss_and_keeps_the_best(trained):
    out, metrics = trained
    losses = [loss for _, loss in metrics["train_loss"]]
    assert losses[-1] < losses[0] - 1.0
    evals = dict(metrics["eval_loss"])
    assert set(evals) == {10, 20, 30, 40} and metrics["objective"] == "dialogue"
    assert metrics["kept_step"] == min(evals, key=evals.get)
    assert metrics["final_eval_loss"] == pytest.approx(evals[metrics["kept_step"]])
    lm = load_speech_lm(out)
    assert lm.architecture.name == "dgslm" and lm.model.config.silence_unit == SILENCE
    assert lm.meta["seq_len"] == 48 and lm.meta["objective"] == "dialogue"


def test_trained_model_prefers_speech_after_a_gap_on_the_other_channel(trained):
    # what the toy data teaches: one channel speaks, then after a gap the other does
    from speechlm.models.dialogue import continue_dialogue
    from speechlm.models.sampling import Sampling

    out, _ = trained
    lm = load_speech_lm(out)
    new = continue_dialogue(lm, np.zeros((2, 4), dtype=np.int64), 40, Sampling(seed=0))
    assert (new != SILENCE).any()


def test_target_settings_come_from_the_model(dialogues, tmp_path):
    train, _ = dialogues
    with pytest.raises(ConfigError, match=r"formats\.dialogue\.delayed: set by the model"):
        TrainConfig(**dlm_cfg(train, tmp_path, formats={"dialogue": {"delayed": False}}))
    with pytest.raises(ConfigError, match=r"formats\.speech_only: objective dialogue trains on"):
        TrainConfig(**dlm_cfg(train, tmp_path, formats={"speech_only": 1.0}))


def test_a_crashed_run_resumes_from_its_checkpoint(dialogues, tmp_path):
    from speechlm.train.trainer import SimulatedCrash, StopAfterSave

    train, _ = dialogues
    cfg = TrainConfig(**dlm_cfg(train, tmp_path / "run", max_steps=8, save_steps=4))
    with pytest.raises(SimulatedCrash):
        run_training(cfg, callbacks=[StopAfterSave(4, in_process=True)])
    metrics = run_training(cfg)
    assert metrics["resumed_from"].endswith("checkpoint-4") and metrics["steps"] == 8
    assert metrics["steps_this_run"] == 4
    whole = run_training(TrainConfig(**dlm_cfg(train, tmp_path / "whole", max_steps=8,
                                               save_steps=4)))
    assert metrics["final_train_loss"] == pytest.approx(whole["final_train_loss"], rel=1e-4)
