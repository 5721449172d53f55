"""VALL-E's AR and NAR and the delay-pattern model: losses and their masks, what each stage
reads, training steps, save/load through AutoModel, synthesis and generation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import AutoModel

from speechlm.errors import ConfigError
from speechlm.models.modeling_valle import (
    DelayedCodecLM,
    ValleAR,
    ValleARConfig,
    ValleNAR,
    build_delayed,
    build_valle,
    load_codec_lm,
    load_valle,
    save_valle,
    synthesize,
)
from speechlm.sequences.codec import parallel_ids
from speechlm.sequences.example import IGNORE
from speechlm.sequences.valle import (
    TARGET,
    ValleLayout,
    ar_example,
    collate,
    delayed_example,
    nar_example,
    prompt_split,
)
from speechlm.sequences.vocab import SpeechVocab

K, CODES, N_PHONEMES = 4, 16, 20
VOCAB = SpeechVocab.build({"phonemes": N_PHONEMES, **{f"codec{k}": CODES for k in range(K)}})
LAYOUT = ValleLayout.from_vocab(VOCAB)
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 2}


def _utterances(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(phonemes, prompt codes, target codes) of two utterances of different lengths."""
    rng = np.random.default_rng(seed)
    out = []
    for n_ph, frames, prompt in ((6, 10, 3), (4, 7, 2)):
        p, t = prompt_split(rng.integers(0, CODES, (K, frames)), prompt)
        out.append((rng.integers(0, N_PHONEMES, n_ph), p, t))
    return out


UTTS = _utterances()


def _batch(fmt) -> dict[str, torch.Tensor]:
    return collate([fmt(ph, p, t, LAYOUT) for ph, p, t in UTTS], VOCAB.pad_id)


@pytest.fixture(scope="module")
def pair() -> tuple[ValleAR, ValleNAR]:
    ar, nar = build_valle(TINY, LAYOUT, VOCAB.size, seed=0)
    return ar.eval(), nar.eval()


@pytest.fixture(scope="module")
def delayed() -> DelayedCodecLM:
    return build_delayed(TINY, LAYOUT, vocab_size=VOCAB.size, seed=0).eval()


def _grad_rows(model, batch, **kw) -> torch.Tensor:
    """(B, L) True where the loss has a gradient with respect to that position's logits."""
    model.zero_grad()
    out = model(**batch, **kw)
    logits = out.logits if isinstance(out.logits, torch.Tensor) else out.logits[0]
    logits.retain_grad()
    out.loss.backward()
    return logits.grad.abs().sum(-1) != 0


# ---- AR -----------------------------------------------------------------------------------------
def test_ar_loss_is_the_mean_nll_of_the_targets_codebook_0_and_eos(pair):
    ar = pair[0]
    batch = _batch(ar_example)
    out = ar(**batch)
    assert out.logits.shape == (2, 19, CODES + 1) and torch.isfinite(out.loss)
    # the positions that predict the target's frames and EOS, from the layout alone
    logp = out.logits.detach().log_softmax(-1)
    nll, expected = [], torch.zeros(2, 19, dtype=torch.bool)
    for b, (ph, p, t) in enumerate(UTTS):
        start = 1 + len(ph) + 1 + p.shape[1] - 1  # the position before the first target frame
        classes = [*t[0].tolist(), CODES]  # codebook 0's codes, then EOS
        for i, c in enumerate(classes):
            nll.append(-logp[b, start + i, c])
            expected[b, start + i] = True
    assert float(out.loss.detach()) == pytest.approx(float(torch.stack(nll).mean()), rel=1e-5)
    # no gradient reaches the logits at phoneme, marker or prompt positions
    assert torch.equal(_grad_rows(ar, batch), expected)


def test_ar_refuses_a_label_that_is_not_codebook_0_or_eos(pair):
    batch = _batch(ar_example)
    batch["labels"][0, 2] = batch["input_ids"][0, 2]  # a phoneme id as a target
    with pytest.raises(ValueError, match="not a code of codebook 0 or EOS"):
        pair[0](**batch)


