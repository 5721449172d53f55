"""dGSLM's Dialogue LM: loss, shared towers, causality, cross-attention, save/load, generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel

from speechlm.errors import ConfigError
from speechlm.models.modeling_dlm import DialogueLM, DialogueLMConfig
from speechlm.sequences.dialogue import collate, dialogue_example, edge_mask, windows
from speechlm.sequences.vocab import SpeechVocab

VOCAB = SpeechVocab.build({"units": 20})
BACKBONE = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
            "vocab_size": VOCAB.size, "pad_token_id": VOCAB.pad_id, "bos_token_id": VOCAB.bos_id,
            "eos_token_id": VOCAB.eos_id}
UNIT_IDS = list(range(VOCAB.unit_offset, VOCAB.unit_offset + VOCAB.n_units))


def _model(seed: int = 0, **cfg) -> DialogueLM:
    torch.manual_seed(seed)
    return DialogueLM(DialogueLMConfig(backbone=dict(BACKBONE), **{"cross_layers": 1, **cfg}))


@pytest.fixture(scope="module")
def model() -> DialogueLM:
    return _model().eval()


def _frames(rng: np.random.Generator, n: int) -> np.ndarray:
    """Frame units in runs of 1-5 frames, as a 50 Hz unit stream looks."""
    runs = [np.full(rng.integers(1, 6), rng.integers(0, 20)) for _ in range(n)]
    return np.concatenate(runs)[:n]


def _batch(rng: np.random.Generator, n: int = 24, seq_len: int = 12) -> dict[str, torch.Tensor]:
    ex = dialogue_example(_frames(rng, n), _frames(rng, n), VOCAB)
    return collate(windows(ex, seq_len), VOCAB.pad_id)


def test_loss_is_the_edge_cross_entropy_plus_weighted_durations(model):
    batch = _batch(np.random.default_rng(0))
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape == (3, 2, 12, VOCAB.size) and out.durations.shape == (3, 2, 12)
    assert torch.isfinite(out.loss) and out.duration_loss > 0
    assert float(out.loss) == pytest.approx(float(out.unit_loss + out.duration_loss), rel=1e-6)
    # the unit loss by hand: cross-entropy at the edges of both channels, pooled
    units, nxt = batch["units"], batch["next_units"]
    edges = torch.from_numpy(edge_mask(units.numpy())) & (nxt >= 0)
    edges[:, :, -1] = (nxt[:, :, -1] >= 0) & (nxt[:, :, -1] != units[:, :, -1])  # next window
    ce = F.cross_entropy(out.logits[edges], nxt[edges])
    assert float(out.unit_loss) == pytest.approx(float(ce), rel=1e-5)
    everywhere = _model(edge_only=False, duration_weight=0.5).eval()
    with torch.no_grad():
        out = everywhere(**batch)
    keep = nxt >= 0
    assert float(out.unit_loss) == pytest.approx(
        float(F.cross_entropy(out.logits[keep], nxt[keep])), rel=1e-5)
    assert float(out.loss) == pytest.approx(float(out.unit_loss + 0.5 * out.duration_loss),
                                            rel=1e-6)


def test_loss_decreases_with_adam_on_a_fixed_batch():
    model = _model(seed=1).train()
    batch = _batch(np.random.default_rng(1), n=32, seq_len=16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses, unit_losses = [], []
    for _ in range(30):
        out = model(**batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
        unit_losses.append(out.unit_loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < 0.6 * losses[0], losses
    assert unit_losses[-1] < 0.8 * unit_losses[0], unit_losses  # not the duration head alone


def test_towers_share_weights_swapping_channels_swaps_outputs(model):
    units = _batch(np.random.default_rng(2))["units"]
    with torch.no_grad():
        out, swapped = model(units), model(units.flip(1))
    assert torch.equal(swapped.logits, out.logits.flip(1))
    assert torch.equal(swapped.durations, out.durations.flip(1))
    # one set of layers: nothing in the parameter names belongs to a channel
    assert not [n for n, _ in model.named_parameters() if "channel" in n or "tower" in n]


@pytest.mark.parametrize("channel", [0, 1])
def test_future_frames_of_either_channel_change_no_earlier_output(model, channel):
    units = _batch(np.random.default_rng(3), n=16, seq_len=17)["units"]
    changed = units.clone()
    changed[:, channel, 9:] = torch.randint(VOCAB.unit_offset, VOCAB.size, (1, 8))
    with torch.no_grad():
        a, b = model(units), model(changed)
    torch.testing.assert_close(a.logits[:, :, :9], b.logits[:, :, :9], rtol=0, atol=1e-6)
    torch.testing.assert_close(a.durations[:, :, :9], b.durations[:, :, :9], rtol=0, atol=1e-6)
    assert not torch.allclose(a.logits[:, channel, 9:], b.logits[:, channel, 9:])


def test_without_cross_layers_a_channel_ignores_the_other():
    units = _batch(np.random.default_rng(4))["units"]
    other = units.clone()
    other[:, 1, 1:] = torch.randint(VOCAB.unit_offset, VOCAB.size, other[:, 1, 1:].shape)
    for cross, independent in ((0, True), (1, False)):
        m = _model(cross_layers=cross).eval()
        with torch.no_grad():
            a, b = m(units).logits[:, 0], m(other).logits[:, 0]
        assert torch.allclose(a, b, rtol=0, atol=1e-6) == independent, cross
        # at a window's first position A sees only B's first frame, which is unchanged
        torch.testing.assert_close(a[:, 0], b[:, 0], rtol=0, atol=1e-6)


def test_save_load_round_trip_is_exact(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, DialogueLM) and loaded.config.cross_layers == 1
    assert loaded.lm_head.weight is loaded.embed_tokens.weight  # tied, as fairseq's dGSLM
    batch = _batch(np.random.default_rng(5))
    with torch.no_grad():
        a, b = model(**batch), loaded(**batch)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.durations, b.durations)
    assert torch.equal(a.loss, b.loss)


@pytest.mark.parametrize("cfg, message", [
    ({"cross_layers": 3}, r"^cross_layers: must be an integer in \[0, num_hidden_layers=2\]"),
    ({"cross_layers": -1}, "^cross_layers:"),
    ({"duration_weight": -1.0}, "^duration_weight: must be a number >= 0"),
    ({"edge_only": "yes"}, "^edge_only: must be true or false"),
    ({"max_duration": 0}, "^max_duration: must be an integer >= 1, got 0"),
    ({"cross_layers": "2"}, "^cross_layers: must be an integer"),
    ({"backbone": {**BACKBONE, "model_type": "gpt2"}}, "^backbone.model_type: the dialogue LM"),
])
def test_bad_config_names_the_key(cfg, message):
    with pytest.raises(ConfigError, match=message):
        DialogueLMConfig(**{"backbone": dict(BACKBONE), "cross_layers": 1, **cfg})


def _prompts(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return tuple(VOCAB.units_to_ids(_frames(rng, n)) for _ in range(2))


def test_generate_is_seeded_and_fills_both_channels(model):
    a, b = _prompts(np.random.default_rng(6), 7)
    out = model.generate(a, b, 15, temperature=1.0, seed=3, allowed=UNIT_IDS)
    assert out.shape == (2, 15) and np.isin(out, UNIT_IDS).all()
    assert np.array_equal(out, model.generate(a, b, 15, seed=3, allowed=UNIT_IDS))
    assert not np.array_equal(out, model.generate(a, b, 15, seed=4, allowed=UNIT_IDS))
    assert model.generate([], [], 4, top_k=5, seed=0).shape == (2, 4)  # from BOS alone


@pytest.mark.parametrize("fixed", [0, 1])
def test_generate_with_a_fixed_channel_keeps_it(model, fixed):
    rng = np.random.default_rng(7)
    a, b = _prompts(rng, 6)
    future = VOCAB.units_to_ids(_frames(rng, 10))
    prompts = [a, b]
    prompts[fixed] = np.concatenate([prompts[fixed], future])
    out = model.generate(*prompts, 10, seed=1, fixed_channel=fixed, allowed=UNIT_IDS)
    assert np.array_equal(out[fixed], future)
    with pytest.raises(ValueError, match="needs the prompt's 6 frames plus the 10"):
        model.generate(a, b, 10, fixed_channel=fixed)


def test_cached_greedy_steps_agree_with_a_full_forward(model):
    """Each frame greedy generation picks (durations off) is the argmax of one forward over the
    whole dialogue at the step before: the KV cache of both channels is exact."""
    a, b = _prompts(np.random.default_rng(8), 5)
    out = model.generate(a, b, 9, top_k=1, allowed=UNIT_IDS, use_durations=False)
    whole = np.concatenate([np.full((2, 1), VOCAB.bos_id), np.stack([a, b]), out], 1)
    with torch.no_grad():
        logits = model(torch.from_numpy(whole)[None]).logits[0]  # (2, 15, V)
    picks = logits[:, 5:-1, UNIT_IDS].argmax(-1) + VOCAB.unit_offset  # (2, 9)
    assert np.array_equal(picks.numpy(), out)


@pytest.mark.parametrize("delayed", [True, False])
def test_a_new_unit_lasts_its_predicted_duration(delayed):
    """Duration head fixed at 3 frames: a run started at the prompt's end gets 2 more frames;
    every run started in the continuation lasts at least 3 (a free step may repeat the unit)."""
    model = _model(seed=2, delayed_duration=delayed).eval()
    with torch.no_grad():
        model.duration_head.weight.zero_()
        model.duration_head.bias.fill_(3.0)
    o = VOCAB.unit_offset
    fresh = np.array([o + 1, o + 1, o + 4])  # the run of 4 starts at the last frame
    done = np.array([o + 5, o + 5, o + 5])  # the run of 5 has had its 3 frames
    out = model.generate(fresh, done, 40, seed=0, allowed=UNIT_IDS)
    assert out[0, :2].tolist() == [o + 4, o + 4]
    for row in out:
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        lengths = np.diff(np.r_[starts, len(row)])
        assert (lengths[1:-1] >= 3).all(), row  # whole runs begun in the continuation
    free = model.generate(fresh, done, 40, seed=0, allowed=UNIT_IDS, use_durations=False)
    starts = np.flatnonzero(np.r_[True, free[0, 1:] != free[0, :-1]])
    assert (np.diff(starts) < 3).any()  # sampled frame by frame, short runs occur


def test_the_cache_fed_in_chunks_equals_one_forward():
    """Grouped-query heads, two cross layers of three: prompt, a chunk, one frame, the rest."""
    torch.manual_seed(3)
    model = DialogueLM(DialogueLMConfig(backbone={**BACKBONE, "num_hidden_layers": 3,
                                                  "num_attention_heads": 4,
                                                  "num_key_value_heads": 2},
                                        cross_layers=2)).eval()
    units = torch.randint(VOCAB.unit_offset, VOCAB.size, (3, 2, 13))
    outs, cache = [], None
    with torch.no_grad():
        full = model(units)
        for lo, hi in ((0, 5), (5, 9), (9, 10), (10, 13)):
            out = model(units[..., lo:hi], cache=cache, use_cache=True)
            outs.append(out)
            cache = out.cache
    assert cache.length == 13
    torch.testing.assert_close(torch.cat([o.logits for o in outs], 2), full.logits,
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.cat([o.durations for o in outs], 2), full.durations,
                               rtol=0, atol=1e-5)
