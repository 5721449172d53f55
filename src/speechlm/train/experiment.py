"""Warm start against cold init at equal steps: TWIST's claim and its controls, at toy scale.

    python -m speechlm.train.experiment --run RUN --out D [--budgets 200,700] [--arms A,B,...]

``RUN`` is a finished ``speechlm run gslm`` or ``twist`` directory: every arm trains on its token
datasets (``RUN/tokens/train``; the held-out loss is on ``RUN/tokens/valid``, spoken by voices the
training set never heard) and is scored on its benchmark (``RUN/benchmark``: lexical and
syntactic pairs by the held-out voices). An arm is a start (cold, or a sequence LM trained here
and warm-started with ``vocab_mode: replace`` as TWIST does) plus training settings; each arm
trains once per budget with the same data order, seed, learning rate and warm-up share (``--lr``,
``--warmup``: a study per setting gives the learning-rate comparison), and
keeps its best checkpoint by held-out loss. The arms:

- ``cold``: random init (the gslm recipe's model).
- ``text``: the twist recipe's text LM (8,000 grammar sentences, 300 steps); new rows ``mean``.
- ``text-normal`` / ``text-copy``: the same, new rows with the text rows' spread, or copies of
  text rows (``new_rows``).
- ``text-freeze``: the same, only embeddings and output layer learn for the first 10% of steps.
- ``text-big``: a text LM trained on 40,000 sentences for 2,000 steps (the text LM's quality).
- ``digits``: an LM of the same size trained on digit images (TWIST's other-modality control).
- ``cold-wide`` / ``text-wide``: both at 4 x 256 (the checkpoint-size trend, AudioPaLM's claim).

``--new-rows`` sets the new-row init of the arms after the first three (default ``normal``).
Finished arms are reused, so a killed study continues; a study directory holds one setting
(``D/study.json``) and a rerun with other settings is refused. Writes ``D/results.json``,
``D/results.md`` and ``D/curves_<budget>.png`` (held-out loss against step, one line per arm).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SMALL = {"model_type": "llama", "hidden_size": 128, "intermediate_size": 512,
         "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
         "max_position_embeddings": 512}
WIDE = {**SMALL, "hidden_size": 256, "intermediate_size": 1024}

# the sequence LMs warm starts begin from (train_text_lm's arguments)
SOURCE_LMS: dict[str, dict[str, Any]] = {
    "text": {"source": "grammar", "n_sentences": 8000, "steps": 300, "model": SMALL},
    "text-big": {"source": "grammar", "n_sentences": 40000, "steps": 2000, "model": SMALL},
    "digits": {"source": "digits", "n_sentences": 8000, "steps": 300, "model": SMALL},
    "text-wide": {"source": "grammar", "n_sentences": 8000, "steps": 300, "model": WIDE},
}
# arm -> (source LM or None for cold, training settings beyond the common ones); "NEW_ROWS"
# stands for --new-rows, and a freeze of "10%" for a tenth of the budget
ARMS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "cold": (None, {"model": SMALL}),
    "text": ("text", {"new_rows": "mean"}),
    "text-normal": ("text", {"new_rows": "normal"}),
    "text-copy": ("text", {"new_rows": "copy"}),
    "text-freeze": ("text", {"new_rows": "NEW_ROWS", "freeze_body_steps": "10%"}),
    "text-big": ("text-big", {"new_rows": "NEW_ROWS"}),
    "digits": ("digits", {"new_rows": "NEW_ROWS"}),
    "cold-wide": (None, {"model": WIDE}),
    "text-wide": ("text-wide", {"new_rows": "NEW_ROWS"}),
}
TASKS = ("lexical", "syntactic")


def arm_settings(arm: str, budget: int, new_rows: str) -> dict[str, Any]:
    """The arm's own training settings at ``budget`` steps (placeholders resolved)."""
    _, extra = ARMS[arm]
    out = {}
    for key, value in extra.items():
        if value == "NEW_ROWS":
            value = new_rows
        elif value == "10%":
            value = max(1, budget // 10)
        out[key] = value
    return out


def source_lm(out: Path, name: str, seed: int) -> Path:
    """The source LM ``name``, trained under ``out/lm_<name>`` once."""
    from speechlm.train.textlm import train_text_lm

    d = out / f"lm_{name}"
    if not (d / "text_lm.json").is_file():
        train_text_lm(d, seed=seed, **SOURCE_LMS[name])
    return d


def run_arm(run: Path, out: Path, arm: str, budget: int, common: dict[str, Any],
            new_rows: str, warmup: float = 0.1) -> dict[str, Any]:
    """Train (or reuse) one arm at one budget and score it; returns its figures."""
    from speechlm.evaluate.scoring import load_model
    from speechlm.evaluate.zerospeech import evaluate_zerospeech
    from speechlm.train import TrainConfig, run_training

    d = out / arm / str(budget)
    done = d / "figures.json"
    if done.is_file():
        return json.loads(done.read_text())
    source, _ = ARMS[arm]
    init = ({"init": "cold"} if source is None else
            {"init": "warm", "vocab_mode": "replace",
             "init_from": str(source_lm(out, source, common["seed"]))})
    every = max(1, budget // 7)
    cfg = TrainConfig(output_dir=str(d / "model"), data=str(run / "tokens" / "train"),
                      eval_data=str(run / "tokens" / "valid"), max_steps=budget,
                      warmup_steps=max(1, round(budget * warmup)), eval_steps=every,
                      save_steps=every, logging_steps=every, max_epochs=None,
                      early_stopping_patience=None, keep="best", **common, **init,
                      **arm_settings(arm, budget, new_rows))
    m = run_training(cfg)
    figures = {"arm": arm, "budget": budget, "eval_curve": m["eval_loss"],
               "start_eval_loss": m["start_eval_loss"], "kept_step": m["kept_step"],
               "heldout_loss": m["final_eval_loss"], "parameters": m["parameters"],
               "settings": {**init, **arm_settings(arm, budget, new_rows)}}
    lm = load_model(d / "model")  # once for both tasks
    for task in TASKS:
        r = evaluate_zerospeech(lm, run / "benchmark", task, d / "eval", progress=False)
        figures[task] = r["accuracy"]
    done.write_text(json.dumps(figures, indent=2))
    return figures


def write_results(out: Path, results: dict[str, dict[int, dict]]) -> None:
    """``results.json``, ``results.md`` (a row per arm and budget) and a curve plot per budget."""
    from speechlm.train.plot import plot_curves

    (out / "results.json").write_text(json.dumps(results, indent=2))
    budgets = sorted({b for per in results.values() for b in per})
    lines = ["| arm | budget | held-out loss (kept step) | held-out loss by step | lexical | "
             "syntactic |", "| --- | --- | --- | --- | --- | --- |"]
    for budget in budgets:
        for arm, per in results.items():
            f = per.get(budget)
            if f is None:
                continue
            curve = " / ".join(f"{loss:.3f}" for _, loss in f["eval_curve"])
            lines.append(f"| {arm} | {budget} | {f['heldout_loss']:.3f} ({f['kept_step']}) | "
                         f"{curve} | {f['lexical']:.3f} | {f['syntactic']:.3f} |")
        plot_curves({arm: per[budget]["eval_curve"] for arm, per in results.items()
                     if budget in per}, out / f"curves_{budget}.png",
                    title=f"held-out loss, {budget} steps")
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    from speechlm.models.init import NEW_ROWS

    ap = argparse.ArgumentParser(
        description="Warm start vs cold init at equal steps on a finished gslm/twist run's "
                    "tokens: held-out loss curves, lexical and syntactic accuracy per arm.")
    ap.add_argument("--run", type=Path, required=True,
                    help="a finished `speechlm run gslm|twist` directory (tokens, benchmark)")
    ap.add_argument("--out", type=Path, required=True, help="study directory (re-use to resume)")
    ap.add_argument("--budgets", default="200,700", help="step budgets, comma-separated")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"from {', '.join(ARMS)}")
    ap.add_argument("--new-rows", default="normal", choices=NEW_ROWS,
                    help="new-row init of the arms text-freeze, text-big, digits, text-wide")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=float, default=0.1,
                    help="share of each budget spent warming the learning rate up")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    arms = [x for x in a.arms.split(",") if x]
    unknown = [x for x in arms if x not in ARMS]
    if unknown:
        ap.error(f"--arms: unknown {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    for sub in ("tokens/train", "tokens/valid", "benchmark"):
        if not (a.run / sub).is_dir():
            ap.error(f"--run: {a.run / sub} is missing; give a finished gslm or twist run")
    budgets = [int(b) for b in a.budgets.split(",") if b]
    common = {"batch_size": a.batch_size, "seq_len": a.seq_len, "lr": a.lr,
              "precision": a.precision, "seed": a.seed, "formats": {"speech_only": 1.0},
              "progress": False}
    # finished arms are reused by name, so a study directory holds one setting: a rerun with
    # another --lr or --seed would otherwise mix settings in one table
    study = {**common, "warmup": a.warmup, "new_rows": a.new_rows}
    kept = a.out / "study.json"
    if kept.is_file() and (old_study := json.loads(kept.read_text())) != study:
        changed = ", ".join(f"{k} {old_study.get(k)} -> {v}" for k, v in study.items()
                            if old_study.get(k) != v)
        ap.error(f"--out: {a.out} holds a study with other settings ({changed}); "
                 "use a new --out per setting")
    a.out.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(study, indent=2))
    results: dict[str, dict[int, dict]] = {}
    old = a.out / "results.json"
    if old.is_file():  # arms of an earlier call stay in the tables
        results = {arm: {int(b): f for b, f in per.items()}
                   for arm, per in json.loads(old.read_text()).items()}
    for budget in budgets:
        for arm in arms:
            f = run_arm(a.run, a.out, arm, budget, common, a.new_rows, a.warmup)
            results.setdefault(arm, {})[budget] = f
            print(f"{arm:12s} {budget:5d} steps: held-out {f['heldout_loss']:.4f} "
                  f"(step {f['kept_step']}), lexical {f['lexical']:.3f}, "
                  f"syntactic {f['syntactic']:.3f}", flush=True)
            write_results(a.out, results)


if __name__ == "__main__":
    main()
