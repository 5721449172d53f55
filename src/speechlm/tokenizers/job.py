"""The tokenisation job: a manifest -> sharded Parquet token dataset, resumable at any moment.

Layout of ``out_dir``::

    info.json                      tokenizer (relative dir), n_units, frame_rate, kind, shards
    data/shard-IIIII-of-NNNNN.part-JJJJJ.parquet   rows of chunk J of shard I (manifest order)
    data/shard-IIIII-of-NNNNN.part-JJJJJ.done      JSON marker: rows written + errors of that chunk
    errors.jsonl                   every skipped utterance: {"id", "audio", "error"}

A chunk's Parquet file is written to a temp name and renamed, then its ``.done`` marker the same
way; a rerun skips chunks with a marker and recomputes the rest, so a job killed at any moment
and started again ends with exactly the rows of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from speechlm.corpus.manifest import Utterance, read_manifest
from speechlm.errors import ConfigError
from speechlm.fingerprint import dir_digest, file_digest
from speechlm.tokenizers.streams import Streams

DATA_DIR = "data"
INFO_FILE = "info.json"
ERRORS_FILE = "errors.jsonl"
INT_STREAMS = ("units", "durations", "f0", "pitch", "style")


def tokenize_manifest(manifest: str | Path, tokenizer_dir: str | Path, out_dir: str | Path,
                      shard: tuple[int, int] = (0, 1), workers: int = 1, chunk_size: int = 128,
                      progress: bool = True) -> dict:
    """Tokenise shard ``shard[0]`` of ``shard[1]`` of ``manifest`` into ``out_dir``.

    ``workers`` > 1 spreads chunks over that many processes. Returns a summary dict
    (``rows``, ``errors``, ``chunks``, ``skipped_chunks``, ``audio_seconds``, ``wall_seconds``).
    """
    from speechlm.tokenizers import load_tokenizer

    index, n_shards = shard
    if not (n_shards >= 1 and 0 <= index < n_shards):
        raise ConfigError(f"shard: {index}/{n_shards} is not valid (need 0 <= I < N)")
    if chunk_size < 1:
        raise ConfigError("chunk_size: must be >= 1")
    tokenizer_dir = Path(tokenizer_dir).resolve()
    out_dir = Path(out_dir)
    tok = load_tokenizer(tokenizer_dir)
    utts = read_manifest(manifest)
    sources = {"manifest_sha256": file_digest(manifest), "tokenizer_sha256": dir_digest(
        tokenizer_dir)}
    mine = utts[index * len(utts) // n_shards : (index + 1) * len(utts) // n_shards]
    chunks = [mine[i : i + chunk_size] for i in range(0, len(mine), chunk_size)]
    data = out_dir / DATA_DIR
    data.mkdir(parents=True, exist_ok=True)
    _write_info(out_dir, tok, tokenizer_dir, n_shards, chunk_size, sources)
    stem = f"shard-{index:05d}-of-{n_shards:05d}.part-"
    todo = [j for j in range(len(chunks)) if not (data / f"{stem}{j:05d}.done").exists()]
    t0 = time.perf_counter()
    if workers > 1 and len(todo) > 1:
        _run_pool(tokenizer_dir, chunks, todo, data, stem, workers, progress)
    else:
        from concurrent.futures import ThreadPoolExecutor

        from speechlm.progress import progress_bar

        bar = progress_bar(total=sum(len(chunks[j]) for j in todo), unit="utt", desc="tokenize",
                           disable=not progress)
        # three stages overlap: read chunk j+1 | encode chunk j | write chunk j-1, so the model
        # (a GPU, say) waits neither for audio I/O nor for Parquet writing and fsync
        with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
            ahead = reader.submit(_read_chunk, chunks[todo[0]], tok.sample_rate) if todo else None
            written = None
            for n, j in enumerate(todo):
                good, errors = ahead.result()
                if n + 1 < len(todo):
                    ahead = reader.submit(_read_chunk, chunks[todo[n + 1]], tok.sample_rate)
                rows = _encode_rows(tok, good, errors)
                if written is not None:
                    written.result()  # surfaces a write error; keeps one chunk in flight
                    bar.update(len(chunks[todo[n - 1]]))
                written = writer.submit(_commit_chunk, rows, errors, data, f"{stem}{j:05d}")
            if written is not None:
                written.result()
                bar.update(len(chunks[todo[-1]]))
        bar.close()
    wall = time.perf_counter() - t0
    rows, errors = _merge_errors(out_dir)
    return {"rows": rows, "errors": errors, "chunks": len(chunks),
            "skipped_chunks": len(chunks) - len(todo),
            "audio_seconds": sum(u.duration for c in (chunks[j] for j in todo) for u in c),
            "wall_seconds": wall}


def load_token_dataset(directory: str | Path):
    """The token dataset in ``directory`` as a memory-mapped ``datasets.Dataset``, in order."""
    import datasets

    directory = Path(directory)
    if not (directory / INFO_FILE).exists():
        raise ConfigError(f"{directory}: no {INFO_FILE}; not a token dataset "
                          "(make one with: speechlm tokenize ...)")
    files = sorted(str(p) for p in (directory / DATA_DIR).glob("*.parquet"))
    if not files:
        raise ConfigError(f"{directory}/{DATA_DIR}: no Parquet parts; run speechlm tokenize again")
    return datasets.Dataset.from_parquet(files, cache_dir=str(directory / ".cache"),
                                         keep_in_memory=False)


def _read_chunk(utts: list[Utterance], sample_rate: int
                ) -> tuple[list[tuple[Utterance, np.ndarray]], list[dict]]:
    """The chunk's readable audio, and an error record for each unreadable utterance."""
    from speechlm.tokenizers.reading import iter_audio

    good: list[tuple[Utterance, np.ndarray]] = []
    errors: list[dict] = []
    for utt, wav, err in iter_audio(utts, sample_rate):
        if err is None:
            good.append((utt, wav))
        else:
            errors.append({"id": utt.id, "audio": utt.audio, "error": err})
    return good, errors


