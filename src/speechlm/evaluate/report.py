"""Every evaluation writes its figures twice: JSON for programs, a Markdown table for people."""

from __future__ import annotations

import json
import math
from pathlib import Path

CHANCE = 0.5  # every pairwise benchmark here is a two-way choice


def _fmt(v) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4f}"
    return "-" if v is None else str(v)


def _json_safe(obj):
    """NaN is not JSON: write null instead so any JSON reader accepts the file."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def task_markdown(name: str, result: dict) -> str:
    """One task: its headline figures, then one table per ``by_*`` breakdown."""
    head = [f"### {name}", ""]
    info = [f"{k}: {_fmt(result[k])}" for k in ("scoring", "split", "model", "data")
            if k in result]
    if info:
        head += ["; ".join(info), ""]
    head.append(markdown_table(
        ["accuracy", "n_pairs", "n_items", "chance", "skipped pairs"],
        [[result.get("accuracy"), result.get("n_pairs"), result.get("n_items"),
          result.get("chance", CHANCE), result.get("n_skipped", 0)]]))
    for key, table in result.items():
        if key.startswith("by_") and isinstance(table, dict) and table:
            head += ["", f"by {key[3:]}:", "", markdown_table(
                [key[3:], "accuracy", "n_items", "std"],
                [[label, r["accuracy"], r["n_items"], r.get("std")]
                 for label, r in table.items()])]
    return "\n".join(head) + "\n"


def write_report(out_dir: str | Path, results: dict, title: str, stem: str = "results") -> Path:
    """Write ``<stem>.json`` and ``<stem>.md`` (a summary table, then each task's details).

    ``results`` maps a task name to its result dict (with ``accuracy`` and ``n_pairs``), or to a
    dict of other figures (generation, ABX), which is shown as a two-column table.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    tasks = {k: v for k, v in results.items() if isinstance(v, dict) and "accuracy" in v}
    other = {k: v for k, v in results.items() if isinstance(v, dict) and k not in tasks}
    md = [f"# {title}", ""]
    if tasks:
        md += [markdown_table(["task", "accuracy", "n_pairs", "chance", "scoring"],
                              [[k, v["accuracy"], v.get("n_pairs"), v.get("chance", CHANCE),
                                v.get("scoring")] for k, v in tasks.items()]), ""]
    for k, v in other.items():
        scalars = [[name, val] for name, val in v.items()
                   if isinstance(val, int | float | str) or val is None]
        md += [f"### {k}", "", markdown_table(["metric", "value"], scalars), ""]
    for k, v in tasks.items():
        md.append(task_markdown(k, v))
    (out / f"{stem}.md").write_text("\n".join(md))
    return out / f"{stem}.md"


def write_errors(path: str | Path, errors: list[dict]) -> None:
    """``errors.jsonl``: one JSON object per skipped item (always written, empty when clean)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for e in errors:
            f.write(json.dumps(e) + "\n")
