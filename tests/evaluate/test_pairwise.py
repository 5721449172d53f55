"""The official ZeroSpeech 2021 accuracy rule on hand-made gold/score files with known answers."""

from __future__ import annotations

import csv
import math

import pytest

from speechlm.errors import SpeechLMError
from speechlm.evaluate.pairwise import pairwise_accuracy
from speechlm.evaluate.zerospeech import (
    accuracy,
    frequency_band,
    read_submission,
    validate_submission,
    write_submission,
)


def _rows(spec):
    """spec: (id, voice, correct, score, extra) -> (rows, scores)."""
    rows, scores = [], []
    for n, (i, voice, correct, score, *extra) in enumerate(spec):
        rows.append({"id": i, "voice": voice, "correct": correct, "filename": f"f{n}",
                     **(extra[0] if extra else {})})
        scores.append(score)
    return rows, scores


def test_ties_and_voices_average_per_id_then_over_ids():
    rows, scores = _rows([
        # id 0: voice a wins (1), voice b ties (0.5) -> 0.75
        (0, "a", 1, -1.0), (0, "a", 0, -2.0),
        (0, "b", 1, -3.0), (0, "b", 0, -3.0),
        # id 1: one voice, loses -> 0
        (1, "a", 0, -1.0), (1, "a", 1, -5.0),
        # id 2: three voices: win, win, lose -> 2/3
        (2, "a", 1, 0.0), (2, "a", 0, -1.0),
        (2, "b", 1, 0.0), (2, "b", 0, -1.0),
        (2, "c", 1, -9.0), (2, "c", 0, -1.0),
    ])
    r = pairwise_accuracy(rows, scores)
    assert r["accuracy"] == pytest.approx((0.75 + 0 + 2 / 3) / 3)
    assert r["n_items"] == 3 and r["n_pairs"] == 6 and r["n_skipped"] == 0


def test_pairing_uses_id_and_voice_not_row_order():
    rows, scores = _rows([(0, "b", 0, -2.0), (1, "a", 1, -1.0), (0, "a", 1, -9.0),
                          (1, "a", 0, -3.0), (0, "b", 1, -1.0), (0, "a", 0, -1.0)])
    # id 0: voice a loses, voice b wins -> 0.5; id 1 wins -> 1
    assert pairwise_accuracy(rows, scores)["accuracy"] == pytest.approx(0.75)


def test_several_incorrect_rows_are_each_compared():
    rows, scores = _rows([(0, "a", 1, -2.0), (0, "a", 0, -1.0), (0, "a", 0, -3.0),
                          (0, "a", 0, -2.0)])
    assert pairwise_accuracy(rows, scores)["accuracy"] == pytest.approx((0 + 1 + 0.5) / 3)


def test_nan_scores_skip_their_pairs():
    rows, scores = _rows([(0, "a", 1, math.nan), (0, "a", 0, -1.0),
                          (1, "a", 1, -1.0), (1, "a", 0, -2.0)])
    r = pairwise_accuracy(rows, scores)
    assert r["accuracy"] == 1.0 and r["n_items"] == 1 and r["n_skipped"] == 1


def test_missing_side_is_a_broken_gold_file():
    rows, scores = _rows([(0, "a", 1, -1.0), (0, "b", 0, -1.0)])
    with pytest.raises(SpeechLMError, match="both a correct and an incorrect"):
        pairwise_accuracy(rows, scores)


def test_frequency_bands_follow_the_official_cut():
    # pandas.cut([0, 1, 5, 20, 100, inf], right=False)
    assert [frequency_band(f) for f in (0, 0.5, 1, 4.9, 5, 19, 20, 99.9, 100, 1e6)] == [
        "oov", "oov", "1-5", "1-5", "6-20", "6-20", "21-100", "21-100", ">100", ">100"]
    assert frequency_band(None) == "n/a"


