"""Utterance manifests: one JSON object per line, validated on read.

Fields: ``id``, ``audio`` (path, relative paths resolve against the manifest's folder),
optional ``start``/``end`` (seconds inside the file), ``duration`` (seconds), ``sample_rate``,
``text``, ``speaker``, ``style`` (a speaking-style label, e.g. ``happy``: see
``speechlm.corpus.styles``), and optional ``words``/``phones`` as ``[label, start, end]`` lists
(seconds from the start of the utterance).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from speechlm.errors import ManifestError

Alignment = list[tuple[str, float, float]]


@dataclass
class Utterance:
    """One line of a manifest."""

    id: str
    audio: str
    duration: float
    sample_rate: int
    text: str | None = None
    speaker: str | None = None
    start: float | None = None
    end: float | None = None
    words: Alignment | None = None
    phones: Alignment | None = None
    style: str | None = None

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(d, ensure_ascii=False)


_REQUIRED = {"id": str, "audio": str, "duration": (int, float), "sample_rate": int}
_OPTIONAL = {"text": str, "speaker": str, "start": (int, float), "end": (int, float),
             "style": str}
_KNOWN = {f.name for f in fields(Utterance)}


def parse_utterance(obj: object, where: str) -> Utterance:
    """Validate one decoded JSON object; ``where`` (file:line) prefixes every error."""
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - _KNOWN
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(_KNOWN)}")
    for key, typ in _REQUIRED.items():
        if key not in obj:
            raise ManifestError(f"{where}: missing required field '{key}'")
        if not isinstance(obj[key], typ) or isinstance(obj[key], bool):
            raise ManifestError(f"{where}: field '{key}' has type {type(obj[key]).__name__}")
    for key, typ in _OPTIONAL.items():
        if obj.get(key) is not None and not isinstance(obj[key], typ):
            raise ManifestError(f"{where}: field '{key}' has type {type(obj[key]).__name__}")
    if obj["duration"] <= 0:
        raise ManifestError(f"{where}: field 'duration' must be > 0, got {obj['duration']}")
    if obj["sample_rate"] <= 0:
        raise ManifestError(f"{where}: field 'sample_rate' must be > 0")
    if obj.get("start") is not None and obj.get("end") is not None and obj["end"] <= obj["start"]:
        raise ManifestError(f"{where}: field 'end' must be greater than 'start'")
    aligned = {}
    for key in ("words", "phones"):
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise ManifestError(f"{where}: field '{key}' must be a list of [label, start, end]")
        items = []
        for i, item in enumerate(value):
            ok = (
                isinstance(item, list | tuple) and len(item) == 3 and isinstance(item[0], str)
                and all(isinstance(t, int | float) for t in item[1:]) and item[1] <= item[2]
            )
            if not ok:
                raise ManifestError(
                    f"{where}: field '{key}' item {i} must be [label, start, end] with start<=end"
                )
            items.append((item[0], float(item[1]), float(item[2])))
        aligned[key] = items
    return Utterance(
        id=obj["id"], audio=obj["audio"], duration=float(obj["duration"]),
        sample_rate=obj["sample_rate"], text=obj.get("text"), speaker=obj.get("speaker"),
        start=obj.get("start"), end=obj.get("end"), style=obj.get("style"), **aligned,
    )


def read_jsonl(path: str | Path, what: str = "manifest") -> Iterator[tuple[str, int, dict]]:
    """Each non-blank line of a JSONL file as ``(path:line, line number, object)``; a missing
    file or a line that is not JSON raises ``ManifestError`` naming it."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: {what} not found")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{where}: invalid JSON ({e.msg})") from e
            yield where, lineno, obj


def read_manifest(path: str | Path, resolve: bool = True) -> list[Utterance]:
    """Read and validate a JSONL manifest; errors name the line and field; ids must be unique.

    With ``resolve`` relative audio paths become absolute, relative to the manifest's folder.
    """
    path = Path(path)
    utts: list[Utterance] = []
    seen: dict[str, int] = {}
    for where, lineno, obj in read_jsonl(path):
        utt = parse_utterance(obj, where)
        if utt.id in seen:
            raise ManifestError(f"{where}: duplicate id '{utt.id}' (first on line {seen[utt.id]})")
        seen[utt.id] = lineno
        if resolve and not Path(utt.audio).is_absolute():
            utt.audio = str((path.parent / utt.audio).resolve())
        utts.append(utt)
    return utts


def write_manifest(path: str | Path, utts: Iterable[Utterance]) -> int:
    """Write utterances as JSONL (atomically: a temp file renamed into place); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for utt in utts:
            f.write(utt.to_json() + "\n")
            n += 1
    tmp.replace(path)
    return n
