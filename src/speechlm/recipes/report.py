"""The end-of-run report: ``RUN/results.json``, ``RUN/report.md``, ``RUN/report.html`` and PNG
plots in ``RUN/plots``.

A recipe is a list of stages, so each section comes from the stage that makes it and is left out
when the recipe has no such stage (no ``eval``: no benchmarks; no ``generate``: no audio).
``report.html`` is one self-contained page (no script, nothing fetched) whose images and audio
players point at ``plots/`` and ``generate/`` by relative paths, so it works wherever the run
directory is moved or copied.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: the report is files, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechlm.recipes.stages import RunContext  # noqa: E402
from speechlm.train.plot import plot_losses  # noqa: E402

CHANCE = 0.5  # every benchmark here is a two-way choice
# the generate stage's audio (RUN/generate/<name>.wav): (short name, caption)
AUDIO = {"prompt": ("prompt", "Prompt (held-out voice)"),
         "continuation": ("continuation", "Continuation (sampled from the LM)"),
         "resynth": ("resynthesis", "Resynthesis of the prompt (tokenizer + vocoder, no LM)")}


def write_report(ctx: RunContext) -> dict:
    """Gather each stage's figures into ``results.json``, draw the plots, write ``report.md``
    and ``report.html``; returns the results."""
    out, stages = ctx.out, ctx.records
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    metrics_path = out / "model" / "metrics.json"
    metrics = {}
    if "model" in stages and metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
    results: dict[str, Any] = {
        "recipe": ctx.recipe.name,
        "scale": ctx.recipe.scale,
        "data": _data_figures(out, stages),
        "model": {k: v for k, v in metrics.items() if not isinstance(v, list | dict)},
        "benchmarks": {task: {k: r[k] for k in ("accuracy", "n_pairs", "scoring", "chance",
                                                 "accuracy_by_scoring") if k in r}
                       for task, r in _info(stages, "eval").items()
                       if isinstance(r, dict) and "accuracy" in r},
        "generation": (generation := _info(stages, "generate")),
        # DESIGN's figure names: speech.KIND.wer, .cer, .speaker_similarity, .mos
        "speech": {**generation.pop("speech", {}), **_info(stages, "tts").get("speech", {}),
                   **_info(stages, "continuation").get("speech", {}),
                   **_info(stages, "viola").get("speech", {})},
        "tts_items": _info(stages, "tts").get("n_items"),
        "continuation_prompts": _info(stages, "continuation").get("n_prompts"),
        # DESIGN's names: viola.MODEL.asr_wer, .st_bleu, .mt_bleu, .tts_wer (MODEL: viola,
        # single_asr, ...)
        "viola": _info(stages, "viola").get("results", {}),
        "viola_items": _info(stages, "viola").get("n_items"),
        # spoken QA of instruction-tuned models (qa.MODEL.text_accuracy, ...; MODEL: speechgpt,
        # direct)
        "qa": (qa := _info(stages, "qa").get("results", {})),
        "qa_items": _info(stages, "qa").get("n_items"),
        "style": _info(stages, "style"),
        "crossmodal": (cross := _info(stages, "crossmodal")),
        # DESIGN's names: turns.SOURCE.ipu_per_min, .gap_mean_s, ... (data, model, baseline)
        "turns": _info(stages, "turns"),
        "dialogue_generation": _info(stages, "dialogue_generate"),
        # DESIGN's names: duplex.interruption_latency_s, .false_reply_rate, .answer_rate, ...
        "duplex": _info(stages, "duplex_eval").get("duplex", {}),
        "duplex_by_kind": _info(stages, "duplex_eval").get("by_kind", {}),
        "duplex_fusion": _info(stages, "fusions").get("fusions", {}),
        "stage_seconds": {name: round(s["seconds"], 1) for name, s in stages.items()},
    }
    # DESIGN's names for the cross-modal figures: benchmarks.tsc_s2s, tsc_s2t, ...
    results["benchmarks"].update(cross.pop("benchmarks", {}))
    # dGSLM's benchmarks, each item on channel A (``lexical``) and on channel B (``_channel_b``)
    results["benchmarks"].update(_info(stages, "dialogue_eval").get("benchmarks", {}))
    # DESIGN's names: benchmarks.qa_text / qa_spoken, the chat model's (chain of modality)
    chat = qa.get("speechgpt", {})
    for key, figure in (("qa_text", "text_accuracy"), ("qa_spoken", "spoken_accuracy")):
        if chat.get(figure) is not None:
            results["benchmarks"][key] = {"accuracy": chat[figure], "n_items": chat["items"]}
    results["wall_seconds"] = round(sum(results["stage_seconds"].values()), 1)
    (out / "results.json").write_text(json.dumps(results, indent=1))

    figures: dict[str, str] = {}  # plot name -> path relative to the run directory
    if metrics:
        eval_loss = metrics.get("eval_loss") or []
        plot_losses(metrics.get("train_loss") or [], eval_loss, plots / "loss.png",
                    title="Language-model loss",
                    kept_step=metrics.get("kept_step") if eval_loss else None)
        figures["loss"] = "plots/loss.png"
    if zero_shot := _zero_shot(results):
        _plot_benchmarks(zero_shot, plots / "benchmarks.png")
        figures["benchmarks"] = "plots/benchmarks.png"
    audio = _audio(out, plots) if "generate" in stages else {}
    if audio:
        _plot_spectrograms(audio, plots / "spectrograms.png")
        figures["spectrograms"] = "plots/spectrograms.png"
    if "prompt" in audio and "continuation" in audio:
        from speechlm.evaluate.delivery import plot_f0_contours

        p, c = audio["prompt"], audio["continuation"]
        plot_f0_contours(p["wav"], c["wav"], p["sample_rate"], plots / "f0.png",
                         "F0 of the prompt, then of the continuation",
                         continuation_rate=c["sample_rate"])
        figures["f0"] = "plots/f0.png"
    # eval style's own plots: one prompt and its first continuation per style
    if "style" in stages:
        figures.update({f"style_{f.stem}": f"style/{f.name}"
                        for f in sorted((out / "style").glob("f0_*.png"))})
    if plot := (cross.get("similarity") or {}).get("plot"):
        figures["similarity"] = plot
    (out / "report.md").write_text(_markdown(results, figures, audio))
    units = (out / "generate" / "continuation.json").is_file()
    (out / "report.html").write_text(_html(results, figures, audio, units), encoding="utf-8")
    return results


def _info(stages: dict[str, dict], name: str) -> dict:
    """A stage's recorded figures ({} when the recipe has no such stage)."""
    return dict(stages[name]["info"]) if name in stages else {}


