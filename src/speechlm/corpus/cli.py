"""Command-line sub-commands: ``speechlm synth corpus|benchmark|dialogue|duplex`` and
``speechlm corpus import|align``.

Heavy imports stay inside the functions so ``speechlm --help`` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

corpus_app = typer.Typer(no_args_is_help=True)
synth_app = typer.Typer(no_args_is_help=True)


@synth_app.command("corpus")
def synth_corpus(
    out: Path = typer.Option(..., help="Output folder (wav/, manifest.jsonl, summary.json)."),
    hours: float = typer.Option(..., help="Hours of speech to make."),
    seed: int = typer.Option(0, help="Same seed, same corpus, byte for byte."),
    workers: int = typer.Option(None, help="Worker processes (default: up to 4 CPUs)."),
    styles: str = typer.Option(
        None, help="Speaking styles, comma-separated (neutral,happy,sad,angry) or 'all': each "
                   "utterance is spoken and worded in one, labelled in the manifest."),
) -> None:
    """Speak grammar text with espeak-ng training voices, with gold word/phone alignments."""
    from speechlm.corpus.styles import STYLES
    from speechlm.corpus.synth import synthesize_corpus

    names = None if styles is None else (
        list(STYLES) if styles.strip() == "all" else [s.strip() for s in styles.split(",")])
    summary = synthesize_corpus(out, hours=hours, seed=seed, workers=workers, styles=names)
    typer.echo(json.dumps(summary, indent=2))


@synth_app.command("benchmark")
def synth_benchmark(
    out: Path = typer.Option(..., help="Output folder (lexical/, syntactic/, storycloze/)."),
    seed: int = typer.Option(0, help="Random seed."),
    pairs: int = typer.Option(400, help="Pairs per lexical/syntactic set (StoryCloze: half)."),
) -> None:
    """Build sWUGGY/sBLIMP/StoryCloze-style sets spoken by held-out voices."""
    from speechlm.corpus.benchmarks import build_benchmarks

    typer.echo(json.dumps(build_benchmarks(out, seed=seed, pairs=pairs), indent=2))


@synth_app.command("dialogue")
def synth_dialogue(
    out: Path = typer.Option(..., help="Output folder (audio/, manifest.jsonl, summary.json)."),
    hours: float = typer.Option(..., help="Hours of dialogue to make."),
    seed: int = typer.Option(0, help="Same seed, same dialogues, byte for byte."),
    workers: int = typer.Option(None, help="Worker processes (default: up to 4 CPUs)."),
) -> None:
    """Two-speaker dialogues (stereo, one espeak-ng voice per channel) with gold word times,
    gaps, pauses, overlaps, backchannels and interruptions listed per dialogue."""
    from speechlm.corpus.dialogue import synthesize_dialogues

    summary = synthesize_dialogues(out, hours=hours, seed=seed, workers=workers)
    typer.echo(json.dumps(summary, indent=2))


@synth_app.command("duplex")
def synth_duplex(
    out: Path = typer.Option(..., help="Output folder (audio/, scenarios.jsonl, summary.json)."),
    train: int = typer.Option(600, help="Training scenarios (training voices)."),
    valid: int = typer.Option(60, help="Validation scenarios (held-out voices and stories)."),
    test: int = typer.Option(80, help="Test scenarios (held-out voices and stories)."),
    kinds: str = typer.Option("query,interrupt,nonquery,backchannel",
                              help="Scenario kinds, comma-separated."),
    seed: int = typer.Option(0, help="Same seed, same scenarios, byte for byte."),
    workers: int = typer.Option(None, help="Worker processes (default: up to 4 CPUs)."),
) -> None:
    """Full-duplex scenarios (stereo: what the assistant hears, what it says): queries,
    interruptions, speech not addressed to it, backchannels, with its decision points."""
    from speechlm.corpus.duplex import synthesize_duplex

    summary = synthesize_duplex(out, {"train": train, "valid": valid, "test": test},
                                kinds=[k.strip() for k in kinds.split(",") if k.strip()],
                                seed=seed, workers=workers)
    typer.echo(json.dumps(summary, indent=2))


@corpus_app.command("import")
def import_(
    src: Path = typer.Argument(..., help="Corpus folder (or saved HF dataset)."),
    format: str = typer.Option(..., "--format", help="librispeech, folder, hf or dialogue (a "
                                                     "folder of 2-channel recordings, one "
                                                     "speaker per channel, with optional "
                                                     ".ctm words or Fisher .txt transcripts)."),
    out: Path = typer.Option(..., help="Output folder (manifest.jsonl, errors.jsonl)."),
    check: str = typer.Option("full", help="'full' decodes every file; 'header' is faster."),
    max_seconds: float = typer.Option(None, help="Reject files longer than this."),
    audio_column: str = typer.Option(None, help="hf: the audio column (default: detected)."),
    text_column: str = typer.Option(None, help="hf: the transcript column (default: detected)."),
    split: str = typer.Option(None, help="hf: the split of a DatasetDict (default: all)."),
    transcript_encoding: str = typer.Option(
        "utf-8", "--transcript-encoding",
        help="Encoding of .txt / .trans.txt transcripts (e.g. latin-1); files not in it are "
             "skipped and listed."),
) -> None:
    """Reference an existing corpus in a manifest; unreadable files go to errors.jsonl."""
    from speechlm.corpus.importers import import_corpus

    summary = import_corpus(src, format, out, check=check, max_seconds=max_seconds,
                            audio_column=audio_column, text_column=text_column, split=split,
                            transcript_encoding=transcript_encoding)
    typer.echo(json.dumps(summary, indent=2))
    if summary["errors"]:
        typer.echo(f"{summary['errors']} file(s) skipped: see {out / 'errors.jsonl'}", err=True)


@corpus_app.command("align")
def align(
    manifest: Path = typer.Option(..., help="Manifest with transcripts ('text')."),
    out: Path = typer.Option(..., help="Output folder (manifest.jsonl with 'words', "
                                       "errors.jsonl, summary.json)."),
    workers: int = typer.Option(1, help="Worker processes."),
    voice: str = typer.Option("en-us", help="espeak-ng voice that speaks the reference (its "
                                            "language must be the transcripts')."),
    realign: bool = typer.Option(False, help="Also re-align rows that already have words."),
) -> None:
    """Add word times to a transcribed manifest (interleaved speech-text training needs them).

    Rows that cannot be aligned keep no words and are listed in errors.jsonl; a killed job
    resumes where it stopped.
    """
    from speechlm.corpus.align import align_manifest

    summary = align_manifest(manifest, out, workers=workers, voice=voice, realign=realign)
    typer.echo(json.dumps(summary, indent=2))
    if summary["errors"]:
        typer.echo(f"{summary['errors']} row(s) not aligned: see {out / 'errors.jsonl'}",
                   err=True)
