"""Accuracy of ``speechlm corpus align`` against gold word times.

Takes a manifest whose rows have gold ``words`` (a synthetic corpus, or a run's
``data/valid.jsonl``), drops the words, aligns the transcripts again and prints how far the
aligned boundaries lie from the gold ones: overall, and for word starts/ends next to a pause.
``--snr DB`` first adds white noise at that signal-to-noise ratio and 0.5 s of noise before the
speech (the gold times are shifted by it).

    .venv/bin/python bench/bench_align.py --manifest runs/demo/data/valid.jsonl \
        [--snr 20] [--limit 200]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

from speechlm.audio import load_audio
from speechlm.corpus.align import align_manifest
from speechlm.corpus.manifest import read_manifest, write_manifest

LEAD = 0.5  # seconds of noise put before the speech with --snr


def noisy_copies(utts, snr: float, out: Path, seed: int = 0):
    """The utterances with white noise at ``snr`` dB and ``LEAD`` s of it before the speech."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in utts:
        wav = load_audio(u.audio, 16000)
        lead = int(LEAD * 16000)
        noise = rng.standard_normal(len(wav) + lead).astype(np.float32)
        noise *= np.sqrt(np.mean(wav ** 2) / 10 ** (snr / 10) / np.mean(noise ** 2))
        path = out / f"{u.id}.wav"
        sf.write(path, np.concatenate([np.zeros(lead, np.float32), wav]) + noise, 16000)
        rows.append(replace(u, audio=str(path), duration=(len(wav) + lead) / 16000,
                            sample_rate=16000, start=None, end=None))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True, help="rows with gold words")
    ap.add_argument("--snr", type=float, default=None, help="add white noise at this SNR (dB)")
    ap.add_argument("--limit", type=int, default=None, help="first N rows only")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    utts = [u for u in read_manifest(args.manifest) if u.words and u.text][: args.limit]
    gold = {u.id: u.words for u in utts}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shift = 0.0
        if args.snr is not None:
            utts, shift = noisy_copies(utts, args.snr, tmp), LEAD
        write_manifest(tmp / "in.jsonl", [replace(u, words=None, phones=None) for u in utts])
        summary = align_manifest(tmp / "in.jsonl", tmp / "out", workers=args.workers)
        aligned = read_manifest(tmp / "out" / "manifest.jsonl")
    kinds: dict[str, list[float]] = {k: [] for k in
                                     ("start", "start after a pause", "end", "end before a pause")}
    for u in aligned:
        g = gold[u.id]
        for i, ((_, s, e), (_, gs, ge)) in enumerate(zip(u.words or [], g, strict=False)):
            after = i > 0 and gs - g[i - 1][2] > 0.05
            before = i + 1 < len(g) and g[i + 1][1] - ge > 0.05
            kinds["start after a pause" if after else "start"].append(s - shift - gs)
            kinds["end before a pause" if before else "end"].append(e - shift - ge)
    every = np.abs(np.concatenate([np.asarray(v) for v in kinds.values()]))
    print(f"{len(utts)} utterances, {summary['errors']} not aligned, {len(every)} boundaries"
          + (f", white noise at {args.snr:g} dB SNR" if args.snr is not None else ""))
    print(f"all: median {np.median(every) * 1000:.0f} ms, within 50 ms {np.mean(every < 0.05):.3f},"
          f" within 100 ms {np.mean(every < 0.1):.3f}")
    for name, v in kinds.items():
        if v:
            a = np.asarray(v)
            print(f"  {name:20s} n={len(a):5d}  median signed {np.median(a) * 1000:+5.0f} ms  "
                  f"within 50 ms {np.mean(np.abs(a) < 0.05):.3f}")


if __name__ == "__main__":
    main()
