"""Held-out dialogue prompts continued and made audible: four sources of equal length, and
dialogues that cannot be used skipped and listed (a stub vocoder and a random tiny DLM)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from speechlm.generate.dialogue import SOURCES, DialogueSampling, continue_dialogues, speak_channels
from speechlm.models import get_architecture
from speechlm.models.speech_lm import SpeechLM
from speechlm.sequences.vocab import SpeechVocab

RATE, FRAME_RATE = 16000, 50.0
VOCAB = SpeechVocab.build({"units": 8})
MODEL = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
         "dialogue": {"cross_layers": 1}}


class StubTokenizer:
    sample_rate, frame_rate = RATE, FRAME_RATE


class StubVocoder:
    """A tone whose pitch is the unit (0: silence), so channels are told apart in tests."""

    sample_rate = RATE

    def synthesize(self, streams):
        frames = np.repeat(streams.units, streams.durations)
        t = np.arange(len(frames) * 320) / RATE
        f = np.repeat(frames, 320).astype(float)
        return (0.1 * (f > 0) * np.sin(2 * np.pi * 100 * f * t)).astype(np.float32)


def _lm(tmp_path) -> SpeechLM:
    model = get_architecture("dgslm").build(MODEL, VOCAB).eval()
    model.config.silence_unit = 0
    return SpeechLM(model=model, vocab=VOCAB, dir=tmp_path, _tokenizers={"speech": StubTokenizer()},
                    meta={"architecture": "dgslm", "seq_len": 32, "frame_rate": FRAME_RATE})


def test_speak_channels_keeps_each_channel_apart():
    frames = np.array([[0, 0, 3, 3], [5, 0, 0, 0]])
    audio = speak_channels(StubVocoder(), frames, FRAME_RATE, [None, None])
    assert audio.shape == (4 * 320, 2)
    assert np.abs(audio[:640, 0]).max() == 0 and np.abs(audio[640:, 0]).max() > 0
    assert np.abs(audio[:320, 1]).max() > 0 and np.abs(audio[320:, 1]).max() == 0


def test_four_sources_per_prompt_and_unusable_dialogues_listed(tmp_path):
    rng = np.random.default_rng(0)
    rows, records = [], {}
    for rid, seconds, channels in (("long", 2.0, 2), ("short", 0.5, 2), ("mono", 2.0, 1),
                                   ("long2", 1.6, 2)):
        n = int(seconds * FRAME_RATE)
        rows.append({"id": rid, "units_a": rng.integers(0, 8, n).tolist(),
                     "units_b": rng.integers(0, 8, n).tolist()})
        path = tmp_path / f"{rid}.wav"
        wav = rng.normal(0, 0.05, (int(seconds * RATE), channels)).astype(np.float32)
        sf.write(path, wav if channels == 2 else wav[:, 0], RATE)
        records[rid] = {"id": rid, "audio": str(path)}
    out = tmp_path / "gen"
    settings = DialogueSampling(prompt_seconds=0.6, seconds=0.8, switch_seconds=0.1,
                                chunk_frames=4)
    info = continue_dialogues(_lm(tmp_path), StubVocoder(), rows, records, out, settings,
                              max_prompts=5, full=1)
    assert info["prompt_ids"] == ["long", "long2"] and info["skipped"] == 2
    reasons = {s["id"]: s["reason"] for s in info["skipped_dialogues"]}
    assert reasons["short"].startswith("shorter than prompt + continuation (0.5 s < 1.4 s)")
    assert reasons["mono"].startswith("audio: ")
    for source in SOURCES:
        for rid in ("long", "long2"):
            wav, rate = sf.read(out / source / f"{rid}.wav", always_2d=True)
            assert rate == RATE and wav.shape == (int(0.8 * RATE), 2), (source, rid)
    # the data source is the dialogue's own audio over the compared stretch
    data, _ = sf.read(out / "data" / "long.wav", dtype="float32")
    own, _ = sf.read(tmp_path / "long.wav", dtype="float32")
    np.testing.assert_allclose(data, own[int(0.6 * RATE): int(1.4 * RATE)], atol=1e-4)
    units = json.loads((out / "units.json").read_text())
    assert len(units["units"]["long"]["model"][0]) == 40 and units["prompt_frames"] == 30
    assert (out / "full" / "long_model.wav").exists()
    assert not (out / "full" / "long2_model.wav").exists()
    assert set(info["speech_frames"]) == {"resynth", "model", "baseline"}
