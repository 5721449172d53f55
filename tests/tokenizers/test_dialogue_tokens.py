"""Two-channel dialogues -> frame units per channel: frame alignment, the silence unit, the two
ways of cutting a channel, and unusable files skipped and listed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from speechlm.tokenizers.dialogue import (
    UNFILLED,
    channel_frames,
    speech_regions,
    tokenize_dialogues,
    write_dialogue_tokens,
)
from speechlm.tokenizers.streams import Streams

RATE, HOP = 16000, 320


class LoudnessTokenizer:
    """Unit 2 for a loud 20-ms frame, 1 for a quiet one (de-duplicated, with durations)."""

    kind, n_units, frame_rate, sample_rate = "loudness", 4, 50.0, RATE

    def encode(self, wavs, sample_rate, speakers=None):
        out = []
        for w in wavs:
            n = len(w) // HOP + 1
            padded = np.pad(w, (0, n * HOP - len(w)))
            rms = np.sqrt(np.mean(padded.reshape(n, HOP) ** 2, axis=1))
            frames = np.where(rms > 0.01, 2, 1)
            starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
            out.append(Streams(self.frame_rate, units=frames[starts],
                               durations=np.diff(np.r_[starts, n])))
        return out


def _tone(seconds: float, spans: list[tuple[float, float]]) -> np.ndarray:
    wav = np.zeros(int(seconds * RATE), np.float32)
    t = np.arange(len(wav)) / RATE
    for s, e in spans:
        on = (t >= s) & (t < e)
        wav[on] = 0.3 * np.sin(2 * np.pi * 220 * t[on])
    return wav


def test_speech_regions_are_merged_padded_and_on_the_frame_grid():
    wav = _tone(4.0, [(1.0, 1.5), (1.8, 2.0), (3.2, 3.5)])
    regions = speech_regions(wav, RATE, region_gap=0.5, pad=0.1, hop=HOP)
    assert len(regions) == 2  # the first two are 0.3 s apart: one region
    assert all(a % HOP == 0 for a, _ in regions)
    assert regions[0][0] == pytest.approx(0.9 * RATE, abs=HOP) and \
        regions[0][1] == pytest.approx(2.1 * RATE, abs=HOP)


@pytest.mark.parametrize("segments", ["whole", "speech"])
def test_channel_frames_keep_the_channel_time_grid(segments):
    tok = LoudnessTokenizer()
    wav = _tone(3.0, [(1.0, 1.5)])
    frames, quiet = channel_frames(tok, wav, segments, region_gap=0.5, pad=0.2)
    assert len(frames) == len(wav) // HOP + 1
    assert (frames[51:75] == 2).all() and frames[76] != 2 and frames[49] != 2
    if segments == "speech":  # outside the padded region nothing was tokenised
        assert (frames[:30] == UNFILLED).all() and (frames[90:] == UNFILLED).all()
        assert quiet.most_common(1)[0][0] == 1  # the pads are quiet frames
    else:
        assert (frames[:45] == 1).all() and quiet[1] > 100


def test_tokenize_dialogues_fills_silence_and_lists_unusable_files(tmp_path):
    tok = LoudnessTokenizer()
    good = tmp_path / "good.wav"
    a, b = _tone(3.0, [(0.5, 1.2)]), _tone(3.0, [(1.5, 2.5)])
    sf.write(good, np.stack([a, b], 1), RATE)
    mono = tmp_path / "mono.wav"
    sf.write(mono, a, RATE)
    records = [{"id": i, "audio": str(p), "duration": 3.0,
                "channels": [{"channel": 0, "speaker": "x"}, {"channel": 1, "speaker": "y"}]}
               for i, p in (("good", good), ("mono", mono), ("missing", tmp_path / "no.wav"))]
    rows, errors, silence = tokenize_dialogues(tok, records, "speech", region_gap=0.5, pad=0.2)
    assert silence == 1 and [r["id"] for r in rows] == ["good"]
    assert {e["id"]: e["error"] for e in errors}["mono"].startswith("mono (1 channel)")
    assert {e["id"] for e in errors} == {"mono", "missing"}
    row = rows[0]
    assert len(row["units_a"]) == len(row["units_b"]) == 151
    assert set(np.unique(row["units_a"])) == {1, 2}  # no unfilled frame left
    assert (row["units_a"][26:60] == 2).all() and (row["units_b"][76:125] == 2).all()
    info = write_dialogue_tokens(tmp_path / "tokens", rows, errors, tok, tmp_path,
                                 silence_unit=silence, segments="speech")
    assert info["dialogues"] == 1 and info["skipped"] == 2
    saved = json.loads((tmp_path / "tokens" / "info.json").read_text())
    assert saved["silence_unit"] == 1 and saved["n_units"] == 4 and saved["frame_rate"] == 50.0
    assert len((tmp_path / "tokens" / "errors.jsonl").read_text().splitlines()) == 2
    # a given silence unit is used as it is (the valid split takes the training one)
    rows, _, silence = tokenize_dialogues(tok, records[:1], "speech", 0.5, 0.2, silence=3)
    assert silence == 3 and 3 in rows[0]["units_a"]
