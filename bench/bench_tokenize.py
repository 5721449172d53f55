"""Tokenisation throughput.

(a) MFCC-39 @ 50 Hz + k-means K=100 + dedup, the whole job (read wav -> Parquet), in audio
    seconds per wall second, with torch limited to ``--threads`` (2 = this machine's cores).
(b) The job around a HuBERT-base-sized random encoder (768-d, 12 layers, 512-channel CNN) with a
    K=500 quantiser, as a ratio to the encoder's bare batched forward pass on the same audio
    (same padding batches, same layer, weights already loaded in both). Target >= 0.9.

    .venv/bin/python bench/bench_tokenize.py [--corpus DIR] [--hours 0.1] [--threads 2]
        [--hubert-seconds 60] [--layer 12] [--device cpu|cuda] [--skip-mfcc] [--skip-hubert]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def bench_mfcc(manifest: Path, work: Path) -> dict:
    from speechlm.tokenizers import fit_tokenizer
    from speechlm.tokenizers.job import tokenize_manifest

    tok = fit_tokenizer(manifest, "mfcc", 100, work / "mfcc_tok")
    res = tokenize_manifest(manifest, tok, work / "mfcc_tokens", progress=False)
    return {"audio_s": res["audio_seconds"], "wall_s": res["wall_seconds"],
            "audio_s_per_wall_s": res["audio_seconds"] / res["wall_seconds"]}


def bench_hubert(manifest: Path, work: Path, seconds: float, layer: int, device: str) -> dict:
    import numpy as np
    import torch
    from transformers import HubertConfig, HubertModel

    from speechlm.corpus.manifest import read_manifest, write_manifest
    from speechlm.tokenizers.encoders import SSLEncoder, _length_batches
    from speechlm.tokenizers.job import tokenize_manifest
    from speechlm.tokenizers.kmeans import KMeansQuantizer
    from speechlm.tokenizers.reading import read_utterance
    from speechlm.tokenizers.units import UnitTokenizer

    torch.manual_seed(0)
    HubertModel(HubertConfig()).save_pretrained(work / "hubert_base")  # 768-d, 12 layers
    # the corpus repeated (new ids) until ``seconds``: a long job, as in production, so the
    # first chunk's read (not overlapped with encoding) is a small part of it
    pool, utts, total = read_manifest(manifest), [], 0.0
    while total < seconds:
        u = pool[len(utts) % len(pool)]
        utts.append(type(u)(**{**vars(u), "id": f"{u.id}-{len(utts)}"}))
        total += u.duration
    sub = work / "hubert_manifest.jsonl"
    write_manifest(sub, utts)
    enc = SSLEncoder("hubert", str(work / "hubert_base"), layer=layer, device=device)
    # a K=500 quantiser with random centroids costs exactly what a fitted one costs
    rng = np.random.default_rng(0)
    tok = UnitTokenizer(enc, KMeansQuantizer(rng.normal(size=(500, enc.dim)).astype(np.float32)))
    tok_dir = tok.save(work / "hubert_tok")

    wavs = [read_utterance(u, 16000) for u in utts]
    order = sorted(range(len(wavs)), key=lambda k: len(wavs[k]))
    batches = _length_batches(order, [len(w) for w in wavs], enc.batch_samples)
    model, dev = enc.model, enc.device

    def bare() -> float:
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for b in batches:
                longest = max(len(wavs[k]) for k in b)
                x = torch.zeros(len(b), longest)
                for i, k in enumerate(b):
                    x[i, : len(wavs[k])] = torch.from_numpy(wavs[k])
                model(x.to(dev))
        sync()
        return time.perf_counter() - t0

    bare()  # warm-up (allocator, kernels) for both measurements
    bare_s = min(bare() for _ in range(2))
    # the job loads the tokenizer itself; its wall time excludes loading and counts reading,
    # encoding, k-means, dedup and Parquet writing
    runs = []
    for i in range(2):
        res = tokenize_manifest(sub, tok_dir, work / f"hubert_tokens{i}", progress=False)
        runs.append(res["wall_seconds"])
    pipe_s = min(runs)
    return {"audio_s": total, "layer": layer, "device": device, "bare_forward_s": bare_s,
            "pipeline_s": pipe_s, "ratio_bare_over_pipeline": bare_s / pipe_s,
            "bare_audio_s_per_s": total / bare_s, "pipeline_audio_s_per_s": total / pipe_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, help="folder with manifest.jsonl (default: synthesise)")
    ap.add_argument("--hours", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hubert-seconds", type=float, default=60.0)
    ap.add_argument("--layer", type=int, default=12)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-mfcc", action="store_true")
    ap.add_argument("--skip-hubert", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = args.corpus
        if corpus is None:
            from speechlm.corpus.synth import synthesize_corpus

            corpus = work / "corpus"
            synthesize_corpus(corpus, hours=args.hours, seed=0, workers=args.threads)
        manifest = corpus / "manifest.jsonl"
        out = {"threads": args.threads}
        if not args.skip_mfcc:
            out["mfcc"] = bench_mfcc(manifest, work)
            print(f"(a) MFCC K=100: {out['mfcc']['audio_s']:.0f} s of audio in "
                  f"{out['mfcc']['wall_s']:.2f} s = {out['mfcc']['audio_s_per_wall_s']:.0f} "
                  f"audio s / wall s on {args.threads} threads", flush=True)
        if args.skip_hubert:
            print(json.dumps(out, indent=2))
            return
        h = out["hubert"] = bench_hubert(manifest, work, args.hubert_seconds, args.layer,
                                         args.device)
        print(f"(b) HuBERT-base-sized layer {h['layer']} on {h['device']}: bare forward "
              f"{h['bare_forward_s']:.2f} s ({h['bare_audio_s_per_s']:.1f} audio s/s), pipeline "
              f"{h['pipeline_s']:.2f} s ({h['pipeline_audio_s_per_s']:.1f} audio s/s) on "
              f"{h['audio_s']:.0f} s of audio: ratio {h['ratio_bare_over_pipeline']:.3f}")
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
