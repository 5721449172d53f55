"""Spoken question answering of instruction-tuned models, on held-out stories and voices.

For each test item of :mod:`speechlm.corpus.instructions` (a spoken story fact and a question
about it, spoken by a held-out voice), every model answers through :func:`speechlm.generate.
chat.reply`, from the audio file, as ``speechlm chat`` does:

- ``text_accuracy``: the text answer names the right slot value and no other value of that slot
  (a chain model's ``[ta]`` part, an omni model's text); ``text_exact``: it is the reference
  response itself (case and punctuation aside);
- ``spoken_accuracy``: the same check on the domain ASR's transcript of the spoken answer;
- ``transcript_wer``: how well a chain model wrote the question down (``[tq]``);
- ``written_accuracy`` and ``agreement`` (AudioChatLLaMA's modality consistency): the answer to
  the written question, and how often it names the same value as the answer to the spoken one;
- ``time_to_first_audio_s``: from the call to the first vocoded chunk of the spoken answer;
- ``in_context`` (COSMIC): on the question type absent from fine-tuning (``heldout_qtype``;
  its items count in no other figure), text accuracy with no example and with the ``shots``
  shortest solved examples of that type (other test items) before the question; an item whose
  examples and question exceed the model's context is listed (``too_long``), not scored.

Accuracies are fractions of the items scored; a model that writes nothing scores 0 on that item.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.evaluate.asr import normalize_text

WRITERS = ("chain", "omni", "spectron")  # modes that write a text answer


def named_values(text: str, values: Sequence[str]) -> set[str]:
    """Which of ``values`` (one-word slot values) ``text`` names."""
    words = set(normalize_text(text).split())
    return {v for v in values if v in words}


def correct(text: str, answer: str, candidates: Sequence[str]) -> bool:
    """``text`` names ``answer`` and no other of ``candidates``."""
    return named_values(text, [answer, *candidates]) == {answer}


def load_items(audio_dir: str | Path, split: str = "test") -> list[dict]:
    """The items of ``split`` with the absolute path of their spoken prompt (``prompt_audio``)."""
    from speechlm.corpus.manifest import read_jsonl

    d = Path(audio_dir)
    paths = {u["id"]: d / u["audio"] for _, _, u in read_jsonl(d / "manifest.jsonl")}
    items = []
    for _, _, item in read_jsonl(d / "items.jsonl", "items"):
        if item.get("split") == split and f"{item['id']}.prompt" in paths:
            items.append({**item, "prompt_audio": str(paths[f"{item['id']}.prompt"])})
    return items


def _turn_length(row: Mapping) -> int:
    return len(row["prompt_units"]) + len(row["response_units"]) + 2 * len(row["prompt_text"])


def _shot_ids(vocab: Any, shots: Sequence[Mapping]) -> list[int]:
    """Solved chain-of-modality turns (``prompt_units`` etc. rows) as context ids."""
    from speechlm.sequences.speechgpt import speechgpt_chain

    ids: list[int] = []
    for row in shots:
        ids += speechgpt_chain(row, vocab).input_ids
    return ids


def evaluate_qa(models: Mapping[str, str | Path], audio_dir: str | Path, out_dir: str | Path,
                asr_sentences: Sequence[str] | None = None, max_items: int | None = None,
                heldout_qtype: str | None = None, shot_rows: Sequence[Mapping] = (),
                shots: int = 2, seed: int = 0, max_seconds: float = 4.0,
                temperature: float = 0.8, top_k: int = 20, progress: bool = True) -> dict:
    """Score each model (name -> model directory) on the test items of ``audio_dir``.

    ``asr_sentences`` are what the domain ASR's LM is estimated on (default: the grammar's);
    they must not hold the test answers. ``shot_rows`` are token rows (``prompt_units``,
    ``prompt_text``, ``response_text``, ``response_units``, ``id``, ``qtype``) that in-context
    examples are drawn from (never the item being asked); with them, two references bound what
    the spoken answers can score: ``ground_truth`` (the recorded response through the ASR) and
    ``resynth`` (its units through the first model's vocoder). Writes ``out_dir/qa.json``
    (figures) and ``answers.jsonl`` (every reply).
    """
    from speechlm.audio import load_audio
    from speechlm.evaluate.asr import wer
    from speechlm.evaluate.domain_lm import domain_transcriber
    from speechlm.generate.chat import default_mode, reply
    from speechlm.models.speech_lm import load_speech_lm
    from speechlm.progress import progress_bar

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = load_items(audio_dir)
    if max_items is not None:
        items = items[:max_items]
    if not items:
        raise ValueError(f"{audio_dir}: no test items")
    asr = domain_transcriber(asr_sentences, out / "asr_lm")
    results: dict[str, dict] = {}
    answers = []
    for name, model_dir in models.items():
        lm = load_speech_lm(model_dir)
        mode = default_mode(lm)
        rate = int(lm.speech_tokenizer.sample_rate)
        acc: dict[str, list] = {k: [] for k in (
            "text", "exact", "spoken", "written", "agree", "ttfa", "wer_ref", "wer_hyp", "zero",
            "few", "too_long")}
        for it in progress_bar(items, unit="item", desc=f"qa {name}", disable=not progress):
            wav = load_audio(it["prompt_audio"], rate)
            cands = [c for c in it["candidates"] if c != it["answer"]]
            common = {"max_seconds": max_seconds, "temperature": temperature, "top_k": top_k,
                      "seed": seed}
            if it["qtype"] == heldout_qtype:
                # a type never fine-tuned on: only the in-context check asks it
                if mode != "chain":
                    continue
                pool = [s for s in shot_rows if s.get("qtype") == heldout_qtype
                        and s["id"] != it["id"]]
                if len(pool) < shots:
                    continue
                # the shortest solved examples, so that they and the question fit the context
                pick = sorted(pool, key=_turn_length)[:shots]
                z = reply(lm, wav, rate, speak=False, **common)
                try:
                    f = reply(lm, wav, rate, speak=False, context=_shot_ids(lm.vocab, pick),
                              **common)
                except SpeechLMError:
                    acc["too_long"].append(it["id"])
                    continue
                acc["zero"].append(correct(z.text, it["answer"], cands))
                acc["few"].append(correct(f.text, it["answer"], cands))
                answers.append({"model": name, "id": it["id"], "qtype": it["qtype"],
                                "answer": it["answer"], "mode": mode, "zero_shot_text": z.text,
                                "few_shot_text": f.text, "shots": [p["id"] for p in pick]})
                continue
            r = reply(lm, wav, rate, **common)
            heard = asr.transcribe(r.audio, r.sample_rate) if r.audio is not None and len(
                r.audio) else ""
            rec = {"model": name, "id": it["id"], "qtype": it["qtype"], "answer": it["answer"],
                   "mode": mode, **r.record(), "heard": heard}
            rec["spoken_correct"] = correct(heard, it["answer"], cands)
            acc["spoken"].append(rec["spoken_correct"])
            if r.time_to_first_audio_s is not None:
                acc["ttfa"].append(r.time_to_first_audio_s)
            if mode in WRITERS:
                rec["text_correct"] = correct(r.text, it["answer"], cands)
                acc["text"].append(rec["text_correct"])
                rec["text_exact"] = normalize_text(r.text) == normalize_text(it["response"])
                acc["exact"].append(rec["text_exact"])
                if mode in ("chain", "spectron"):  # a transcript is written before the answer
                    acc["wer_ref"].append(f"{it['context']} {it['question']}")
                    acc["wer_hyp"].append(r.question_text)
                w = reply(lm, text=f"{it['context']} {it['question']}", speak=False, **common)
                rec["written_correct"] = correct(w.text, it["answer"], cands)
                acc["written"].append(rec["written_correct"])
                values = [it["answer"], *cands]
                acc["agree"].append(named_values(w.text, values) == named_values(r.text, values))
                rec["written_text"] = w.text
            answers.append(rec)
        results[name] = _summary(mode, acc, shots, heldout_qtype, wer)
    if shot_rows and models:
        results.update(_references(items, audio_dir, shot_rows, next(iter(models.values())),
                                   heldout_qtype, asr, progress))
    record = {"n_items": len(items), "results": results}
    (out / "qa.json").write_text(json.dumps(record, indent=2) + "\n")
    with open(out / "answers.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(a) + "\n" for a in answers)
    return record


def _references(items: Sequence[dict], audio_dir: str | Path, rows: Sequence[Mapping],
                model_dir: str | Path, heldout_qtype: str | None, asr: Any, progress: bool
                ) -> dict[str, dict]:
    """Spoken accuracy of the recorded responses and of their units through the vocoder."""
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_jsonl
    from speechlm.evaluate.asr import ASR_SAMPLE_RATE
    from speechlm.generate.continuation import resolve_vocoder
    from speechlm.models.speech_lm import load_speech_lm
    from speechlm.progress import progress_bar
    from speechlm.tokenizers.streams import Streams

    lm = load_speech_lm(model_dir)
    vocoder = resolve_vocoder(lm)
    d = Path(audio_dir)
    paths = {u["id"]: d / u["audio"] for _, _, u in read_jsonl(d / "manifest.jsonl")}
    units = {r["id"]: r["response_units"] for r in rows}
    flags: dict[str, list[bool]] = {"ground_truth": [], "resynth": []}
    for it in progress_bar([i for i in items if i["qtype"] != heldout_qtype], unit="item",
                           desc="qa references", disable=not progress):
        cands = [c for c in it["candidates"] if c != it["answer"]]
        path = paths.get(f"{it['id']}.response")
        if path is None or it["id"] not in units:
            continue
        heard = asr.transcribe(load_audio(path, ASR_SAMPLE_RATE), ASR_SAMPLE_RATE)
        flags["ground_truth"].append(correct(heard, it["answer"], cands))
        wav = vocoder.synthesize(Streams(lm.speech_tokenizer.frame_rate,
                                         units=np.asarray(units[it["id"]])))
        flags["resynth"].append(correct(asr.transcribe(wav, vocoder.sample_rate), it["answer"],
                                        cands))
    return {name: {"mode": "reference", "items": len(f),
                   "spoken_accuracy": round(float(np.mean(f)), 4) if f else None}
            for name, f in flags.items()}


def _summary(mode: str, acc: dict[str, list], shots: int, heldout_qtype: str | None,
             wer: Any) -> dict:
    def mean(xs: list) -> float | None:
        return round(float(np.mean(xs)), 4) if xs else None

    s = {"mode": mode, "items": len(acc["spoken"]), "spoken_accuracy": mean(acc["spoken"]),
         "time_to_first_audio_s": mean(acc["ttfa"])}
    if mode in WRITERS:
        s.update({"text_accuracy": mean(acc["text"]), "text_exact": mean(acc["exact"]),
                  "written_accuracy": mean(acc["written"]),
                  "agreement": mean(acc["agree"])})
    if acc["wer_ref"]:
        s["transcript_wer"] = round(wer(acc["wer_ref"], acc["wer_hyp"]), 4)
        if acc["few"]:
            s["in_context"] = {"qtype": heldout_qtype, "items": len(acc["few"]),
                               "zero_shot": mean(acc["zero"]), f"{shots}_shot": mean(acc["few"]),
                               "too_long": acc["too_long"]}
    return s
