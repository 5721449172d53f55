"""Fine-tuning from a model directory: ``init: from_model``, the ``sft`` and ``dpo`` objectives."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import TINY_LLAMA, tiny_cfg

from speechlm.errors import ConfigError
from speechlm.models import load_speech_lm
from speechlm.models.causal_lm import score_sequences
from speechlm.sequences.example import IGNORE
from speechlm.sequences.formats import parse_formats
from speechlm.sequences.instruction import ASSISTANT, HUMAN
from speechlm.train import TrainConfig, run_training
from speechlm.train.data import read_info
from speechlm.train.finetune import preference_pairs
from speechlm.train.objectives import get_objective
from speechlm.train.run import build_model
from speechlm.train.toydata import write_token_rows, write_toy_preference_dataset
from speechlm.train.trainer import SimulatedCrash, StopAfterSave

SFT = {"objective": "sft", "formats": {"speech_instruction": 1.0}}
DPO = {"objective": "dpo", "formats": {"speech_preference": 1.0}}


def ft_cfg(data, out, source, **kw) -> dict:
    """A few-second fine-tuning config starting from the model directory ``source``.

    fp32: the equality checks (resume, precomputed reference) hold on any machine, where
    ``precision: auto`` may pick bf16.
    """
    return tiny_cfg(data, out, **{"init": "from_model", "init_from": str(source),
                                  "precision": "fp32", **kw})


def build_trainer(cfg: TrainConfig):
    """The objective's trainer, built as ``run_training`` builds it; also the vocabulary."""
    uses = parse_formats(cfg.formats)
    arch, model, vocab, _ = build_model(cfg, read_info(cfg.data), uses)
    objective = get_objective(cfg.objective)
    objective.check(cfg, uses)
    train, evald = objective.datasets(cfg, vocab, model, uses, objective.eval_uses(arch, uses))
    return objective.trainer(cfg, model, vocab, train, evald, []), vocab


def write_instructions(out, rows: list[tuple[list[int], list[int]]], toy_tokens):
    """A token dataset of hand-made ``(prompt_units, units)`` rows."""
    import pyarrow as pa

    schema = pa.schema([("prompt_units", pa.list_(pa.int32())), ("units", pa.list_(pa.int32()))])
    return write_token_rows(out, [{"prompt_units": p, "units": u} for p, u in rows], schema,
                            n_units=20, tokenizer_dir=read_info(toy_tokens)["tokenizer"])


def no_pickles(out) -> bool:
    """No ``*.bin`` (pickled training arguments) anywhere; checkpoints hold the JSON instead."""
    checkpoints = list((out / "checkpoints").glob("checkpoint-*"))
    return (not list(out.rglob("*.bin")) and bool(checkpoints)
            and all((c / "training_args.json").is_file() for c in checkpoints))


# ---- init: from_model ------------------------------------------------------------------------
def test_from_model_keeps_every_weight_and_appends_markers(toy_source_model, toy_instructions,
                                                           tmp_path):
    src = load_speech_lm(toy_source_model)
    old = src.vocab
    cfg = TrainConfig(**ft_cfg(toy_instructions, tmp_path, toy_source_model, **SFT))
    _, model, vocab, info = build_model(cfg, read_info(cfg.data), parse_formats(cfg.formats))

    assert info["init"] == "from_model" and info["new_tokens"] == [HUMAN, ASSISTANT]
    assert vocab.marker(HUMAN) == old.size and vocab.marker(ASSISTANT) == old.size + 1
    assert vocab.size == old.size + 2 == model.config.vocab_size
    assert vocab.tokenizer.convert_tokens_to_ids([HUMAN, ASSISTANT]) == [old.size, old.size + 1]
    for name, i in old.layout.markers.items():  # existing ids do not move
        assert vocab.marker(name) == i
    assert vocab.layout.ranges == old.layout.ranges and vocab.layout.specials == old.layout.specials

    new = model.state_dict()
    for name, before in src.model.state_dict().items():
        after = new[name]
        if after.shape != before.shape:  # the embedding and output rows: old rows kept
            assert after.shape == (vocab.size, *before.shape[1:]), name
            after = after[: before.shape[0]]
        assert torch.equal(after, before), name


