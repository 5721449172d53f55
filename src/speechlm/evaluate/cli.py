"""``speechlm eval zerospeech|storycloze|all|abx|generation|asr``.

Heavy imports (torch, transformers, pocketsphinx) stay inside the functions so that
``speechlm --help`` is fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

eval_app = typer.Typer(no_args_is_help=True)

_SCORING = typer.Option("sum", help="Sequence score: 'sum' (log-likelihood) or 'mean' per token.")
_DEVICE = typer.Option(None, help="torch device (default: cuda when available, else cpu).")
_BATCH = typer.Option(32, help="Sequences per scoring batch.")


def _echo_result(name: str, r: dict) -> None:
    typer.echo(f"{name}: accuracy {r['accuracy']:.4f} over {r['n_pairs']} pairs "
               f"({r['n_items']} items, scoring={r.get('scoring')}, chance 0.5)")


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
    _echo_result(task, r)
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
    _echo_result(kind, r)


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
        _echo_result(name, r)
    typer.echo(f"report: {out / 'results.md'}")


@eval_app.command("asr")
def asr(
    audio: list[Path] = typer.Argument(..., help="Audio files to transcribe."),
) -> None:
    """Transcribe audio files with pocketsphinx (offline English model): '<file>\\t<text>'."""
    from speechlm.evaluate.asr import transcribe_files

    for path, text in zip(audio, transcribe_files(audio, progress=len(audio) > 4), strict=True):
        typer.echo(f"{path}\t{text}")
