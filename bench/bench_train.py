"""Training throughput: speechlm's trainer vs the stock HF ``Trainer`` on the same model and data.

Prints, for the tiny GSLM model (Llama, 4 layers, 256 wide, seq 256, batch 16):
- tokens/s of ``run_training`` (packed blocks, the speechlm path),
- tokens/s of a stock ``transformers.Trainer`` on the same packed blocks (same model init),
- real tokens/s of a stock ``Trainer`` on per-utterance sequences padded by
  ``DataCollatorForLanguageModeling`` (the common unpacked setup),
- model FLOP utilisation against a fp32 matmul peak measured in the same run.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_train.py [--steps 20] [--data TOKEN_DIR]

Without ``--data`` a toy token dataset (contract layout) is generated.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

MODEL = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 1024,
         "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
         "max_position_embeddings": 1024}


def matmul_peak(n: int = 1024, reps: int = 20) -> float:
    """Best fp32 matmul FLOP/s over a few trials (the denominator of MFU)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
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
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--data", default=None, help="token dataset dir (default: toy data)")
    ap.add_argument("--rounds", type=int, default=2, help="alternate ours/stock this many times")
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
    peak = matmul_peak()
    model0 = cold_init(MODEL, vocab)
    fpt = flops_per_token(model0, a.seq_len)
    n_params = sum(p.numel() for p in model0.parameters())
    tokens_per_step = a.batch * a.seq_len
    ours, stock, padded = [], [], []
    for r in range(a.rounds):
        cfg = TrainConfig(data=str(data), output_dir=str(tmp / f"ours{r}"), model=MODEL,
                          seq_len=a.seq_len, batch_size=a.batch, max_steps=a.steps, lr=5e-4,
                          warmup_steps=2, save_steps=10**6, eval_steps=10**6,
                          logging_steps=10**6, progress=False)
        ours.append(run_training(cfg)["tokens_per_second"])

        t, cb = stock_trainer(cold_init(MODEL, vocab), blocks, a.steps, a.batch, 5e-4,
                              default_data_collator, str(tmp / f"stock{r}"))
        t.train()
        stock.append(a.steps * tokens_per_step / cb.result["seconds_this_run"])

        t, cb = stock_trainer(cold_init(MODEL, vocab), unpacked, a.steps, a.batch, 5e-4,
                              pad_collator, str(tmp / f"padded{r}"))
        t.train()
        padded.append(a.steps * real_per_batch / cb.result["seconds_this_run"])

    best_ours, best_stock, best_padded = max(ours), max(stock), max(padded)
    result = {
        "threads": threads, "params": n_params, "seq_len": a.seq_len, "batch": a.batch,
        "steps": a.steps, "ours_tokens_per_s": ours, "stock_packed_tokens_per_s": stock,
        "stock_padded_real_tokens_per_s": padded,
        "ratio_vs_stock_packed": best_ours / best_stock,
        "ratio_vs_stock_padded": best_ours / best_padded,
        "matmul_peak_gflops": peak / 1e9, "model_flops_per_token": fpt,
        "mfu_ours": best_ours * fpt / peak, "mfu_stock": best_stock * fpt / peak,
    }
    print(json.dumps(result, indent=2))
    print(f"\nspeechlm {best_ours:,.0f} tok/s | stock Trainer same packed data {best_stock:,.0f} "
          f"tok/s (ratio {result['ratio_vs_stock_packed']:.2f}) | stock Trainer padded "
          f"{best_padded:,.0f} real tok/s (ratio {result['ratio_vs_stock_padded']:.2f}) | "
          f"MFU {result['mfu_ours']:.1%} of {peak / 1e9:.1f} GFLOP/s matmul peak "
          f"({threads} threads)")


if __name__ == "__main__":
    main()
