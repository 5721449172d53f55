"""The one progress-bar factory: whole units, a rate and an ETA, whatever is counted.

Every bar in speechlm comes from :func:`progress_bar`, so they all read alike::

    synthesising:  2%|▏         | 390/21600 s [00:08, ETA 07:31, 47.36s/s]
    tokenize: 100%|██████████| 7542/7542 utt [01:02, ETA 00:00, 121.4utt/s]

A bar may count a float quantity (seconds of audio): it keeps the exact sum internally, so it
does not drift as per-item rounding would, and displays whole numbers (``{n:.0f}``) instead of
``390.13870000000003/21600``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

# {n:.0f}/{total:.0f}: whole units for float counters too (tqdm's n_fmt prints the raw float)
KNOWN_TOTAL = ("{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} "
               "[{elapsed}, ETA {remaining}, {rate_fmt}{postfix}]")
# without a total there is no ETA to give: the count, its unit and the rate
UNKNOWN_TOTAL = "{desc}{n:.0f} {unit} [{elapsed}, {rate_fmt}{postfix}]"


def progress_bar(iterable: Iterable | None = None, *, unit: str, desc: str = "",
                 total: float | None = None, disable: bool = False, leave: bool = True,
                 initial: float = 0, file: IO[str] | None = None) -> tqdm:
    """A ``tqdm`` bar over ``iterable`` (or updated by hand) counting ``unit`` (``"s"``,
    ``"utt"``, ``"batch"``, ...).

    ``total`` defaults to ``len(iterable)`` when it has one; a float total (seconds of audio)
    is displayed in whole units. ``file`` is where it writes (stderr by default; a
    ``StringIO`` in tests).
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if total is None:
        fmt = UNKNOWN_TOTAL.replace("{desc}", "{desc}: " if desc else "")
    else:
        fmt = KNOWN_TOTAL
    kwargs: dict[str, Any] = {"file": file} if file is not None else {}
    return tqdm(iterable, total=total, unit=unit, desc=desc or None, disable=disable,
                leave=leave, initial=initial, bar_format=fmt, **kwargs)