def test_from_model_refuses_data_with_other_units(toy_source_model, tmp_path):
    from speechlm.train.toydata import write_toy_instruction_dataset

    data = write_toy_instruction_dataset(tmp_path / "d", n_rows=4, n_units=30)
    cfg = TrainConfig(**ft_cfg(data, tmp_path / "o", toy_source_model, **SFT))
    with pytest.raises(ConfigError, match="units: the vocabulary has 20 units tokens, the data 30"):
        build_model(cfg, read_info(cfg.data), parse_formats(cfg.formats))


def test_from_model_needs_data_from_its_own_speech_tokenizer(toy_source_model, tmp_path):
    import pyarrow as pa

    schema = pa.schema([("prompt_units", pa.list_(pa.int32())), ("units", pa.list_(pa.int32()))])
    # same units, but tokenised by another tokenizer (a placeholder at another frame rate)
    data = write_token_rows(tmp_path / "d", [{"prompt_units": [1, 2], "units": [2, 3]}] * 4,
                            schema, n_units=20, frame_rate=25.0)
    cfg = TrainConfig(**ft_cfg(data, tmp_path / "o", toy_source_model, **SFT))
    with pytest.raises(ConfigError, match=r"^data: .* was tokenised by .*, not by the speech "
                                          r"tokenizer of init_from"):
        build_model(cfg, read_info(cfg.data), parse_formats(cfg.formats))


# ---- sft --------------------------------------------------------------------------------------
def test_sft_labels_are_ignored_exactly_on_the_prompt(toy_source_model, toy_tokens, tmp_path):
    data = write_instructions(tmp_path / "d", [([3, 1, 4], [1, 5])], toy_tokens)
    trainer, vocab = build_trainer(TrainConfig(**ft_cfg(data, tmp_path / "o", toy_source_model,
                                                        **SFT)))
    u = vocab.unit_offset
    ids = [vocab.bos_id, vocab.marker(HUMAN), vocab.speech_id, u + 3, u + 1, u + 4,
           vocab.marker(ASSISTANT), vocab.speech_id, u + 1, u + 5, vocab.eos_id]
    labels = [IGNORE] * 8 + [u + 1, u + 5, vocab.eos_id]
    row = trainer.train_dataset[0]
    assert row["input_ids"] == ids and row["labels"] == labels
    batch = trainer.data_collator([row])
    assert batch["labels"].tolist() == [labels]

    # the trainer's loss is the mean NLL of exactly the three answer targets
    model = trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        logp = torch.log_softmax(model(input_ids=batch["input_ids"]).logits[0, :-1], -1)
    targets = torch.tensor(ids[1:])
    expected = -logp[torch.arange(10), targets][7:].mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_sft_packing_keeps_each_prompt_masked(toy_source_model, toy_tokens, tmp_path):
    rows = [([3, 1, 4], [1, 5]), ([2, 7], [9, 9, 9])]
    data = write_instructions(tmp_path / "d", rows, toy_tokens)
    trainer, vocab = build_trainer(TrainConfig(**ft_cfg(
        data, tmp_path / "o", toy_source_model, objective_args={"packing": True}, **SFT)))
    (row,) = list(trainer.train_dataset)  # both examples fit in one seq_len row
    ends = np.cumsum(row["seq_lengths"])
    segments = sorted(row["labels"][a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True))
    u = vocab.unit_offset
    expected = sorted([[IGNORE] * 8 + [u + 1, u + 5, vocab.eos_id],
                       [IGNORE] * 7 + [u + 9, u + 9, u + 9, vocab.eos_id]])
    assert segments == expected


def test_sft_from_model_trains_and_the_model_loads(toy_source_model, toy_instructions,
                                                  toy_eval_instructions, tmp_path):
    m = run_training(TrainConfig(**ft_cfg(
        toy_instructions, tmp_path, toy_source_model, max_steps=12, lr=1e-2, save_steps=6,
        eval_steps=6, eval_data=str(toy_eval_instructions), **SFT)))
    losses = [v for _, v in m["train_loss"]]
    assert len(losses) == 12 and np.mean(losses[-4:]) < np.mean(losses[:4])
    assert [s for s, _ in m["eval_loss"]] == [6, 12]
    assert m["eval_loss"][-1][1] < m["eval_loss"][0][1]
    assert no_pickles(tmp_path)

    lm = load_speech_lm(tmp_path)
    assert lm.vocab.marker(HUMAN) == load_speech_lm(toy_source_model).vocab.size
    assert lm.model.config.vocab_size == lm.vocab.size
    meta = json.loads((tmp_path / "speechlm.json").read_text())
    assert meta["objective"] == "sft" and meta["init"]["new_tokens"] == [HUMAN, ASSISTANT]


