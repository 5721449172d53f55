"""Style keeping of spoken continuations, after SpiRit-LM's STSP and pGSLM's prosody figures.

A prompt spoken in one style (``speechlm.corpus.styles``) is continued by the model, and the
continuation is labelled twice: from its audio, by a small classifier of utterance-level delivery
features fitted here on labelled speech of held-out voices, and from its transcript, by
``label_of_text``. S->S accuracy is the share of continuations labelled as their prompt.
Controls, with the same classifier: the prompt utterance's own remaining audio (what a perfect
continuation could score) and that rest resynthesised through the model's tokenizer and vocoder
(the ceiling its vocoder allows). pGSLM's figures: the Pearson correlation across prompts of the
prompt's and the continuation's mean log-F0, and min-MAE, the closest of K samples' mean log-F0
to the original rest's. The features, the classifier and the F0 plots are in
``speechlm.evaluate.delivery``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.corpus.manifest import Utterance
from speechlm.corpus.styles import STYLES, label_of_text
from speechlm.errors import AudioError, SpeechLMError
from speechlm.evaluate.delivery import (
    StyleClassifier,
    leave_one_speaker_out,
    plot_f0_contours,
    style_features,
)
from speechlm.generate.crossmodal import check_directions

MIN_REST_SECONDS = 0.5  # original audio left after the prompt, for the controls
TEXT_TOKENS = 24  # text tokens of a written continuation (a few words more than the rest has)


# -- the benchmark --------------------------------------------------------------------------
def split_labelled(utterances: Sequence[Utterance], classifier_fraction: float = 0.5,
                   seed: int = 0) -> tuple[list[Utterance], list[Utterance]]:
    """(classifier part, prompt part): disjoint utterances, stratified by style.

    Within each style utterances are ordered by a hash of ``seed`` and their id (so the split
    does not depend on manifest order or on other utterances) and the first
    ``round(classifier_fraction * n)`` fit the classifier; the rest, in the same order, are
    the prompt candidates. Both parts keep every voice, so the classifier has met the prompts'
    voices but never their utterances; ``leave_one_speaker_out`` measures it on unmet voices.
    """
    if not 0.0 <= classifier_fraction < 1.0:
        raise SpeechLMError(f"classifier_fraction must be in [0, 1), got {classifier_fraction}")
    fit, prompts = [], []
    for style in sorted({u.style for u in utterances if u.style is not None}):
        group = sorted((u for u in utterances if u.style == style),
                       key=lambda u: hashlib.sha1(f"{seed}:{u.id}".encode()).hexdigest())
        k = round(classifier_fraction * len(group))
        fit += group[:k]
        prompts += group[k:]
    return fit, prompts


def prompt_cut(utt: Utterance, prompt_seconds: float) -> float:
    """Where the prompt ends (seconds into the utterance): the word end nearest
    ``prompt_seconds`` when the utterance has word alignments (one in [prompt_seconds / 2,
    duration - MIN_REST_SECONDS], so no word is cut in two), else ``prompt_seconds``."""
    ends = [e for _, _, e in utt.words or []
            if prompt_seconds / 2 <= e <= utt.duration - MIN_REST_SECONDS]
    return min(ends, key=lambda e: abs(e - prompt_seconds)) if ends else prompt_seconds


def _pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None with under three pairs or a constant side."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _rate(pairs: Sequence[tuple[Any, Any]]) -> float | None:
    """Share of (label, truth) pairs that agree, pairs with a None label left out."""
    hits = [a == b for a, b in pairs if a is not None]
    return float(np.mean(hits)) if hits else None


def _confusion(pairs: Sequence[tuple[str, str | None]], labels: Sequence[str]) -> dict:
    """{true style: {predicted style: count}}, pairs with no prediction left out."""
    table = {t: dict.fromkeys(labels, 0) for t in labels}
    for truth, pred in pairs:
        if pred is not None:
            table.setdefault(truth, dict.fromkeys(labels, 0))
            table[truth][pred] = table[truth].get(pred, 0) + 1
    return table


def _transcriber(asr_lm: str, utterances: Sequence[Utterance], out: Path):
    """pocketsphinx with the manifest transcripts' bigram LM (``domain``) or generic English."""
    from speechlm.evaluate.asr import default_transcriber, normalize_text

    if asr_lm == "generic":
        return default_transcriber()
    if asr_lm != "domain":
        raise SpeechLMError(f"unknown asr_lm '{asr_lm}'; known: domain, generic")
    from speechlm.evaluate.domain_lm import domain_transcriber

    texts = [u.text for u in utterances if u.text and normalize_text(u.text)]
    if not texts:
        raise SpeechLMError("eval style: the manifest has no transcripts to build the domain "
                            "ASR's LM from; use --asr-lm generic")
    return domain_transcriber(texts, out / "asr_lm")