def _run_chunk(tok, utts: list[Utterance], data: Path, name: str) -> None:
    """Read, tokenise and commit one chunk."""
    good, errors = _read_chunk(utts, tok.sample_rate)
    _commit_chunk(_encode_rows(tok, good, errors), errors, data, name)


def _encode_rows(tok, good: list[tuple[Utterance, np.ndarray]], errors: list[dict]
                 ) -> list[dict]:
    """Table rows of the readable utterances; a failing one is appended to ``errors``."""
    rows = []
    if good:
        wavs = [w for _, w in good]
        try:
            streams = tok.encode(wavs, tok.sample_rate, speakers=[u.speaker for u, _ in good])
            pairs = list(zip(good, streams, strict=True))
        except Exception:  # one bad utterance must not sink the chunk: retry one by one
            pairs = []
            for u, w in good:
                try:
                    s = tok.encode([w], tok.sample_rate, speakers=[u.speaker])[0]
                    pairs.append(((u, w), s))
                except Exception as e:
                    errors.append({"id": u.id, "audio": u.audio,
                                   "error": f"tokenizer failed: {type(e).__name__}: {e}"})
        for (u, w), s in pairs:
            if _frames(s) == 0:  # nothing to train on: listed like an unreadable file
                errors.append({"id": u.id, "audio": u.audio, "error": "too short to tokenise "
                               f"({len(w) / tok.sample_rate:.3f}s gave no frame)"})
            else:
                rows.append(_row(u, len(w) / tok.sample_rate, s))
    return rows


def _frames(s: Streams) -> int:
    """Frames (or tokens) an utterance's streams hold."""
    for a in (s.units, s.codes, s.feats):
        if a is not None:
            return int(np.shape(a)[-1] if a is s.codes else len(a))
    return 0


def _commit_chunk(rows: list[dict], errors: list[dict], data: Path, name: str) -> None:
    """Write the Parquet part, then the done marker (both atomic): the marker means done."""
    if rows:
        _atomic_parquet(rows, data / f"{name}.parquet")
    marker = {"rows": len(rows), "errors": sorted(errors, key=lambda e: e["id"])}
    _atomic_text(data / f"{name}.done", json.dumps(marker))


