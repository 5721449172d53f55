"""Manifests: validation errors name the line and field; duplicate ids; round trip."""

from __future__ import annotations

import json

import pytest

from speechlm.corpus.manifest import Utterance, read_manifest, write_manifest
from speechlm.errors import ManifestError

GOOD = {"id": "u1", "audio": "wav/u1.wav", "duration": 1.5, "sample_rate": 16000,
        "text": "the dog runs", "speaker": "s1", "words": [["the", 0.0, 0.2]]}


def write_lines(path, objs):
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs))
    return path


def test_round_trip_and_relative_paths(tmp_path):
    utts = [Utterance(**{**GOOD, "words": [("the", 0.0, 0.2)]}),
            Utterance(id="u2", audio="/abs/u2.flac", duration=2.0, sample_rate=8000,
                      start=1.0, end=3.0)]
    assert write_manifest(tmp_path / "m.jsonl", utts) == 2
    back = read_manifest(tmp_path / "m.jsonl")
    assert back[0].audio == str((tmp_path / "wav/u1.wav").resolve())
    assert back[0].words == [("the", 0.0, 0.2)] and back[1].start == 1.0
    assert read_manifest(tmp_path / "m.jsonl", resolve=False)[0].audio == "wav/u1.wav"


@pytest.mark.parametrize("bad,pattern", [
    ({k: v for k, v in GOOD.items() if k != "audio"},
     r"m\.jsonl:2: missing required field 'audio'"),
    ({**GOOD, "duration": "long"}, r"m\.jsonl:2: field 'duration' has type str"),
    ({**GOOD, "duration": 0}, r"m\.jsonl:2: field 'duration' must be > 0"),
    ({**GOOD, "sample_rate": 16000.0}, r"m\.jsonl:2: field 'sample_rate' has type float"),
    ({**GOOD, "speaker": 3}, r"m\.jsonl:2: field 'speaker' has type int"),
    ({**GOOD, "start": 2.0, "end": 1.0}, r"m\.jsonl:2: field 'end' must be greater than 'start'"),
    ({**GOOD, "words": [["the", 0.5, 0.2]]}, r"m\.jsonl:2: field 'words' item 0"),
    ({**GOOD, "phones": "D @"}, r"m\.jsonl:2: field 'phones' must be a list"),
    ({**GOOD, "colour": "red"}, r"m\.jsonl:2: unknown field\(s\) \['colour'\]"),
    ("[1, 2]", r"m\.jsonl:2: expected a JSON object"),
    ("{not json", r"m\.jsonl:2: invalid JSON"),
])
def test_errors_name_line_and_field(tmp_path, bad, pattern):
    path = write_lines(tmp_path / "m.jsonl", [{**GOOD, "id": "first"}, bad])
    with pytest.raises(ManifestError, match=pattern):
        read_manifest(path)


def test_duplicate_ids(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", [GOOD, "", {**GOOD, "audio": "other.wav"}])
    with pytest.raises(ManifestError, match=r"m\.jsonl:3: duplicate id 'u1' \(first on line 1\)"):
        read_manifest(path)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "none.jsonl")