def _fit_classifier(utts: Sequence[Utterance], rate: int, progress: bool,
                    render: Any = None) -> tuple[StyleClassifier, list[dict]]:
    """Fit on ``utts`` (unusable ones listed, not fatal) with its leave-one-speaker-out CV.

    ``render(wav) -> (wav, rate)`` changes the audio first (e.g. a resynthesis)."""
    from speechlm.audio import load_audio
    from speechlm.progress import progress_bar

    feats, labels, speakers, skipped = [], [], [], []
    for u in progress_bar(utts, unit="utt", desc="classifier features", disable=not progress):
        try:
            wav = load_audio(u.audio, rate, u.start, u.end)
            feats.append(style_features(*(render(wav) if render else (wav, rate))))
        except SpeechLMError as e:
            skipped.append({"id": u.id, "reason": f"{u.audio}: {e}"})
            continue
        labels.append(u.style)
        speakers.append(u.speaker or u.id)  # no speaker: each utterance is its own voice
    if not feats:
        raise SpeechLMError("eval style: no utterance of the classifier part could be measured")
    x = np.stack(feats)
    clf = StyleClassifier.fit_features(x, labels)
    clf.info |= {"speakers": sorted(set(speakers)),
                 "cross_validation": leave_one_speaker_out(x, labels, speakers)}
    return clf, skipped


def _prepare(u: Utterance, rate: int, prompt_seconds: float) -> dict:
    """The prompt and the rest of one utterance with their features; raises to skip it."""
    from speechlm.audio import load_audio

    cut = prompt_cut(u, prompt_seconds)
    if u.duration < cut + MIN_REST_SECONDS:
        raise AudioError(f"{u.duration:.2f} s long: too short for a {cut:.2f}-s prompt and "
                         f"{MIN_REST_SECONDS:g} s of original rest")
    wav = load_audio(u.audio, rate, u.start, u.end)
    prompt, rest = wav[: int(cut * rate)], wav[int(cut * rate):]
    feats = {}
    for name, part in (("prompt", prompt), ("rest", rest)):
        try:
            feats[name] = style_features(part, rate)
        except AudioError as e:
            raise AudioError(f"{name}: {e}") from e
    return {"utt": u, "cut": cut, "prompt": prompt, "rest": rest, "feats": feats}


def _measure(clf: StyleClassifier, wav: np.ndarray, rate: int) -> tuple[str, float]:
    """(classifier label, mean log-F0 in semitones) of one clip; raises ``AudioError``."""
    feats = style_features(wav, rate)
    return clf.predict_features(feats)[0], float(feats[0])


