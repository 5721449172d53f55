"""ZeroSpeech 2021 lexical (sWUGGY) and syntactic (sBLIMP): submission files and accuracy.

Submission format (the official ``zerospeech2021`` validator): ``<task>/<split>.txt``, one line
per gold row, ``<filename> <score>`` separated by a single space, where ``<filename>`` is the
wav file's name without folder or extension (``xKtnLJYiWGt``, not ``lexical/dev/xKtnLJYiWGt.wav``)
and every file of the split appears exactly once. Accuracy is computed from the file as written,
so what is reported is what the official evaluator would read.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from pathlib import Path

from speechlm.errors import SpeechLMError
from speechlm.evaluate.pairwise import pairwise_accuracy
from speechlm.evaluate.report import CHANCE, write_errors, write_report

TASKS = ("lexical", "syntactic")
# official bands (zerospeech2021.lexical.evaluate_by_frequency): [0,1) [1,5) [5,20) [20,100) ...
FREQUENCY_BANDS = [(1.0, "oov"), (5.0, "1-5"), (20.0, "6-20"), (100.0, "21-100"),
                   (math.inf, ">100")]
BAND_ORDER = [label for _, label in FREQUENCY_BANDS]


def frequency_band(frequency: float | None) -> str:
    """The official band of a word frequency (occurrences in the training corpus)."""
    if frequency is None or math.isnan(frequency):
        return "n/a"
    return next(label for upper, label in FREQUENCY_BANDS if frequency < upper)


def _item_key(task: str, rows: Sequence[dict]) -> tuple[str, ...]:
    # sBLIMP ids are grouped by (type, subtype, id) in the official code; lexical by id
    if task == "syntactic" and rows and "type" in rows[0] and "subtype" in rows[0]:
        return ("type", "subtype", "id")
    return ("id",)


def accuracy(task: str, rows: Sequence[dict], scores: Sequence[float]) -> dict:
    """Official accuracy of ``scores`` (one per gold row) with the task's breakdowns."""
    by = {}
    if task == "lexical":
        by["frequency"] = (lambda r: frequency_band(r.get("frequency")), BAND_ORDER + ["n/a"])
        if rows and "length" in rows[0]:
            by["length"] = (lambda r: r.get("length"), None)
    elif rows and "type" in rows[0]:
        by["type"] = (lambda r: r.get("type"), None)
    result = pairwise_accuracy(rows, scores, _item_key(task, rows), by)
    if "by_length" in result:  # numeric order, not string order
        result["by_length"] = dict(sorted(result["by_length"].items(),
                                          key=lambda kv: _num(kv[0])))
    result["chance"] = CHANCE
    return result


def _num(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return math.inf


def write_submission(path: str | Path, filenames: Sequence[str], scores: Sequence[float]) -> Path:
    """Write ``<filename> <score>`` lines (full float precision, ``nan`` for a failed file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for name, score in zip(filenames, scores, strict=True):
            f.write(f"{name} {float(score)!r}\n")
    return path


def read_submission(path: str | Path) -> dict[str, float]:
    """Read a submission file; raises naming the line if it is not ``<filename> <score>``."""
    out: dict[str, float] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.strip().split(" ")
        if len(fields) != 2:
            raise SpeechLMError(f"{path}:{lineno}: must be '<filename> <score>', got '{line}'")
        try:
            score = float(fields[1])
        except ValueError:
            raise SpeechLMError(f"{path}:{lineno}: score '{fields[1]}' is not a float") from None
        if fields[0] in out:
            raise SpeechLMError(f"{path}:{lineno}: duplicate filename {fields[0]}")
        out[fields[0]] = score
    return out


def validate_submission(path: str | Path, rows: Sequence[dict]) -> None:
    """The official checks: two fields a line, float scores, each gold filename exactly once."""
    scores = read_submission(path)
    names = [str(r["filename"]) for r in rows]
    dup = [n for n, k in collections.Counter(names).items() if k > 1]
    if dup:
        raise SpeechLMError(f"gold file lists {dup[:5]} more than once")
    missing, extra = set(names) - set(scores), set(scores) - set(names)
    if missing or extra:
        raise SpeechLMError(f"{path}: filenames differ from the gold file: missing "
                            f"{sorted(missing)[:5]}, extra {sorted(extra)[:5]}")


def evaluate_zerospeech(model_dir, data_dir: str | Path, task: str, out_dir: str | Path,
                        scoring: str = "sum", split: str = "dev", batch_size: int = 32,
                        device: str | None = None, progress: bool = True) -> dict:
    """Score ``D/<task>/<split>`` with the model, write ``S/<task>/<split>.txt`` and accuracy.

    ``model_dir`` is a model directory or an already loaded ``SpeechLM``. Also writes
    ``S/<task>/<split>_results.json`` / ``.md`` and ``S/<task>/errors.jsonl`` (unreadable files;
    their score is ``nan`` in the submission and their pairs are skipped, counted in
    ``n_skipped``). Returns the result dict (``accuracy``, ``n_pairs``, breakdowns, ...).
    """
    from speechlm.corpus.benchmarks import read_gold
    from speechlm.evaluate.scoring import SCORINGS, load_model, score_audio, scoring_column

    if task not in TASKS:
        raise SpeechLMError(f"unknown ZeroSpeech task '{task}'; known: {', '.join(TASKS)}")
    column = scoring_column(scoring)
    rows = read_gold(data_dir, task, split)
    if not rows:
        raise SpeechLMError(f"{data_dir}: the {task} gold file has no rows")
    speech_lm = load_model(model_dir, device)
    errors: list[dict] = []
    both = score_audio(speech_lm, [r["path"] for r in rows], batch_size=batch_size,
                       errors=errors, progress=progress)  # (N, 2): summed, mean log-prob
    scores = both[:, column]
    out = Path(out_dir) / task
    submission = write_submission(out / f"{split}.txt", [r["filename"] for r in rows], scores)
    validate_submission(submission, rows)
    written = read_submission(submission)
    result = accuracy(task, rows, [written[str(r["filename"])] for r in rows])
    # Both scorings come from the same pass; the other one is reported, never substituted.
    result["accuracy_by_scoring"] = {
        name: accuracy(task, rows, list(both[:, scoring_column(name)]))["accuracy"]
        for name in SCORINGS}
    result.update(task=task, split=split, scoring=scoring, n_files=len(rows),
                  n_failed_files=len(errors), submission=str(submission),
                  model=str(speech_lm.dir), data=str(Path(data_dir).resolve()))
    write_errors(out / "errors.jsonl", errors)
    write_report(out, {task: result}, f"ZeroSpeech 2021 {task} ({split})", f"{split}_results")
    return result