# ---- dpo --------------------------------------------------------------------------------------
def chosen_margin(model_dir, data, vocab) -> float:
    """Mean of log p(chosen | prompt) - log p(rejected | prompt) over the pairs of ``data``."""
    pairs = preference_pairs(data, vocab, parse_formats(DPO["formats"]), 0,
                             model_dir / "margin_cache", progress=False)
    model = load_speech_lm(model_dir).model
    chosen = [p + c for p, c in zip(pairs["prompt_ids"], pairs["chosen_ids"], strict=True)]
    rejected = [p + r for p, r in zip(pairs["prompt_ids"], pairs["rejected_ids"], strict=True)]
    # the prompt's own terms are the same in both sums, so the difference is the continuations'
    return float(np.mean(score_sequences(model, chosen)[:, 0]
                         - score_sequences(model, rejected)[:, 0]))


def test_dpo_raises_the_chosen_margin_and_the_model_loads(toy_source_model, toy_preferences,
                                                         tmp_path):
    held_out = write_toy_preference_dataset(tmp_path / "held_out", n_rows=8, seed=1,
                                            tokenizer_dir=read_info(toy_preferences)["tokenizer"])
    out = tmp_path / "dpo"
    m = run_training(TrainConfig(**ft_cfg(
        toy_preferences, out, toy_source_model, max_steps=8, save_steps=4, eval_steps=4,
        eval_data=str(held_out), keep="last",  # the margin measures all 8 steps
        objective_args={"beta": 0.1}, **DPO)))
    assert m["train_loss"][0][1] == pytest.approx(np.log(2), abs=1e-6)  # policy == reference
    assert [s for s, _ in m["eval_loss"]] == [4, 8]
    lm = load_speech_lm(out)
    assert lm.vocab.size == load_speech_lm(toy_source_model).vocab.size  # no marker to add
    before = chosen_margin(toy_source_model, toy_preferences, lm.vocab)
    after = chosen_margin(out, toy_preferences, lm.vocab)
    assert after > before + 0.5, (before, after)
    assert no_pickles(out)
    assert json.loads((out / "speechlm.json").read_text())["objective"] == "dpo"


@pytest.fixture(scope="module")
def interleaved_source_model(tmp_path_factory, toy_tokens):
    """A speech-text model (slamkit has no DPO for these): warm from a tiny random text LM,
    vocabulary extended by the units, a few steps on speech and word-level interleaved data."""
    from speechlm.models.init import cold_init
    from speechlm.train.textlm import train_text_tokenizer

    tok = train_text_tokenizer(["the dog sees a cat .", "a small cat sleeps ."] * 20,
                               vocab_size=40)

    class TextVocab:
        size, bos_id = len(tok), tok.bos_token_id
        eos_id, pad_id = tok.eos_token_id, tok.pad_token_id

    text_lm = tmp_path_factory.mktemp("text_lm")
    cold_init(dict(TINY_LLAMA), TextVocab(), seed=1).save_pretrained(text_lm)
    tok.save_pretrained(text_lm)
    out = tmp_path_factory.mktemp("interleaved_model")
    cfg = tiny_cfg(toy_tokens, out, init="warm", init_from=str(text_lm), vocab_mode="extend",
                   formats={"speech_only": 0.5, "interleaved": 0.5}, max_steps=4,
                   precision="fp32")
    del cfg["model"]
    run_training(TrainConfig(**cfg))
    return out


