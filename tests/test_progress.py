"""The progress-bar factory: whole units with their name, a rate and an ETA."""

from __future__ import annotations

import io
import re

from speechlm.progress import progress_bar

SECONDS = 390.13870000000003  # what the synthesiser's bar used to print verbatim


def _last_line(buf: io.StringIO) -> str:
    """The bar as last drawn (tqdm redraws in place with carriage returns)."""
    return buf.getvalue().strip().split("\r")[-1]


def test_float_seconds_bar_shows_whole_seconds_rate_and_eta():
    buf = io.StringIO()
    bar = progress_bar(total=21600.0, unit="s", desc="synthesising", file=buf)
    bar.update(SECONDS)
    # rendered at a fixed elapsed time: 390.1387 s in 8 s is 48.77 s/s, 21209.86 s left is 7:14
    line = bar.format_meter(**{**bar.format_dict, "elapsed": 8.0})
    bar.close()
    assert line == "synthesising:   2%|1         | 390/21600 s [00:08, ETA 07:14, 48.77s/s]"
    drawn = _last_line(buf)
    # as drawn: the elapsed time, the ETA and the rate are whatever the clock said
    assert re.fullmatch(r"synthesising:   2%\|1         \| 390/21600 s "
                        r"\[\d\d:\d\d, ETA [\d:]+, [\d.]+s/s\]", drawn), drawn
    assert "390.1387" not in buf.getvalue()
    assert bar.n == SECONDS  # exact progress kept: per-utterance rounding would drift


def test_bar_over_a_sized_iterable_counts_its_items():
    buf = io.StringIO()
    items = list(progress_bar(["a", "b", "c"], unit="utt", desc="tokenize", file=buf))
    assert items == ["a", "b", "c"]
    assert _last_line(buf).startswith("tokenize: 100%|##########| 3/3 utt [")
    assert "ETA " in _last_line(buf)


def test_bar_without_a_total_shows_the_count_and_rate_and_no_eta():
    buf = io.StringIO()
    for _ in progress_bar(iter(range(5)), unit="file", desc="importing", file=buf):
        pass
    drawn = _last_line(buf)
    assert re.fullmatch(r"importing: 5 file \[\d\d:\d\d, [\d.]+file/s\]", drawn), drawn


def test_disabled_bar_writes_nothing():
    buf = io.StringIO()
    bar = progress_bar(total=10, unit="batch", desc="scoring", disable=True, file=buf)
    bar.update(10)
    bar.close()
    assert buf.getvalue() == ""
