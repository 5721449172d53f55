"""The multistream architecture: loss and masks, config checks, save/load, scoring, sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from speechlm.errors import ConfigError
from speechlm.models import get_architecture
from speechlm.models.modeling_multistream import MultiStreamLM
from speechlm.models.sampling import Sampling
from speechlm.models.speech_lm import SpeechLM
from speechlm.sequences.example import Example
from speechlm.sequences.multistream import multistream
from speechlm.sequences.vocab import SpeechVocab
from speechlm.tokenizers.streams import Streams

TINY = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 2,
        "streams": {"durations": {"size": 8, "delay": 1},
                    "f0": {"kind": "continuous", "delay": 2, "weight": 0.5}}}
VOCAB = SpeechVocab.build({"units": 20})
ARCH = get_architecture("multistream")


@pytest.fixture(scope="module")
def model() -> MultiStreamLM:
    return ARCH.build(TINY, VOCAB, seed=0).eval()


def _batch(rng: np.random.Generator, n: int = 12) -> dict[str, dict[str, torch.Tensor]]:
    row = {"units": rng.integers(0, 20, n), "durations": rng.integers(1, 12, n),
           "f0": rng.integers(0, 9, n)}
    ex = multistream(row, VOCAB, None, delays={"durations": 1, "f0": 2})
    return {"streams": {k: torch.tensor(v)[None] for k, v in ex.streams.items()},
            "masks": {k: torch.tensor(v)[None] for k, v in ex.masks.items()}}


def _loss(model, batch) -> float:
    with torch.no_grad():
        return float(model(**batch).loss)


def test_loss_is_finite_and_weighted(model):
    batch = _batch(np.random.default_rng(0))
    with torch.no_grad():
        out = model(**batch)
    parts = out.stream_losses
    assert set(parts) == {"units", "durations", "f0"} and torch.isfinite(out.loss)
    assert float(out.loss) == pytest.approx(float(parts["units"] + parts["durations"]
                                                  + 0.5 * parts["f0"]), rel=1e-6)
    assert out.logits["durations"].shape == (1, 17, 8) and out.logits["f0"].shape == (1, 17)


def test_a_masked_position_does_not_change_the_loss(model):
    batch = _batch(np.random.default_rng(0))
    last = batch["masks"]["durations"].shape[1] - 1
    assert not batch["masks"]["durations"][0, last]  # the delay tail holds no duration
    base = _loss(model, batch)
    batch["streams"]["durations"][0, last] = 5  # only a target, and masked out
    assert _loss(model, batch) == base
    batch["masks"]["durations"][0, last] = True  # now it counts
    assert _loss(model, batch) != base
    step = int(np.flatnonzero(batch["masks"]["f0"][0].numpy())[0])
    batch["masks"]["f0"][0, step] = False
    assert _loss(model, batch) != base


def test_save_load_round_trip_is_exact(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    batch = _batch(np.random.default_rng(1))
    for loaded in (ARCH.load(tmp_path), AutoModel.from_pretrained(tmp_path).eval()):
        assert isinstance(loaded, MultiStreamLM)
        assert loaded.config.delays == {"durations": 1, "f0": 2}
        with torch.no_grad():
            a, b = model(**batch), loaded(**batch)
        assert torch.equal(a.loss, b.loss)
        for name in a.logits:
            assert torch.equal(a.logits[name], b.logits[name]), name


@pytest.mark.parametrize("cfg, message", [
    ({**TINY, "hidden_sise": 4}, "^model.hidden_sise: unknown key for model_type llama"),
    ({**TINY, "streams": {"pitch": {}}}, "^model.streams.pitch: unknown stream; valid: units, "
                                         "durations, f0"),
    ({**TINY, "streams": {"f0": {"kind": "continuous", "size": 4}}},
     "^model.streams.f0.size: a continuous stream has no classes"),
    ({**TINY, "streams": {"f0": {"kind": "ordinal"}}}, "^model.streams.f0.kind: must be one of"),
    ({**TINY, "streams": {"durations": {"size": 1}}}, "^model.streams.durations.size: a discr"),
    ({**TINY, "streams": {"f0": {"sise": 9}}}, "^model.streams.f0.sise: unknown key"),
    ({**TINY, "streams": {"f0": 9}}, "^model.streams.f0: expected a mapping"),
    ({**TINY, "streams": {"durations": {"delay": -1}}}, "^model.streams.durations.delay: must"),
    ({**TINY, "streams": {"durations": {"temperature": 0}}}, "^model.streams.durations.temper"),
    ({**TINY, "streams": {"units": {"delay": 1}}}, "^model.streams.units: takes only weight"),
    ({**TINY, "streams": {"units": {"weight": -1}}}, "^model.streams.units.weight: must be"),
])
def test_bad_model_config_names_the_key(cfg, message):
    with pytest.raises(ConfigError, match=message):
        ARCH.check_config(cfg)


def test_parameters_are_counted_without_memory(model):
    assert ARCH.count_parameters(TINY, VOCAB) == sum(p.numel() for p in model.parameters())


def _lm(model) -> SpeechLM:
    return SpeechLM(model=model, vocab=VOCAB, dir=Path("."), architecture=ARCH)


def _streams(rng: np.random.Generator, n: int) -> Streams:
    return Streams(50.0, units=rng.integers(0, 20, n), durations=rng.integers(1, 9, n),
                   f0=rng.integers(0, 9, n))


def test_score_batch_of_one_equals_batch_of_several(model):
    lm = _lm(model)
    rng = np.random.default_rng(2)
    examples = [lm.speech_example(_streams(rng, n)) for n in (3, 9, 5, 12, 1)]
    alone = np.concatenate([lm.score([e], batch_size=1) for e in examples])
    together = lm.score(examples, batch_size=8)
    assert alone.shape == (5, 2) and np.isfinite(alone).all()
    np.testing.assert_allclose(together, alone, atol=1e-4, rtol=1e-5)
    assert alone[4, 0] / alone[4, 1] == pytest.approx(2)  # [SPEECH] and one unit are scored


def test_speech_examples_carry_the_models_delays(model):
    lm = _lm(model)
    s = _streams(np.random.default_rng(3), 6)
    mine = lm.speech_example(s)  # durations 1, f0 2: the model's
    default = multistream({n: getattr(s, n) for n in s.names()}, VOCAB, None, eos=False)
    assert default.streams["f0"].tolist() != mine.streams["f0"].tolist()  # f0 delayed 1 there
    assert np.flatnonzero(mine.masks["f0"])[0] == 2 + 2  # BOS, [SPEECH], then the delay
    assert np.isfinite(lm.score([mine])).all()
    with pytest.raises(ConfigError, match="build examples with lm.speech_example"):
        lm.score([Example({"units": mine.streams["units"]})])


def test_generate_samples_every_stream_seeded(model):
    lm = _lm(model)
    rng = np.random.default_rng(4)
    prompts = [_streams(rng, 4), _streams(rng, 7)]
    out = lm.generate(prompts, Sampling(temperature=1.0, seed=5), max_new=[6, 3])
    again = lm.generate(prompts, Sampling(temperature=1.0, seed=5), max_new=[6, 3])
    for (s, stopped), (t, _), budget in zip(out, again, [6, 3], strict=True):
        assert s.equals(t)
        assert len(s.units) == len(s.durations) == len(s.f0) <= budget
        assert stopped or len(s.units) == budget
        assert (s.durations >= 1).all() and (s.f0 >= 0).all() and (s.units < 20).all()


GREEDY = {**TINY, "streams": {"durations": {"size": 8, "delay": 1, "temperature": 1e-6},
                              "f0": {"kind": "continuous", "delay": 2}}}


def test_greedy_batch_equals_alone_and_agrees_with_a_full_forward():
    """Left padding changes nothing; each new value is what a full forward predicts there."""
    model = ARCH.build(GREEDY, VOCAB, seed=0).eval()
    lm = _lm(model)
    rng = np.random.default_rng(6)
    prompts, budgets = [_streams(rng, 4), _streams(rng, 9), _streams(rng, 1)], [8, 5, 6]
    greedy = Sampling(top_k=1, seed=0)  # units: argmax; durations: temperature 1e-6
    batch = lm.generate(prompts, greedy, budgets, min_new=budgets)
    for prompt, budget, (new, stopped) in zip(prompts, budgets, batch, strict=True):
        alone, _ = lm.generate([prompt], greedy, [budget], min_new=[budget])[0]
        assert new.equals(alone) and not stopped and len(new.units) == budget
        assert new.units.dtype == new.durations.dtype == new.f0.dtype == np.int64
        # the whole utterance through one forward: step t's outputs predict step t + 1
        whole = Streams(50.0, **{k: np.concatenate([getattr(prompt, k), getattr(new, k)])
                                 for k in ("units", "durations", "f0")})
        ex = ARCH.prompt(lm, whole, eos=True)  # generation fed EOS after the last unit
        with torch.no_grad():
            out = model({k: torch.tensor(v)[None] for k, v in ex.streams.items()}).logits
        offset = VOCAB.unit_offset
        for k in range(budget):
            t = 2 + len(prompt.units) + k  # aligned step of new unit k
            assert int(out["units"][0, t - 1, offset:offset + 20].argmax()) == new.units[k]
            assert int(out["durations"][0, t, 1:].argmax()) + 1 == new.durations[k]  # delay 1
            assert max(round(float(out["f0"][0, t + 1])), 0) == new.f0[k]  # delay 2


def test_vocabulary_growth_keeps_unit_rows_and_reloads(tmp_path):
    """``resize_vocab`` (init: from_model with new markers) grows the unit embedding and head."""
    from speechlm.models.init import resize_vocab

    model = ARCH.build(TINY, VOCAB, seed=0).eval()
    head = model.heads["units"].weight.detach().clone()
    resize_vocab(model, VOCAB.size + 2, {i: i for i in range(VOCAB.size)})
    assert model.config.stream_specs[0].size == VOCAB.size + 2
    assert torch.equal(model.heads["units"].weight[: VOCAB.size], head)
    model.save_pretrained(tmp_path)
    batch = _batch(np.random.default_rng(7))
    with torch.no_grad():
        a, b = model(**batch).logits["units"], ARCH.load(tmp_path)(**batch).logits["units"]
    assert a.shape[-1] == VOCAB.size + 2 and torch.equal(a, b)


def test_prompts_without_a_model_stream_are_named(model):
    lm = _lm(model)
    no_f0 = Streams(50.0, units=np.array([1, 2]), durations=np.array([3, 1]))
    with pytest.raises(ConfigError, match="reads durations, f0 beside units, but the row has no "
                                          "'f0' stream"):
        lm.generate([no_f0], Sampling(), [3])
    with pytest.raises(ConfigError, match="reads durations, f0 beside units, but the row has no "
                                          "'f0' stream"):
        lm.speech_example(no_f0)


@pytest.mark.parametrize("penalty", [1.0, 1.3, 4.0, 0.5])
def test_penalize_repeats_equals_hf_repetition_penalty(penalty):
    """Random logits of both signs and a random history with repeats: the same numbers."""
    from transformers import RepetitionPenaltyLogitsProcessor

    from speechlm.models.multistream import penalize_repeats

    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(3, 30, generator=gen) * 4  # (B, V)
    history = torch.randint(0, 30, (3, 25), generator=gen)  # (B, T): some ids twice or more
    assert (history[0].bincount() > 1).any()
    want = RepetitionPenaltyLogitsProcessor(penalty)(history, logits.clone())
    got = penalize_repeats(logits, history, penalty)
    assert torch.equal(got, want)
    changed = got != logits
    if penalty != 1.0:  # exactly the ids of each row's history changed (no logit is 0 here)
        for row in range(3):
            assert set(changed[row].nonzero().flatten().tolist()) == set(history[row].tolist())


def test_repetition_penalty_makes_greedy_units_avoid_seen_ones():
    """Unit logits fixed by the head's bias (ranked by ``order``, EOS and markers far below
    or above): greedy repeats the best unit; a large penalty takes the best unseen unit."""
    model = ARCH.build(GREEDY, VOCAB, seed=0).eval()
    order = [4, 17, 9, 0, 12, 3, 19, 8, 1, 15, 6, 11, 2, 14, 7, 18, 5, 13, 10, 16]  # best first
    head = model.heads["units"]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(50.0)  # markers, BOS, padding: only the unit/EOS mask keeps them out
        head.bias[VOCAB.eos_id] = -100.0
        for rank, u in enumerate(order):
            head.bias[VOCAB.unit_offset + u] = 10.0 - 0.25 * rank
    lm = _lm(model)
    rng = np.random.default_rng(9)
    prompts = [Streams(50.0, units=np.array(u), durations=rng.integers(1, 9, len(u)),
                       f0=rng.integers(0, 9, len(u))) for u in ([order[0], order[2], order[0]],
                                                                 [order[1]])]
    budgets = [18, 19]
    plain = lm.generate(prompts, Sampling(top_k=1), budgets)
    for (s, _), budget in zip(plain, budgets, strict=True):
        assert s.units.tolist() == [order[0]] * budget
    penalised = lm.generate(prompts, Sampling(top_k=1, repetition_penalty=1000.0), budgets)
    for (s, _), prompt in zip(penalised, prompts, strict=True):
        seen = set(prompt.units.tolist())
        assert s.units.tolist() == [u for u in order if u not in seen]
        assert len(s.durations) == len(s.f0) == len(s.units)