def test_dpo_on_an_interleaved_model_keeps_its_text_and_raises_the_margin(
        interleaved_source_model, toy_preferences, tmp_path):
    source = load_speech_lm(interleaved_source_model)
    assert source.vocab.has_text
    out = tmp_path / "dpo"
    run_training(TrainConfig(**ft_cfg(toy_preferences, out, interleaved_source_model,
                                      max_steps=8, keep="last", objective_args={"beta": 0.1},
                                      **DPO)))
    lm = load_speech_lm(out)
    assert lm.vocab.size == source.vocab.size  # nothing added: [SPEECH] and the text are there
    assert lm.vocab.text_to_ids("the dog") == source.vocab.text_to_ids("the dog") != []
    pairs = preference_pairs(toy_preferences, lm.vocab, parse_formats(DPO["formats"]), 0,
                             tmp_path / "cache", progress=False)
    first = pairs["prompt_ids"][0]
    assert first[:2] == [lm.vocab.bos_id, lm.vocab.speech_id]  # read as speech, after [SPEECH]
    offset, n = lm.vocab.range("units")
    assert all(offset <= i < offset + n for i in first[2:])
    before = chosen_margin(interleaved_source_model, toy_preferences, lm.vocab)
    after = chosen_margin(out, toy_preferences, lm.vocab)
    assert after > before + 0.5, (before, after)


