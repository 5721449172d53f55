"""The training-free fallback vocoder: fitting, output length, duration model, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.streams import Streams
from speechlm.vocoders import load_vocoder
from speechlm.vocoders.base import predict_durations
from speechlm.vocoders.fallback import FallbackVocoder, fit_from_pairs

SR, RATE, HOP = 16000, 50.0, 320


def _two_unit_audio(seed: int) -> tuple[np.ndarray, Streams]:
    """Alternating 'vowel' (a 150 Hz pulse train) and 'fricative' (noise) runs, with their units."""
    rng = np.random.default_rng(seed)
    durs = rng.integers(3, 8, size=12)
    units = np.arange(12) % 2
    parts = []
    for u, d in zip(units, durs, strict=True):
        n = d * HOP
        if u == 0:
            x = np.zeros(n, np.float32)
            x[:: SR // 150] = 1.0
            x = np.convolve(x, np.hanning(40), mode="same")
        else:
            x = 0.1 * rng.standard_normal(n)
        parts.append(x.astype(np.float32))
    return np.concatenate(parts), Streams(RATE, units=units.astype(np.int64),
                                          durations=durs.astype(np.int64))


@pytest.fixture(scope="module")
def toy_vocoder() -> FallbackVocoder:
    return fit_from_pairs([_two_unit_audio(s) for s in range(3)], n_units=3, frame_rate=RATE,
                          sample_rate=SR)


def test_fit_learns_voicing_and_durations(toy_vocoder):
    v = toy_vocoder
    assert v.voicing[0] > 0.6 > 0.3 > v.voicing[1]  # pulses are voiced, noise is not
    assert abs(np.exp(v.log_f0[0]) - 150) < 15
    assert 3 <= v.mean_dur[0] <= 7 and 3 <= v.mean_dur[1] <= 7
    assert v.counts[2] == 0  # never seen: falls back to global means
    np.testing.assert_allclose(v.mean_dur[2], (v.mean_dur[0] + v.mean_dur[1]) / 2, rtol=0.3)


def test_output_length_follows_durations(toy_vocoder):
    durs = np.array([4, 1, 7, 2])
    wav = toy_vocoder.synthesize(Streams(RATE, units=np.array([0, 1, 0, 2]), durations=durs))
    assert wav.dtype == np.float32
    assert len(wav) == durs.sum() * HOP
    assert np.isfinite(wav).all() and 0 < np.abs(wav).max() <= 0.95 + 1e-6


def test_predicted_durations_when_absent(toy_vocoder):
    units = np.array([0, 1, 0, 1, 0])
    expected = toy_vocoder.predict_durations(units)
    assert len(expected) == 5 and (expected >= 1).all()
    # context (previous unit) moves the means only within the range of observed run lengths
    assert 3 * 5 <= expected.sum() <= 7 * 5
    wav = toy_vocoder.synthesize(Streams(RATE, units=units))
    assert len(wav) == expected.sum() * HOP


def test_predict_durations_keeps_total_length():
    means = np.array([1.4, 2.5])
    d = predict_durations(np.zeros(10, np.int64), means)
    assert d.sum() == 14 and set(d) <= {1, 2}  # rounding each mean alone would give 10


def test_voiced_unit_is_louder_in_low_band(toy_vocoder):
    v = toy_vocoder.synthesize(Streams(RATE, units=np.array([0]), durations=np.array([50])))
    n = toy_vocoder.synthesize(Streams(RATE, units=np.array([1]), durations=np.array([50])))
    spec_v, spec_n = np.abs(np.fft.rfft(v)), np.abs(np.fft.rfft(n))
    low = slice(0, len(spec_v) // 8)  # below 1 kHz
    assert spec_v[low].sum() / spec_v.sum() > spec_n[low].sum() / spec_n.sum()


def test_deterministic_and_roundtrip(toy_vocoder, tmp_path):
    s = Streams(RATE, units=np.array([0, 1, 0]), durations=np.array([5, 5, 5]))
    toy_vocoder.save(tmp_path / "voc")
    again = load_vocoder(tmp_path / "voc")
    assert json.loads((tmp_path / "voc" / "vocoder.json").read_text())["kind"] == "fallback"
    np.testing.assert_array_equal(toy_vocoder.synthesize(s), again.synthesize(s))


def test_bad_inputs_raise_clear_errors(toy_vocoder, tmp_path):
    with pytest.raises(SpeechLMError, match=r"unit ids must be in \[0, 3\)"):
        toy_vocoder.synthesize(Streams(RATE, units=np.array([0, 7])))
    with pytest.raises(SpeechLMError, match="durations"):
        toy_vocoder.synthesize(Streams(RATE, units=np.array([0, 1]), durations=np.array([2])))
    with pytest.raises(SpeechLMError, match="no 'units'"):
        toy_vocoder.synthesize(Streams(RATE))
    with pytest.raises(SpeechLMError, match="not a vocoder directory"):
        load_vocoder(tmp_path)


def test_fit_fallback_vocoder_on_tiny_corpus(tiny_corpus, tiny_tokenizer, tmp_path):
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.tokenizers import load_tokenizer
    from speechlm.vocoders.fallback import fit_fallback_vocoder

    out = fit_fallback_vocoder(tiny_corpus / "manifest.jsonl", tiny_tokenizer, tmp_path / "v",
                               max_hours=0.01)
    voc = load_vocoder(out)
    assert (out / "errors.jsonl").exists()
    assert voc.n_units == 20 and voc.counts.sum() > 0
    utt = read_manifest(tiny_corpus / "manifest.jsonl")[0]
    wav = load_audio(utt.audio)
    streams = load_tokenizer(tiny_tokenizer).encode([wav], 16000)[0]
    audio = voc.synthesize(streams)
    assert len(audio) == streams.durations.sum() * HOP
    assert abs(len(audio) - len(wav)) <= 2 * HOP
