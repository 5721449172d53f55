"""The expressive architecture: save/load, unit-only scoring, sampling by unit budget; pitch
tokens back to per-unit F0 bins for an F0-conditioned vocoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.errors import ConfigError
from speechlm.models import get_architecture, load_speech_lm, save_model_dir
from speechlm.models.sampling import Sampling
from speechlm.models.speech_lm import SpeechLM
from speechlm.sequences.vocab import SpeechVocab
from speechlm.tokenizers.streams import Streams

TINY = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 2}
VOCAB = SpeechVocab.build({"units": 10, "pitch": 6, "style": 3})
ARCH = get_architecture("expressive")


@pytest.fixture(scope="module")
def lm() -> SpeechLM:
    model = ARCH.build(TINY, VOCAB, seed=0).eval()
    return SpeechLM(model=model, vocab=VOCAB, dir=".", meta={"architecture": "expressive"},
                    architecture=ARCH)


def _prompt(n: int, seed: int) -> Streams:
    """``n`` units of 1-4 frames at 50 Hz with pitch (12.5 Hz) and style (1 Hz) over them."""
    rng = np.random.default_rng(seed)
    durations = rng.integers(1, 5, n)
    seconds = durations.sum() / 50
    return Streams(50.0, units=rng.integers(0, 10, n), durations=durations,
                   pitch=rng.integers(0, 6, int(np.ceil(seconds * 12.5))),
                   style=rng.integers(0, 3, int(np.ceil(seconds))), pitch_rate=12.5,
                   style_rate=1.0)


def test_save_load_round_trip(lm, tmp_path):
    save_model_dir(tmp_path, lm.model, VOCAB, {}, None, architecture="expressive")
    loaded = load_speech_lm(tmp_path)
    assert loaded.architecture.name == "expressive" and loaded.vocab.layout == VOCAB.layout
    ex = lm.speech_example(_prompt(8, 0))
    ids = torch.tensor([ex.input_ids])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, lm.model(ids).logits)


def test_scoring_counts_only_unit_positions(lm):
    exs = [lm.speech_example(_prompt(n, n)) for n in (5, 12)]  # different lengths: padding
    scores = lm.score(exs, batch_size=2)
    lo, n = VOCAB.range("units")
    for ex, (total, mean) in zip(exs, scores, strict=True):
        ids = torch.tensor([ex.input_ids])
        with torch.no_grad():
            logp = lm.model(ids).logits[0, :-1].log_softmax(-1)  # (T-1, V)
        target = ids[0, 1:]
        lp = logp.gather(1, target[:, None])[:, 0]
        is_unit = (target >= lo) & (target < lo + n)
        assert 0 < int(is_unit.sum()) < len(target)  # pitch and style are left out
        assert total == pytest.approx(float(lp[is_unit].sum()), abs=1e-4)
        assert mean == pytest.approx(float(lp[is_unit].mean()), abs=1e-4)


def test_generation_is_seeded_and_counts_units(lm):
    prompts = [_prompt(6, 1), _prompt(9, 2)]
    first = lm.generate(prompts, Sampling(seed=3), max_new=[5, 12], min_new=[5, 12])
    again = lm.generate(prompts, Sampling(seed=3), max_new=[5, 12], min_new=[5, 12])
    for (new, stopped), (same, _), budget, prompt in zip(first, again, [5, 12], prompts,
                                                         strict=True):
        assert new.equals(same)
        assert not stopped and len(new.units) == budget  # EOS not before min_new units
        assert new.durations is None and (new.pitch_rate, new.style_rate) == (12.5, 1.0)
        assert new.units.max() < 10 and new.pitch.max() < 6 and new.style.max() < 3
        # pitch and style at their fixed rates over the units' estimated time
        seconds = budget * prompt.durations.mean() / 50
        assert len(new.pitch) == int(np.ceil(seconds * 12.5 - 1e-9))
        assert len(new.style) == int(np.ceil(seconds - 1e-9))
    for (new, _), budget in zip(lm.generate(prompts, Sampling(seed=4), max_new=[3, 4]), [3, 4],
                                strict=True):
        assert len(new.units) <= budget


def test_a_prompt_without_prosody_is_refused(lm):
    bare = Streams(50.0, units=np.array([1, 2]), durations=np.array([2, 2]))
    with pytest.raises(ConfigError, match=r"no 'pitch' column.*`prosody` option"):
        lm.speech_example(bare)


def _glide(seconds: float, seed: int, sr: int = 16000) -> np.ndarray:
    """A harmonic tone whose F0 wanders (100-210 Hz), with silent gaps: a real F0 contour."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = (140 + 50 * np.sin(2 * np.pi * rng.uniform(0.3, 0.9) * t + rng.uniform(0, 6))
          + 20 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = np.sin(2 * np.pi * 0.8 * t + seed) > -0.6
    return (0.2 * voiced * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)


def test_pitch_tokens_give_the_per_unit_f0_bins_back():
    from speechlm.tokenizers.prosody import Prosody

    prosody = Prosody.fit([(_glide(3.0, s), None) for s in range(4)], 16000, n_pitch=32,
                          n_style=4)
    durations = np.random.default_rng(0).integers(1, 8, 36)  # 50 Hz units over ~2.9 s
    s = Streams(50.0, units=np.zeros(len(durations), np.int64), durations=durations)
    prosody.annotate(s, _glide(3.0, 7), None)  # f0 bins from the contour, and pitch tokens
    bins = prosody.unit_bins_from_pitch(s.pitch, s.pitch_rate, s.durations, s.frame_rate)
    assert bins.dtype == np.int64 and len(bins) == len(s.f0)
    assert ((bins > 0) == (s.f0 > 0)).mean() > 0.9  # voicing
    assert np.corrcoef(bins, s.f0)[0, 1] > 0.9
    with pytest.raises(ValueError, match="windows of 8 frames"):
        prosody.unit_bins_from_pitch(s.pitch, 25.0, s.durations, s.frame_rate)


def test_generated_pitch_reaches_the_vocoder_as_f0_bins():
    """An expressive continuation (units and pitch, no durations) gets durations from the
    vocoder's tables and per-unit F0 bins from the tokenizer's pitch codebook."""
    from types import SimpleNamespace

    from speechlm.generate.continuation import f0_from_pitch
    from speechlm.tokenizers.prosody import Prosody

    prosody = Prosody.fit([(_glide(3.0, s), None) for s in range(4)], 16000, n_pitch=32,
                          n_style=4)
    ref = Streams(50.0, units=np.arange(36) % 5, durations=np.full(36, 4))
    prosody.annotate(ref, _glide(3.0, 7), None)
    generated = Streams(50.0, units=ref.units, pitch=ref.pitch, style=ref.style,
                        pitch_rate=ref.pitch_rate, style_rate=ref.style_rate)
    vocoder = SimpleNamespace(durations=SimpleNamespace(
        predict_durations=lambda units: np.full(len(units), 4)))
    spoken = f0_from_pitch(generated, SimpleNamespace(prosody=prosody), vocoder)
    assert np.array_equal(spoken.durations, ref.durations)
    assert np.array_equal(spoken.f0, prosody.unit_bins_from_pitch(
        ref.pitch, ref.pitch_rate, ref.durations, 50.0))
    assert np.corrcoef(spoken.f0, ref.f0)[0, 1] > 0.9  # the pitch the tokens carry
    # nothing to do: a tokenizer without prosody, or streams that already have F0
    assert f0_from_pitch(generated, SimpleNamespace(prosody=None), vocoder) is generated
    assert f0_from_pitch(ref, SimpleNamespace(prosody=prosody), vocoder) is ref
