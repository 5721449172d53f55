"""The ``dgslm`` architecture: config checks, save/load, scoring at edges, both channels, and the
dialogue samplers (dGSLM and the turn-based baseline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.errors import ConfigError
from speechlm.models import get_architecture, load_speech_lm, save_model_dir
from speechlm.models.dialogue import (
    DGSLM,
    continue_dialogue,
    continue_turn_based,
    floor_holder,
    for_channel,
    frame_units,
    run_lengths,
)
from speechlm.models.sampling import Sampling
from speechlm.models.speech_lm import SpeechLM
from speechlm.sequences.dialogue import dialogue_example
from speechlm.sequences.vocab import SpeechVocab
from speechlm.tokenizers.streams import Streams

VOCAB = SpeechVocab.build({"units": 12}, ["[SPEECH]"])
MODEL = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
         "dialogue": {"cross_layers": 1}}
SILENCE = 0


def _lm(tmp_path, seq_len: int = 32, seed: int = 0) -> SpeechLM:
    model = get_architecture("dgslm").build(MODEL, VOCAB, seed=seed).eval()
    model.config.silence_unit = SILENCE
    return SpeechLM(model=model, vocab=VOCAB, dir=tmp_path,
                    meta={"architecture": "dgslm", "seq_len": seq_len, "frame_rate": 50.0})


@pytest.mark.parametrize("change, message", [
    ({"hidden_sise": 3}, r"^model\.hidden_sise: unknown key for model_type llama; valid keys: "),
    ({"model_type": "gpt2"}, r"^model\.model_type: the dialogue LM's blocks are llama blocks"),
    ({"dialogue": {"cross_layer": 1}}, r"^model\.dialogue\.cross_layer: unknown key; valid keys: "
                                       r"cross_layers, duration_weight"),
    ({"dialogue": {"cross_layers": 3}}, r"^model\.dialogue\.cross_layers: must be an integer in "
                                        r"\[0, num_hidden_layers=2\]"),
    ({"dialogue": 4}, r"^model\.dialogue: expected a mapping"),
])
def test_config_errors_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        get_architecture("dgslm").check_config({**MODEL, **change})


def test_saved_model_dir_loads_with_the_same_outputs(tmp_path):
    lm = _lm(tmp_path)
    out = save_model_dir(tmp_path / "m", lm.model, VOCAB, {"seq_len": 32, "frame_rate": 50.0},
                         None, architecture="dgslm")
    loaded = load_speech_lm(out)
    assert loaded.architecture.name == "dgslm" and loaded.model.config.silence_unit == SILENCE
    assert loaded.model.lm_head.weight is loaded.model.embed_tokens.weight  # still tied
    units = torch.randint(VOCAB.unit_offset, VOCAB.size, (2, 2, 9))
    with torch.no_grad():
        assert torch.equal(lm.model(units).logits, loaded.model(units).logits)


def test_prompt_puts_frame_units_on_one_channel_and_silence_on_the_other(tmp_path):
    lm = _lm(tmp_path)
    streams = Streams(50.0, units=np.array([3, 5, 3]), durations=np.array([2, 1, 3]))
    assert frame_units(streams).tolist() == [3, 3, 5, 3, 3, 3]
    for c in (0, 1):
        ex = for_channel(lm, c).speech_example(streams)
        ids = ex.streams["units"]  # (2, 7): BOS first
        assert VOCAB.ids_to_units(ids[c, 1:]).tolist() == [3, 3, 5, 3, 3, 3]
        assert VOCAB.ids_to_units(ids[1 - c, 1:]).tolist() == [SILENCE] * 6


def test_score_is_the_edge_log_likelihood_and_the_same_on_either_channel(tmp_path):
    lm = _lm(tmp_path)
    items = [Streams(50.0, units=np.array(u)) for u in ([3, 3, 5, 5, 5, 2], [4, 7, 7], [9] * 5)]
    a = lm.score([lm.speech_example(s) for s in items])
    b = for_channel(lm, 1).score([for_channel(lm, 1).speech_example(s) for s in items])
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)  # shared towers, swapped channels
    # by hand, item 0 alone: log p(next) where the next unit differs (BOS -> 3, 3 -> 5, 5 -> 2)
    ex = lm.speech_example(items[0])
    ids = torch.as_tensor(ex.streams["units"])[None]
    with torch.no_grad():
        lp = lm.model(ids).logits[0, 0].log_softmax(-1)  # (L, V) channel A
    seq = ids[0, 0]
    edges = [t for t in range(len(seq) - 1) if seq[t + 1] != seq[t]]
    assert len(edges) == 3
    want = sum(float(lp[t, seq[t + 1]]) for t in edges)
    assert a[0, 0] == pytest.approx(want, abs=1e-4) and a[0, 1] == pytest.approx(want / 3, abs=1e-4)
    # a batch scores as its items one by one (right padding is invisible)
    one = np.concatenate([lm.score([lm.speech_example(s)]) for s in items])
    np.testing.assert_allclose(a, one, rtol=1e-4, atol=1e-4)
    assert a[2, 0] == pytest.approx(float(lm.score([lm.speech_example(items[2])])[0, 0]))


def test_run_lengths_inverts_frame_units():
    units, durations = run_lengths(np.array([4, 4, 1, 1, 1, 4]))
    assert units.tolist() == [4, 1, 4] and durations.tolist() == [2, 3, 1]
    assert run_lengths(np.array([], dtype=np.int64))[0].size == 0


def test_continuation_rolls_past_the_context_and_is_seeded(tmp_path):
    lm = _lm(tmp_path, seq_len=16)  # 15 frames a call: 40 frames need several calls
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, 12, size=(2, 20))
    sampling = Sampling(max_seconds=1.0, seed=3)
    new = continue_dialogue(lm, prompt, 40, sampling)
    assert new.shape == (2, 40) and new.min() >= 0 and new.max() < 12
    np.testing.assert_array_equal(new, continue_dialogue(lm, prompt, 40, sampling))
    assert not np.array_equal(new, continue_dialogue(lm, prompt, 40, Sampling(seed=4)))
    # the "no live user" mode: channel B is given, only A is sampled
    given = rng.integers(0, 12, size=40)
    fixed = continue_dialogue(lm, prompt, 40, sampling, fixed_channel=1, given=given)
    np.testing.assert_array_equal(fixed[1], given)


def test_dgslm_refuses_sampling_settings_it_does_not_use(tmp_path):
    lm = _lm(tmp_path)
    with pytest.raises(ConfigError, match="^top_p: dgslm samples"):
        continue_dialogue(lm, np.zeros((2, 4), int), 3, Sampling(top_p=0.9))
    with pytest.raises(ConfigError, match="^repetition_penalty: not used by dgslm"):
        continue_dialogue(lm, np.zeros((2, 4), int), 3, Sampling(repetition_penalty=1.2))


def test_turn_based_baseline_samples_one_channel_at_a_time(tmp_path):
    lm = _lm(tmp_path, seq_len=24)
    prompt = np.full((2, 10), SILENCE)
    prompt[1, 2:6] = 7  # B spoke last: B holds the floor first
    assert floor_holder(prompt, SILENCE) == 1 and floor_holder(prompt[:, :1], SILENCE) == 0
    new = continue_turn_based(lm, prompt, 60, Sampling(seed=1), switch_frames=2, chunk=3)
    assert new.shape == (2, 60)
    assert ((new[0] == SILENCE) | (new[1] == SILENCE)).all()  # never both at once
    assert (new[1, :3] != SILENCE).any() and (new[0, :3] == SILENCE).all()
    np.testing.assert_array_equal(new, continue_turn_based(lm, prompt, 60, Sampling(seed=1),
                                                           switch_frames=2, chunk=3))


def test_floor_passes_after_the_holders_silence(tmp_path, monkeypatch):
    import speechlm.models.dialogue as dialogue

    lm = _lm(tmp_path)
    speech, silence = (int(i) for i in VOCAB.units_to_ids([5, SILENCE]))
    free = []  # the sampled channel of each call

    def fake_sample(lm, ids, step, sampling, seed, fixed_channel=None, given=None):
        c = 1 - fixed_channel
        free.append(c)
        new = np.full((2, step), silence)
        if len(free) == 1:  # the first holder says one frame, then nobody speaks
            new[c, 0] = speech
        return new

    monkeypatch.setattr(dialogue, "_sample", fake_sample)
    new = continue_turn_based(lm, np.full((2, 4), SILENCE), 16, Sampling(), switch_frames=3,
                              chunk=2)
    # holder A: frame 0 speech, silent from frame 1; 3 silent frames are seen after the second
    # chunk (frames 1-3): B holds for 2 chunks (4 silent frames >= 3), then A again, ...
    assert free == [0, 0, 1, 1, 0, 0, 1, 1]
    assert new[0, 0] == 5 and (new[:, 1:] == SILENCE).all()


def test_generate_interface_continues_a_mono_prompt_on_channel_a(tmp_path):
    lm = _lm(tmp_path)
    prompt = Streams(50.0, units=np.array([3, 5, 2]), durations=np.array([4, 3, 3]))
    (streams, stopped), = lm.generate([prompt], Sampling(max_seconds=0.2, seed=0), [4])
    # 4 units at the prompt's 15 units/s are 0.267 s: 13 frames at 50 Hz
    assert not stopped and int(streams.durations.sum()) == 13
    assert len(streams.units) == len(streams.durations) and (streams.durations > 0).all()
    assert isinstance(lm.architecture, DGSLM)


def test_example_layout_matches_the_format(tmp_path):
    lm = _lm(tmp_path)
    ex = lm.speech_example(Streams(50.0, units=np.array([2, 2, 6])))
    want = dialogue_example([2, 2, 6], [SILENCE] * 3, VOCAB)
    for name in want.streams:
        np.testing.assert_array_equal(ex.streams[name], want.streams[name])


def test_log_durations_take_the_l1_between_logarithms():
    from speechlm.models.modeling_dlm import duration_loss
    from speechlm.sequences.dialogue import collate, windows

    target = torch.tensor([[[0, 4, 0, 90]]])
    raw = torch.log(torch.tensor([[[7.0, 4.0, 1.0, 30.0]]]))
    assert float(duration_loss(raw, target, log=True)) == pytest.approx(np.log(3) / 2)
    model = get_architecture("dgslm").build({**MODEL, "dialogue": {"cross_layers": 1,
                                                                    "log_durations": True}},
                                            VOCAB).eval()
    rng = np.random.default_rng(0)
    ex = dialogue_example(rng.integers(0, 3, 30), rng.integers(0, 3, 30), VOCAB)
    batch = collate(windows(ex, 16), VOCAB.pad_id)
    with torch.no_grad():
        out = model(**batch)
    keep = batch["durations"] > 0
    want = (out.durations.log() - batch["durations"].float().clamp(min=1).log()).abs()[keep].mean()
    assert float(out.duration_loss) == pytest.approx(float(want), rel=1e-5)
    assert (out.durations > 0).all() and (out.durations <= model.config.max_duration).all()