def evaluate_style(model_dir: Any, manifest: str | Path, out_dir: str | Path,
                   prompts_per_style: int = 10, prompt_seconds: float = 3.0,
                   continuation_seconds: float = 4.0, samples: int = 3, seed: int = 0,
                   classifier_fraction: float = 0.5, classifier: str | Path | None = None,
                   temperature: float = 1.0, min_seconds: float = 1.0,
                   asr_lm: str = "domain", vocoder: str | Path | None = None,
                   device: str | None = None, batch_size: int = 8,
                   progress: bool = True, prompt_voice: bool = True,
                   directions: Sequence[str] = ("S->S",),
                   classifier_audio: str = "original") -> dict:
    """Run the style benchmark of ``model_dir`` on the styled utterances of ``manifest``.

    The manifest's labelled utterances are split by :func:`split_labelled`; the classifier is
    fitted on the first part (saved under ``out_dir/classifier``) unless ``classifier`` names
    a fitted one. Up to ``prompts_per_style`` utterances of each style of the second part are
    cut at :func:`prompt_cut` and continued ``samples`` times (at least ``min_seconds``, at most
    ``continuation_seconds``). Writes ``style.json``, ``style.md``, ``f0_<style>.png`` and
    ``audio/`` under ``out_dir`` and returns the JSON's content. A prompt that cannot be used
    (too short, unvoiced prompt or rest) is skipped and listed; so is a sample that came out
    empty or unvoiced. ``prompt_voice=False`` speaks continuations and the resynthesised rest
    in the vocoder's mean voice, so the prompt's voice (its register, much of a style) cannot
    reach the audio except through the model's tokens. ``directions`` adds SpiRit-LM's
    cross-modal ones (S->T, T->S, T->T: :func:`_cross_modal`) for a model with text tokens.
    ``classifier_audio="resynth"`` fits the classifier on its utterances resynthesised by the
    model's tokenizer and vocoder (in the voice ``prompt_voice`` picks) instead of the original
    audio, so it listens in the domain of the continuations.
    """
    from speechlm.audio import save_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.evaluate.scoring import load_model
    from speechlm.generate.continuation import continue_speech_batch, resolve_vocoder, resynthesize
    from speechlm.models.sampling import Sampling
    from speechlm.progress import progress_bar

    if samples < 1 or prompts_per_style < 1:
        raise SpeechLMError(f"samples and prompts_per_style must be >= 1, got {samples} and "
                            f"{prompts_per_style}")
    if classifier_audio not in ("original", "resynth"):
        raise SpeechLMError(f"classifier_audio: 'original' or 'resynth', got "
                            f"{classifier_audio!r}")
    directions = check_directions(directions)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    utts = [u for u in read_manifest(manifest) if u.style is not None]
    unknown = sorted({u.style for u in utts} - set(STYLES))
    if unknown or not utts:
        raise SpeechLMError(f"{manifest}: styles {unknown or 'none'} given; eval style needs "
                            f"utterances labelled with 'style' among {', '.join(STYLES)}")
    speech_lm = load_model(model_dir, device)
    if any(d != "S->S" for d in directions):  # refused before any work, not after S->S
        from speechlm.generate.crossmodal import check_text_vocab

        check_text_vocab(speech_lm)
    voc = resolve_vocoder(speech_lm, vocoder)
    tok = speech_lm.speech_tokenizer
    rate, voc_rate = int(tok.sample_rate), int(voc.sample_rate)
    fit_part, prompt_part = split_labelled(utts, classifier_fraction, seed)

    fit_skipped: list[dict] = []
    if classifier is not None:
        clf = StyleClassifier.load(classifier)
    else:
        # "resynth": the classifier hears the fitting speech through this model's tokenizer and
        # vocoder, as it will hear the continuations (the vocoders flatten delivery)
        render = None if classifier_audio == "original" else (
            lambda w: (resynthesize(tok, voc, w, rate, own_voice=prompt_voice)[1], voc_rate))
        clf, fit_skipped = _fit_classifier(fit_part, rate, progress, render)
        clf.info["audio"] = classifier_audio
        clf.save(out / "classifier")

    # prompts: the first prompts_per_style usable candidates of each style, in split order
    prompts, skipped = [], []
    for style in STYLES:
        if style not in clf.classes and any(u.style == style for u in prompt_part):
            # the classifier could never say this style: its prompts would count as misses
            skipped += [{"id": u.id, "style": style, "reason": f"style '{style}' is not a "
                         f"class of the classifier ({', '.join(clf.classes)}); refit it on "
                         "speech of every style"} for u in prompt_part if u.style == style]
            continue
        taken = 0
        for u in (u for u in prompt_part if u.style == style):
            if taken == prompts_per_style:
                break
            try:
                prompts.append(_prepare(u, rate, prompt_seconds))
                taken += 1
            except SpeechLMError as e:
                skipped.append({"id": u.id, "style": style, "reason": f"{u.audio}: {e}"})
                if progress:
                    print(f"skipped prompt {u.id}: {e}", file=sys.stderr)
    if not prompts:
        raise SpeechLMError(f"{manifest}: no usable prompt (reasons: "
                            f"{[s['reason'] for s in skipped][:3]})")

    # K continuations of every prompt in one batched call, sample-major: conts[k * n + i]
    n = len(prompts)
    conts = continue_speech_batch(
        speech_lm, [p["prompt"] for p in prompts] * samples, rate,
        Sampling(continuation_seconds, temperature, seed=seed,
                 min_seconds=min(min_seconds, continuation_seconds)),
        vocoder=voc, batch_size=batch_size, prompt_voice=prompt_voice)
    asr = _transcriber(asr_lm, utts, out)
    rest_texts = asr.transcribe_batch([p["rest"] for p in prompts], rate, progress=progress)

    rows, to_transcribe = [], []  # (sample row, audio) of every scored continuation
    for i, p in enumerate(progress_bar(prompts, unit="prompt", desc="style",
                                       disable=not progress)):
        u = p["utt"]
        save_audio(out / "audio" / f"{u.id}_prompt.wav", p["prompt"], rate)
        row = {"id": u.id, "speaker": u.speaker, "style": u.style, "text": u.text,
               "prompt_seconds": round(p["cut"], 4),
               "rest_seconds": round(len(p["rest"]) / rate, 4),
               "prompt_audio": f"audio/{u.id}_prompt.wav",
               "prompt_f0_st": float(p["feats"]["prompt"][0]),
               "rest_f0_st": float(p["feats"]["rest"][0]),
               "rest_audio_label": clf.predict_features(p["feats"]["rest"])[0],
               "rest_transcript": rest_texts[i], "rest_text_label": label_of_text(rest_texts[i]),
               "resynth_audio_label": None, "resynth_f0_st": None, "resynth_error": None}
        try:
            resynth = resynthesize(tok, voc, p["rest"], rate, own_voice=prompt_voice)[1]
            row["resynth_audio_label"], row["resynth_f0_st"] = _measure(clf, resynth, voc_rate)
        except SpeechLMError as e:
            row["resynth_error"] = str(e)
        row["samples"] = []
        for k in range(samples):
            c = conts[k * n + i]
            s = {"sample": k, "seconds": round(len(c.audio) / voc_rate, 4),
                 "stopped_at_eos": c.stopped_at_eos}
            try:
                if not len(c.audio):
                    raise AudioError("the model ended the continuation at once")
                s["audio_label"], s["f0_st"] = _measure(clf, c.audio, voc_rate)
            except AudioError as e:
                row["samples"].append(s | {"skipped": str(e)})
                continue
            s["audio"] = f"audio/{u.id}_cont{k}.wav"
            save_audio(out / s["audio"], c.audio, voc_rate)
            row["samples"].append(s)
            to_transcribe.append((s, c.audio))
        rows.append(row)
    texts = asr.transcribe_batch([a for _, a in to_transcribe], voc_rate, progress=progress)
    for (s, _), text in zip(to_transcribe, texts, strict=True):
        s |= {"transcript": text, "text_label": label_of_text(text)}

    if cross := [d for d in directions if d != "S->S"]:
        _cross_modal(speech_lm, voc, asr, clf, prompts, [c.prompt for c in conts[:n]], rows,
                     cross, Sampling(continuation_seconds, temperature, seed=seed), samples,
                     out, rate, progress)

    _plot_first_of_each_style(rows, prompts, conts, out, rate, voc_rate)
    result = {"model": str(speech_lm.dir), "manifest": str(manifest),
              "prompts_per_style": prompts_per_style, "prompt_seconds": prompt_seconds,
              "continuation_seconds": continuation_seconds, "min_seconds": min_seconds,
              "samples": samples, "seed": seed, "temperature": temperature,
              "classifier_fraction": classifier_fraction, "asr_lm": asr_lm,
              "voice": "prompt" if prompt_voice else "mean", "directions": list(directions),
              "classifier": {"path": str(classifier or out / "classifier"),
                             "fitted_here": classifier is None, "classes": clf.classes,
                             "n_fit_part": len(fit_part), "skipped": fit_skipped, **clf.info},
              "summary": summarise(rows, clf.classes), "prompts": rows, "skipped": skipped}
    (out / "style.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(out / "style.md", result)
    return result


def _plot_first_of_each_style(rows: list[dict], prompts: list[dict], conts: list, out: Path,
                              rate: int, voc_rate: int) -> None:
    """``f0_<style>.png``: the first prompt of each style with its first scored sample."""
    n = len(prompts)
    done = set()
    for i, row in enumerate(rows):
        scored = [s["sample"] for s in row["samples"] if "skipped" not in s]
        if row["style"] in done or not scored:
            continue
        done.add(row["style"])
        plot_f0_contours(prompts[i]["prompt"], conts[scored[0] * n + i].audio, rate,
                         out / f"f0_{row['style']}.png",
                         f"{row['style']}: {row['id']}, sample {scored[0]}", voc_rate)


def _cross_modal(lm: Any, voc: Any, asr: Any, clf: StyleClassifier, prompts: list[dict],
                 spoken_streams: list[Any], rows: list[dict], directions: Sequence[str],
                 sampling: Any, samples: int, out: Path, rate: int, progress: bool) -> None:
    """SpiRit-LM's S->T, T->S and T->T: fill ``row["cross"][direction]`` with the samples.

    A written prompt is the transcript words inside the spoken prompt (gold word times); the
    continuation of a written prompt is spoken in the vocoder's mean voice (there is no voice to
    follow). Text continuations are labelled by ``label_of_text``; spoken ones by the classifier
    and by their transcript, as S->S continuations are. ``spoken_streams``: the prompts as the
    S->S continuation tokenised them.
    """
    import dataclasses

    from speechlm.audio import save_audio
    from speechlm.generate.continuation import f0_from_pitch, speak
    from speechlm.generate.crossmodal import (
        check_text_vocab,
        continue_as_speech,
        continue_as_text,
        speech_prefix,
        text_prefix,
    )

    check_text_vocab(lm)
    tok = lm.speech_tokenizer
    written = [" ".join(w for w, _, end in p["utt"].words or [] if end <= p["cut"] + 1e-3)
               for p in prompts]
    prefixes = {"S": [speech_prefix(lm, s) for s in spoken_streams],
                "T": [text_prefix(lm, t) for t in written]}
    # speech tokens per second of the prompts (units, pitch and style), for the token budget
    per_second = np.mean([len(x) / p["cut"] for x, p in zip(prefixes["S"], prompts,
                                                                strict=True)])
    frames = np.mean([np.mean(s.durations) for s in spoken_streams if s.durations is not None]
                     or [2.0])
    for row, text in zip(rows, written, strict=True):
        row["prompt_text"], row["cross"] = text, {}
    for d in directions:
        source, target = d.split("->")
        for k in range(samples):
            run = dataclasses.replace(sampling, seed=sampling.seed + 1000 * (k + 1))
            if target == "T":
                texts = continue_as_text(lm, prefixes[source], run, TEXT_TOKENS)
                for row, text in zip(rows, texts, strict=True):
                    row["cross"].setdefault(d, []).append(
                        {"sample": k, "text": text, "text_label": label_of_text(text)})
                continue
            made = continue_as_speech(lm, prefixes[source], run,
                                      int(np.ceil(per_second * sampling.max_seconds)), frames)
            audio = []
            for row, streams in zip(rows, made, strict=True):
                s = {"sample": k, "units": int(len(streams.units))}
                wav = (speak(voc, f0_from_pitch(streams, tok, voc), None, rate)
                       if len(streams.units) else np.zeros(0, np.float32))
                wav = wav[: int(sampling.max_seconds * voc.sample_rate)]
                try:
                    if not len(wav):
                        raise AudioError("the model ended the continuation at once")
                    s["audio_label"], s["f0_st"] = _measure(clf, wav, voc.sample_rate)
                    s["audio"] = f"audio/{row['id']}_{source}2{target}{k}.wav"
                    save_audio(out / s["audio"], wav, voc.sample_rate)
                    audio.append((s, wav))
                except AudioError as e:
                    s["skipped"] = str(e)
                row["cross"].setdefault(d, []).append(s)
            texts = asr.transcribe_batch([w for _, w in audio], voc.sample_rate,
                                         progress=progress)
            for (s, _), text in zip(audio, texts, strict=True):
                s |= {"transcript": text, "text_label": label_of_text(text)}


def _cross_summary(rows: Sequence[dict]) -> dict:
    """Per cross-modal direction: the share of samples whose label (audio for speech, text for
    text continuations) and whose text label are the prompt's style."""
    out: dict[str, dict] = {}
    for d in sorted({d for r in rows for d in r.get("cross", {})}):
        got = [(r["style"], s) for r in rows for s in r["cross"].get(d, [])
               if "skipped" not in s]
        out[d] = {"n_samples": len(got),
                  "sentiment_accuracy": _rate([(s.get("text_label"), t) for t, s in got])}
        if d.endswith("->S"):
            out[d]["style_accuracy"] = _rate([(s["audio_label"], t) for t, s in got])
    return out


def summarise(rows: Sequence[dict], classes: Sequence[str]) -> dict:
    """Every figure of ``style.json``'s ``summary``, computed from its per-prompt rows."""
    scored = [(r, s) for r in rows for s in r["samples"] if "skipped" not in s]
    with_samples = [r for r in rows if any("skipped" not in s for s in r["samples"])]
    truth = [r["style"] for r in rows]
    majority = max(truth.count(t) for t in set(truth)) / len(truth) if truth else None

    def sample_f0(r: dict) -> list[float]:
        return [s["f0_st"] for s in r["samples"] if "skipped" not in s]

    resynth = [r for r in rows if r["resynth_f0_st"] is not None]
    labels = list(dict.fromkeys([*STYLES, *classes]))
    return {
        "n_prompts": len(rows), "n_samples_scored": len(scored),
        "n_samples_skipped": sum(len(r["samples"]) for r in rows) - len(scored),
        "style_accuracy": _rate([(s["audio_label"], r["style"]) for r, s in scored]),
        "sentiment_accuracy": _rate([(s["text_label"], r["style"]) for r, s in scored]),
        "rest_style_accuracy": _rate([(r["rest_audio_label"], r["style"]) for r in rows]),
        "resynth_style_accuracy": _rate([(r["resynth_audio_label"], r["style"]) for r in rows]),
        "rest_sentiment_accuracy": _rate([(r["rest_text_label"], r["style"]) for r in rows]),
        "chance": 1.0 / len(classes), "majority_rate": majority,
        # one point per prompt: its mean log-F0 against its samples' average mean log-F0
        "f0_corr": _pearson([r["prompt_f0_st"] for r in with_samples],
                            [np.mean(sample_f0(r)) for r in with_samples]),
        "rest_f0_corr": _pearson([r["prompt_f0_st"] for r in rows],
                                 [r["rest_f0_st"] for r in rows]),
        "resynth_f0_corr": _pearson([r["prompt_f0_st"] for r in resynth],
                                    [r["resynth_f0_st"] for r in resynth]),
        "f0_min_mae_st": float(np.mean([min(abs(f - r["rest_f0_st"]) for f in sample_f0(r))
                                        for r in with_samples])) if with_samples else None,
        "f0_mean_mae_st": float(np.mean([abs(s["f0_st"] - r["rest_f0_st"])
                                         for r, s in scored])) if scored else None,
        "resynth_f0_mae_st": float(np.mean([abs(r["resynth_f0_st"] - r["rest_f0_st"])
                                            for r in resynth])) if resynth else None,
        "by_style": {t: {"n_prompts": truth.count(t),
                         "style_accuracy": _rate([(s["audio_label"], t) for r, s in scored
                                                  if r["style"] == t]),
                         "sentiment_accuracy": _rate([(s["text_label"], t) for r, s in scored
                                                      if r["style"] == t])}
                     for t in labels if t in truth},
        "cross_modal": _cross_summary(rows),
        "confusion": {
            "continuation_audio": _confusion([(r["style"], s["audio_label"])
                                              for r, s in scored], labels),
            "continuation_text": _confusion([(r["style"], s["text_label"])
                                             for r, s in scored], labels),
            "rest_audio": _confusion([(r["style"], r["rest_audio_label"]) for r in rows], labels),
            "resynth_audio": _confusion([(r["style"], r["resynth_audio_label"]) for r in rows],
                                        labels),
            "rest_text": _confusion([(r["style"], r["rest_text_label"]) for r in rows], labels)},
    }


def write_markdown(path: Path, result: dict) -> None:
    """``style.md``: headline figures beside their controls, per style, confusions, prompts."""
    from speechlm.evaluate.report import markdown_table

    s, clf = result["summary"], result["classifier"]
    cv = (clf.get("cross_validation") or {}).get("accuracy")
    md = ["# Style keeping", "",
          f"{s['n_prompts']} prompts x {result['samples']} samples ({s['n_samples_scored']} "
          f"scored, {s['n_samples_skipped']} skipped); {len(result['skipped'])} prompts "
          f"skipped; model: {result['model']}; manifest: {result['manifest']}", "",
          markdown_table(["figure", "continuation", "original rest", "resynthesised rest"], [
              ["S->S style accuracy (audio classifier)", s["style_accuracy"],
               s["rest_style_accuracy"], s["resynth_style_accuracy"]],
              ["sentiment accuracy (transcript)", s["sentiment_accuracy"],
               s["rest_sentiment_accuracy"], None],
              ["mean log-F0 correlation with the prompt", s["f0_corr"], s["rest_f0_corr"],
               s["resynth_f0_corr"]],
              ["mean log-F0 MAE to the original rest (st): min over samples / mean",
               f"{_num(s['f0_min_mae_st'])} / {_num(s['f0_mean_mae_st'])}", 0.0,
               s["resynth_f0_mae_st"]]]), "",
          f"Chance {s['chance']:.4f}; majority-class rate {_num(s['majority_rate'])}; "
          f"classifier: {', '.join(clf['classes'])}, leave-one-speaker-out accuracy "
          f"{_num(cv)} ({'fitted here' if clf['fitted_here'] else 'loaded'} from "
          f"{clf['path']}).", "", "## By style", "",
          markdown_table(["style", "prompts", "style accuracy", "sentiment accuracy"],
                         [[k, v["n_prompts"], v["style_accuracy"], v["sentiment_accuracy"]]
                          for k, v in s["by_style"].items()]), ""]
    if s["cross_modal"]:
        md += ["## Across modalities (SpiRit-LM's STSP directions)", "",
               "Written prompts are the words inside the spoken prompt; speech from a written "
               "prompt is spoken in the vocoder's mean voice.", "",
               markdown_table(["direction", "samples", "style accuracy (audio)",
                               "sentiment accuracy (text)"],
                              [["S->S", s["n_samples_scored"], s["style_accuracy"],
                                s["sentiment_accuracy"]],
                               *[[d, f["n_samples"], f.get("style_accuracy"),
                                  f["sentiment_accuracy"]]
                                 for d, f in s["cross_modal"].items()]]), ""]
    for name, table in s["confusion"].items():
        labels = list(table)
        md += [f"## Confusion: {name.replace('_', ' ')} (rows: prompt style)", "",
               markdown_table(["", *labels], [[t, *(table[t][p] for p in labels)]
                                              for t in labels]), ""]
    md += ["## Prompts", "", markdown_table(
        ["id", "style", "rest label", "continuation labels (audio)", "continuation labels (text)"],
        [[r["id"], r["style"], r["rest_audio_label"],
          " ".join(x.get("audio_label", "-") for x in r["samples"]),
          " ".join(x.get("text_label", "-") for x in r["samples"])] for r in result["prompts"]]),
        ""]
    if result["skipped"]:
        md += ["## Skipped prompts", "", markdown_table(
            ["id", "style", "reason"], [[x["id"], x["style"], x["reason"].replace("|", "\\|")]
                                        for x in result["skipped"]]), ""]
    path.write_text("\n".join(md))


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"
