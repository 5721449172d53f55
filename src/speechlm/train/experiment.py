"""Cold vs warm init at equal steps on held-out unit loss (TWIST's claim, at toy scale).

    python -m speechlm.train.experiment --out runs/twist_toy [--steps 300]

Pipeline: synthetic speech (training voices) -> MFCC k-means tokenizer -> token datasets for a
training corpus and a held-out corpus (other sentences, held-out voices); a tiny text LM trained on
grammar text; then the same speech LM (same architecture, data, steps, seed) trained from a cold
init and from the text LM (vocab ``replace`` as TWIST, and ``extend``). Writes ``results.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# small enough to finish in minutes on a shared 2-core CPU
ARCH = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 256,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
        "max_position_embeddings": 1024}
SEQ_LEN, BATCH = 128, 8


def run(out: Path, steps: int, hours: float, n_units: int, text_steps: int, seed: int = 0) -> dict:
    """Run the whole comparison under ``out`` (stages already done are reused)."""
    from speechlm.corpus.synth import HELDOUT_VOICES, synthesize_corpus
    from speechlm.tokenizers import fit_tokenizer
    from speechlm.tokenizers.job import tokenize_manifest
    from speechlm.train import TrainConfig, run_training
    from speechlm.train.textlm import train_text_lm

    out.mkdir(parents=True, exist_ok=True)
    synthesize_corpus(out / "corpus", hours=hours, seed=seed, workers=2)
    synthesize_corpus(out / "heldout", hours=hours / 5, seed=seed + 1000, workers=2,
                      voices=list(HELDOUT_VOICES))
    if not (out / "tokenizer").is_dir():
        fit_tokenizer(out / "corpus" / "manifest.jsonl", "mfcc", n_units, out / "tokenizer")
    for name in ("corpus", "heldout"):
        if not (out / f"tokens_{name}" / "info.json").is_file():
            tokenize_manifest(out / name / "manifest.jsonl", out / "tokenizer",
                              out / f"tokens_{name}")
    text_lm = out / "text_lm"
    if not (text_lm / "text_lm.json").is_file():
        train_text_lm(text_lm, n_sentences=4000, seed=seed, model=ARCH, steps=text_steps,
                      seq_len=SEQ_LEN, batch_size=BATCH, progress=False)
    common = dict(data=str(out / "tokens_corpus"), eval_data=str(out / "tokens_heldout"),
                  model=ARCH, seq_len=SEQ_LEN, batch_size=BATCH, max_steps=steps, lr=1e-3,
                  warmup_steps=max(1, steps // 10), save_steps=10**6, eval_steps=max(1, steps // 5),
                  logging_steps=max(1, steps // 20), seed=seed, progress=False)
    results = {}
    for name, extra in (("cold", {"init": "cold"}),
                        ("warm_replace", {"init": "warm", "init_from": str(text_lm),
                                          "vocab_mode": "replace"}),
                        ("warm_extend", {"init": "warm", "init_from": str(text_lm),
                                         "vocab_mode": "extend"})):
        m = run_training(TrainConfig(output_dir=str(out / name), **common, **extra))
        results[name] = {"heldout_unit_loss": m["final_eval_loss"],
                         "train_loss": m["final_train_loss"], "eval_curve": m["eval_loss"],
                         "steps": m["steps"], "tokens_per_second": m["tokens_per_second"]}
    results["settings"] = {"steps": steps, "hours": hours, "n_units": n_units,
                           "text_lm_steps": text_steps, "arch": ARCH, "seq_len": SEQ_LEN,
                           "batch": BATCH}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description="cold vs warm init on held-out unit loss")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--hours", type=float, default=0.1)
    ap.add_argument("--n-units", type=int, default=50)
    ap.add_argument("--text-steps", type=int, default=150)
    a = ap.parse_args()
    r = run(a.out, a.steps, a.hours, a.n_units, a.text_steps)
    for k in ("cold", "warm_replace", "warm_extend"):
        print(f"{k:13s} held-out unit loss {r[k]['heldout_unit_loss']:.4f} "
              f"(train {r[k]['train_loss']:.4f}) after {r[k]['steps']} steps")


if __name__ == "__main__":
    main()
