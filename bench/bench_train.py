"""Training throughput: speechlm's trainer in fp32 and bf16 vs the stock HF ``Trainer``.

Prints, for a Llama (``--hidden``, 4 layers, seq 256, batch 32 by default):
- tokens/s of ``run_training`` (packed blocks, the speechlm path) in fp32 and in bf16,
- tokens/s of a stock ``transformers.Trainer`` on the same packed blocks (same init, fp32),
- real tokens/s of a stock ``Trainer`` on per-utterance sequences padded by
  ``DataCollatorForLanguageModeling`` (the common unpacked setup, fp32),
- model FLOP utilisation of each against the matmul peak of its own precision, measured on an
  idle large matmul at the start of the same run (before any training), best of five;
- the final training losses of fp32 and bf16 from the same init and data (their agreement);
- with ``--compile``, ours in bf16 with ``torch_compile`` as well (compile time included).

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_train.py [--steps 20] [--hidden 128] [--compile]

Without ``--data`` a toy token dataset (contract layout) is generated.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def llama(hidden: int) -> dict:
    """The benchmark model: a 4-layer Llama of width ``hidden`` (the demo's shape at 128)."""
    return {"model_type": "llama", "hidden_size": hidden, "intermediate_size": 4 * hidden,
            "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
            "max_position_embeddings": 1024}


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Best matmul FLOP/s in ``dtype`` over five trials (the denominator of MFU).

    Measured before any training, on a matmul large enough to reach the kernels' best rate.
    """
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t))
    return best


def flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token: 6 x (non-embedding params + LM head) + attention (PaLM, App. B)."""
    cfg = model.config
    n = sum(p.numel() for p in model.parameters())
    n -= model.get_input_embeddings().weight.numel()  # a lookup, not a matmul
    if model.get_output_embeddings().weight is model.get_input_embeddings().weight:
        n += model.get_output_embeddings().weight.numel()
    return 6 * n + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len


def stock_trainer(model, dataset, steps: int, batch: int, lr: float, collator, out: str):
    """A stock ``Trainer`` with near-default arguments; returns its tokens/s callback."""
    from transformers import Trainer, TrainingArguments

    from speechlm.train.trainer import ThroughputCallback

    args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=steps,
                             learning_rate=lr, report_to="none", use_cpu=True, save_strategy="no",
                             disable_tqdm=True, logging_steps=1000, warmup_steps=2)
    cb = ThroughputCallback(0)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                      callbacks=[cb])
    return trainer, cb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--data", default=None, help="token dataset dir (default: toy data)")
    ap.add_argument("--rounds", type=int, default=2, help="alternate ours/stock this many times")
    ap.add_argument("--compile", action="store_true",
                    help="also time ours in bf16 with torch_compile (compile time included)")
    a = ap.parse_args()

    from transformers import DataCollatorForLanguageModeling, default_data_collator

    from speechlm.models.init import cold_init
    from speechlm.sequences.formats import speech_only
    from speechlm.sequences.packing import pack
    from speechlm.sequences.vocab import SpeechVocab
    from speechlm.train import TrainConfig, run_training
    from speechlm.train.data import load_rows, read_info
    from speechlm.train.toydata import write_toy_token_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    data = Path(a.data) if a.data else write_toy_token_dataset(tmp / "data", n_rows=3000,
                                                               n_units=100, seed=0)
    info = read_info(data)
    vocab = SpeechVocab.speech_only(int(info["n_units"]))
    rows = load_rows(data)
    # the same packed blocks as ours, in memory, for the stock Trainer
    ids, labels = pack((speech_only({"units": u}, vocab) for u in rows["units"]), a.seq_len)
    blocks = [{"input_ids": torch.from_numpy(i), "labels": torch.from_numpy(lab)}
              for i, lab in zip(ids, labels, strict=True)]
    # unpacked baseline: one utterance per sequence (cut at seq_len), padded per batch
    unpacked = [{"input_ids": speech_only({"units": u}, vocab).input_ids[: a.seq_len]}
                for u in rows["units"]]
    vocab.tokenizer.padding_side = "right"
    pad_collator = DataCollatorForLanguageModeling(vocab.tokenizer, mlm=False)
    real_per_batch = sum(len(x["input_ids"]) for x in unpacked) / len(unpacked) * a.batch

    threads = torch.get_num_threads()
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    model_cfg = llama(a.hidden)
    model0 = cold_init(model_cfg, vocab)
    fpt = flops_per_token(model0, a.seq_len)
    n_params = sum(p.numel() for p in model0.parameters())
    tokens_per_step = a.batch * a.seq_len
    variants = ("fp32", "bf16", "bf16+compile") if a.compile else ("fp32", "bf16")
    ours: dict[str, list[float]] = {v: [] for v in variants}
    final_loss: dict[str, float] = {}
    stock, padded = [], []
    for r in range(a.rounds):
        for variant in variants:
            precision = variant.split("+")[0]
            cfg = TrainConfig(data=str(data), output_dir=str(tmp / f"ours_{variant}{r}"),
                              model=model_cfg, seq_len=a.seq_len, batch_size=a.batch,
                              max_steps=a.steps, lr=5e-4, warmup_steps=2, save_steps=10**6,
                              eval_steps=10**6, logging_steps=1, precision=precision,
                              progress=False, torch_compile=variant.endswith("compile"))
            m = run_training(cfg)
            ours[variant].append(m["tokens_per_second"])
            final_loss[variant] = m["final_train_loss"]

        t, cb = stock_trainer(cold_init(model_cfg, vocab), blocks, a.steps, a.batch, 5e-4,
                              default_data_collator, str(tmp / f"stock{r}"))
        t.train()
        stock.append(a.steps * tokens_per_step / cb.result["seconds_this_run"])

        t, cb = stock_trainer(cold_init(model_cfg, vocab), unpacked, a.steps, a.batch, 5e-4,
                              pad_collator, str(tmp / f"padded{r}"))
        t.train()
        padded.append(a.steps * real_per_batch / cb.result["seconds_this_run"])

    best = {p: max(v) for p, v in ours.items()}
    best_stock, best_padded = max(stock), max(padded)
    result = {
        "threads": threads, "params": n_params, "hidden": a.hidden, "seq_len": a.seq_len,
        "batch": a.batch, "steps": a.steps, "ours_tokens_per_s": ours,
        "stock_packed_tokens_per_s": stock, "stock_padded_real_tokens_per_s": padded,
        "bf16_vs_fp32": best["bf16"] / best["fp32"],
        "ratio_vs_stock_packed": best["fp32"] / best_stock,
        "ratio_vs_stock_padded": best["fp32"] / best_padded,
        "matmul_peak_gflops": {p: v / 1e9 for p, v in peaks.items()},
        "model_flops_per_token": fpt,
        "mfu": {v: best[v] * fpt / peaks[v.split("+")[0]] for v in best},
        "mfu_stock_fp32": best_stock * fpt / peaks["fp32"],
        "final_train_loss": final_loss,
        "loss_difference_bf16_minus_fp32": final_loss["bf16"] - final_loss["fp32"],
    }
    print(json.dumps(result, indent=2))
    print(f"\nspeechlm fp32 {best['fp32']:,.0f} tok/s, bf16 {best['bf16']:,.0f} tok/s "
          f"(bf16/fp32 {result['bf16_vs_fp32']:.2f}) | stock Trainer same packed data "
          f"{best_stock:,.0f} tok/s (ratio {result['ratio_vs_stock_packed']:.2f}) | stock "
          f"Trainer padded {best_padded:,.0f} real tok/s (ratio "
          f"{result['ratio_vs_stock_padded']:.2f})\nMFU fp32 {result['mfu']['fp32']:.1%} of "
          f"{peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {result['mfu']['bf16']:.1%} of "
          f"{peaks['bf16'] / 1e9:.1f} GFLOP/s (idle matmul peaks, {threads} threads) | final "
          f"loss fp32 {final_loss['fp32']:.4f}, bf16 {final_loss['bf16']:.4f}")
    if a.compile:
        print(f"bf16 + torch_compile {best['bf16+compile']:,.0f} tok/s over {a.steps} steps, "
              f"compile time included (ratio to bf16 "
              f"{best['bf16+compile'] / best['bf16']:.2f}), final loss "
              f"{final_loss['bf16+compile']:.4f}")


if __name__ == "__main__":
    main()
