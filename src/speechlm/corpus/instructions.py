"""Spoken instructions from the grammar's stories: extractive questions (SpeechGPT, LLaMA-Omni).

An item states a story fact in one or two of the scenario's own sentences, told with the
character's name instead of a pronoun, and asks about it::

    context   emma planted some flowers in the garden.
    question  who planted the flowers
    answer    emma                          (a slot value: name, food, place, thing, animal)
    response  emma planted the flowers.     (a short full sentence, as LLaMA-Omni rewrites
                                             answers for speech)

The prompt that is spoken is ``context + " " + question``. Text is the grammar's: lower case
words separated by spaces, a full stop ending each sentence, none after the question. Each
question type (``QTYPES``) is asked of several scenarios so that a type can be learnt.
``candidates`` lists the slot's other values, so that an evaluator can score the answer among
them.

Splits (:func:`instruction_items`) keep evaluation honest: a valid or test item is a held-out
story, its ``(scenario, answer, name)`` never occurring in a training item, and one question
type can be held out of training altogether (``heldout_qtype``; COSMIC's unseen-task check):
its items are asked in the test split only.

Layout of :func:`synthesize_instructions`' ``out_dir``: ``wav/<id>.<part>.wav`` (part:
prompt, response), ``manifest.jsonl`` (every part as an utterance, id ``<id>.<part>``, with
word alignments), ``items.jsonl`` (items with ``split`` and ``voice``) and ``summary.json``.
:func:`instruction_rows` joins the items with their tokenised parts and
:func:`write_instruction_splits` writes them as token datasets ``train``, ``valid``, ``test``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.corpus import lexicon as lx
from speechlm.corpus.grammar import STORIES, Grammar
from speechlm.errors import ConfigError, SpeechLMError

logger = logging.getLogger("speechlm")

SPLITS = ("train", "valid", "test")
PARTS = ("prompt", "response")
QUESTION_WORDS = ("who", "what", "where", "did")
# every value a slot can take (``Grammar.story_slots``): an answer is scored among these
SLOT_VALUES: dict[str, tuple[str, ...]] = {
    "name": tuple(n for n, _ in lx.NAMES), "food": tuple(lx.FOODS), "place": tuple(lx.PLACES),
    "thing": tuple(t for t, _ in lx.THINGS), "animal": tuple(a for a, _ in lx.NOUNS[:30]),
}
ROW_COLUMNS = ("id", "split", "qtype", "prompt_text", "prompt_units", "answer", "response_text",
               "response_units")
# a held-out story set can leave few draws that are new; give up rather than loop forever
MAX_DRAWS_PER_ITEM = 10_000


@dataclass(frozen=True)
class Question:
    """One question about a scenario: which of its context sentences state the fact, the
    question and response templates (``STORIES`` slots), and the slot the answer fills."""

    scenario: int
    qtype: str
    sentences: tuple[int, ...]
    question: str
    response: str
    slot: str


QUESTIONS: tuple[Question, ...] = (
    Question(0, "who", (3,), "who ate the {food}", "{name} ate the {food}.", "name"),
    Question(1, "who", (0,), "who walked to the {place}", "{name} walked to the {place}.", "name"),
    Question(2, "who", (0,), "who had a little {animal}", "{name} had a little {animal}.", "name"),
    Question(3, "who", (0,), "who had a birthday", "{name} had a birthday.", "name"),
    Question(4, "who", (0,), "who worked all day", "{name} worked all day.", "name"),
    Question(5, "who", (0,), "who played with the ball", "{name} played with the ball.", "name"),
    Question(6, "who", (0,), "who had a test at school", "{name} had a test at school.", "name"),
    Question(7, "who", (3,), "who bought the {thing}", "{name} bought the {thing}.", "name"),
    Question(8, "who", (0,), "who planted the flowers", "{name} planted the flowers.", "name"),
    Question(9, "who", (3,), "who caught a big fish", "{name} caught a big fish.", "name"),
    Question(0, "what", (3,), "what did {name} eat", "{name} ate the {food}.", "food"),
    Question(0, "what", (1, 2), "what did {name} find", "{name} found some {food}.", "food"),
    Question(2, "what", (0,), "what did {name} have", "{name} had a little {animal}.", "animal"),
    Question(7, "what", (0,), "what did {name} want", "{name} wanted a new {thing}.", "thing"),
    Question(7, "what", (3,), "what did {name} buy", "{name} bought the {thing}.", "thing"),
    Question(1, "where", (0,), "where did {name} walk", "{name} walked to the {place}.", "place"),
    Question(2, "where", (0, 3), "where did {name} find the {animal}",
             "{name} found the {animal} near the {place}.", "place"),
    Question(5, "where", (0,), "where did {name} play", "{name} played in the {place}.", "place"),
)
QTYPES: tuple[str, ...] = tuple(dict.fromkeys(q.qtype for q in QUESTIONS))


def story_key(item: dict) -> tuple[int, str, str]:
    """What makes a story held out: its scenario, the answer's value and the character."""
    return item["scenario"], item["answer"], item["name"]


