"""Preference pairs: story texts, grammaticality, spoken pairs joined by tokens, self-ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speechlm.corpus.grammar import STORIES
from speechlm.corpus.preferences import story_pair_texts
from speechlm.errors import ConfigError
from speechlm.evaluate.grammaticality import attested_trigrams, grammatical_rate, grammaticality


def _ending_of(text: str) -> dict | None:
    """Which scenario's ending ``text`` is, with its fillers (None if none)."""
    from speechlm.corpus.grammar import ending_scenario

    found = ending_scenario(text)
    return None if found is None else {"scenario": found[0], **found[1]}


def test_story_pairs_choose_the_coherent_ending():
    pairs = story_pair_texts(40, seed=3)
    assert [p["kind"] for p in pairs[:4]] == ["ssc", "tsc", "ssc", "tsc"]
    for p in pairs:
        name = p["prompt"].split()[0]  # every story starts with its character's name
        chosen, rejected = _ending_of(p["chosen"]), _ending_of(p["rejected"])
        assert chosen["scenario"] == p["scenario"] and chosen.get("name", name) == name
        assert rejected["scenario"] != p["scenario"]  # an ending of another story
        if p["kind"] == "ssc" and "name" in rejected:  # same character, wrong scenario
            assert rejected["name"] == name
    assert {p["scenario"] for p in pairs} == set(range(len(STORIES)))


def test_story_pairs_keep_to_the_given_scenarios():
    pairs = story_pair_texts(30, seed=0, scenarios=[1, 4])
    assert {p["scenario"] for p in pairs} == {1, 4}
    with pytest.raises(ConfigError, match="scenarios: give indices in 0..9"):
        story_pair_texts(3, seed=0, scenarios=[12])


def test_grammaticality_known_cases():
    known = attested_trigrams(20_000)
    assert grammaticality("then anna was not hungry", known) == 1.0
    assert grammaticality("the big dog sees a small cat", known) == 1.0
    for broken in ("the dogs is happy", "these dog sleeps", "a dogs sleep",  # agreement
                   "the ball runs quickly"):  # a thing as a subject
        assert grammaticality(broken, known) == 0.0, broken
    assert grammaticality("the the dog runs", known) == 0.5  # a repeated word
    assert grammaticality("the dog", known) is None
    rate = grammatical_rate(["then anna was not hungry", "the dogs is happy", "ok"], known)
    assert rate == {"rate": 0.5, "mean": 0.5, "n_judged": 2, "n_too_short": 1}


def test_the_attested_sample_covers_fresh_grammar_text():
    """Legal class trigrams are all attested: fresh utterances (another seed) are grammatical."""
    from speechlm.corpus.grammar import sample_sentences

    assert grammatical_rate(sample_sentences(2000, seed=999))["rate"] == 1.0


@pytest.mark.slow
def test_spoken_story_pairs_join_their_tokens(tiny_tokenizer, tmp_path):
    from speechlm.alignment.pairs import story_pair_rows, write_pair_splits
    from speechlm.corpus.preferences import synthesize_story_pairs
    from speechlm.tokenizers.job import load_token_dataset, tokenize_manifest
    from speechlm.train.data import read_info

    summary = synthesize_story_pairs(tmp_path / "pairs", 4, seed=1, progress=False)
    assert summary["pairs"] == 4 and summary["hours"] > 0
    tokenize_manifest(tmp_path / "pairs" / "manifest.jsonl", tiny_tokenizer, tmp_path / "tok",
                      progress=False)
    rows, left_out = story_pair_rows(tmp_path / "pairs", tmp_path / "tok")
    assert left_out == 0
    info = read_info(tmp_path / "tok")
    counts = write_pair_splits(tmp_path / "ds", rows, info["tokenizer"], info["n_units"],
                               info["frame_rate"], valid_fraction=0.25)
    assert counts == {"train": 3, "valid": 1}
    parts = {r["id"]: r["units"] for r in load_token_dataset(tmp_path / "tok").to_list()}
    rows = load_token_dataset(tmp_path / "ds" / "train").to_list() + load_token_dataset(
        tmp_path / "ds" / "valid").to_list()
    assert sorted(r["id"] for r in rows) == [f"pair{i:06d}" for i in range(4)]
    for r in rows:
        for part in ("prompt", "chosen", "rejected"):
            assert r[f"{part}_units"] == parts[f"{r['id']}.{part}"]
    info = json.loads((tmp_path / "ds" / "train" / "info.json").read_text())
    assert (tmp_path / "ds" / "train" / info["tokenizer"]).resolve() == tiny_tokenizer.resolve()


def test_judge_prefers_the_grammatical_transcript(tiny_text_lm):
    from speechlm.alignment.judge import Judge

    judge = Judge(tiny_text_lm)
    good, bad, short = judge.scores(["then anna was not hungry",
                                     "hungry not was anna then then", "anna"])
    assert good > bad and good[0] == 1.0 and short[0] == -1.0
    assert np.isfinite(good[1]) and np.isfinite(bad[1])


@pytest.mark.slow
def test_self_ranked_pairs_keep_the_judges_best_and_worst(model_with_vocoder, tiny_corpus,
                                                         tiny_text_lm, tmp_path):
    from speechlm.alignment.pairs import self_ranked_pairs

    rows, res = self_ranked_pairs(model_with_vocoder, tiny_corpus / "manifest.jsonl", tmp_path,
                            n_prompts=4, prompt_seconds=1.0, n_samples=3, max_seconds=1.0,
                            min_seconds=0.5, text_lm=tiny_text_lm, max_auto_bleu=1.1,
                            progress=False)
    ranking = [json.loads(x) for x in (tmp_path / "ranking.jsonl").read_text().splitlines()]
    assert res["prompts"] == len(ranking) == 4
    for r in ranking:  # chosen: the highest score, rejected: the lowest
        scores = [tuple(s) for s in r["scores"]]
        assert scores[r["chosen"]] == max(scores) and scores[r["rejected"]] == min(scores)
        assert r["kept"] == (max(scores) > min(scores))
    kept = [r["prompt"] for r in ranking if r["kept"]]
    assert res["pairs"] == len(kept) > 0
    assert [r["id"] for r in rows] == kept
    assert all(r["kind"] == "self_ranked" and r["prompt_units"] and r["chosen_units"]
               for r in rows)