def _row(utt: Utterance, seconds: float, s: Streams) -> dict:
    row = {"id": utt.id, "speaker": utt.speaker, "text": utt.text, "duration": float(seconds),
           "words": None if utt.words is None else
           [{"label": w, "start": float(a), "end": float(b)} for w, a, b in utt.words]}
    for name in INT_STREAMS:
        v = getattr(s, name)
        row[name] = None if v is None else np.asarray(v, dtype=np.int32)
    row["codes"] = None if s.codes is None else [np.asarray(c, np.int32) for c in s.codes]
    row["feats"] = None if s.feats is None else [np.asarray(f, np.float16) for f in s.feats]
    return row


def _schema():
    import pyarrow as pa

    word = pa.struct([("label", pa.string()), ("start", pa.float32()), ("end", pa.float32())])
    fields = [("id", pa.string()), ("speaker", pa.string()), ("text", pa.string()),
              ("duration", pa.float32()), ("words", pa.list_(word))]
    fields += [(n, pa.list_(pa.int32())) for n in INT_STREAMS]
    fields += [("codes", pa.list_(pa.list_(pa.int32()))),
               ("feats", pa.list_(pa.list_(pa.float16())))]
    return pa.schema(fields)


def _atomic_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    # metadata columns always (nullable), streams when the tokenizer makes them: every part of
    # one dataset then has the same schema
    meta = ("id", "speaker", "text", "duration", "words")
    present = [f.name for f in schema
               if f.name in meta or any(r[f.name] is not None for r in rows)]
    schema = pa.schema([schema.field(n) for n in present])
    table = pa.Table.from_pylist([{n: r[n] for n in present} for r in rows], schema=schema)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_info(out_dir: Path, tok, tokenizer_dir: Path, n_shards: int, chunk_size: int,
                sources: dict[str, str]) -> None:
    """Write ``info.json``, or check that an existing one describes the same job.

    ``sources`` are the content digests of the manifest and the tokenizer: chunks made from
    other content under the same paths are never mixed with new ones.
    """
    path = out_dir / INFO_FILE
    # relative to the dataset (read_info resolves it), so a moved run directory still works
    info = {"tokenizer": os.path.relpath(tokenizer_dir, out_dir.resolve()), "kind": tok.kind,
            "n_units": tok.n_units, "frame_rate": tok.frame_rate,
            "sample_rate": tok.sample_rate, "shards": n_shards, "chunk_size": chunk_size,
            **sources}
    if path.exists():
        old = json.loads(path.read_text())
        # the same tokenizer however it was written (relative, or absolute by older versions)
        if (out_dir / old.get("tokenizer", "")).resolve() == tokenizer_dir:
            old["tokenizer"] = info["tokenizer"]
        # a part's name means "chunk J of shard I of N at this chunk size": all must match
        for key in ("tokenizer", "shards", "chunk_size"):
            if old.get(key) != info[key]:
                raise ConfigError(
                    f"{path}: '{key}' is {old.get(key)!r} but this run uses {info[key]!r}; "
                    "use a new --out folder (or delete this one) to tokenise differently")
        for key, what in (("manifest_sha256", "the manifest"), ("tokenizer_sha256",
                                                               "the tokenizer")):
            if key in old and old[key] != info[key]:
                raise ConfigError(
                    f"{path}: {key}: {what} changed since this folder was tokenised (same "
                    "path, other content); use a new --out folder (or delete this one)")
        return
    _atomic_text(path, json.dumps(info, indent=2) + "\n")


def _merge_errors(out_dir: Path) -> tuple[int, int]:
    """Rewrite ``errors.jsonl`` from every chunk marker; returns (rows, errors) so far."""
    rows, errors = 0, []
    for marker in sorted((out_dir / DATA_DIR).glob("*.done")):
        m = json.loads(marker.read_text())
        rows += m["rows"]
        errors += m["errors"]
    _atomic_text(out_dir / ERRORS_FILE, "".join(json.dumps(e) + "\n" for e in errors))
    return rows, len(errors)


def _pool_work(args: tuple) -> int:
    tokenizer_dir, utts, data, name, threads = args
    import torch

    torch.set_num_threads(threads)
    from speechlm.tokenizers import load_tokenizer

    tok = _WORKER_CACHE.get(tokenizer_dir)
    if tok is None:
        tok = _WORKER_CACHE[tokenizer_dir] = load_tokenizer(tokenizer_dir)
    _run_chunk(tok, utts, data, name)
    return len(utts)


