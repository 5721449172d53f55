"""Reading a manifest's audio ahead of the consumer, in background threads.

soundfile and soxr release the GIL while decoding and resampling, so a couple of reader threads
keep the tokenizer (torch, also GIL-free in its kernels) fed without extra processes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from speechlm.audio import load_audio
from speechlm.corpus.manifest import Utterance
from speechlm.errors import SpeechLMError


def read_utterance(utt: Utterance, sample_rate: int) -> np.ndarray:
    """The utterance's audio (its start..end segment) as mono float32 at ``sample_rate``."""
    return load_audio(utt.audio, sample_rate, start=utt.start, end=utt.end)


def iter_audio(utts: Iterable[Utterance], sample_rate: int, threads: int | None = None,
               prefetch: int = 32) -> Iterator[tuple[Utterance, np.ndarray | None, str | None]]:
    """Yield ``(utt, wav, None)`` or ``(utt, None, error message)`` in manifest order.

    ``threads`` defaults to the core count (at most 8).
    """

    def job(utt: Utterance) -> tuple[np.ndarray | None, str | None]:
        try:
            return read_utterance(utt, sample_rate), None
        except SpeechLMError as e:
            return None, str(e)
        except Exception as e:  # a reader bug must not kill a long job: record it and go on
            return None, f"{utt.audio}: {type(e).__name__}: {e}"

    threads = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        pending: deque = deque()
        for utt in utts:
            pending.append((utt, pool.submit(job, utt)))
            if len(pending) >= prefetch:
                u, f = pending.popleft()
                yield (u, *f.result())
        while pending:
            u, f = pending.popleft()
            yield (u, *f.result())
