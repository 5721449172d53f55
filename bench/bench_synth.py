"""Synthesis throughput: seconds of audio made per wall-clock second, 1 worker vs 2 workers.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_synth.py [--hours 0.1] [--seed 0]

Each run makes the same corpus (same seed) in a fresh temporary folder, so both runs do
identical work (the manifest digests must match); the ratio is against the 1-worker baseline
measured in the same invocation. The load average is printed because other work on the
machine takes cores away from the 2-worker run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from speechlm.corpus.synth import synthesize_corpus


def run(hours: float, seed: int, workers: int) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = synthesize_corpus(Path(tmp), hours=hours, seed=seed, workers=workers)
        wall = time.perf_counter() - t0
        digest = hashlib.sha256((Path(tmp) / "manifest.jsonl").read_bytes()).hexdigest()[:12]
    return summary["hours"] * 3600.0, wall, digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"cpus={os.cpu_count()} load average={os.getloadavg()[0]:.1f} hours={args.hours} "
          f"seed={args.seed}")
    base = None
    for workers in (1, 2):
        audio_s, wall, digest = run(args.hours, args.seed, workers)
        speed = audio_s / wall
        base = base or speed
        print(f"workers={workers}: {audio_s:.0f} s of audio in {wall:.1f} s wall = "
              f"{speed:.1f} s audio / s ({speed / base:.2f}x vs 1 worker), manifest {digest}")


if __name__ == "__main__":
    main()
