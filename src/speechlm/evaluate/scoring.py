"""Log-likelihood scoring of audio under any speech LM, as the zero-shot benchmarks need it.

Audio is tokenised by the model's own speech tokenizer into the model's speech examples and
scored by its architecture (``SpeechLM.score``); for causal LMs that is
:func:`score_sequences`, batched and exact under padding (batch size 1 and 32 agree to 1e-4).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.models.causal_lm import MEAN, SUM, score_sequences

__all__ = ["MEAN", "SUM", "load_model", "score_audio", "score_sequences", "scoring_column"]
SCORINGS = {"sum": SUM, "mean": MEAN}


def scoring_column(scoring: str) -> int:
    """Column of ``score_sequences``' output for a scoring name (``sum`` or ``mean``)."""
    if scoring not in SCORINGS:
        raise SpeechLMError(f"unknown scoring '{scoring}'; known: {', '.join(SCORINGS)}")
    return SCORINGS[scoring]


def load_model(model, device: str | None = None):
    """A model directory -> loaded ``SpeechLM`` (CUDA when available); a loaded one passes."""
    if not isinstance(model, str | Path):
        return model
    from speechlm.models import load_speech_lm

    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_speech_lm(model, device=device)


def score_audio(speech_lm, paths: Sequence[str | Path], batch_size: int = 32,
                encode_batch: int = 16, errors: list[dict] | None = None,
                progress: bool = False) -> np.ndarray:
    """Tokenise audio files with the model's own speech tokenizer and score them: (N, 2).

    Columns: summed and mean log-probability (``SUM``, ``MEAN``).

    A file that cannot be read or tokenised gets NaN scores and an entry in ``errors``
    (``{"path", "error"}``) instead of stopping the job.
    """
    from speechlm.audio import load_audio
    from speechlm.progress import progress_bar

    rate = int(getattr(speech_lm.speech_tokenizer, "sample_rate", 16000))
    examples: list = [None] * len(paths)
    chunks = [list(range(i, min(i + encode_batch, len(paths))))
              for i in range(0, len(paths), encode_batch)]
    for chunk in progress_bar(chunks, unit="batch", desc="tokenising", disable=not progress):
        wavs, ok = [], []
        for i in chunk:
            try:
                wavs.append(load_audio(paths[i], sample_rate=rate))
                ok.append(i)
            except Exception as e:  # noqa: BLE001 - any unreadable file is skipped and listed
                _note(errors, paths[i], e)
        if not ok:
            continue
        try:
            encoded = speech_lm.encode_examples(wavs, rate)
        except Exception:  # noqa: BLE001 - find the bad file(s) one by one
            encoded = []
            for i, wav in zip(ok, wavs, strict=True):
                try:
                    encoded.append(speech_lm.encode_examples([wav], rate)[0])
                except Exception as e:  # noqa: BLE001
                    _note(errors, paths[i], e)
                    encoded.append(None)
        for i, example in zip(ok, encoded, strict=True):
            examples[i] = example
    good = [i for i, e in enumerate(examples) if e is not None and len(e)]
    out = np.full((len(paths), 2), np.nan, dtype=np.float64)
    if good:
        out[good] = speech_lm.score([examples[i] for i in good], batch_size=batch_size,
                                    progress=progress)
    return out


def _note(errors: list[dict] | None, path, exc: Exception) -> None:
    if errors is not None:
        errors.append({"path": str(path), "error": f"{type(exc).__name__}: {exc}"})