def _zero_shot(r: dict[str, Any]) -> dict[str, dict]:
    """The eval stage's benchmarks: the cross-modal ones and spoken QA (also under
    ``benchmarks`` in ``results.json``) have sections of their own."""
    from speechlm.evaluate.crossmodal import figure_name

    cross = {figure_name(task, d) for task, by in r["crossmodal"].get("table", {}).items()
             for d in by}
    return {k: v for k, v in r["benchmarks"].items()
            if k not in cross and k not in ("qa_text", "qa_spoken")}


def _data_figures(out: Path, stages: dict[str, dict]) -> dict[str, Any]:
    from speechlm.tokenizers.job import load_token_dataset

    fig = _info(stages, "data")
    if "corpus" in stages:
        summary = stages["corpus"]["info"]
        fig.update({f"corpus_{k}": summary[k] for k in ("hours", "utterances", "speakers", "words")
                    if k in summary})
    if "tokens" in stages:
        for split in ("train", "valid"):
            if (out / "tokens" / split).is_dir():
                ds = load_token_dataset(out / "tokens" / split)
                if "units" in ds.column_names:
                    fig[f"{split}_tokens"] = int(sum(len(u) for u in ds["units"]))
                else:  # codec tokens (valle): frames of K codes each
                    fig[f"{split}_frames"] = int(sum(len(c[0]) for c in ds["codes"] if c))
    for split in ("train", "valid"):
        if split in (dlg := _info(stages, "dialogues")):
            fig.update({f"dialogue_{split}_{k}": v for k, v in dlg[split].items()})
        if split in (dtok := _info(stages, "dialogue_tokens")):
            fig[f"dialogue_{split}_frames_per_channel"] = dtok[split]["frames_per_channel"]
            fig[f"dialogue_{split}_skipped"] = dtok[split]["skipped"]
    if "dialogue_tokens" in stages:
        fig["dialogue_silence_unit"] = stages["dialogue_tokens"]["info"]["silence_unit"]
    if "tokenizer" in stages:
        tok = stages["tokenizer"]["info"]
        fig.update({"tokenizer": tok["kind"], "units": tok["n_units"],
                    "frame_rate": tok["frame_rate"]})
    if fig.get("train_tokens") and fig.get("train_hours"):
        fig["tokens_per_second_of_speech"] = round(
            fig["train_tokens"] / (fig["train_hours"] * 3600), 1)
    return fig


