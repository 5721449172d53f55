"""VioLA's text-output tasks on held-out voices and sentences: ASR WER, translation BLEU.

Each item is a held-out utterance whose sentence is not in the training manifest. Its audio goes
through the model's codec; the model decodes greedily (:meth:`Viola.continue_task`):

- ``asr``: the transcript; WER (``jiwer``) against the normalised text;
- ``st``: the translation from speech; BLEU (``sacrebleu``, corpus level) against the reference
  translation (:func:`speechlm.corpus.translation.translate` of the text);
- ``mt``: the translation from the written text; BLEU likewise.

References and hypotheses are normalised alike (:func:`~speechlm.sequences.viola.normalize_text`:
lower case, no punctuation). TTS is judged by :func:`speechlm.evaluate.tts.evaluate_tts` (the
listening machines), not here. Writes ``viola_text.json`` and the hypotheses per model and task
(``<model>/<task>.jsonl``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from speechlm.errors import SpeechLMError
from speechlm.generate.viola import TEXT_TASKS


def pick_utterances(utts: list, n_items: int, seed: int, exclude_texts: set[str],
                    max_seconds: float) -> list:
    """Up to ``n_items`` utterances up to ``max_seconds`` whose text is not excluded (seeded)."""
    pool = [u for u in utts if u.text and u.duration <= max_seconds
            and u.text.strip().lower() not in exclude_texts]
    random.Random(seed).shuffle(pool)
    return pool[:n_items]


def evaluate_viola_text(models: Mapping[str, tuple[str | Path, Sequence[str]]],
                        manifest: str | Path, out_dir: str | Path,
                        train_manifest: str | Path | None = None, n_items: int = 100,
                        seed: int = 0, max_seconds: float = 6.0, target: str = "es",
                        progress: bool = True) -> dict:
    """Score ``{name: (model dir, tasks)}`` on their text tasks (module docstring)."""
    import jiwer
    import sacrebleu

    from speechlm.corpus.manifest import read_manifest
    from speechlm.corpus.translation import translate
    from speechlm.generate.viola import viola_text
    from speechlm.models.speech_lm import load_speech_lm
    from speechlm.progress import progress_bar
    from speechlm.sequences.viola import normalize_text
    from speechlm.tokenizers.reading import read_utterance

    out = Path(out_dir)
    exclude = set()
    if train_manifest is not None:
        exclude = {u.text.strip().lower() for u in read_manifest(train_manifest) if u.text}
    items = pick_utterances(read_manifest(manifest), n_items, seed, exclude, max_seconds)
    if not items:
        raise SpeechLMError(f"{manifest}: no held-out utterance up to {max_seconds:g} s with an "
                            "unseen sentence")
    refs = {"asr": [normalize_text(u.text) for u in items]}
    refs["st"] = refs["mt"] = [normalize_text(translate(u.text, target)) for u in items]
    results: dict[str, dict] = {}
    for name, (model_dir, tasks) in models.items():
        unknown = set(tasks) - set(TEXT_TASKS)
        if unknown:
            raise SpeechLMError(f"{name}: text tasks are {', '.join(TEXT_TASKS)}, got {unknown}")
        if not tasks:
            continue
        lm = load_speech_lm(model_dir)
        rate = int(lm.speech_tokenizer.sample_rate)
        results[name] = {}
        for task in tasks:
            hyps, rows = [], []
            bar = progress_bar(range(len(items)), unit="item", desc=f"{name} {task}",
                               disable=not progress)
            for i in bar:
                u = items[i]
                audio = None if task == "mt" else read_utterance(u, rate)
                hyp = viola_text(lm, task, audio, rate, u.text, target=target)
                hyps.append(hyp)
                rows.append({"id": u.id, "ref": refs[task][i], "hyp": hyp})
            path = out / name / f"{task}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            if task == "asr":
                results[name]["asr_wer"] = float(jiwer.wer(refs[task], hyps))
                results[name]["asr_cer"] = float(jiwer.cer(refs[task], hyps))
            else:
                bleu = sacrebleu.corpus_bleu(hyps, [refs[task]])
                results[name][f"{task}_bleu"] = round(float(bleu.score), 2)
    record = {"n_items": len(items), "target": target, "models": {
        k: {"dir": str(v[0]), "tasks": list(v[1])} for k, v in models.items()},
        "results": results}
    out.mkdir(parents=True, exist_ok=True)
    (out / "viola_text.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
