"""The one pairwise-likelihood rule behind sWUGGY, sBLIMP and StoryCloze (ZeroSpeech 2021).

Rows come from a gold file: each has ``correct`` (1 or 0), the item key columns (``id``, plus
``type``/``subtype`` for sBLIMP) and ``voice``. A *pair* is a correct and an incorrect row with
the same item key and voice; it scores 1 if the correct row's score is higher, 0.5 on a tie, 0
otherwise (with several incorrect rows, the correct one is compared with each). Pair outcomes are
averaged over voices per item, then over items: exactly the official ``evaluate_by_pair``.
Pairing never depends on file names or row order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from speechlm.errors import SpeechLMError


@dataclass(frozen=True)
class ItemScore:
    """One item (averaged over its voices and pairs) with the gold row of its correct side."""

    key: tuple
    score: float
    n_pairs: int
    row: dict


def pair_outcome(correct: float, incorrect: float) -> float:
    """1 if the correct side scores higher, 0.5 on a tie, 0 otherwise."""
    return 1.0 if correct > incorrect else 0.5 if correct == incorrect else 0.0


def item_scores(rows: Sequence[dict], scores: Sequence[float],
                item_key: Sequence[str] = ("id",)) -> tuple[list[ItemScore], list[dict]]:
    """Per-item scores by the official rule, and the pairs skipped for a missing (NaN) score.

    ``rows[i]`` is scored by ``scores[i]``. Raises if an item/voice has no correct or no
    incorrect side (the gold file is broken).
    """
    if len(rows) != len(scores):
        raise SpeechLMError(f"{len(rows)} gold rows but {len(scores)} scores")
    sides: dict[tuple, dict[int, list[int]]] = defaultdict(lambda: {0: [], 1: []})
    for i, row in enumerate(rows):
        try:
            key = tuple(row[k] for k in item_key)
            correct = int(row["correct"])
        except (KeyError, TypeError, ValueError) as e:
            raise SpeechLMError(f"gold row {i}: needs {', '.join(item_key)} and correct (0/1): "
                                f"{e}") from e
        if correct not in (0, 1):
            raise SpeechLMError(f"gold row {i}: correct must be 0 or 1, got {row['correct']}")
        sides[(key, row.get("voice"))][correct].append(i)

    per_item: dict[tuple, list[float]] = defaultdict(list)
    first_row: dict[tuple, dict] = {}
    skipped: list[dict] = []
    for (key, voice), side in sides.items():
        if not side[0] or not side[1]:
            raise SpeechLMError(f"item {dict(zip(item_key, key, strict=True))} voice {voice}: "
                                "needs both a correct and an incorrect row in the gold file")
        first_row.setdefault(key, rows[side[1][0]])
        for c in side[1]:
            outcomes = []
            for w in side[0]:
                if math.isnan(scores[c]) or math.isnan(scores[w]):
                    skipped.append({"item": list(key), "voice": voice,
                                    "correct_row": c, "incorrect_row": w})
                    continue
                outcomes.append(pair_outcome(scores[c], scores[w]))
            if outcomes:  # one correct row vs its incorrect rows counts as one pair
                per_item[key].append(sum(outcomes) / len(outcomes))
    items = [ItemScore(key, sum(v) / len(v), len(v), first_row[key])
             for key, v in per_item.items()]
    return items, skipped


def summarize(items: Sequence[ItemScore]) -> dict:
    """``accuracy`` (mean over items), ``n_items``, ``n_pairs`` and the standard deviation."""
    n = len(items)
    acc = sum(it.score for it in items) / n if n else float("nan")
    var = sum((it.score - acc) ** 2 for it in items) / (n - 1) if n > 1 else float("nan")
    return {"accuracy": acc, "n_items": n, "n_pairs": sum(it.n_pairs for it in items),
            "std": math.sqrt(var) if n > 1 else float("nan")}


def breakdown(items: Sequence[ItemScore], label: Callable[[dict], object],
              order: Sequence[object] | None = None) -> dict[str, dict]:
    """``summarize`` per label of each item's correct-side gold row (e.g. frequency band)."""
    groups: dict[object, list[ItemScore]] = defaultdict(list)
    for it in items:
        groups[label(it.row)].append(it)
    keys = [k for k in order if k in groups] if order is not None else sorted(groups, key=str)
    return {str(k): summarize(groups[k]) for k in keys}


def pairwise_accuracy(rows: Sequence[dict], scores: Sequence[float],
                      item_key: Sequence[str] = ("id",),
                      by: dict[str, tuple[Callable[[dict], object], Sequence | None]]
                      | None = None) -> dict:
    """The whole rule: overall summary, ``n_skipped`` pairs and optional breakdowns.

    ``by`` maps a breakdown name to ``(label_fn, order)``; the result has ``by_<name>``.
    """
    items, skipped = item_scores(rows, scores, item_key)
    result = summarize(items)
    result["n_skipped"] = len(skipped)
    for name, (fn, order) in (by or {}).items():
        result[f"by_{name}"] = breakdown(items, fn, order)
    return result