def _check_qtypes(qtypes: Sequence[str] | None) -> list[str]:
    chosen = list(QTYPES) if qtypes is None else list(dict.fromkeys(qtypes))
    unknown = [q for q in chosen if q not in QTYPES]
    if unknown or not chosen:
        raise ConfigError(f"qtypes: unknown question type(s) {unknown!r}; known: {list(QTYPES)}")
    return chosen


def _item(g: Grammar, q: Question) -> dict:
    """An item of question ``q`` about a fresh story (slot fillers drawn by ``g``)."""
    slots = g.story_slots()
    # the name instead of the pronoun: each sentence must state its fact on its own
    told = {**slots, "he": slots["name"]}
    context = " ".join(STORIES[q.scenario][0][i].format(**told) for i in q.sentences)
    question = q.question.format(**slots)
    answer = slots[q.slot]
    return {"scenario": q.scenario, "qtype": q.qtype, "name": slots["name"], "context": context,
            "question": question, "prompt": context + " " + question, "answer": answer,
            "response": q.response.format(**slots), "slot": q.slot,
            "candidates": [v for v in SLOT_VALUES[q.slot] if v != answer]}


class _Drawer:
    """Draws items: a question type uniformly (so "who", asked of every scenario, does not
    crowd out the others), then one of its questions, then the story's fillers."""

    def __init__(self, rng: np.random.Generator, qtypes: Sequence[str]):
        self.rng, self.grammar, self.qtypes = rng, Grammar(rng), list(qtypes)
        self.by_type = {t: [q for q in QUESTIONS if q.qtype == t] for t in qtypes}

    def qtype(self) -> str:
        return self.qtypes[int(self.rng.integers(len(self.qtypes)))]

    def item(self, qtype: str) -> dict:
        pool = self.by_type[qtype]
        return _item(self.grammar, pool[int(self.rng.integers(len(pool)))])


def qa_items(n: int, seed: int, qtypes: Sequence[str] | None = None) -> list[dict]:
    """``n`` question-answer items (ids ``qa000000``...; see module doc), deterministic in
    ``seed``, of the question types ``qtypes`` (all of ``QTYPES`` by default)."""
    if n <= 0:
        raise ConfigError(f"items: must be > 0, got {n}")
    draw = _Drawer(np.random.default_rng([seed, 37]), _check_qtypes(qtypes))
    return [{"id": f"qa{i:06d}", **draw.item(draw.qtype())} for i in range(n)]


def instruction_items(n_train: int, n_valid: int, n_test: int, seed: int,
                      heldout_qtype: str | None = None,
                      qtypes: Sequence[str] | None = None) -> dict[str, list[dict]]:
    """Items for ``train``, ``valid`` and ``test`` (ids ``<split>00000``...).

    Valid and test are held-out stories: no ``(scenario, answer, name)`` of either occurs in
    train, and none occurs in both. ``heldout_qtype`` is asked in the test split only; train
    and valid ask the other types.
    """
    kinds = _check_qtypes(qtypes)
    if heldout_qtype is not None and heldout_qtype not in kinds:
        raise ConfigError(f"heldout_qtype: {heldout_qtype!r} is not one of {kinds}")
    seen = [t for t in kinds if t != heldout_qtype]
    if not seen:
        raise ConfigError(f"heldout_qtype: holding out {heldout_qtype!r} leaves no question type "
                          "to train on; give more qtypes")
    counts = {"train": n_train, "valid": n_valid, "test": n_test}
    if n_train <= 0 or n_valid < 0 or n_test < 0:
        raise ConfigError(f"items: need n_train > 0 and n_valid, n_test >= 0, got {counts}")
    rng = np.random.default_rng([seed, 37])
    drawers = {"test": _Drawer(rng, kinds), "valid": _Drawer(rng, seen),
               "train": _Drawer(rng, seen)}
    taken: set[tuple[int, str, str]] = set()  # stories of the splits made so far
    out: dict[str, list[dict]] = {}
    # held-out splits first: train then avoids their stories
    for split in ("test", "valid", "train"):
        draw, items, mine = drawers[split], [], set()
        for _ in range(counts[split]):
            # redraw within the type: rejections must not shift the mix of question types
            qtype = draw.qtype()
            for _ in range(MAX_DRAWS_PER_ITEM):
                item = draw.item(qtype)
                if story_key(item) not in taken:
                    break
            else:
                raise ConfigError(f"{split}: no {qtype!r} story left that is not held out for "
                                  "another split; hold out fewer items")
            mine.add(story_key(item))
            items.append({"id": f"{split}{len(items):05d}", **item})
        taken |= mine
        out[split] = items
    return {split: out[split] for split in SPLITS}


