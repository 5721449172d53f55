"""Command-line sub-commands: ``speechlm tokenizer fit|report`` and ``speechlm tokenize``.

Heavy imports (torch, transformers, faiss) stay inside the functions so ``speechlm --help`` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

tokenizer_app = typer.Typer(no_args_is_help=True)


@tokenizer_app.command("fit")
def fit(
    manifest: Path = typer.Option(..., help="Manifest (JSONL) to fit on."),
    kind: str = typer.Option(..., help="mfcc, logmel, hubert, wav2vec2, wavlm, w2v-bert, cpc, "
                                       "encodec, mimi, dac or continuous."),
    units: int = typer.Option(100, help="Number of k-means units (unit kinds)."),
    out: Path = typer.Option(..., help="Tokenizer directory to write."),
    model: str = typer.Option(None, help="Encoder/codec hub id or local directory."),
    layer: int = typer.Option(None, help="Encoder hidden layer (0 = CNN output)."),
    frame_rate: float = typer.Option(None, help="MFCC/log-mel frame rate in Hz (default 50)."),
    features: str = typer.Option(None, help="Front end of a 'continuous' tokenizer."),
    n_codebooks: int = typer.Option(None, help="Codec codebooks to keep."),
    max_frames: int = typer.Option(200_000, help="Frames sampled for k-means (bounded memory)."),
    max_hours: float = typer.Option(None, help="Audio read for fitting at most (hours)."),
    prosody: bool = typer.Option(False, help="Add F0 bins, pitch and style tokens."),
    no_dedup: bool = typer.Option(False, help="Keep repeated units (no run-length dedup)."),
    smoothing: float = typer.Option(0.0, help="Penalty per change of unit (x median frame "
                                    "distance; 0 = off): fewer one-frame flickers."),
    causal: bool = typer.Option(False, help="MFCC/log-mel that the real-time engine can run "
                                "frame by frame: past samples only, global normalisation "
                                "statistics (excludes --smoothing)."),
    seed: int = typer.Option(0),
) -> None:
    """Fit a speech tokenizer on a manifest and save it (tokenizer.json + safetensors)."""
    from speechlm.tokenizers import fit_tokenizer

    opts = {k: v for k, v in {"model": model, "layer": layer, "frame_rate": frame_rate,
                              "features": features, "n_codebooks": n_codebooks}.items()
            if v is not None}
    if kind not in ("encodec", "mimi", "dac", "continuous"):
        opts.update(max_frames=max_frames, max_hours=max_hours, seed=seed, dedup=not no_dedup,
                    smoothing=smoothing)
        if prosody:
            opts["prosody"] = True
    if causal:  # fit_tokenizer names the kinds that have no causal front end
        opts["causal"] = True
    path = fit_tokenizer(manifest, kind, units, out, **opts)
    typer.echo(f"tokenizer written to {path}")
    errors = path / "fit_errors.jsonl"
    n = len(errors.read_text().splitlines()) if errors.exists() else 0
    if n:
        typer.echo(f"{n} utterance(s) left out of the fit (unreadable or too short): see "
                   f"{errors}", err=True)


@tokenizer_app.command("report")
def report(
    tokenizer: Path = typer.Option(..., help="Tokenizer directory."),
    manifest: Path = typer.Option(..., help="Manifest with gold phone alignments."),
    out: Path = typer.Option(None, help="Also write the figures to this JSON file."),
    max_utterances: int = typer.Option(None, help="Use at most this many utterances."),
) -> None:
    """Unit quality against gold phones: PNMI, phone purity, cluster purity."""
    from speechlm.tokenizers.quality import unit_quality

    res = unit_quality(tokenizer, manifest, max_utterances=max_utterances)
    text = json.dumps(res, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    typer.echo(text)


def tokenize(
    manifest: Path = typer.Option(..., help="Manifest (JSONL) to tokenise."),
    tokenizer: Path = typer.Option(..., help="Tokenizer directory."),
    out: Path = typer.Option(..., help="Token dataset directory (Parquet shards + info.json)."),
    shard: str = typer.Option("0/1", help="I/N: tokenise the I-th of N equal slices."),
    workers: int = typer.Option(1, help="Worker processes."),
    chunk_size: int = typer.Option(128, help="Utterances per Parquet part (the resume unit)."),
) -> None:
    """Tokenise a manifest into sharded Parquet; rerun to resume after an interruption."""
    from speechlm.errors import ConfigError
    from speechlm.tokenizers.job import tokenize_manifest

    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError as e:
        raise ConfigError(f"--shard: '{shard}' is not I/N (e.g. 0/4)") from e
    res = tokenize_manifest(manifest, tokenizer, out, shard=(i, n), workers=workers,
                            chunk_size=chunk_size)
    typer.echo(f"{res['rows']} rows, {res['errors']} errors ({out}/errors.jsonl), "
               f"{res['skipped_chunks']}/{res['chunks']} chunks already done")
