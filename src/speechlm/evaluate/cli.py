"""``speechlm eval zerospeech|storycloze|all|abx|generation|asr|speech|style|crossmodal|
similarity|turns|duplex``.

Heavy imports (torch, transformers, pocketsphinx, resemblyzer, onnxruntime) stay inside the
functions so that ``speechlm --help`` is fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

eval_app = typer.Typer(no_args_is_help=True)

_SCORING = typer.Option("sum", help="Sequence score: 'sum' (log-likelihood) or 'mean' per token.")
_DEVICE = typer.Option(None, help="torch device (default: cuda when available, else cpu).")
_BATCH = typer.Option(32, help="Sequences per scoring batch.")


def _echo_result(name: str, r: dict, errors: Path | None = None) -> None:
    """The accuracy line, and on stderr the pairs left out for unreadable files (``errors``:
    where those files are listed)."""
    typer.echo(f"{name}: accuracy {r['accuracy']:.4f} over {r['n_pairs']} pairs "
               f"({r['n_items']} items, scoring={r.get('scoring')}, chance 0.5)")
    if r.get("n_skipped") or r.get("n_failed_files"):
        where = f": listed in {errors}" if errors is not None else ""
        typer.echo(f"{name}: {r.get('n_skipped', 0)} pair(s) left out, "
                   f"{r.get('n_failed_files', 0)} unreadable file(s){where}", err=True)


def _skipped_and_report(n_skipped: int, what: str, listed: Path, report: Path) -> None:
    """How many inputs were skipped and where they are listed (stderr), then the report."""
    if n_skipped:
        typer.echo(f"{n_skipped} {what} skipped: listed in {listed}", err=True)
    typer.echo(f"report: {report}")


@eval_app.command("zerospeech")
def zerospeech(
    model: Path = typer.Option(..., help="Model directory (speechlm train output)."),
    data: Path = typer.Option(..., help="Benchmark folder holding <task>/dev/ + gold.csv."),
    task: str = typer.Option(..., help="lexical (sWUGGY) or syntactic (sBLIMP)."),
    out: Path = typer.Option(..., help="Submission folder: writes <out>/<task>/dev.txt."),
    scoring: str = _SCORING,
    split: str = typer.Option("dev", help="Split folder (dev; test if you hold its gold)."),
    batch_size: int = _BATCH,
    device: str = _DEVICE,
) -> None:
    """ZeroSpeech 2021 lexical/syntactic: submission file + official accuracy and breakdowns."""
    from speechlm.evaluate.zerospeech import evaluate_zerospeech

    r = evaluate_zerospeech(model, data, task, out, scoring=scoring, split=split,
                            batch_size=batch_size, device=device)
    _echo_result(task, r, out / task / "errors.jsonl")
    typer.echo(f"submission: {r['submission']}; report: {out / task / (split + '_results.md')}")


@eval_app.command("storycloze")
def storycloze(
    model: Path = typer.Option(..., help="Model directory."),
    data: Path = typer.Option(..., help="Folder holding storycloze/sSC and storycloze/tSC."),
    kind: str = typer.Option(..., help="ssc or tsc."),
    out: Path = typer.Option(..., help="Output folder: writes <out>/<kind>/."),
    scoring: str = _SCORING,
    batch_size: int = _BATCH,
    device: str = _DEVICE,
) -> None:
    """Spoken StoryCloze (sSC or tSC) accuracy."""
    from speechlm.evaluate.storycloze import evaluate_storycloze

    r = evaluate_storycloze(model, data, kind, out, scoring=scoring, batch_size=batch_size,
                            device=device)
    _echo_result(kind, r, out / kind / "errors.jsonl")


@eval_app.command("all")
def all_(
    model: Path = typer.Option(..., help="Model directory."),
    data: Path = typer.Option(..., help="Benchmark folder (speechlm synth benchmark output)."),
    out: Path = typer.Option(..., help="Output folder: results.json, results.md, per task."),
    scoring: str = _SCORING,
    batch_size: int = _BATCH,
    device: str = _DEVICE,
) -> None:
    """Every benchmark present in --data; writes <out>/results.json and <out>/results.md."""
    from speechlm.evaluate.suite import evaluate_all

    results = evaluate_all(model, data, out, scoring=scoring, batch_size=batch_size,
                           device=device)
    for name, r in results.items():
        _echo_result(name, r, out / name / "errors.jsonl")
    typer.echo(f"report: {out / 'results.md'}")


@eval_app.command("abx")
def abx(
    tokenizer: Path = typer.Option(..., help="Tokenizer dir (or a model dir/speech_tokenizer)."),
    manifest: Path = typer.Option(..., help="Manifest with gold phone alignments (held-out voices "
                                            "for a fair figure)."),
    out: Path = typer.Option(..., help="Output folder: abx.json, abx.md."),
    representation: list[str] = typer.Option(["features", "units"],
                                             help="features (front end) and/or units (one-hot)."),
    triphone: bool = typer.Option(False, help="Triphone ABX (same context) instead of phones."),
    max_utterances: int = typer.Option(200, help="Utterances read from the manifest."),
    max_per_cell: int = typer.Option(3, help="Tokens per (phone, speaker) cell (cost bound)."),
    seed: int = typer.Option(0),
) -> None:
    """ABX error within/across speaker over gold phones, with PNMI/purity of the units."""
    from speechlm.evaluate.abx import evaluate_abx

    res = evaluate_abx(tokenizer, manifest, representation, context=triphone,
                       max_utterances=max_utterances, max_per_cell=max_per_cell, seed=seed,
                       out_dir=out)
    for name, r in res.items():
        typer.echo(f"{name}: within {r['within']:.4f}, across {r['across']:.4f} "
                   f"({r['n_phone_pairs_within']} phone pairs)")
    typer.echo(f"report: {out / 'abx.md'}")


@eval_app.command("generation")
def generation(
    model: Path = typer.Option(..., help="Model directory (with vocoder/, or pass --vocoder)."),
    manifest: Path = typer.Option(..., help="Prompts: utterances with transcripts (held-out)."),
    out: Path = typer.Option(..., help="Output folder: generation.json/.md, transcripts, audio."),
    n_prompts: int = typer.Option(20, help="Number of prompts."),
    prompt_seconds: float = typer.Option(3.0, help="Prompt length in seconds."),
    max_seconds: float = typer.Option(6.0, help="Continuation length at most."),
    temperature: float = typer.Option(1.0),
    top_k: int = typer.Option(0),
    top_p: float = typer.Option(1.0),
    seed: int = typer.Option(0),
    repetition_penalty: float = typer.Option(
        1.0, help="Penalise units already in the prompt or continuation (CTRL); 1.0 is off."),
    text_lm: str = typer.Option(None, help="HF causal LM (dir or hub id) for perplexity; "
                                           "default: the tiny grammar LM (trained once, cached)."),
    vocoder: Path = typer.Option(None, help="Vocoder directory (default: MODEL/vocoder)."),
    asr_lm: str = typer.Option("generic", help="pocketsphinx LM: generic (English) or domain "
                                               "(the synthetic grammar)."),
    device: str = _DEVICE,
) -> None:
    """Continuations from 3-s prompts: resynthesis WER, perplexity, auto-BLEU, self-BLEU."""
    from speechlm.evaluate.generation import evaluate_generation

    r = evaluate_generation(model, manifest, out, n_prompts=n_prompts,
                            prompt_seconds=prompt_seconds, max_seconds=max_seconds,
                            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                            text_lm=text_lm, vocoder=vocoder, asr_lm=asr_lm, device=device,
                            repetition_penalty=repetition_penalty)
    for k in ("resynth_wer", "original_wer", "perplexity", "auto_bleu_2", "self_bleu_4"):
        v = r[k]
        typer.echo(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    typer.echo(f"report: {out / 'generation.md'}")


@eval_app.command("asr")
def asr(
    audio: list[Path] = typer.Argument(None, help="Audio files to transcribe."),
    manifest: Path = typer.Option(None, help="Measure WER on this manifest's audio and text."),
    max_utterances: int = typer.Option(None, help="With --manifest: the first N utterances."),
    out: Path = typer.Option(None, help="With --manifest: also write the figures as JSON."),
    domain: bool = typer.Option(False, help="Use a bigram LM + dictionary of the synthetic "
                                            "grammar instead of the generic English LM."),
) -> None:
    """Transcribe files with pocketsphinx ('<file>\\t<text>'), or measure its WER on a manifest."""
    import json

    from speechlm.evaluate.asr import default_transcriber, manifest_wer

    if manifest is None and not audio:
        from speechlm.errors import SpeechLMError

        raise SpeechLMError("eval asr: give audio files to transcribe, or --manifest M")
    asr_model = None
    if domain:
        from speechlm.evaluate.domain_lm import domain_transcriber

        asr_model = domain_transcriber()
    if manifest is not None:
        res = manifest_wer(manifest, max_utterances, transcriber=asr_model, progress=True)
        res["asr_lm"] = "domain" if domain else "generic"
        text = json.dumps(res, indent=2)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n")
        typer.echo(text)
        return
    asr_model = asr_model or default_transcriber()
    for path, text in zip(audio or [], asr_model.transcribe_files(audio or []), strict=True):
        typer.echo(f"{path}\t{text}")


@eval_app.command("speech")
def speech(
    audio: Path = typer.Option(..., help="Folder of generated or resynthesised .wav files, each "
                                         "named <manifest id>.wav."),
    manifest: Path = typer.Option(..., help="Manifest of the reference utterances."),
    out: Path = typer.Option(..., help="Output folder: speech.json (per file, aggregate, "
                                       "skipped) and speech.md."),
    metrics: str = typer.Option(
        "wer,speaker,mos,intrusive",
        help="Comma-separated metric groups: wer (pocketsphinx WER/CER, with the reference "
             "audio's as the ceiling), speaker (resemblyzer similarity to the reference, with "
             "same- and other-speaker baselines), mos (DNSMOS), intrusive (STOI, PESQ, F0 RMSE, "
             "F0 correlation, voicing error: for files as long as their reference)."),
    asr_lm: str = typer.Option("domain", help="pocketsphinx LM for wer: domain (a bigram LM of "
                                              "the manifest's transcripts) or generic (English)."),
    length_tolerance: float = typer.Option(
        0.1, help="Seconds a file may differ from its reference's length and still count as "
                  "time-aligned for the intrusive metrics."),
    seed: int = typer.Option(0, help="Seed of the utterances picked for the speaker baselines."),
) -> None:
    """Quality of generated or resynthesised speech against its references, per file and overall.

    Files are matched to manifest utterances by name (<id>.wav); a file that cannot be scored
    (no reference, unreadable, silent, too short, below 16 kHz) is skipped and listed.
    """
    from speechlm.evaluate.speech import evaluate_speech

    r = evaluate_speech(audio, manifest, out, metrics=metrics, asr_lm=asr_lm,
                        length_tolerance=length_tolerance, seed=seed, progress=True)
    agg = r["aggregate"]
    for k, v in agg.items():
        if not k.startswith("n_"):
            typer.echo(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    typer.echo(f"scored {agg['n_scored']} of {agg['n_files']} files")
    _skipped_and_report(agg["n_skipped"], "file(s)", out / "speech.json", out / "speech.md")


@eval_app.command("style")
def style(
    model: Path = typer.Option(..., help="Model directory (with vocoder/, or pass --vocoder)."),
    manifest: Path = typer.Option(..., help="Utterances labelled with 'style' (held-out voices): "
                                            "split into classifier-fitting and prompt parts."),
    out: Path = typer.Option(..., help="Output folder: style.json/.md, f0_<style>.png, audio/, "
                                       "classifier/ (when fitted here)."),
    prompts_per_style: int = typer.Option(10, help="Prompts per style."),
    samples: int = typer.Option(3, help="Continuations per prompt (min-MAE is over these)."),
    prompt_seconds: float = typer.Option(3.0, help="Prompt length (cut at the nearest word end "
                                                   "when the manifest has word alignments)."),
    max_seconds: float = typer.Option(4.0, help="Continuation length at most."),
    min_seconds: float = typer.Option(1.0, help="Continuation length at least."),
    temperature: float = typer.Option(1.0),
    seed: int = typer.Option(0, help="Seed of the split and of sampling."),
    classifier: Path = typer.Option(None, help="A fitted style classifier directory (default: fit "
                                               "one on the manifest's classifier part)."),
    classifier_fraction: float = typer.Option(0.5, help="Share of each style's utterances that "
                                                        "fit the classifier."),
    asr_lm: str = typer.Option("domain", help="pocketsphinx LM: domain (a bigram LM of the "
                                              "manifest's transcripts) or generic (English)."),
    vocoder: Path = typer.Option(None, help="Vocoder directory (default: MODEL/vocoder)."),
    device: str = _DEVICE,
    prompt_voice: bool = typer.Option(True, "--prompt-voice/--mean-voice", help="Speak "
                                      "continuations (and the resynthesised control) in the "
                                      "prompt's voice, or in the vocoder's mean voice: then "
                                      "only the model's tokens carry the prompt's delivery."),
    directions: str = typer.Option("S->S", help="Comma-separated prompt->continuation "
                                   "modalities: S->S, and for a model with text tokens S->T, "
                                   "T->S, T->T (SpiRit-LM's STSP table)."),
    classifier_audio: str = typer.Option("original", help="Fit the classifier on the original "
                                         "audio, or 'resynth': on it through the model's "
                                         "tokenizer and vocoder, as continuations sound."),
) -> None:
    """Style keeping (SpiRit-LM STSP S->S, pGSLM F0 figures): continue styled prompts, label the
    continuations' style from audio and transcript, compare with the prompts' labels."""
    from speechlm.evaluate.style import evaluate_style

    r = evaluate_style(model, manifest, out, prompts_per_style=prompts_per_style,
                       prompt_seconds=prompt_seconds, continuation_seconds=max_seconds,
                       samples=samples, seed=seed, classifier_fraction=classifier_fraction,
                       classifier=classifier, temperature=temperature, min_seconds=min_seconds,
                       asr_lm=asr_lm, vocoder=vocoder, device=device,
                       prompt_voice=prompt_voice,
                       directions=[d.strip() for d in directions.split(",") if d.strip()],
                       classifier_audio=classifier_audio)
    s = r["summary"]
    for k in ("style_accuracy", "rest_style_accuracy", "resynth_style_accuracy",
              "sentiment_accuracy", "chance", "majority_rate", "f0_corr", "rest_f0_corr",
              "f0_min_mae_st", "resynth_f0_mae_st"):
        v = s[k]
        typer.echo(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    for d, f in s["cross_modal"].items():
        typer.echo(f"{d}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in f.items()))
    cv = (r["classifier"].get("cross_validation") or {}).get("accuracy")
    typer.echo(f"classifier leave-one-speaker-out accuracy: {cv}")
    _skipped_and_report(len(r["skipped"]), "prompt(s)", out / "style.json", out / "style.md")


@eval_app.command("crossmodal")
def crossmodal(
    model: Path = typer.Option(..., help="Model directory."),
    out: Path = typer.Option(..., help="Output folder: crossmodal.json and crossmodal.md."),
    stories: int = typer.Option(100, help="Stories made and spoken here; each gives a tSC item "
                                          "(another story's ending) and an sSC item (another "
                                          "scenario's ending, same character)."),
    probes: int = typer.Option(100, help="Next-word probes: a sentence's first words, then its "
                                         "next word or another word of the same class."),
    seed: int = typer.Option(0, help="Seed of the items, voices and speaking rates."),
    directions: str = typer.Option(
        "S->S,S->T,T->S,T->T",
        help="Comma-separated prompt->ending modalities (S: spoken, T: written). A model "
             "without text tokens measures S->S; the others are reported as n/a."),
    batch_size: int = _BATCH,
    device: str = _DEVICE,
) -> None:
    """Cross-modal StoryCloze and next-word probes (SpiRit-LM's S->S, S->T, T->S, T->T) on
    items spoken here by held-out voices: accuracy of the true ending over a wrong one."""
    from speechlm.evaluate.crossmodal import accuracy_table, evaluate_crossmodal

    r = evaluate_crossmodal(model, out, n_stories=stories, n_probes=probes, seed=seed,
                            directions=[d.strip() for d in directions.split(",") if d.strip()],
                            batch_size=batch_size, device=device)
    header, rows = accuracy_table(r)
    typer.echo("  ".join(f"{h:>8}" for h in header))
    for row in rows:
        typer.echo("  ".join(f"{v:>8.4f}" if isinstance(v, float) else f"{v!s:>8}"
                             for v in row))
    typer.echo(f"chance {r['chance']}")
    _skipped_and_report(len(r["skipped"]), "item(s)", out / "crossmodal.json",
                        out / "crossmodal.md")


@eval_app.command("similarity")
def similarity(
    model: list[Path] = typer.Option(..., help="Model directory with text tokens; repeat "
                                               "--model to compare several on one plot."),
    out: Path = typer.Option(..., help="Output folder: similarity.json, .md and .png."),
    sentences: int = typer.Option(40, help="Held-out sentences spoken here."),
    seed: int = typer.Option(0, help="Seed of the sentences, voices and speaking rates."),
    device: str = _DEVICE,
) -> None:
    """Per layer, the cosine of a word's hidden state spoken vs written (the same word, and
    different words as the baseline): where a speech-text model aligns the two modalities."""
    from speechlm.evaluate.similarity import evaluate_similarity

    r = evaluate_similarity(model, out, n_sentences=sentences, seed=seed, device=device)
    for m in r["models"]:
        best = m["best_layer"]
        typer.echo(f"{m['label']}: best layer {best}: matched {m['matched'][best]:.4f}, "
                   f"mismatched {m['mismatched'][best]:.4f}, difference "
                   f"{m['difference'][best]:.4f} ({m['n_words']} words)"
                   if best is not None else f"{m['label']}: no difference measured")
    typer.echo(f"report: {out / 'similarity.md'}")


@eval_app.command("turns")
def turns(
    audio: list[Path] = typer.Argument(..., help="Two-channel dialogue files (one speaker per "
                                                 "channel), or folders of them."),
    out: Path = typer.Option(..., help="Output folder: turns.json (aggregate, per file, "
                                       "skipped)."),
    vad: str = typer.Option("silero", help="Voice activity: silero (silero-vad) or energy (a "
                                           "deterministic frame-energy threshold, for clean or "
                                           "synthetic audio)."),
    min_silence: float = typer.Option(0.2, help="Silence (s) that ends an IPU (dGSLM: 0.2)."),
) -> None:
    """Turn-taking statistics as in dGSLM: IPUs, pauses, gaps and overlaps per minute and their
    durations, per file and pooled; a file that is not 2-channel audio is skipped and listed."""
    from speechlm.evaluate.turns import evaluate_turns

    r = evaluate_turns(audio, out, vad=vad, min_silence=min_silence, progress=True)
    agg = r["aggregate"]
    for kind in ("ipu", "pause", "gap", "overlap"):
        mean = agg[f"{kind}_mean_s"]
        typer.echo(f"{kind}: {agg[f'{kind}_per_min']:.2f}/min, mean "
                   + (f"{mean:.3f} s" if mean is not None else "n/a"))
    typer.echo(f"scored {agg['n_scored']} of {agg['n_files']} files ({agg['minutes']:.2f} min)")
    _skipped_and_report(agg["n_skipped"], "file(s)", out / "turns.json", out / "turns.json")


@eval_app.command("duplex")
def duplex(
    model: Path = typer.Option(..., help="Duplex model directory (recipes lslm, duplex, "
                                         "vita-silence)."),
    out: Path = typer.Option(..., help="Output folder: duplex.json and timelines.png."),
    data: Path = typer.Option(None, help="Scenario folder (speechlm synth duplex) or its "
                                         "scenarios.jsonl; default: new test scenarios spoken "
                                         "by held-out voices, made in OUT/data."),
    split: str = typer.Option("test", help="Scenarios of this split are played."),
    max_scenarios: int = typer.Option(0, help="Play at most this many (0: all)."),
    scenarios: int = typer.Option(60, help="Without --data: test scenarios to make."),
    seed: int = typer.Option(1, help="Without --data: seed of the scenarios made."),
    temperature: float = typer.Option(1.0, help="Sampling temperature of the model's units."),
    text_temperature: float = typer.Option(
        1.0, help="Sampling temperature of its text and state tokens."),
    stop_on_irq: bool = typer.Option(
        True, help="The interrupt token ends the model's turn at once (LSLM); off: its own "
        "units decide when it stops."),
) -> None:
    """Live behaviour of a duplex model after Full-Duplex-Bench: takeover rates and latencies on
    turns, pauses and interruptions, false replies to non-query audio, answer rate on queries,
    engine step time against the frame period. Each scenario's microphone channel is played
    into a live engine session frame by frame."""
    from speechlm.corpus.duplex import read_scenarios, synthesize_duplex
    from speechlm.evaluate.duplex import evaluate_duplex
    from speechlm.realtime.engine import EngineSettings

    if data is None:
        data = out / "data"
        synthesize_duplex(data, {split: scenarios}, seed=seed)
    recs = read_scenarios(data, split=split)
    if max_scenarios:
        recs = recs[:max_scenarios]
    r = evaluate_duplex(model, recs, out, engine_settings=EngineSettings(
        temperature=temperature, text_temperature=text_temperature, vocode=False,
        stop_on_irq=stop_on_irq))
    for key, value in r["duplex"].items():
        typer.echo(f"{key}: {value}")
    _skipped_and_report(len(r["skipped"]), "scenario(s)", out / "duplex.json",
                        out / "duplex.json")