def synthesize_instructions(out_dir: str | Path, n_train: int, n_valid: int, n_test: int,
                            seed: int = 0, train_voices: Sequence[str] | None = None,
                            test_voices: Sequence[str] | None = None,
                            heldout_qtype: str | None = None, progress: bool = True) -> dict:
    """Speak :func:`instruction_items` into ``out_dir`` (see module doc): each item's prompt
    and response by one voice with one rate and pitch, train and valid items by
    ``train_voices`` (``TRAIN_VOICES``), test items by ``test_voices`` (``HELDOUT_VOICES``).

    A finished set with the same settings is returned, not made again.
    """
    from speechlm.corpus.benchmarks import speak_items
    from speechlm.corpus.manifest import write_manifest
    from speechlm.corpus.synth import HELDOUT_VOICES, TRAIN_VOICES

    out = Path(out_dir)
    voices = {"train": list(train_voices or TRAIN_VOICES),
              "test": list(test_voices or HELDOUT_VOICES)}
    settings = {"train": n_train, "valid": n_valid, "test": n_test, "seed": seed,
                "train_voices": voices["train"], "test_voices": voices["test"],
                "heldout_qtype": heldout_qtype}
    summary_path = out / "summary.json"
    if summary_path.is_file() and json.loads(summary_path.read_text()).get("settings") == settings:
        return json.loads(summary_path.read_text())
    splits = instruction_items(n_train, n_valid, n_test, seed, heldout_qtype)
    items = [{**item, "split": split} for split in SPLITS for item in splits[split]]
    utts, seconds = speak_items(
        items, PARTS, out, np.random.default_rng([seed, 41]),
        lambda item: voices["test" if item["split"] == "test" else "train"],
        "speaking instructions", "item", progress)
    write_manifest(out / "manifest.jsonl", utts)
    with open(out / "items.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(item) + "\n" for item in items)
    summary = {"settings": settings, "items": {s: len(splits[s]) for s in SPLITS},
               "utterances": len(utts), "hours": seconds / 3600,
               "qtypes": {s: dict(Counter(i["qtype"] for i in splits[s])) for s in SPLITS}}
    # written last: its presence marks a finished set
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def instruction_rows(audio_dir: str | Path, tokens_dir: str | Path
                     ) -> tuple[dict[str, list[dict]], int]:
    """Join the items of ``audio_dir/items.jsonl`` with the units of their prompt and response
    (``tokens_dir``, made by ``tokenize_manifest`` from ``audio_dir/manifest.jsonl``).

    Returns rows per split (columns ``ROW_COLUMNS``) and how many items were left out because
    a part of theirs is not in the token dataset (the tokenizer could not read it).
    """
    from speechlm.tokenizers.job import load_token_dataset

    ds = load_token_dataset(tokens_dir).select_columns(["id", "units"])
    units = dict(zip(ds["id"], ds["units"], strict=True))
    rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
    missing = []
    for line in Path(audio_dir, "items.jsonl").read_text().splitlines():
        item = json.loads(line)
        prompt, response = (units.get(f"{item['id']}.{part}") for part in PARTS)
        if prompt is None or response is None:
            missing.append(item["id"])
            continue
        rows[item["split"]].append({
            "id": item["id"], "split": item["split"], "qtype": item["qtype"],
            "prompt_text": item["prompt"], "prompt_units": list(prompt),
            "answer": item["answer"], "response_text": item["response"],
            "response_units": list(response)})
    if missing:
        logger.warning("%d instruction item(s) left out, a part not tokenised: %s",
                       len(missing), ", ".join(missing[:20]) + (" ..." if len(missing) > 20
                                                                 else ""))
    return rows, len(missing)


def _row_schema():
    import pyarrow as pa

    units = pa.list_(pa.int32())
    return pa.schema([(c, units if c.endswith("_units") else pa.string()) for c in ROW_COLUMNS])


def write_instruction_splits(out_dir: str | Path, rows_by_split: dict[str, list[dict]],
                             tokenizer_dir: str | Path, n_units: int,
                             frame_rate: float) -> dict:
    """Write each split with rows as a token dataset ``out_dir/<split>`` (one Parquet part with
    ``ROW_COLUMNS`` and ``info.json``, as ``write_pairs`` does); returns the row counts."""
    import pyarrow as pa

    from speechlm.tokenizers.job import write_token_table

    if not rows_by_split.get("train"):
        raise SpeechLMError(f"{out_dir}: no training instruction to write")
    counts = {}
    for split, rows in rows_by_split.items():
        if not rows:  # e.g. no valid split asked for
            continue
        table = pa.Table.from_pylist([{c: r[c] for c in ROW_COLUMNS} for r in rows],
                                     schema=_row_schema())
        write_token_table(Path(out_dir) / split, table, tokenizer_dir, n_units, frame_rate,
                          items=len(rows), qtypes=dict(Counter(r["qtype"] for r in rows)))
        counts[split] = len(rows)
    return counts