def _audio(out: Path, plots: Path) -> dict[str, dict[str, Any]]:
    """Each generate-stage WAV that exists: its path, spectrogram PNG (drawn here) and data."""
    import soundfile as sf

    found = {}
    for name in AUDIO:
        wav_path = out / "generate" / f"{name}.wav"
        if not wav_path.is_file():
            continue  # e.g. a run whose generate stage finished before resynthesis existed
        wav, sr = sf.read(str(wav_path), dtype="float32", always_2d=True)
        spec = plots / f"spectrogram_{name}.png"
        found[name] = {"src": f"generate/{name}.wav", "spectrogram": f"plots/{spec.name}",
                       "wav": wav.mean(axis=1), "sample_rate": sr}
        fig, ax = plt.subplots(figsize=(8, 2.6))
        _draw_spectrogram(ax, found[name], name)
        ax.set_xlabel("seconds")
        fig.tight_layout()
        fig.savefig(spec, dpi=100)
        plt.close(fig)
    return found


def _plot_benchmarks(bench: dict[str, dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(bench)
    acc = [bench[n]["accuracy"] for n in names]
    ax.bar(names, acc, color="tab:blue")
    ax.axhline(CHANCE, color="tab:red", linestyle="--", label="chance")
    for i, a in enumerate(acc):
        ax.text(i, a + 0.01, f"{a:.2f}", ha="center")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("Zero-shot benchmarks (held-out voices)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_spectrograms(audio: dict[str, dict], path: Path) -> None:
    fig, axes = plt.subplots(len(audio), 1, figsize=(8, 2.5 * len(audio)), squeeze=False)
    for ax, (name, a) in zip(axes[:, 0], audio.items(), strict=True):
        _draw_spectrogram(ax, a, name)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw_spectrogram(ax: Any, audio: dict[str, Any], name: str) -> None:
    wav, sr = audio["wav"], audio["sample_rate"]
    ax.imshow(_log_spectrogram(wav), origin="lower", aspect="auto",
              extent=(0, len(wav) / sr, 0, sr / 2000), cmap="magma")
    ax.set_title(f"{AUDIO[name][0]} ({len(wav) / sr:.1f}s)")
    ax.set_ylabel("kHz")


def _log_spectrogram(wav: np.ndarray, n_fft: int = 512, hop: int = 160) -> np.ndarray:
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop] * np.hanning(n_fft)
    return np.log(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-5)


def _kept(m: dict[str, Any]) -> str:
    """Which checkpoint the model directory holds, and why."""
    if "kept_step" not in m:
        return ""
    steps = m.get("steps", m["kept_step"])
    if m.get("keep") == "best" and m.get("final_eval_loss") is not None:
        text = (f"Kept checkpoint: step {m['kept_step']} of {steps}, the one with the lowest "
                f"held-out loss ({m['final_eval_loss']:.3f}")
        if m.get("last_eval_loss") is not None and m["kept_step"] != steps:
            text += f"; the last step's was {m['last_eval_loss']:.3f}"
        text += ")."
    else:
        why = "train.keep is last" if m.get("final_eval_loss") is not None else \
            "there is no held-out set"
        text = f"Kept checkpoint: the last step ({m['kept_step']}), as {why}."
    if m.get("stopped_early"):
        text += (f" Training stopped early at step {steps} of at most {m.get('max_steps')}: the "
                 "held-out loss had stopped improving.")
    return text


def _chance(v: dict[str, Any]) -> float:
    return v.get("chance", CHANCE)


def _markdown(r: dict[str, Any], figures: dict[str, str], audio: dict[str, dict]) -> str:
    lines = [f"# speechlm run: {r['recipe']} ({r['scale']})", ""]
    if zero_shot := _zero_shot(r):
        lines += [
            "## Zero-shot benchmarks (voices not in training; chance = 0.50)",
            "",
            "| benchmark | accuracy | scoring | accuracy, sum | accuracy, mean | pairs |",
            "| --- | --- | --- | --- | --- | --- |",
            *[f"| {t} | **{v['accuracy']:.3f}** | {v.get('scoring', '')} | "
              f"{_by(v, 'sum')} | {_by(v, 'mean')} | {v['n_pairs']} |"
              for t, v in zero_shot.items()],
            "",
            "The accuracy column uses the recipe's `eval.scoring`; both scorings come from one "
            "pass.",
            "",
            f"![benchmarks]({figures['benchmarks']})",
            "",
        ]
    if r["model"]:
        lines += ["## Training", "", f"![loss]({figures['loss']})", ""]
        if kept := _kept(r["model"]):
            lines += [kept, ""]
        lines += _md_table(r["model"])
    if r["data"]:
        lines += ["## Data", "", *_md_table(r["data"])]
    if r["generation"]:
        g = r["generation"]
        files = ", ".join(f"`{a['src']}`" for a in audio.values())
        lines += [
            "## Continuation of a held-out prompt",
            "",
            f"Prompt `{g.get('prompt_id')}`: \"{g.get('prompt_text')}\"; audio in {files}, "
            "units in `generate/continuation.json`. The resynthesis is the prompt through the "
            "tokenizer and vocoder alone (no language model). `report.html` has players.",
            "",
        ]
        if "spectrograms" in figures:
            lines += [f"![spectrograms]({figures['spectrograms']})", ""]
        if "f0" in figures:
            lines += [f"![F0 contours]({figures['f0']})", ""]
        if speech := _speech_rows(r["speech"], g):
            header, rows = speech
            lines += ["## Speech quality (listening machines)", "",
                      "| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
                      *["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows], "",
                      SPEECH_NOTE, ""]
    if r["style"]:
        lines += ["## Style keeping (eval style)", "", "| figure | value |", "| --- | --- |",
                  *[f"| {k} | {_fmt(v)} |" for k, v in r["style"].items()], "", STYLE_NOTE, "",
                  *[f"![{k}]({v})" for k, v in figures.items() if k.startswith("style_")], ""]
    if r["crossmodal"]:
        header, rows = _crossmodal_rows(r["crossmodal"])
        lines += ["## Cross-modal (eval crossmodal, eval similarity)", "",
                  "| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
                  *["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows], "",
                  CROSSMODAL_NOTE, "", *_similarity_lines(r["crossmodal"], figures)]
    for title, rows_of, note in SPEECH_SECTIONS:
        if table := rows_of(r):
            header, rows = table
            lines += [f"## {title}", "",
                      "| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
                      *["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows], "",
                      note, ""]
    if turns := _turns_rows(r["turns"]):
        header, rows = turns
        lines += ["## Turn-taking (eval turns): data vs dGSLM vs the cascaded baseline", "",
                  "| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
                  *["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows], "",
                  *_turns_claim(r["turns"]), "", TURNS_NOTE, ""]
    lines += [
        "## Wall time per stage (seconds)",
        "",
        "| stage | seconds |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in r["stage_seconds"].items()],
        f"| **total** | {r['wall_seconds']} |",
        "",
    ]
    return "\n".join(lines)


TTS_KINDS = {"original": "ground truth", "resynth": "codec round trip (upper bound)",
             "tts": "VALL-E (AR + NAR)", "tts_delayed": "delay pattern (one AR)"}
TTS_FIGURES = ("wer", "cer", "speaker_similarity", "prompt_similarity", "mos", "seconds")
TTS_NOTE = ("Each item: a held-out sentence, spoken in the voice of a prompt (another utterance "
            "of the same held-out voice, with its transcript). WER and CER through the domain "
            "ASR; speaker similarity (resemblyzer cosine) to the same speaker's ground truth and "
            "to the prompt; DNSMOS overall. Per file: tts/eval/<kind>/speech.json.")


CONTINUATION_KINDS = {"continuation": "AudioLM: semantic -> coarse -> fine",
                      "continuation_gslm": "GSLM: the same units -> unit vocoder, prompt's voice",
                      "continuation_units": "the same units -> unit vocoder, its own voice"}
CONTINUATION_NOTE = ("The same semantic continuations of held-out-voice prompts, spoken by the "
                     "acoustic stages (codec codes in the prompt's voice) and by the unit "
                     "vocoder, given the prompt's voice embedding or not (then only the units "
                     "carry the speaker). Speaker similarity: resemblyzer cosine to the prompt's "
                     "own utterance; DNSMOS overall. Per file: "
                     "continuation/eval/<kind>/speech.json.")


def _kind_rows(speech: dict[str, Any], n: int | None, what: str, kinds: dict[str, str],
               figures: tuple[str, ...], header: list[str]
               ) -> tuple[list[str], list[list[Any]]] | None:
    """One row per kind of audio present (``n`` items each), None when the stage did not run."""
    if not n:
        return None
    rows = [[f"{label} ({n} {what})",
             *("-" if speech[k].get(f) is None else speech[k][f] for f in figures)]
            for k, label in kinds.items() if k in speech]
    return ["audio", *header], rows


def _tts_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    return _kind_rows(r["speech"], r.get("tts_items"), "items", TTS_KINDS, TTS_FIGURES,
                      ["WER", "CER", "speaker sim.", "prompt sim.", "DNSMOS", "seconds"])


def _continuation_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    return _kind_rows(r["speech"], r.get("continuation_prompts"), "prompts",
                      CONTINUATION_KINDS, ("speaker_similarity", "mos"),
                      ["speaker sim. to the prompt", "DNSMOS"])


VIOLA_FIGURES = {"asr_wer": "ASR WER", "st_bleu": "ST BLEU", "mt_bleu": "MT BLEU",
                 "tts_wer": "TTS WER", "tts_prompt_similarity": "TTS prompt sim.",
                 "tts_mos": "TTS DNSMOS"}
VIOLA_NOTE = ("One multi-task codec LM (viola) against models of the same size trained on one "
              "task each, on held-out voices and sentences. ASR: WER of the greedy transcript; "
              "ST and MT: corpus BLEU (sacrebleu) of the greedy Spanish against the grammar's "
              "translation; TTS: the held-out sentence spoken in a prompt's voice, WER through "
              "the domain ASR (eval speech). Hypotheses: viola/text/<model>/<task>.jsonl.")


def _viola_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    if not r.get("viola"):
        return None
    rows = [[name, *(by.get(f, "-") if by.get(f) is not None else "-" for f in VIOLA_FIGURES)]
            for name, by in r["viola"].items()]
    return [f"model ({r.get('viola_items')} text items)", *VIOLA_FIGURES.values()], rows


QA_FIGURES = {"text_accuracy": "text answer acc.", "text_exact": "text exact match",
              "spoken_accuracy": "spoken answer acc.",
              "written_accuracy": "written question acc.", "agreement": "written = spoken",
              "transcript_wer": "question WER", "time_to_first_audio_s": "first audio (s)"}
QA_NOTE = ("Held-out stories asked by held-out voices. speechgpt: chain of modality (the "
           "question's transcript, the text answer, then the spoken answer); direct: speech "
           "answered with speech. An answer is right when it names the slot's value and no "
           "other; the spoken one through the domain ASR. Replies: qa/answers.jsonl.")


def _qa_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    if not r.get("qa"):
        return None
    rows = [[name, *(by.get(f) if by.get(f) is not None else "-" for f in QA_FIGURES)]
            for name, by in r["qa"].items()]
    for name, by in r["qa"].items():
        if by.get("in_context"):
            ic = by["in_context"]
            shots = next(k for k in ic if k.endswith("_shot") and k != "zero_shot")
            rows.append([f"{name}, unseen '{ic['qtype']}' questions ({ic['items']}): text acc. "
                         f"0-shot {ic['zero_shot']}, {shots.replace('_', '-')} {ic[shots]}",
                         *["" for _ in QA_FIGURES]])
    return [f"model ({r.get('qa_items')} items)", *QA_FIGURES.values()], rows


DUPLEX_FIGURES = {
    "answer_rate": "answer rate (queries)", "takeover_rate_turn": "takeover (turns)",
    "response_latency_s": "response latency s", "takeover_rate_pause": "takeover (pauses)",
    "takeover_rate_interrupt": "yields when interrupted",
    "interruption_latency_s": "stop latency s",
    "uninterrupted_stop_s": "stop latency, cut-in muted s",
    "false_reply_rate": "false replies (non-query)",
    "backchannels_per_min": "backchannels / min", "step_time_ratio": "step time / frame",
    "final_eval_loss": "held-out loss",
}
DUPLEX_NOTE = ("Held-out scenarios (voices never trained on) played live into the engine frame "
               "by frame; what the model says is read off its own unit stream (non-silence "
               "units, merged into IPUs). Rates are shares of the opportunities of each kind; "
               "latencies are medians. See speechlm.evaluate.duplex for each definition.")


def _duplex_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    models = dict(r.get("duplex_fusion") or {}) or ({"model": r["duplex"]} if r.get("duplex")
                                                    else {})
    if not models:
        return None
    rows = [[name, *(by.get(f) if by.get(f) is not None else "-" for f in DUPLEX_FIGURES),
             _sources_cell(by.get("false_replies_by_source"))] for name, by in models.items()]
    return ["model" if not r.get("duplex_fusion") else "fusion", *DUPLEX_FIGURES.values(),
            "false replies by source (n)"], rows


def _sources_cell(by: dict[str, dict] | None) -> str:
    """The false replies per kind of non-query audio, as one table cell."""
    return ", ".join(f"{k} {v['rate']} ({v['n']})" for k, v in by.items()) if by else "-"


SPEECH_SECTIONS = (
    ("Zero-shot TTS on held-out voices and sentences (tts)", _tts_rows, TTS_NOTE),
    ("Speech continuation: AudioLM's acoustic stages vs the unit vocoder (continuation)",
     _continuation_rows, CONTINUATION_NOTE),
    ("VioLA: one codec LM for four tasks vs single-task models (viola)", _viola_rows,
     VIOLA_NOTE),
    ("Spoken question answering: SpeechGPT's chain of modality vs direct (qa)", _qa_rows,
     QA_NOTE),
    ("Live interaction: turns, interruptions, silence mode (eval duplex)", _duplex_rows,
     DUPLEX_NOTE),
)


TURNS_NOTE = ("Each source is the same stretch after the held-out prompts: data, the dialogues' "
              "own audio; resynth, their units through the vocoder (the control: what units "
              "and vocoder keep); model, dGSLM's continuation of both channels; baseline, the "
              "same model sampling one channel at a time (the floor passes after a silence). "
              "Rates per minute, durations in seconds; gap distance: total-variation distance "
              "of the gap-duration histograms. Per file: turns/<source>/turns.json.")
TURN_FIGURES = ("minutes", "ipu_per_min", "ipu_mean_s", "pause_per_min", "pause_mean_s",
                "gap_per_min", "gap_mean_s", "overlap_per_min", "overlap_mean_s",
                "overlap_between_per_min", "overlap_within_per_min", "speech_ratio")


def _turns_rows(turns: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    """The turns stage's figures as (header, rows): one row per figure, one column per
    source; None without the stage."""
    sources = [s for s in ("data", "resynth", "model", "baseline") if s in turns]
    if not sources:
        return None
    rows = [[k, *("-" if turns[s].get(k) is None else turns[s][k] for s in sources)]
            for k in TURN_FIGURES]
    for ref, c in turns.get("comparison", {}).items():
        rows.append([f"overlap/min difference to {ref}", *(
            c["overlap_per_min_diff"].get(s, "-") for s in sources)])
        rows.append([f"gap distance to {ref}", *(c["gap_distance"].get(s, "-") for s in sources)])
    return ["figure", *sources], rows


def _turns_claim(turns: dict[str, Any]) -> list[str]:
    """Whether dGSLM is closer to the data than the baseline, in words."""
    lines = []
    for ref, c in turns.get("comparison", {}).items():
        said = {k: "closer" if v else "not closer" for k, v in c["closer"].items()}
        lines.append(f"Against {ref}: dGSLM is {said['overlap_per_min_diff']} than the baseline "
                     f"on overlaps per minute and {said['gap_distance']} on the gap distribution "
                     f"(claim {'holds' if c['holds'] else 'does not hold'}).")
    return lines


STYLE_NOTE = ("Prompts by held-out voices in four labelled styles, each continued several times. "
              "style_accuracy: a delivery classifier (fitted on other held-out-voice speech) "
              "labels the continuation's audio as the prompt's style; sentiment_accuracy: the "
              "continuation's transcript carries the prompt's style words; rest_* and "
              "resynth_*: the same on the prompt utterance's own remaining audio and on it "
              "through the tokenizer and vocoder (what a perfect continuation could score). "
              "f0_corr: Pearson correlation across prompts of the prompt's and the "
              "continuation's mean log-F0; f0_min_mae_st: the closest sample's mean-F0 error in "
              "semitones. Per prompt: style/style.md.")


CROSSMODAL_NOTE = ("Accuracy of the true ending over a wrong one (chance 0.50) on items spoken "
                   "here by held-out voices, prompt -> ending modality (S: spoken, T: written): "
                   "tsc, another story's ending; ssc, another scenario's ending about the same "
                   "character; nextword, a sentence's next word against another word of its "
                   "class. n/a: the model has no text tokens. Per item: crossmodal/"
                   "crossmodal.md.")


def _crossmodal_rows(cross: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The task x direction accuracy table of the crossmodal stage (``n/a`` where it does not
    apply)."""
    table, na = cross.get("table", {}), set(cross.get("not_applicable", []))
    directions = list(next(iter(table.values()), {}))

    def cell(value: float | None, direction: str) -> str:
        return "n/a" if direction in na else "-" if value is None else f"{value:.3f}"

    return ["task", *directions], [[task, *(cell(by[d], d) for d in directions)]
                                   for task, by in table.items()]


def _similarity_lines(cross: dict[str, Any], figures: dict[str, str]) -> list[str]:
    """The similarity's headline and plot (or why it does not apply) as Markdown lines."""
    sim = cross.get("similarity")
    if not sim:
        return []
    if "not_applicable" in sim:
        return [f"Spoken vs written similarity: not applicable ({sim['not_applicable']}).", ""]
    if sim["best_layer"] is None:  # every word had one label: no baseline to compare with
        return ["Spoken vs written similarity: no pair of different words to compare.", ""]
    return [f"Spoken vs written words by layer: at layer {sim['best_layer']} of "
            f"{sim['layers'] - 1} the same word heard and read has mean cosine "
            f"{sim['matched']:.3f}, different words {sim['mismatched']:.3f} (difference "
            f"{sim['difference']:.3f}, {sim['n_words']} words).", "",
            f"![similarity by layer]({figures['similarity']})", ""]


SPEECH_NOTE = ("WER: pocketsphinx with a bigram LM of the held-out transcripts (the prompt "
               "files: against the words inside the prompt). Speaker similarity: resemblyzer "
               "cosine to the original (the original row: to another utterance of the same "
               "speaker; the continuation: to the prompt). MOS: DNSMOS P.835 overall. "
               "Per file: generate/speech/speech.md.")


def _speech_rows(sp: dict[str, Any], g: dict[str, Any]
                 ) -> tuple[list[str], list[list[Any]]] | None:
    """The speech scores (``sp``) and the generate stage's per-file ones as (header, rows),
    None when there are none."""
    files = g.get("audio_metrics")
    if not sp or not files:
        return None
    n = sp.get("utterances")
    dash = "-"
    rows = [[f"original, {n} held-out utterances", sp["original"]["wer"],
             sp["original"]["speaker_similarity"], dash],
            [f"resynthesis, {n} held-out utterances", sp["resynth"]["wer"],
             sp["resynth"]["speaker_similarity"], dash]]
    for name in ("prompt", "resynth", "continuation"):
        f = files.get(name, {})
        rows.append([f"generate/{name}.wav", f.get("wer", dash), f.get("speaker_similarity", dash),
                     f.get("mos", dash)])
    return ["audio", "WER", "speaker similarity", "MOS"], [
        [dash if v is None else v for v in row] for row in rows]


def _md_table(figs: dict[str, Any]) -> list[str]:
    return ["| figure | value |", "| --- | --- |",
            *[f"| {k} | {_fmt(v)} |" for k, v in figs.items()], ""]


# ---- report.html ----------------------------------------------------------------------------
CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #ddd; padding: .25em .7em; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } figure { margin: 1em 0; } figcaption { font-weight: 600; }
audio { display: block; width: 100%; margin: .3em 0; }
.note { color: #555; }
blockquote { margin: .5em 0; padding-left: 1em; border-left: 3px solid #ccc; }
"""


def _e(v: Any) -> str:
    """A value from the data as HTML text: formatted, then escaped (quotes too, for attributes)."""
    return html.escape(_fmt(v))


def _html_table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{_e(v)}</td>' if isinstance(v, int | float)
                         and not isinstance(v, bool) else f"<td>{_e(v)}</td>" for v in row)
        + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"


def _img(src: str, alt: str) -> str:
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'


def _html(r: dict[str, Any], figures: dict[str, str], audio: dict[str, dict],
          units: bool = False) -> str:
    """The page; ``units``: link ``generate/continuation.json`` (it exists)."""
    title = f"speechlm run: {r['recipe']} ({r['scale']})"
    parts = [f"<h1>{_e(title)}</h1>",
             f'<p class="note">Wall time {_e(r["wall_seconds"])} s over '
             f"{len(r['stage_seconds'])} stages. Figures by name in "
             '<a href="results.json">results.json</a>.</p>']
    if zero_shot := _zero_shot(r):
        rows = [[t, v["accuracy"], _chance(v), v.get("scoring", ""), _by(v, "sum"),
                 _by(v, "mean"), v.get("n_pairs", "")] for t, v in zero_shot.items()]
        parts += ["<h2>Zero-shot benchmarks (voices not in training)</h2>",
                  _html_table(["benchmark", "accuracy", "chance", "scoring", "accuracy, sum",
                               "accuracy, mean", "pairs"], rows),
                  '<p class="note">The accuracy column uses the recipe\'s <code>eval.scoring'
                  "</code>; both scorings come from one pass.</p>",
                  _img(figures["benchmarks"], "benchmark accuracies against chance")]
    if audio:
        g, first = r["generation"], _seconds(audio.get("prompt")) or "part"
        parts += ["<h2>Continuation of a held-out prompt</h2>",
                  f"<p>The prompt is the first {first} of held-out "
                  f"utterance <code>{_e(g.get('prompt_id'))}</code>, whose transcript is:</p>",
                  f"<blockquote>{_e(g.get('prompt_text'))}</blockquote>"]
        for name, a in audio.items():
            parts.append(
                f"<figure><figcaption>{_e(AUDIO[name][1])}, {_seconds(a)}</figcaption>"
                f'<audio controls preload="metadata" src="{html.escape(a["src"])}"></audio>'
                f"{_img(a['spectrogram'], f'spectrogram of the {AUDIO[name][0]}')}</figure>")
        if speech := _speech_rows(r["speech"], g):
            parts += ["<h3>Speech quality (listening machines)</h3>", _html_table(*speech),
                      f'<p class="note">{_e(SPEECH_NOTE)}</p>']
        if "f0" in figures:
            parts.append(_img(figures["f0"], "F0 contour of the prompt, then the continuation"))
        if units:
            parts.append('<p class="note">Units of the continuation: '
                         '<a href="generate/continuation.json">generate/continuation.json</a>.'
                         "</p>")
    if r["style"]:
        parts += ["<h2>Style keeping</h2>",
                  _html_table(["figure", "value"], list(r["style"].items())),
                  f'<p class="note">{_e(STYLE_NOTE)}</p>',
                  *[_img(v, f"F0 contours, {k[len('style_f0_'):]} prompt")
                    for k, v in figures.items() if k.startswith("style_")]]
    if r["crossmodal"]:
        parts += ["<h2>Cross-modal</h2>", _html_table(*_crossmodal_rows(r["crossmodal"])),
                  f'<p class="note">{_e(CROSSMODAL_NOTE)}</p>']
        if sim := _similarity_lines(r["crossmodal"], figures):
            parts.append(f"<p>{_e(sim[0])}</p>")
        if "similarity" in figures:
            parts.append(_img(figures["similarity"], "spoken vs written cosine by layer"))
    for title, rows_of, note in SPEECH_SECTIONS:
        if table := rows_of(r):
            parts += [f"<h2>{_e(title)}</h2>", _html_table(*table),
                      f'<p class="note">{_e(note)}</p>']
    if turns := _turns_rows(r["turns"]):
        parts += ["<h2>Turn-taking: data vs dGSLM vs the cascaded baseline</h2>",
                  _html_table(*turns),
                  *[f"<p>{_e(line)}</p>" for line in _turns_claim(r["turns"])],
                  f'<p class="note">{_e(TURNS_NOTE)}</p>']
    if r["model"]:
        parts += ["<h2>Training</h2>", _img(figures["loss"], "train and held-out loss by step")]
        if kept := _kept(r["model"]):
            parts.append(f"<p>{_e(kept)}</p>")
        parts.append(_html_table(["figure", "value"], list(r["model"].items())))
    if r["data"]:
        parts += ["<h2>Data</h2>", _html_table(["figure", "value"], list(r["data"].items()))]
    parts += ["<h2>Wall time per stage</h2>",
              _html_table(["stage", "seconds"],
                          [*r["stage_seconds"].items(), ["total", r["wall_seconds"]]])]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")


def _seconds(audio: dict[str, Any] | None) -> str:
    """The length of a loaded WAV, as ``3.0 s`` ("" when there is none)."""
    return "" if audio is None else f"{len(audio['wav']) / audio['sample_rate']:.1f} s"


def _by(result: dict[str, Any], scoring: str) -> str:
    value = result.get("accuracy_by_scoring", {}).get(scoring)
    return "" if value is None else f"{value:.3f}"


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return f"{v:.4g}" if isinstance(v, float) else str(v)
