"""Benchmark sets: ZeroSpeech/StoryCloze layouts, pairing, voices, readers (ours and releases)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from speechlm.cli import app
from speechlm.corpus.benchmarks import (
    LEXICAL_COLUMNS,
    MIN_PER_MILLION,
    SYNTACTIC_COLUMNS,
    read_gold,
    read_storycloze,
)
from speechlm.corpus.grammar import SYNTAX_TYPES, sample_sentences, vocabulary, words_of
from speechlm.corpus.phones import is_english_word, split_mnemonics
from speechlm.corpus.synth import HELDOUT_VOICES, TRAIN_VOICES
from speechlm.errors import SpeechLMError


def header(path):
    with open(path) as f:
        return next(csv.reader(f))


def pairs_of(rows):
    by_id = {}
    for r in rows:
        by_id.setdefault(r["id"], []).append(r)
    return by_id


def test_lexical_layout(tiny_benchmark):
    dev = tiny_benchmark / "lexical" / "dev"
    assert header(dev / "gold.csv") == LEXICAL_COLUMNS
    rows = read_gold(tiny_benchmark, "lexical")
    pairs = pairs_of(rows)
    assert len(pairs) == 12 and len(rows) == 24
    vocab = vocabulary()
    for pair in pairs.values():
        assert sorted(r["correct"] for r in pair) == [0, 1]
        assert len({r["voice"] for r in pair}) == 1 and pair[0]["voice"] in HELDOUT_VOICES
        word, fake = sorted(pair, key=lambda r: -r["correct"])
        assert word["word"] in vocab and word["frequency"] >= MIN_PER_MILLION
        assert fake["word"] not in vocab and fake["phones"] != word["phones"]
        wp, fp = word["phones"].split(), fake["phones"].split()
        assert len(wp) == len(fp) == word["length"]
        # the documented rule: one phone changed, two in words of four or more phones
        assert sum(a != b for a, b in zip(wp, fp, strict=True)) == (2 if len(wp) >= 4 else 1)
        assert not is_english_word(fp)
        for r in pair:
            info = sf.info(r["path"])
            assert info.samplerate == 16000 and info.frames > 1600
            assert len(r["filename"]) >= 8 and r["filename"].isalpha()


def test_lexical_words_occur_in_training_text(tiny_benchmark):
    train_words = {w for t in sample_sentences(3000, seed=0) for w in words_of(t)}
    rows = read_gold(tiny_benchmark, "lexical")
    assert all(r["word"] in train_words for r in rows if r["correct"] == 1)


def test_syntactic_layout(tiny_benchmark):
    dev = tiny_benchmark / "syntactic" / "dev"
    assert header(dev / "gold.csv") == SYNTACTIC_COLUMNS
    rows = read_gold(tiny_benchmark, "syntactic")
    pairs = pairs_of(rows)
    assert len(pairs) == 12
    assert {r["type"] for r in rows} == set(SYNTAX_TYPES)
    for pair in pairs.values():
        good, bad = sorted(pair, key=lambda r: -r["correct"])
        assert good["voice"] == bad["voice"] in HELDOUT_VOICES and good["type"] == bad["type"]
        assert good["transcription"] != bad["transcription"]
        assert abs(sf.info(good["path"]).duration - sf.info(bad["path"]).duration) < 1.5


@pytest.mark.parametrize("kind", ["ssc", "tsc"])
def test_storycloze_layout(tiny_benchmark, kind):
    items = read_storycloze(tiny_benchmark, kind)
    assert len(items) == 6
    folder = tiny_benchmark / "storycloze" / ("sSC" if kind == "ssc" else "tSC")
    with open(folder / "gold.csv") as f:
        rows = list(csv.DictReader(f))
    words = {r["filename"]: len(r["transcription"].split()) for r in rows}
    for item in items:
        assert item["voice"] in HELDOUT_VOICES and item["voice"] not in TRAIN_VOICES
        assert item["correct_path"] != item["incorrect_path"]
        for path in (item["correct_path"], item["incorrect_path"]):
            # the whole story is spoken: at least ~0.15 s of audio per word of its transcription
            assert sf.info(path).duration > 0.15 * words[Path(path).stem]
    for i in range(0, len(rows), 2):  # same context, different endings
        a, b = rows[i]["transcription"], rows[i + 1]["transcription"]
        assert a.rsplit(".", 2)[0] == b.rsplit(".", 2)[0] and a != b


def test_benchmark_cli(tmp_path):
    res = CliRunner().invoke(app, ["synth", "benchmark", "--out", str(tmp_path), "--seed", "1",
                                   "--pairs", "2"])
    assert res.exit_code == 0, res.output
    assert len(read_gold(tmp_path, "syntactic")) == 4
    assert len(read_gold(tmp_path / "lexical" / "dev", "lexical")) == 4  # the split folder too


def test_read_official_layouts(tmp_path):
    """The ZeroSpeech 2021 gold.csv as released (NaN frequency) and sSC/tSC <id>_correct files."""
    dev = tmp_path / "zr" / "lexical" / "dev"
    dev.mkdir(parents=True)
    (dev / "gold.csv").write_text(
        "id,filename,voice,frequency,word,phones,length,correct\n"
        "1,aAbcd,Alex,12.5,cat,k a t,3,1\n1,aAbce,Alex,,kat,k a d,3,0\n")
    rows = read_gold(tmp_path / "zr", "lexical")
    assert rows[0]["frequency"] == 12.5 and rows[1]["frequency"] is None
    assert rows[0]["length"] == 3 and rows[0]["path"].endswith("lexical/dev/aAbcd.wav")
    wav = np.zeros(1600, np.float32)
    for kind in ("sSC", "tSC"):
        (tmp_path / "rel" / kind).mkdir(parents=True)
        for i in ("0", "17"):
            for side in ("correct", "incorrect"):
                sf.write(tmp_path / "rel" / kind / f"{i}_{side}.wav", wav, 16000)
    items = read_storycloze(tmp_path / "rel", "tsc")
    assert sorted(x["id"] for x in items) == ["0", "17"]
    assert all(x["correct_path"].endswith("_correct.wav") for x in items)


def test_reader_errors(tmp_path):
    with pytest.raises(SpeechLMError, match="no lexical/dev/gold.csv"):
        read_gold(tmp_path, "lexical")
    with pytest.raises(SpeechLMError, match="unknown ZeroSpeech task"):
        read_gold(tmp_path, "semantic")
    with pytest.raises(SpeechLMError, match="no ssc StoryCloze folder"):
        read_storycloze(tmp_path, "ssc")
    (tmp_path / "sSC").mkdir()
    sf.write(tmp_path / "sSC" / "3_correct.wav", np.zeros(160, np.float32), 16000)
    with pytest.raises(SpeechLMError, match="without both endings"):
        read_storycloze(tmp_path, "ssc")


def test_mnemonics_and_dictionary_check():
    assert split_mnemonics("f'El") == ["f", "'E", "l"]
    assert split_mnemonics("tS'Ildr@n") == ["tS", "'I", "l", "d", "r", "@", "n"]
    assert split_mnemonics("x!") is None
    assert is_english_word(["d", "'0", "g"]) and is_english_word(["p", "'A@", "k"])
    assert not is_english_word(["d", "'0", "S", "k"])
