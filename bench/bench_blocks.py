"""Peak memory of building training blocks: memory-mapped Arrow vs the previous Python lists.

For each size N (tokens of random units), writes a token dataset in the contract's layout
(``info.json`` + ``data/*.parquet``, ``units``/``durations`` columns, rows of 100-500 units,
written part by part so the writer stays small), then measures, each case in a FRESH
interpreter:

- ``new``: ``format_examples`` (``datasets.map`` into an Arrow file) + ``BlockDataset``, the
  formatted file made from scratch;
- ``reuse``: the same when the formatted file exists (what the other DDP ranks and a resumed run
  do);
- ``old`` (BASELINE): ``build_blocks`` as it was before commit f883dc3, reproduced below: every
  row formatted into Python lists, concatenated into two more lists, then two int64 arrays.

Every case then reads every block once (the sum of its tokens; the sums must agree). Reported:

- ``peak RSS``: ``VmHWM`` (exact). Pages of a memory-mapped file that were read count here, but
  they are page cache that the kernel can drop and reread, not memory the process holds;
- ``peak anon``: the largest ``RssAnon`` (the process's own heap: Python objects, arrays, Arrow
  buffers), sampled every 2 ms by the parent process (a peak shorter than that could be missed;
  the kernel keeps no high-water mark of anonymous memory); the figure that must not grow
  with the corpus;
- ``floor``: ``RssAnon`` after the imports (``datasets``, ``torch``, ``transformers``), before
  building: the same for every case.

The token dataset's own Parquet -> Arrow conversion (``datasets.Dataset.from_parquet``, common
to both paths) is done first, in its own process, and reported as ``prepare``.

    .venv/bin/python bench/bench_blocks.py --tokens 10M 30M [--cases new reuse old]
    .venv/bin/python bench/bench_blocks.py --tokens 100M --cases new reuse   # measured once
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_UNITS = 500  # HuBERT-500 sized: most ids are above CPython's cached small ints (<= 256)
SEQ_LEN = 1024
PART_TOKENS = 5_000_000  # units per Parquet part


# ---- the token dataset -------------------------------------------------------------------------
def write_random_tokens(out: Path, n_tokens: int, seed: int = 0) -> Path:
    """Random-unit rows (100-500 units, durations 1-4) as a token dataset, one part at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (out / "info.json").exists():
        return out
    (out / "data").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_parts = -(-n_tokens // PART_TOKENS)
    row = 0
    for j in range(n_parts):
        want = min(PART_TOKENS, n_tokens - j * PART_TOKENS)
        lengths = rng.integers(100, 501, size=want // 100 + 1)
        lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), want)) + 1]
        lengths[-1] -= int(lengths.sum()) - want  # the part holds exactly `want` units
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        units = rng.integers(0, N_UNITS, size=want, dtype=np.int32)
        durs = rng.integers(1, 5, size=want, dtype=np.int32)
        table = pa.table({
            "id": [f"r{row + i:08d}" for i in range(len(lengths))],
            "duration": pa.array(lengths * 2.5 / 50, pa.float32()),
            "units": pa.ListArray.from_arrays(offsets, pa.array(units)),
            "durations": pa.ListArray.from_arrays(offsets, pa.array(durs)),
        })
        pq.write_table(table, out / "data" / f"shard-00000-of-00001.part-{j:05d}.parquet")
        row += len(lengths)
    (out / "info.json").write_text(json.dumps({"n_units": N_UNITS, "frame_rate": 50.0,
                                               "kind": "random", "tokens": n_tokens}))
    return out


# ---- the BASELINE: build_blocks before commit f883dc3 (Python lists) --------------------------
@dataclass
class OldSequence:
    """``speechlm.sequences.formats.Sequence`` before f883dc3."""

    input_ids: list[int]
    labels: list[int]


def old_speech_only(row: dict, vocab) -> OldSequence:
    """``formats.speech_only`` before f883dc3: ``BOS [SPEECH] units EOS``, labels a copy."""
    ids = [vocab.bos_id, vocab.speech_id, *vocab.units_to_ids(row["units"]).tolist(),
           vocab.eos_id]
    return OldSequence(ids, list(ids))