def test_dpo_that_never_beats_its_start_on_held_out_pairs_keeps_the_start(
        toy_source_model, toy_preferences, tmp_path):
    """Held-out pairs with chosen and rejected swapped: learning the training pairs can only
    raise their loss above the start's ln 2, so the starting model is kept, unchanged."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(next((toy_preferences / "data").glob("*.parquet"))).to_pylist()
    swapped = [{**r, "chosen_units": r["rejected_units"], "rejected_units": r["chosen_units"]}
               for r in rows]
    schema = pa.schema([("id", pa.string()), *[(c, pa.list_(pa.int32())) for c in (
        "prompt_units", "chosen_units", "rejected_units")]])
    held_out = write_token_rows(tmp_path / "swapped", swapped, schema, 20,
                                tokenizer_dir=read_info(toy_preferences)["tokenizer"])
    out = tmp_path / "dpo"
    m = run_training(TrainConfig(**ft_cfg(
        toy_preferences, out, toy_source_model, max_steps=8, save_steps=4, eval_steps=4,
        eval_data=str(held_out), objective_args={"beta": 0.1}, **DPO)))
    assert m["start_eval_loss"] == pytest.approx(np.log(2), abs=1e-6)  # policy == reference
    assert min(loss for _, loss in m["eval_loss"]) > m["start_eval_loss"]
    assert m["kept_step"] == 0 and m["final_eval_loss"] == m["start_eval_loss"]
    start = load_speech_lm(toy_source_model).model.state_dict()
    kept = load_speech_lm(out).model.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in start.items())


def test_dpo_reference_is_the_frozen_starting_model(toy_source_model, toy_preferences, tmp_path):
    trainer, _ = build_trainer(TrainConfig(**ft_cfg(toy_preferences, tmp_path, toy_source_model,
                                                    **DPO)))
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    assert trainer.ref_model is not trainer.model
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    ref = trainer.ref_model.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in start.items())
    policy = trainer.model.state_dict()
    assert not all(torch.equal(policy[k], v) for k, v in start.items())


def test_dpo_precomputed_reference_gives_the_same_losses(toy_source_model, toy_preferences,
                                                        tmp_path):
    runs = [run_training(TrainConfig(**ft_cfg(
        toy_preferences, tmp_path / str(pre), toy_source_model, max_steps=4,
        objective_args={"precompute_ref_log_probs": pre}, **DPO))) for pre in (False, True)]
    for (s, a), (_, b) in zip(runs[0]["train_loss"], runs[1]["train_loss"], strict=True):
        assert a == pytest.approx(b, abs=1e-5), f"step {s}"


# ---- resume -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_crash_then_resume_matches_uninterrupted(kind, toy_source_model, toy_instructions,
                                                 toy_preferences, tmp_path):
    data, objective = (toy_instructions, SFT) if kind == "sft" else (toy_preferences, DPO)
    kw = dict(max_steps=6, save_steps=3, **objective)
    ref = run_training(TrainConfig(**ft_cfg(data, tmp_path / "ref", toy_source_model, **kw)))
    cfg = TrainConfig(**ft_cfg(data, tmp_path / "crash", toy_source_model, **kw))
    with pytest.raises(SimulatedCrash, match="crash after checkpoint 3"):
        run_training(cfg, callbacks=[StopAfterSave(3, in_process=True)])
    assert not (tmp_path / "crash/model.safetensors").exists()

    resumed = run_training(cfg)
    assert resumed["resumed_from"].endswith("checkpoint-3") and resumed["steps_this_run"] == 3
    assert [s for s, _ in resumed["train_loss"]] == [1, 2, 3, 4, 5, 6]
    for (s, a), (_, b) in zip(ref["train_loss"], resumed["train_loss"], strict=True):
        assert a == pytest.approx(b, abs=1e-5), f"step {s}"


# ---- configuration errors ---------------------------------------------------------------------
def test_unknown_objective_arg_lists_the_valid_ones(toy_preferences, tmp_path):
    with pytest.raises(ConfigError, match=r"^objective_args\.betta: unknown for objective dpo; "
                                          r"valid: beta, precompute_ref_log_probs$"):
        TrainConfig(**tiny_cfg(toy_preferences, tmp_path, objective_args={"betta": 0.1}, **DPO))


@pytest.mark.parametrize(("objective", "fmt", "message"), [
    ("lm", "speech_preference",
     "formats.speech_preference: makes pair records; objective lm trains on example formats"),
    ("sft", "speech_preference",
     "formats.speech_preference: makes pair records; objective sft trains on example formats"),
    ("dpo", "speech_instruction",
     "formats.speech_instruction: makes example records; objective dpo trains on pair formats"),
])
def test_format_of_the_wrong_kind_is_refused(objective, fmt, message, toy_tokens, tmp_path):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        TrainConfig(**tiny_cfg(toy_tokens, tmp_path, objective=objective, formats={fmt: 1.0}))


@pytest.mark.parametrize(("args", "message"), [
    ({"beta": 0}, "objective_args.beta: must be a positive number, got 0"),
    ({"beta": "high"}, "objective_args.beta: must be a positive number, got 'high'"),
    ({"precompute_ref_log_probs": "yes"},
     "objective_args.precompute_ref_log_probs: must be true or false, got 'yes'"),
])
def test_bad_dpo_arguments_are_named(args, message, toy_preferences, tmp_path):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        TrainConfig(**tiny_cfg(toy_preferences, tmp_path, objective_args=args, **DPO))


def test_dpo_loss_is_the_formula_on_a_constructed_case(toy_source_model, toy_preferences,
                                                       tmp_path):
    """Policy: the source model after a few DPO steps on these pairs (their chosen side became
    more likely); reference: the source model. The trainer's loss on a batch of the pairs equals
    -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) computed here from our own scoring,
    and is below log 2, the loss of a policy equal to its reference."""
    import torch.nn.functional as F

    trained = tmp_path / "trained"
    run_training(TrainConfig(**ft_cfg(toy_preferences, trained, toy_source_model, max_steps=8,
                                      keep="last", **DPO)))
    cfg = TrainConfig(**ft_cfg(toy_preferences, tmp_path / "t", toy_source_model,
                               eval_data=str(toy_preferences), batch_size=4, **DPO))
    trainer, _ = build_trainer(cfg)
    policy = load_speech_lm(trained).model
    trainer.model.load_state_dict(policy.state_dict())
    trainer.model.eval()
    batch = next(iter(trainer.get_eval_dataloader()))
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch).item()
    ref = load_speech_lm(toy_source_model).model

    def completion_logp(model, prompt, completion):
        both, alone = score_sequences(model, [prompt + completion, prompt])[:, 0]
        return both - alone  # the prompt's tokens cancel

    margins = []
    for row in trainer.eval_dataset.select(range(4)):  # the first (unshuffled) eval batch
        p, c, r = row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]
        margins.append((completion_logp(policy, p, c) - completion_logp(ref, p, c))
                       - (completion_logp(policy, p, r) - completion_logp(ref, p, r)))
    expected = float(np.mean([-F.logsigmoid(torch.tensor(0.1 * m)).item() for m in margins]))
    assert loss == pytest.approx(expected, abs=1e-4)
    assert np.mean(margins) > 0 and loss < np.log(2)