def test_ar_batch_padding_changes_nothing(pair):
    ar = pair[0]
    ph, p, t = UTTS[1]
    alone = collate([ar_example(ph, p, t, LAYOUT)], VOCAB.pad_id)
    with torch.no_grad():
        batched, single = ar(**_batch(ar_example)), ar(**alone)
    n = alone["input_ids"].shape[1]
    torch.testing.assert_close(batched.logits[1, :n], single.logits[0], atol=1e-5, rtol=1e-5)


# ---- NAR ----------------------------------------------------------------------------------------
def test_nar_stage_j_reads_only_codebooks_below_j_of_the_target(pair):
    nar = pair[1]
    batch = _batch(nar_example)
    target = batch["kinds"] == TARGET  # (B, L)
    rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for j in range(1, K):
            base = nar(**batch, stage=j).logits
            assert base.shape == (2, 18, CODES)
            changed = copy.deepcopy(batch)
            for k in range(j, K):  # new codes for codebooks >= j at every target frame
                new = torch.randint(0, CODES, changed["codes"][:, k].shape, generator=rng)
                changed["codes"][:, k] = torch.where(target, new + LAYOUT.books.offsets[k],
                                                     changed["codes"][:, k])
            assert torch.equal(nar(**changed, stage=j).logits, base)
            lower = copy.deepcopy(batch)  # codebook j-1 of the last target frame of item 0
            last = int(target[0].nonzero()[-1])
            lower["codes"][0, j - 1, last] = LAYOUT.books.offsets[j - 1] + (
                (int(lower["codes"][0, j - 1, last]) - LAYOUT.books.offsets[j - 1] + 1) % CODES)
            first = int(target[0].nonzero()[0])  # bidirectional: an earlier frame sees it
            assert not torch.allclose(nar(**lower, stage=j).logits[0, first], base[0, first])


def test_nar_prompt_contributes_every_codebook(pair):
    nar = pair[1]
    batch = _batch(nar_example)
    prompt_frame = int((batch["kinds"][0] == 2).nonzero()[0])
    with torch.no_grad():
        base = nar(**batch, stage=1).logits
        batch["codes"][0, K - 1, prompt_frame] += 1 if int(
            batch["codes"][0, K - 1, prompt_frame]) < LAYOUT.max_id else -1
        assert not torch.allclose(nar(**batch, stage=1).logits[0], base[0])


def test_nar_stage_embedding_changes_the_output(pair):
    nar = copy.deepcopy(pair[1])
    batch = _batch(nar_example)
    with torch.no_grad():
        base = nar(**batch, stage=2).logits
        other = nar(**batch, stage=1).logits
        nar.stage_embedding.weight[2] += 0.5
        assert not torch.allclose(nar(**batch, stage=2).logits, base)
        assert torch.equal(nar(**batch, stage=1).logits, other)  # stage 1's row unchanged


def test_nar_loss_is_on_target_frames_and_stages_are_drawn_per_batch(pair):
    nar = copy.deepcopy(pair[1]).train()
    batch = _batch(nar_example)
    assert torch.equal(_grad_rows(nar, batch, stage=3), batch["kinds"] == TARGET)
    torch.manual_seed(0)
    assert {nar(**batch).stage for _ in range(20)} == {1, 2, 3}
    with pytest.raises(ValueError, match="stage: required outside training"):
        nar.eval()(batch["codes"], batch["kinds"])
    # evaluation without a stage: the mean loss over all stages (no draw)
    with torch.no_grad():
        mean = torch.stack([nar(**batch, stage=j).loss for j in (1, 2, 3)]).mean()
        assert torch.allclose(nar(**batch).loss, mean)
    with pytest.raises(ValueError, match="stages of 4 codebooks are 1..3"):
        nar(**batch, stage=0)


# ---- training -----------------------------------------------------------------------------------
def _eval_loss(model, batch, stages=(None,)) -> float:
    model.eval()
    with torch.no_grad():
        kw = [{} if s is None else {"stage": s} for s in stages]
        return float(np.mean([float(model(**batch, **k).loss) for k in kw]))


