"""Spoken StoryCloze (sSC, tSC): the share of stories whose true ending scores higher.

A thin adapter over the pairwise rule: ``read_storycloze`` gives (correct, incorrect) audio pairs
from the synthetic layout or the released one; each pair scores 1/0.5/0 as in ZeroSpeech.
"""

from __future__ import annotations

from pathlib import Path

from speechlm.evaluate.pairwise import pairwise_accuracy
from speechlm.evaluate.report import CHANCE, write_errors, write_report
from speechlm.evaluate.scoring import SCORINGS, load_model, scoring_column
from speechlm.evaluate.zerospeech import write_submission

KINDS = ("ssc", "tsc")


def storycloze_rows(pairs: list[dict]) -> list[dict]:
    """Pairs (``id``, ``voice``, ``correct_path``, ``incorrect_path``) -> gold-like rows."""
    rows = []
    for p in pairs:
        for correct, key in ((1, "correct_path"), (0, "incorrect_path")):
            rows.append({"id": p["id"], "voice": p.get("voice"), "correct": correct,
                         "path": p[key], "filename": Path(p[key]).stem,
                         "text": p.get("text")})
    return rows


def scenario_label(row: dict) -> str:
    """The synthetic story's scenario (``0`` .. ``9``) from its true ending, ``other`` when the
    story is not one of the grammar's (a released set)."""
    from speechlm.corpus.grammar import ending_scenario

    found = ending_scenario(row["text"]) if row.get("text") else None
    return "other" if found is None else str(found[0])


def evaluate_storycloze(model_dir, data_dir: str | Path, kind: str, out_dir: str | Path,
                        scoring: str = "sum", batch_size: int = 32, device: str | None = None,
                        progress: bool = True) -> dict:
    """Score one StoryCloze set; writes ``S/<kind>/scores.txt`` (``<filename> <score>``),
    ``results.json``/``.md`` and ``errors.jsonl``; returns ``accuracy``, ``n_pairs``, ...
    """
    from speechlm.corpus.benchmarks import read_storycloze
    from speechlm.evaluate.scoring import score_audio

    kind = kind.lower()
    column = scoring_column(scoring)
    rows = storycloze_rows(read_storycloze(data_dir, kind))
    speech_lm = load_model(model_dir, device)
    errors: list[dict] = []
    both = score_audio(speech_lm, [r["path"] for r in rows], batch_size=batch_size,
                       errors=errors, progress=progress)  # (N, 2): summed, mean log-prob
    scores = both[:, column]
    out = Path(out_dir) / kind
    write_submission(out / "scores.txt", [r["filename"] for r in rows], scores)
    # per story scenario (a model aligned on some scenarios is also judged on the others)
    by = {"scenario": (scenario_label, None)} if any(r["text"] for r in rows) else None
    result = pairwise_accuracy(rows, list(scores), ("id",), by)
    result["accuracy_by_scoring"] = {
        name: pairwise_accuracy(rows, list(both[:, scoring_column(name)]), ("id",))["accuracy"]
        for name in SCORINGS}
    result.update(task=kind, scoring=scoring, chance=CHANCE, n_files=len(rows),
                  n_failed_files=len(errors), model=str(speech_lm.dir),
                  data=str(Path(data_dir).resolve()))
    write_errors(out / "errors.jsonl", errors)
    write_report(out, {kind: result}, f"Spoken StoryCloze ({kind})")
    return result