_WORKER_CACHE: dict = {}


def _run_pool(tokenizer_dir: Path, chunks: list, todo: list[int], data: Path, stem: str,
              workers: int, progress: bool) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from speechlm.progress import progress_bar

    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [(str(tokenizer_dir), chunks[j], data, f"{stem}{j:05d}", threads) for j in todo]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool, \
            progress_bar(total=sum(len(chunks[j]) for j in todo), unit="utt", desc="tokenize",
                         disable=not progress) as bar:
        for fut in as_completed([pool.submit(_pool_work, a) for a in jobs]):
            bar.update(fut.result())


def die_with_parent(parent: int) -> None:
    """Pool-worker initializer: end this process when ``parent`` ends (Linux; a no-op elsewhere).

    A killed job would otherwise leave its workers (hundreds of MB each) running on.
    """
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent ended before the line above took effect
        os._exit(1)


def write_token_table(out_dir: str | Path, table, tokenizer_dir: str | Path, n_units: int,
                      frame_rate: float, **info) -> Path:
    """Write a token dataset made outside the tokenisation job (derived rows, such as
    preference pairs, or toy data): one Parquet part, ``info.json`` (the tokenizer relative to
    the dataset, as the job writes it) and an empty ``errors.jsonl``. ``table`` is a
    ``pyarrow.Table``; ``info`` adds keys to ``info.json``."""
    import pyarrow.parquet as pq

    out = Path(out_dir)
    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    tmp = out / DATA_DIR / "shard-00000-of-00001.part-00000.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, tmp.with_suffix(""))
    meta = {"tokenizer": os.path.relpath(Path(tokenizer_dir).resolve(), out.resolve()),
            "n_units": int(n_units), "frame_rate": float(frame_rate), **info}
    _atomic_text(out / INFO_FILE, json.dumps(meta, indent=2) + "\n")
    _atomic_text(out / ERRORS_FILE, "")
    return out


def join_token_datasets(codes_dir: str | Path, units_dir: str | Path, out_dir: str | Path) -> dict:
    """One token dataset holding each utterance's codec ``codes`` (from ``codes_dir``) and its
    semantic ``units`` (from ``units_dir``), joined by id: AudioLM's acoustic stages read both.

    The codec stays the dataset's tokenizer (it decodes the codes); ``n_units`` is the semantic
    tokenizer's and ``semantic_tokenizer`` names it. Utterances missing from either side are
    left out and counted. Returns ``{"rows", "missing"}``.
    """
    import pyarrow as pa

    codes_dir, units_dir = Path(codes_dir), Path(units_dir)
    cinfo = json.loads((codes_dir / INFO_FILE).read_text())
    uinfo = json.loads((units_dir / INFO_FILE).read_text())
    units_ds = load_token_dataset(units_dir).select_columns(["id", "units"])
    units = dict(zip(units_ds["id"], units_ds["units"], strict=True))
    codes_ds = load_token_dataset(codes_dir).select_columns(["id", "speaker", "text", "duration",
                                                             "codes"])
    rows = [{**r, "units": units[r["id"]]} for r in codes_ds if r["id"] in units]
    schema = pa.schema([("id", pa.string()), ("speaker", pa.string()), ("text", pa.string()),
                        ("duration", pa.float32()), ("codes", pa.list_(pa.list_(pa.int32()))),
                        ("units", pa.list_(pa.int32()))])
    write_token_table(out_dir, pa.Table.from_pylist(rows, schema=schema),
                      (codes_dir / cinfo["tokenizer"]).resolve(), uinfo["n_units"],
                      cinfo["frame_rate"], sample_rate=cinfo.get("sample_rate"),
                      semantic_tokenizer=os.path.relpath((units_dir / uinfo["tokenizer"])
                                                         .resolve(), Path(out_dir).resolve()),
                      semantic_frame_rate=uinfo["frame_rate"])
    return {"rows": len(rows), "missing": len(codes_ds) + len(units) - 2 * len(rows)}
