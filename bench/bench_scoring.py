"""Batched log-likelihood scoring vs one-at-a-time scoring: speed ratio and score agreement.

A random Llama of the tiny recipe's size (4 layers, 256 wide, 100 units + specials) scores
sequences with the lengths of sWUGGY/sBLIMP items (20-120 tokens). The baseline scores each
sequence alone (batch size 1, no padding); the batched path buckets by length and pads.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_scoring.py [--n 256] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from speechlm.evaluate.scoring import score_sequences

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="sequences to score")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--min-len", type=int, default=20)
    ap.add_argument("--max-len", type=int, default=120)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=106, hidden_size=256, intermediate_size=1024,
                      num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=512)
    model = LlamaForCausalLM(cfg).eval().to(args.device)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(6, 106, int(n)).tolist()
            for n in rng.integers(args.min_len, args.max_len + 1, args.n)]
    n_tokens = sum(map(len, seqs))
    score_sequences(model, seqs[:4], batch_size=4)  # warm-up (kernels, allocator)

    def timed(bs: int) -> tuple[np.ndarray, float]:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = score_sequences(model, seqs, batch_size=bs)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out, time.perf_counter() - t0

    single, t_single = timed(1)
    batched, t_batched = timed(args.batch_size)
    diff = float(np.abs(single - batched).max())
    res = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "threads": torch.get_num_threads(), "sequences": args.n,
        "tokens": n_tokens, "batch_size": args.batch_size,
        "one_at_a_time_s": round(t_single, 3), "batched_s": round(t_batched, 3),
        "one_at_a_time_tokens_per_s": round(n_tokens / t_single),
        "batched_tokens_per_s": round(n_tokens / t_batched),
        "speedup": round(t_single / t_batched, 2), "max_abs_score_diff": diff,
    }
    print(json.dumps(res, indent=2))
    if diff > 1e-4:
        raise SystemExit(f"scores differ by {diff} between batched and one-at-a-time")


if __name__ == "__main__":
    main()