@pytest.mark.parametrize("which", ["ar", "nar", "delayed"])
def test_a_few_adam_steps_lower_the_loss(which):
    if which == "delayed":
        model, fmt, stages = build_delayed(TINY, LAYOUT, vocab_size=VOCAB.size), \
            delayed_example, (None,)
    else:
        ar, nar = build_valle(TINY, LAYOUT, VOCAB.size)
        model, fmt = (ar, ar_example) if which == "ar" else (nar, nar_example)
        stages = (None,) if which == "ar" else (1, 2, 3)
    batch = _batch(fmt)
    before = _eval_loss(model, batch, stages)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for _ in range(15):  # the NAR draws its stage at each step
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    assert _eval_loss(model, batch, stages) < 0.8 * before


# ---- save / load --------------------------------------------------------------------------------
def _logits(model, batch, **kw) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(**batch, **kw).logits
    return list(out) if isinstance(out, tuple) else [out]


def test_pair_saves_to_one_directory_and_loads_through_automodel(pair, tmp_path):
    ar, nar = pair
    save_valle(tmp_path, ar, nar)
    assert (tmp_path / "model.safetensors").is_file()
    assert (tmp_path / "nar" / "model.safetensors").is_file()
    assert not list(tmp_path.rglob("*.bin"))
    ar2, nar2 = load_valle(tmp_path)
    assert isinstance(AutoModel.from_pretrained(tmp_path), ValleAR)
    assert isinstance(AutoModel.from_pretrained(tmp_path / "nar"), ValleNAR)
    assert nar2.config.backbone.is_causal is False and ar2.layout == LAYOUT
    ab, nb = _batch(ar_example), _batch(nar_example)
    assert all(torch.equal(a, b) for a, b in zip(_logits(ar, ab), _logits(ar2, ab), strict=True))
    for j in range(1, K):
        assert torch.equal(_logits(nar, nb, stage=j)[0], _logits(nar2, nb, stage=j)[0])
    with pytest.raises(ConfigError, match="holds a ValleAR, not a ValleNAR"):
        load_codec_lm(tmp_path, ValleNAR)


def test_delayed_model_save_load_is_exact(delayed, tmp_path):
    delayed.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, DelayedCodecLM) and loaded.delays == [0, 1, 2, 3]
    batch = _batch(delayed_example)
    assert all(torch.equal(a, b) for a, b in zip(_logits(delayed, batch), _logits(loaded, batch),
                                                 strict=True))


@pytest.mark.parametrize("change, message", [
    ({"vocab_size": 50}, "backbone.vocab_size: 50 ids, but the layout uses id 89"),
    ({"is_causal": False}, "backbone.is_causal: the speechlm_valle_ar model is causal"),
])
def test_bad_configs_name_the_key(change, message):
    backbone = {"model_type": "llama", **TINY, "vocab_size": VOCAB.size, **change}
    with pytest.raises(ConfigError, match=message):
        ValleARConfig(backbone=backbone, layout=LAYOUT.to_dict())


def test_nar_needs_two_codebooks_and_delays_one_per_codebook():
    one = ValleLayout.from_vocab(VOCAB, n_codebooks=1)
    with pytest.raises(ConfigError, match="K must be >= 2"):
        build_valle(TINY, one, VOCAB.size)
    with pytest.raises(ConfigError, match="delays: one delay >= 0 per codebook"):
        build_delayed(TINY, LAYOUT, delays=[0, 1], vocab_size=VOCAB.size)