def old_pack(seqs: list[OldSequence], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``sequences.packing.pack`` before f883dc3."""
    ids: list[int] = []
    labels: list[int] = []
    for s in seqs:
        ids.extend(s.input_ids)
        labels.extend(s.labels)
    n = len(ids) // seq_len
    ids_a = np.asarray(ids[: n * seq_len], dtype=np.int64).reshape(n, seq_len)
    lab_a = np.asarray(labels[: n * seq_len], dtype=np.int64).reshape(n, seq_len)
    return ids_a, lab_a


def old_build_blocks(data_dir: Path, vocab, seq_len: int):
    """``train.data.build_blocks`` before f883dc3 (one format, ``speech_only``)."""
    import torch

    from speechlm.train.data import load_rows

    ds = load_rows(data_dir)
    cols = [c for c in ("units", "durations", "words", "text") if c in ds.column_names]
    seqs = []
    for batch in ds.select_columns(cols).iter(batch_size=1024):
        for j in range(len(batch[cols[0]])):
            seqs.append(old_speech_only({c: batch[c][j] for c in cols}, vocab))
    ids, labels = old_pack(seqs, seq_len)
    return torch.from_numpy(ids), torch.from_numpy(labels)  # the old BlockDataset's tensors


# ---- one measured case, in a fresh interpreter ---------------------------------------------------
def status(*keys: str, pid: int | str = "self") -> dict[str, int]:
    """Fields of ``/proc/<pid>/status`` in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = int(v.split()[0]) * 1024
    return out


def child(case: str, data_dir: Path, cache: Path, seq_len: int) -> dict:
    """Build the blocks of ``case``, read each block once; memory and time figures."""
    import datasets  # noqa: F401  every case imports these: load them before the floor
    import pyarrow.parquet  # noqa: F401
    import torch  # noqa: F401

    from speechlm.sequences.formats import parse_formats
    from speechlm.sequences.vocab import SpeechVocab
    from speechlm.train.data import BlockDataset, format_examples, load_rows

    vocab = SpeechVocab.speech_only(N_UNITS)
    uses = parse_formats({"speech_only": 1.0})
    floor = status("RssAnon", "VmRSS")
    t0 = time.perf_counter()
    if case == "prepare":
        load_rows(data_dir)
        t1 = time.perf_counter()
        n_blocks, checksum = 0, 0
    elif case == "old":
        ids, _labels = old_build_blocks(data_dir, vocab, seq_len)
        t1 = time.perf_counter()
        n_blocks = len(ids)
        checksum = sum(int(ids[i].sum()) for i in range(n_blocks))
    else:
        blocks = BlockDataset(format_examples(data_dir, vocab, uses, 0, cache, progress=False),
                              seq_len)
        t1 = time.perf_counter()
        n_blocks = len(blocks)
        checksum = sum(int(blocks[i]["streams"]["tokens"].sum()) for i in range(n_blocks))
    t2 = time.perf_counter()
    end = status("VmHWM", "RssAnon", "RssFile")
    return {"case": case, "blocks": n_blocks, "checksum": checksum,
            "build_s": t1 - t0, "read_s": t2 - t1,
            "peak_rss": end["VmHWM"], "floor_anon": floor["RssAnon"],
            "floor_rss": floor["VmRSS"], "end_anon": end["RssAnon"], "end_file": end["RssFile"]}


def run_case(case: str, data_dir: Path, cache: Path, seq_len: int,
             period: float = 0.002) -> dict:
    """``child`` in a fresh interpreter, its ``RssAnon`` sampled from here every ``period`` s.

    Sampling from another process sees the child's memory even while one long C call of the
    child holds its GIL (a thread inside it could not run then).
    """
    cmd = [sys.executable, __file__, "--child", case, "--data", str(data_dir),
           "--cache", str(cache), "--seq-len", str(seq_len)]
    env = {**os.environ, "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, status("RssAnon", pid=proc.pid).get("RssAnon", 0))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(period)
    out = proc.communicate()[0]
    if proc.returncode:
        raise SystemExit(f"case {case} failed ({proc.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    return {**res, "peak_anon": max(peak, res["end_anon"])}


# ---- the report ----------------------------------------------------------------------------------
def parse_tokens(s: str) -> int:
    """``10M``, ``500k``, ``1G`` or a plain integer."""
    mult = {"k": 10**3, "m": 10**6, "g": 10**9}.get(s[-1].lower())
    return int(float(s[:-1]) * mult) if mult else int(s)


def mib(n: float) -> str:
    """Bytes as whole MiB."""
    return f"{n / 2**20:,.0f}"


def above(r: dict) -> int:
    """Peak anonymous memory above the after-import floor, in bytes (at least 1)."""
    return max(1, r["peak_anon"] - r["floor_anon"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", nargs="+", default=["10M", "30M"], help="sizes, e.g. 10M 100M")
    ap.add_argument("--cases", nargs="+", default=["new", "reuse", "old"],
                    choices=["new", "reuse", "old"])
    ap.add_argument("--seq-len", type=int, default=SEQ_LEN)
    ap.add_argument("--work", default="/tmp/bench_blocks", help="datasets and caches go here")
    ap.add_argument("--keep", action="store_true", help="keep the datasets (default: delete)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.data), Path(args.cache), args.seq_len)))
        return

    results: dict[int, dict[str, dict]] = {}
    for size in map(parse_tokens, args.tokens):
        data_dir = Path(args.work) / f"tokens-{size}"
        cache = data_dir / "examples"
        t = time.perf_counter()
        write_random_tokens(data_dir, size)
        print(f"{size:,} tokens written in {time.perf_counter() - t:.1f} s", flush=True)
        res = results[size] = {"prepare": run_case("prepare", data_dir, cache, args.seq_len)}
        shutil.rmtree(cache, ignore_errors=True)  # "new" formats from scratch
        for case in sorted(args.cases, key=["new", "reuse", "old"].index):
            res[case] = run_case(case, data_dir, cache, args.seq_len)
            r = res[case]
            print(f"  {case:7s} blocks {r['blocks']:,}  build {r['build_s']:.1f} s  "
                  f"read {r['read_s']:.1f} s  peak RSS {mib(r['peak_rss'])} MiB  "
                  f"peak anon {mib(r['peak_anon'])} MiB (floor {mib(r['floor_anon'])})",
                  flush=True)
        sums = {(r["blocks"], r["checksum"]) for c, r in res.items() if c != "prepare"}
        if len(sums) > 1:
            raise SystemExit(f"the paths disagree on the blocks: {sums}")
        disk = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
        print(f"  disk {mib(disk)} MiB (Parquet + its Arrow cache + formatted examples)")
        if not args.keep:
            shutil.rmtree(data_dir)

    print("\n| tokens | case | build s | read all blocks s | peak RSS MiB | peak anon MiB |"
          " anon floor MiB |\n| --- | --- | --- | --- | --- | --- | --- |")
    for size, res in results.items():
        for case, r in res.items():
            print(f"| {size / 1e6:g}M | {case} | {r['build_s']:.1f} | {r['read_s']:.1f} | "
                  f"{mib(r['peak_rss'])} | {mib(r['peak_anon'])} | {mib(r['floor_anon'])} |")
    for size, res in results.items():
        if "old" in res and "new" in res:
            o, n = res["old"], res["new"]
            print(f"{size / 1e6:g}M old/new: peak anon {o['peak_anon'] / n['peak_anon']:.1f}x, "
                  f"above the floor {above(o) / above(n):.1f}x, "
                  f"peak RSS {o['peak_rss'] / n['peak_rss']:.1f}x, "
                  f"build time {o['build_s'] / n['build_s']:.2f}x")
    sizes = sorted(results)
    for case in ("new", "reuse", "old"):
        have = [s for s in sizes if case in results[s]]
        if len(have) >= 2:
            a, b = results[have[0]][case], results[have[-1]][case]
            print(f"{case}: {have[0] / 1e6:g}M -> {have[-1] / 1e6:g}M tokens "
                  f"({have[-1] / have[0]:g}x): peak anon x{b['peak_anon'] / a['peak_anon']:.2f}, "
                  f"above the floor x{above(b) / above(a):.2f}, "
                  f"peak RSS x{b['peak_rss'] / a['peak_rss']:.2f}")


if __name__ == "__main__":
    main()
