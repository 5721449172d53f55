"""Synthesis throughput: seconds of audio made per wall-clock second, 1 worker vs 2 workers.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_synth.py [--hours 0.1] [--seed 0]

Each run makes the same corpus (same seed) in a fresh temporary folder, so all runs do
identical work (the manifest digests must match); the ratio is against the 1-worker baseline
measured in the same invocation. The load average is printed because other work on the
machine takes cores away from the 2-worker run.

Each case runs in a fresh interpreter (a forkserver, once started, keeps its preloads) that
imports the CLI, and so torch, at the top, as the ``speechlm`` console script does. A last case
repeats 2 workers without preloading the script's imports in the forkserver
(``_main_imports``), the behaviour before that fix: every chunk's fresh worker re-imports them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import speechlm.cli  # noqa: F401  (heavy imports in __main__, like the console script)
from speechlm.corpus import synth


def run(hours: float, seed: int, workers: int) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = synth.synthesize_corpus(Path(tmp), hours=hours, seed=seed, workers=workers)
        wall = time.perf_counter() - t0
        digest = hashlib.sha256((Path(tmp) / "manifest.jsonl").read_bytes()).hexdigest()[:12]
    return summary["hours"] * 3600.0, wall, digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: "WORKERS,PRELOAD" in a child
    args = ap.parse_args()
    if args.case:
        workers, preload = (int(v) for v in args.case.split(","))
        if not preload:
            synth._main_imports = list  # the script's imports are not preloaded: []
        print(json.dumps(run(args.hours, args.seed, workers)))
        return
    print(f"cpus={os.cpu_count()} load average={os.getloadavg()[0]:.1f} hours={args.hours} "
          f"seed={args.seed}")
    base = None
    for workers, preload in ((1, True), (2, True), (2, False)):
        out = subprocess.run([sys.executable, __file__, "--hours", str(args.hours), "--seed",
                              str(args.seed), "--case", f"{workers},{int(preload)}"],
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        audio_s, wall, digest = json.loads(out.strip().splitlines()[-1])
        speed = audio_s / wall
        base = base or speed
        what = "" if preload else " (script imports not preloaded)"
        print(f"workers={workers}{what}: {audio_s:.0f} s of audio in {wall:.1f} s wall = "
              f"{speed:.1f} s audio / s ({speed / base:.2f}x vs 1 worker), manifest {digest}")


if __name__ == "__main__":
    main()
