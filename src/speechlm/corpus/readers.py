"""Readers of the benchmark layouts: ZeroSpeech 2021 ``gold.csv`` and spoken StoryCloze.

They read what ``speechlm.corpus.benchmarks`` writes and the official releases. For StoryCloze
the release is assumed to hold ``sSC/`` and ``tSC/`` folders of ``<id>_correct.wav`` /
``<id>_incorrect.wav`` files (no gold.csv), paired by ``<id>`` (see docs/corpus.md).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from speechlm.errors import SpeechLMError

_INT_COLUMNS = {"length", "correct"}
_FLOAT_COLUMNS = {"frequency"}


def _typed(key: str, value: str):
    value = value.strip()
    if key in _INT_COLUMNS:
        return int(float(value)) if value else None
    if key in _FLOAT_COLUMNS:
        if not value:
            return None
        v = float(value)
        return None if math.isnan(v) else v
    return value


def read_gold(data_dir: str | Path, task: str, split: str = "dev") -> list[dict]:
    """Rows of ``<data_dir>/<task>/<split>/gold.csv`` (task ``lexical`` or ``syntactic``), typed.

    Also accepts ``data_dir`` pointing at the task or split folder itself. Each row gets
    ``path``, the absolute path of its audio (``<filename>.wav``, or ``.flac`` if that exists).
    """
    if task not in ("lexical", "syntactic"):
        raise SpeechLMError(f"unknown ZeroSpeech task '{task}'; known: lexical, syntactic")
    root = Path(data_dir)
    for folder in (root / task / split, root / split, root):
        if (folder / "gold.csv").exists():
            break
    else:
        raise SpeechLMError(f"{root}: no {task}/{split}/gold.csv (build one with "
                            "'speechlm synth benchmark' or point --data at a ZeroSpeech 2021 copy)")
    rows = []
    with open(folder / "gold.csv", newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.DictReader(f), 2):
            if "filename" not in row or "correct" not in row:
                raise SpeechLMError(f"{folder / 'gold.csv'}:{lineno}: needs filename and correct")
            typed = {k: _typed(k, v or "") for k, v in row.items() if k is not None}
            wav = folder / f"{typed['filename']}.wav"
            if not wav.exists() and (folder / f"{typed['filename']}.flac").exists():
                wav = folder / f"{typed['filename']}.flac"
            typed["path"] = str(wav.resolve())
            rows.append(typed)
    return rows


_PAIR_FILE = re.compile(r"^(?P<id>.+?)[_-](?P<label>correct|incorrect)\.(wav|flac)$")


def read_storycloze(data_dir: str | Path, kind: str) -> list[dict]:
    """Pairs of a StoryCloze set (``kind`` ``ssc`` or ``tsc``): ``id``, ``correct_path``,
    ``incorrect_path``, ``voice``.

    Finds the ``sSC``/``tSC`` folder (any case) in ``data_dir``, ``data_dir/storycloze`` or
    ``data_dir`` itself; reads its gold.csv, or pairs ``<id>_correct.wav`` with
    ``<id>_incorrect.wav`` (the released layout) when there is none.
    """
    kind = kind.lower()
    if kind not in ("ssc", "tsc"):
        raise SpeechLMError(f"unknown StoryCloze kind '{kind}'; known: ssc, tsc")
    root = Path(data_dir)
    folder = None
    for base in (root, root / "storycloze", root / "StoryCloze"):
        if base.is_dir():
            match = [p for p in base.iterdir() if p.is_dir() and p.name.lower() == kind]
            if match:
                folder = match[0]
                break
    if folder is None:
        if root.name.lower() == kind:
            folder = root
        else:
            raise SpeechLMError(f"{root}: no {kind} StoryCloze folder (sSC/ or tSC/)")
    pairs: dict[str, dict] = {}
    if (folder / "gold.csv").exists():
        with open(folder / "gold.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                item = pairs.setdefault(row["id"], {"id": row["id"], "voice": row.get("voice")})
                side = "correct_path" if int(row["correct"]) == 1 else "incorrect_path"
                item[side] = str((folder / f"{row['filename']}.wav").resolve())
                if int(row["correct"]) == 1 and row.get("transcription"):
                    item["text"] = row["transcription"]  # the story with its true ending
    else:
        for path in sorted(folder.rglob("*")):
            m = _PAIR_FILE.match(path.name)
            if m:
                item = pairs.setdefault(m["id"], {"id": m["id"], "voice": None})
                item[f"{m['label']}_path"] = str(path.resolve())
    incomplete = [k for k, v in pairs.items() if "correct_path" not in v
                  or "incorrect_path" not in v]
    if incomplete:
        raise SpeechLMError(f"{folder}: StoryCloze items without both endings: {incomplete[:5]}")
    if not pairs:
        raise SpeechLMError(f"{folder}: no StoryCloze items found")
    return list(pairs.values())