# ---- synthesis ----------------------------------------------------------------------------------
def test_synthesize_returns_k_by_t_codes_within_the_bounds_seeded(pair):
    ar, nar = pair
    ph, p, _ = UTTS[0]
    codes = synthesize(ar, nar, ph, p, max_frames=12, min_frames=4, temperature=1.0, top_k=8,
                       seed=3)
    assert codes.shape[0] == K and 4 <= codes.shape[1] <= 12 and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < CODES
    assert torch.equal(codes, synthesize(ar, nar, ph, p, 12, 4, 1.0, 8, seed=3))
    assert synthesize(ar, nar, ph, p, max_frames=5, min_frames=5, seed=1).shape == (K, 5)
    eager = copy.deepcopy(ar)
    with torch.no_grad():
        eager.head.bias[CODES] = 50.0  # EOS as soon as it is allowed
    assert synthesize(eager, nar, ph, p, max_frames=9, min_frames=2).shape == (K, 2)
    assert synthesize(eager, nar, ph, None, max_frames=9).shape == (K, 0)


def test_greedy_synthesis_is_what_the_training_layouts_predict(pair):
    ar, nar = pair
    ph, p, _ = UTTS[1]
    codes = synthesize(ar, nar, ph, p, max_frames=8, min_frames=8, temperature=0)
    with torch.no_grad():
        ar_logits = ar(**collate([ar_example(ph, p, codes, LAYOUT)], VOCAB.pad_id)).logits[0]
        start = 1 + len(ph) + 1 + p.shape[1] - 1
        assert ar_logits[start:start + 8, :CODES].argmax(-1).tolist() == codes[0].tolist()
        nb = collate([nar_example(ph, p, codes, LAYOUT)], VOCAB.pad_id)
        frames = nb["kinds"][0] == TARGET
        for j in range(1, K):
            best = nar(**nb, stage=j).logits[0, frames].argmax(-1)
            assert best.tolist() == codes[j].tolist()


# ---- delay pattern --------------------------------------------------------------------------
@pytest.mark.parametrize("delays", [None, [0, 1, 1, 1], [0, 0, 0, 0]])
def test_delayed_generate_undelays_what_it_sampled(delays):
    model = build_delayed(TINY, LAYOUT, delays=delays, vocab_size=VOCAB.size, seed=1).eval()
    ph, p, _ = UTTS[0]
    codes = model.generate(ph, p, max_frames=9, min_frames=3, temperature=1.0, seed=4)
    assert codes.shape[0] == K and 3 <= codes.shape[1] <= 9
    assert torch.equal(codes, model.generate(ph, p, 9, 3, 1.0, seed=4))
    # greedy frames, laid out again as in training: each is the argmax where it was predicted
    greedy = model.generate(ph, p, max_frames=6, min_frames=6, temperature=0)
    assert greedy.shape == (K, 6)
    ex = delayed_example(ph, p, greedy, LAYOUT, model.delays)
    batch = collate([ex], VOCAB.pad_id)
    with torch.no_grad():
        logits = model(**batch).logits
    ids = batch["codes"][0]
    for k in range(K):
        steps = batch["loss_mask"][0, k].nonzero()[:, 0]
        steps = steps[ids[k, steps] != LAYOUT.eos_id]  # EOS was forced at max_frames
        assert len(steps) == 6
        best = logits[k][0, steps - 1, :CODES].argmax(-1) + LAYOUT.books.offsets[k]
        assert best.tolist() == ids[k, steps].tolist()
    assert torch.equal(parallel_ids(greedy, LAYOUT.books)[0],
                       batch["codes"][0, 0, 1 + len(ph) + 1 + p.shape[1]:][:6])


def test_delayed_loss_mask_is_exact(delayed):
    batch = _batch(delayed_example)
    model = copy.deepcopy(delayed)
    model.zero_grad()
    out = model(**batch)
    for lk in out.logits:
        lk.retain_grad()
    out.loss.backward()
    for k, lk in enumerate(out.logits):
        has_grad = lk.grad.abs().sum(-1) != 0  # (B, L): positions predicting a kept step
        assert torch.equal(has_grad[:, :-1], batch["loss_mask"][:, k, 1:])
    assert int(batch["loss_mask"].sum()) == sum(t.size + 1 for _, _, t in UTTS)
    assert (batch["codes"] == IGNORE).sum() == 0
