"""VioLA's text-output tasks on one input: ASR, speech translation (ST), text translation (MT).

:func:`viola_text` runs one task of a loaded ``viola`` model: speech goes through the model's
codec, text through :func:`~speechlm.sequences.viola.normalize_text`; the output is decoded
greedily (:meth:`~speechlm.models.modeling_viola.Viola.continue_task`). TTS is
:func:`speechlm.generate.tts.speak` (``speechlm tts``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from speechlm.errors import ConfigError

TEXT_TASKS = ("asr", "st", "mt")
CHARS_PER_FRAME = 0.5  # decoding cap: speech says well under 25 characters a second at 50 Hz


def viola_text(lm: Any, task: str, audio: np.ndarray | None = None, sample_rate: int = 0,
               text: str | None = None, source: str = "en", target: str = "es") -> str:
    """The output text of ``task``: the transcript (asr), or the ``target`` translation of the
    speech (st) or of ``text`` (mt). ``audio`` is mono at ``sample_rate``."""
    from speechlm.sequences.viola import char_indices, chars_text

    if lm.architecture.name != "viola":
        raise ConfigError(f"{lm.dir}: a {lm.architecture.name} model; ASR and translation "
                          "need a viola model")
    if task not in TEXT_TASKS:
        raise ConfigError(f"task: one of {', '.join(TEXT_TASKS)} (TTS: speechlm tts), got "
                          f"{task!r}")
    if task == "mt":
        if not text or not char_indices(text).size:
            raise ConfigError("text: mt translates a written text; give one")
        src = char_indices(text)
        out = lm.model.continue_task(task, source, target, text=src, max_new=2 * len(src) + 20)
    else:
        if audio is None or len(audio) == 0:
            raise ConfigError(f"audio: {task} reads speech; give a non-empty recording")
        frames = np.asarray(lm.speech_tokenizer.encode([audio], sample_rate)[0].codes)
        out = lm.model.continue_task(task, source, source if task == "asr" else target,
                                     frames=frames,
                                     max_new=int(CHARS_PER_FRAME * frames.shape[-1]) + 20)
    return chars_text(out).strip()
