"""``speechlm eval all``: every benchmark present in a data folder, one model load, one report."""

from __future__ import annotations

from pathlib import Path

from speechlm.errors import SpeechLMError
from speechlm.evaluate.report import write_report

_NAMES = {"lexical": "sWUGGY (lexical)", "syntactic": "sBLIMP (syntactic)",
          "ssc": "sStoryCloze", "tsc": "tStoryCloze"}


def available_tasks(data_dir: str | Path) -> list[str]:
    """The benchmarks ``data_dir`` holds: ``lexical``, ``syntactic``, ``ssc``, ``tsc``."""
    from speechlm.corpus.benchmarks import read_gold, read_storycloze

    found = []
    for task in ("lexical", "syntactic"):
        try:
            read_gold(data_dir, task)
            found.append(task)
        except SpeechLMError:
            pass
    for kind in ("ssc", "tsc"):
        try:
            read_storycloze(data_dir, kind)
            found.append(kind)
        except SpeechLMError:
            pass
    return found


def evaluate_all(model_dir, data_dir: str | Path, out_dir: str | Path, scoring: str = "sum",
                 batch_size: int = 32, device: str | None = None, progress: bool = True) -> dict:
    """Run every benchmark found in ``data_dir``; write ``S/results.json`` and ``S/results.md``.

    Each task's files go to ``S/<task>/`` as ``speechlm eval zerospeech`` writes them.
    Raises if ``data_dir`` holds no benchmark.
    """
    from speechlm.evaluate.scoring import load_model
    from speechlm.evaluate.storycloze import evaluate_storycloze
    from speechlm.evaluate.zerospeech import evaluate_zerospeech

    tasks = available_tasks(data_dir)
    if not tasks:
        raise SpeechLMError(f"{data_dir}: no lexical/dev, syntactic/dev or StoryCloze sSC/tSC "
                            "folder found (make one with 'speechlm synth benchmark')")
    speech_lm = load_model(model_dir, device)
    results: dict[str, dict] = {}
    for task in tasks:
        if task in ("lexical", "syntactic"):
            results[task] = evaluate_zerospeech(speech_lm, data_dir, task, out_dir, scoring,
                                                batch_size=batch_size, progress=progress)
        else:
            results[task] = evaluate_storycloze(speech_lm, data_dir, task, out_dir, scoring,
                                                batch_size=batch_size, progress=progress)
    write_report(out_dir, results, f"Zero-shot evaluation of {Path(speech_lm.dir).name}")
    return results
