"""Spoken instructions from the stories: extractive items, honest splits, spoken and tokenised."""

from __future__ import annotations

import json
import re

import pytest

from speechlm.corpus.grammar import vocabulary, words_of
from speechlm.corpus.instructions import (
    QTYPES,
    QUESTION_WORDS,
    QUESTIONS,
    SLOT_VALUES,
    instruction_items,
    qa_items,
    story_key,
)
from speechlm.errors import ConfigError

WORDS = re.compile(r"[a-z]+( [a-z]+)*")


def test_items_are_deterministic_extractive_and_in_the_grammar():
    items = qa_items(80, seed=3)
    assert items == qa_items(80, seed=3) and items != qa_items(80, seed=4)
    known = vocabulary() | set(QUESTION_WORDS)
    for it in items:
        assert WORDS.fullmatch(it["question"]), it["question"]  # words only, no "?"
        assert it["prompt"] == it["context"] + " " + it["question"]
        context = words_of(it["context"])
        assert it["answer"] in context and it["answer"] in words_of(it["response"])
        assert it["name"] in context and not {"he", "she"} & set(context)  # no pronoun
        assert it["answer"] not in it["candidates"]
        assert sorted([it["answer"], *it["candidates"]]) == sorted(SLOT_VALUES[it["slot"]])
        for text in (it["context"], it["question"], it["response"]):
            assert set(words_of(text)) <= known, text
    assert {it["qtype"] for it in items} == set(QTYPES)


def test_each_question_type_is_asked_of_several_scenarios():
    for qtype in QTYPES:
        assert len({q.scenario for q in QUESTIONS if q.qtype == qtype}) >= 3, qtype
    assert {it["qtype"] for it in qa_items(20, seed=0, qtypes=["who"])} == {"who"}
    with pytest.raises(ConfigError, match="unknown question type"):
        qa_items(3, seed=0, qtypes=["why"])


def test_splits_hold_out_stories_and_a_question_type():
    splits = instruction_items(300, 40, 80, seed=0, heldout_qtype="where")
    assert splits == instruction_items(300, 40, 80, seed=0, heldout_qtype="where")
    assert {s: len(v) for s, v in splits.items()} == {"train": 300, "valid": 40, "test": 80}
    keys = {s: {story_key(it) for it in v} for s, v in splits.items()}
    assert not keys["test"] & keys["train"] and not keys["valid"] & keys["train"]
    assert not keys["test"] & keys["valid"]
    qtypes = {s: {it["qtype"] for it in v} for s, v in splits.items()}
    assert qtypes["test"] == set(QTYPES)
    assert "where" not in qtypes["train"] | qtypes["valid"]
    ids = [it["id"] for v in splits.values() for it in v]
    assert len(ids) == len(set(ids))
    with pytest.raises(ConfigError, match="heldout_qtype"):
        instruction_items(10, 0, 0, seed=0, heldout_qtype="why")


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """Six spoken items (3 train, 1 valid, 2 test) and a 16-unit MFCC tokenizer fitted on them."""
    from speechlm.corpus.instructions import synthesize_instructions
    from speechlm.tokenizers import fit_tokenizer

    out = tmp_path_factory.mktemp("instructions")
    summary = synthesize_instructions(out / "audio", 3, 1, 2, seed=0, heldout_qtype="where",
                                      progress=False)
    tokenizer = fit_tokenizer(out / "audio" / "manifest.jsonl", "mfcc", 16, out / "tokenizer",
                              n_iter=5)
    return out, summary, tokenizer


@pytest.mark.slow
def test_synthesis_speaks_both_parts_and_reuses_a_finished_set(spoken):
    from speechlm.corpus.instructions import synthesize_instructions
    from speechlm.corpus.manifest import read_manifest
    from speechlm.corpus.synth import HELDOUT_VOICES, TRAIN_VOICES

    out, summary, _ = spoken
    assert summary["items"] == {"train": 3, "valid": 1, "test": 2} and summary["hours"] > 0
    utts = read_manifest(out / "audio" / "manifest.jsonl")
    items = [json.loads(line) for line in (out / "audio" / "items.jsonl").read_text().splitlines()]
    assert sorted(u.id for u in utts) == sorted(f"{it['id']}.{p}" for it in items
                                                for p in ("prompt", "response"))
    by_id = {u.id: u for u in utts}
    for it in items:
        prompt, response = by_id[it["id"] + ".prompt"], by_id[it["id"] + ".response"]
        assert prompt.text == it["prompt"] and response.text == it["response"]
        assert prompt.speaker == response.speaker == it["voice"]
        assert prompt.words and response.words
        assert it["voice"] in (HELDOUT_VOICES if it["split"] == "test" else TRAIN_VOICES)
    stamp = (out / "audio" / "manifest.jsonl").stat().st_mtime_ns
    again = synthesize_instructions(out / "audio", 3, 1, 2, seed=0, heldout_qtype="where",
                                    progress=False)
    assert again == summary and (out / "audio" / "manifest.jsonl").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_rows_join_units_and_write_token_datasets(spoken):
    import pyarrow as pa

    from speechlm.corpus.instructions import (
        ROW_COLUMNS,
        instruction_rows,
        write_instruction_splits,
    )
    from speechlm.tokenizers.job import load_token_dataset, tokenize_manifest, write_token_table
    from speechlm.train.data import read_info

    out, _, tokenizer = spoken
    tokenize_manifest(out / "audio" / "manifest.jsonl", tokenizer, out / "tok", progress=False)
    rows, left_out = instruction_rows(out / "audio", out / "tok")
    assert left_out == 0 and {s: len(r) for s, r in rows.items()} == {"train": 3, "valid": 1,
                                                                      "test": 2}
    tok = load_token_dataset(out / "tok")
    units = dict(zip(tok["id"], tok["units"], strict=True))
    for split, part in rows.items():
        for r in part:
            assert r["split"] == split and set(r) == set(ROW_COLUMNS)
            assert r["prompt_units"] == list(units[r["id"] + ".prompt"])
            assert r["response_units"] == list(units[r["id"] + ".response"])
            assert r["answer"] in words_of(r["prompt_text"])
    info = read_info(out / "tok")
    counts = write_instruction_splits(out / "ds", rows, info["tokenizer"], info["n_units"],
                                      info["frame_rate"])
    assert counts == {"train": 3, "valid": 1, "test": 2}
    for split in counts:
        assert read_info(out / "ds" / split)["n_units"] == 16
        ds = load_token_dataset(out / "ds" / split)
        assert ds.column_names == list(ROW_COLUMNS) and ds["id"] == [r["id"] for r in rows[split]]
    # a part the tokenizer skipped leaves its item out, without failing
    first = rows["train"][0]["id"]
    kept = [i for i in units if i != first + ".response"]
    table = pa.table({"id": kept, "units": [list(units[i]) for i in kept]})
    write_token_table(out / "partial", table, tokenizer, 16, info["frame_rate"])
    rows, left_out = instruction_rows(out / "audio", out / "partial")
    assert left_out == 1 and first not in {r["id"] for r in rows["train"]}
