"""The end-of-run report: ``RUN/results.json``, ``RUN/report.md`` and PNG plots in ``RUN/plots``."""

from __future__ import annotations

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


def write_report(ctx: RunContext) -> dict:
    """Gather each stage's figures into ``results.json``, draw the plots, write ``report.md``."""
    out, stages = ctx.out, ctx.records
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    results: dict[str, Any] = {
        "recipe": ctx.recipe.name,
        "scale": ctx.recipe.scale,
        "data": _data_figures(out, stages),
        "model": {k: metrics[k] for k in metrics if not isinstance(metrics[k], list | dict)},
        "benchmarks": {task: {k: r[k] for k in ("accuracy", "n_pairs", "scoring",
                                                 "accuracy_by_scoring") if k in r}
                       for task, r in stages["eval"]["info"].items()
                       if isinstance(r, dict) and "accuracy" in r},
        "generation": stages["generate"]["info"],
        "stage_seconds": {name: round(s["seconds"], 1) for name, s in stages.items()},
    }
    results["wall_seconds"] = round(sum(results["stage_seconds"].values()), 1)
    (out / "results.json").write_text(json.dumps(results, indent=1))

    plot_losses(metrics.get("train_loss") or [], metrics.get("eval_loss") or [],
                plots / "loss.png", title="Language-model loss")
    _plot_benchmarks(results["benchmarks"], plots / "benchmarks.png")
    _plot_spectrograms(out / "generate", plots / "spectrograms.png")
    (out / "report.md").write_text(_markdown(results))
    return results


def _data_figures(out: Path, stages: dict[str, dict]) -> dict[str, Any]:
    from speechlm.tokenizers.job import load_token_dataset

    fig = dict(stages["data"]["info"])
    if "corpus" in stages:
        summary = stages["corpus"]["info"]
        fig.update({f"corpus_{k}": summary[k] for k in ("hours", "utterances", "speakers", "words")
                    if k in summary})
    for split in ("train", "valid"):
        ds = load_token_dataset(out / "tokens" / split)
        fig[f"{split}_tokens"] = int(sum(len(u) for u in ds["units"]))
    tok = stages["tokenizer"]["info"]
    fig.update({"tokenizer": tok["kind"], "units": tok["n_units"], "frame_rate": tok["frame_rate"]})
    fig["tokens_per_second_of_speech"] = round(fig["train_tokens"] / (fig["train_hours"] * 3600), 1)
    return fig


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


def _plot_spectrograms(gen_dir: Path, path: Path) -> None:
    import soundfile as sf

    fig, axes = plt.subplots(2, 1, figsize=(8, 5))
    for ax, name in zip(axes, ("prompt", "continuation"), strict=True):
        wav, sr = sf.read(str(gen_dir / f"{name}.wav"), dtype="float32")
        spec = _log_spectrogram(wav)
        ax.imshow(spec, origin="lower", aspect="auto",
                  extent=(0, len(wav) / sr, 0, sr / 2000), cmap="magma")
        ax.set_title(f"{name} ({len(wav) / sr:.1f}s)")
        ax.set_ylabel("kHz")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_spectrogram(wav: np.ndarray, n_fft: int = 512, hop: int = 160) -> np.ndarray:
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop] * np.hanning(n_fft)
    return np.log(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-5)


def _markdown(r: dict[str, Any]) -> str:
    d, m = r["data"], r["model"]
    lines = [
        f"# speechlm run: {r['recipe']} ({r['scale']})",
        "",
        "## Zero-shot benchmarks (voices not in training; chance = 0.50)",
        "",
        "| benchmark | accuracy | scoring | accuracy, sum | accuracy, mean | pairs |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {t} | **{v['accuracy']:.3f}** | {v.get('scoring', '')} | "
          f"{_by(v, 'sum')} | {_by(v, 'mean')} | {v['n_pairs']} |"
          for t, v in r["benchmarks"].items()],
        "",
        "The accuracy column uses the recipe's `eval.scoring`; both scorings come from one pass.",
        "",
        "![benchmarks](plots/benchmarks.png)",
        "",
        "## Training",
        "",
        "![loss](plots/loss.png)",
        "",
        "| figure | value |",
        "| --- | --- |",
        *[f"| {k} | {_fmt(v)} |" for k, v in m.items()],
        "",
        "## Data",
        "",
        "| figure | value |",
        "| --- | --- |",
        *[f"| {k} | {_fmt(v)} |" for k, v in d.items()],
        "",
        "## Continuation of a held-out prompt",
        "",
        f"Prompt `{r['generation'].get('prompt_id')}`: \"{r['generation'].get('prompt_text')}\"; "
        "audio in `generate/prompt.wav` and `generate/continuation.wav`, units in "
        "`generate/continuation.json`.",
        "",
        "![spectrograms](plots/spectrograms.png)",
        "",
        "## Wall time per stage (seconds)",
        "",
        "| stage | seconds |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in r["stage_seconds"].items()],
        f"| **total** | {r['wall_seconds']} |",
        "",
    ]
    return "\n".join(lines)


def _by(result: dict[str, Any], scoring: str) -> str:
    value = result.get("accuracy_by_scoring", {}).get(scoring)
    return "" if value is None else f"{value:.3f}"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