def test_lexical_breakdowns_by_frequency_and_length():
    def pair(i, freq, length, win):
        extra = {"frequency": freq, "length": length}
        return [(i, "a", 1, 0.0 if win else -2.0, extra), (i, "a", 0, -1.0, extra)]

    spec = pair(0, 0, 3, True) + pair(1, 3, 3, False) + pair(2, 3, 5, True) + \
        pair(3, 50, 10, True) + pair(4, 500, 5, False)
    r = accuracy("lexical", *_rows(spec))
    assert r["accuracy"] == pytest.approx(3 / 5)
    freq = r["by_frequency"]
    assert list(freq) == ["oov", "1-5", "21-100", ">100"]  # official order, empty bands left out
    assert freq["oov"]["accuracy"] == 1.0 and freq["1-5"]["accuracy"] == 0.5
    assert freq["1-5"]["n_items"] == 2 and freq[">100"]["accuracy"] == 0.0
    assert list(r["by_length"]) == ["3", "5", "10"]  # numeric order
    assert r["by_length"]["5"]["accuracy"] == 0.5


def test_syntactic_accuracy_by_type_groups_ids_within_type():
    spec = [(0, "a", 1, -1.0, {"type": "agreement", "subtype": "x"}),
            (0, "a", 0, -2.0, {"type": "agreement", "subtype": "x"}),
            # the same id under another type is another item (official grouping)
            (0, "a", 1, -3.0, {"type": "word_order", "subtype": "y"}),
            (0, "a", 0, -2.0, {"type": "word_order", "subtype": "y"})]
    r = accuracy("syntactic", *_rows(spec))
    assert r["n_items"] == 2 and r["accuracy"] == 0.5
    assert r["by_type"]["agreement"]["accuracy"] == 1.0
    assert r["by_type"]["word_order"]["accuracy"] == 0.0


def test_submission_file_format_round_trip(tmp_path):
    rows, scores = _rows([(0, "a", 1, -1.25), (0, "a", 0, -1.0 / 3), (1, "a", 1, math.nan),
                          (1, "a", 0, -7.0)])
    path = write_submission(tmp_path / "lexical" / "dev.txt", [r["filename"] for r in rows],
                            scores)
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and all(len(line.split(" ")) == 2 for line in lines)
    for line in lines:  # what the official validator checks: name without extension, float
        name, score = line.split(" ")
        assert "." not in name and "/" not in name
        float(score)
    back = read_submission(path)
    assert back["f1"] == -1.0 / 3  # full precision: no ties created by rounding
    validate_submission(path, rows)
    with pytest.raises(SpeechLMError, match="missing"):
        validate_submission(path, rows + [{"filename": "f9"}])


def test_bad_submission_lines_are_named(tmp_path):
    p = tmp_path / "dev.txt"
    p.write_text("a 1.0\nb\n")
    with pytest.raises(SpeechLMError, match="dev.txt:2"):
        read_submission(p)
    p.write_text("a 1.0\na 2.0\n")
    with pytest.raises(SpeechLMError, match="duplicate"):
        read_submission(p)


def test_gold_csv_written_by_hand_scores_as_expected(tmp_path):
    """A gold.csv in the ZeroSpeech layout, read by the corpus reader, scored from a file."""
    from speechlm.corpus.benchmarks import read_gold

    dev = tmp_path / "lexical" / "dev"
    dev.mkdir(parents=True)
    gold = [("w0", 0, "v1", 3, "cat", 1, -1.0), ("n0", 0, "v1", 3, "kat", 0, -2.0),
            ("w1", 0, "v2", 3, "cat", 1, -2.0), ("n1", 0, "v2", 3, "kat", 0, -2.0),
            ("w2", 1, "v1", 0, "dog", 1, -5.0), ("n2", 1, "v1", 0, "dok", 0, -1.0)]
    with open(dev / "gold.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "filename", "voice", "frequency", "word", "phones", "length",
                    "correct"])
        for name, i, voice, freq, word, correct, _ in gold:
            w.writerow([i, name, voice, freq, word, "k a t", 3, correct])
    rows = read_gold(tmp_path, "lexical")
    sub = write_submission(tmp_path / "S" / "lexical" / "dev.txt", [g[0] for g in gold],
                           [g[-1] for g in gold])
    validate_submission(sub, rows)
    scores = read_submission(sub)
    r = accuracy("lexical", rows, [scores[row["filename"]] for row in rows])
    assert r["accuracy"] == pytest.approx((0.75 + 0.0) / 2)
    assert r["by_frequency"]["1-5"]["accuracy"] == 0.75
    assert r["by_frequency"]["oov"]["accuracy"] == 0.0
