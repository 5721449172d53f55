"""``speechlm run``: a recipe's stages chained in one run directory.

Each stage writes its own sub-directory and a ``.done`` file holding the stage's configuration
and wall time. A finished stage is skipped when the run is started again; an interrupted stage
starts over, except training, which resumes from its last checkpoint. A finished stage whose
configuration has since changed is an error rather than a silent re-use of stale results.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from speechlm.errors import ConfigError

console = Console(stderr=True)


class Run:
    """A run directory and its stage book-keeping."""

    def __init__(self, out: Path, cfg: dict[str, Any]):
        self.out = Path(out)
        self.cfg = cfg
        self.out.mkdir(parents=True, exist_ok=True)

    def stage(self, name: str, conf: Any, fn: Callable[[Path], dict | None]) -> dict:
        """Run ``fn(stage_dir)`` unless ``name`` already finished with the same ``conf``."""
        stage_dir = self.out / name
        done = stage_dir / ".done"
        conf = json.loads(json.dumps(conf, default=str))
        if done.exists():
            record = json.loads(done.read_text())
            if record["config"] != conf:
                raise ConfigError(
                    f"stage '{name}' in {self.out} finished with another configuration "
                    f"({record['config']} != {conf}); use a new --out or delete {stage_dir}"
                )
            console.print(f"[dim]- {name}: done ({record['seconds']:.0f}s), skipped[/dim]")
            return record
        console.rule(f"[bold]{name}")
        stage_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        info = fn(stage_dir) or {}
        record = {"config": conf, "seconds": time.perf_counter() - start, "info": info}
        done.write_text(json.dumps(record, indent=1, default=str))
        return record


def split_manifest(manifest: Path, out_dir: Path, valid_fraction: float, seed: int) -> dict:
    """Split utterances into train/valid manifests, by speaker-blind random choice of ids."""
    from speechlm.corpus.manifest import read_manifest, write_manifest

    utts = read_manifest(manifest)
    order = list(range(len(utts)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, int(round(len(utts) * valid_fraction)))
    valid_idx = set(order[:n_valid])
    train = [u for i, u in enumerate(utts) if i not in valid_idx]
    valid = [u for i, u in enumerate(utts) if i in valid_idx]
    write_manifest(out_dir / "train.jsonl", train)
    write_manifest(out_dir / "valid.jsonl", valid)
    return {"train": len(train), "valid": len(valid),
            "train_hours": sum(u.duration for u in train) / 3600,
            "valid_hours": sum(u.duration for u in valid) / 3600}


def run_recipe(cfg: dict[str, Any], out: Path, manifest: Path | None = None) -> dict:
    """Run every stage of a loaded recipe into ``out``; returns the results dictionary."""
    run = Run(out, cfg)
    out = run.out
    stages: dict[str, dict] = {}

    # 1. Speech: a given manifest, or a synthetic corpus.
    if manifest is not None:
        manifest = Path(manifest).resolve()
        source = {"manifest": str(manifest)}
    elif cfg.get("corpus"):
        from speechlm.corpus.synth import TRAIN_VOICES, synthesize_corpus

        # the voice set is part of what the corpus is: a run made with other voices is stale;
        # the recorded configuration is exactly what is synthesised
        corpus_conf = {"voices": TRAIN_VOICES, **cfg["corpus"]}

        def make_corpus(d: Path) -> dict:
            return synthesize_corpus(d, hours=corpus_conf["hours"], seed=corpus_conf["seed"],
                                     voices=corpus_conf["voices"])

        stages["corpus"] = run.stage("corpus", corpus_conf, make_corpus)
        manifest = out / "corpus" / "manifest.jsonl"
        source = {"synthetic": cfg["corpus"]}
    else:
        raise ConfigError(f"recipe '{cfg['name']}' at scale '{cfg['scale']}' has no synthetic "
                          "corpus: pass --manifest with an imported corpus")

    split_conf = {**source, "valid_fraction": cfg["valid_fraction"]}
    stages["data"] = run.stage("data", split_conf, lambda d: split_manifest(
        manifest, d, cfg["valid_fraction"], seed=0))
    train_m, valid_m = out / "data" / "train.jsonl", out / "data" / "valid.jsonl"

    def make_benchmark(d: Path) -> dict:
        from speechlm.corpus.benchmarks import build_benchmarks

        return build_benchmarks(d, **cfg["benchmark"])

    stages["benchmark"] = run.stage("benchmark", cfg["benchmark"], make_benchmark)

    # 2. Speech tokenizer, fitted on the training split, and the token datasets.
    tok_conf = dict(cfg["tokenizer"])

    def fit(d: Path) -> dict:
        from speechlm.tokenizers import fit_tokenizer, load_tokenizer

        opts = {k: v for k, v in tok_conf.items() if k not in ("kind", "units")}
        tok = load_tokenizer(fit_tokenizer(train_m, tok_conf["kind"], tok_conf["units"], d, **opts))
        return {"kind": tok.kind, "n_units": tok.n_units, "frame_rate": tok.frame_rate}

    stages["tokenizer"] = run.stage("tokenizer", tok_conf, fit)

    def tokenize(d: Path) -> dict:
        from speechlm.tokenizers.job import tokenize_manifest

        return {split: tokenize_manifest(m, out / "tokenizer", d / split)
                for split, m in (("train", train_m), ("valid", valid_m))}

    stages["tokens"] = run.stage("tokens", tok_conf, tokenize)

    # 3. The language model (warm start from a text LM where the recipe says so).
    train_conf = dict(cfg["train"])
    if train_conf.get("init") == "warm" and "init_from" not in train_conf:
        textlm = cfg.get("textlm") or {}
        if textlm.get("init_from"):
            train_conf["init_from"] = textlm["init_from"]
        else:
            def make_textlm(d: Path) -> dict:
                from speechlm.train.textlm import train_text_lm

                train_text_lm(d, **textlm)
                return {}

            stages["textlm"] = run.stage("textlm", textlm, make_textlm)
            train_conf["init_from"] = str(out / "textlm")

    def train(d: Path) -> dict:
        from speechlm.train import TrainConfig, run_training

        tcfg = TrainConfig(**train_conf, data=str(out / "tokens" / "train"),
                           eval_data=str(out / "tokens" / "valid"), output_dir=str(d))
        return run_training(tcfg)

    stages["model"] = run.stage("model", train_conf, train)

    # 4. Vocoder, stored inside the model directory so `--model RUN/model` is self-contained.
    voc_conf = dict(cfg["vocoder"])

    def vocoder(d: Path) -> dict:
        if voc_conf.get("kind") != "fallback":
            raise ConfigError(f"vocoder.kind '{voc_conf.get('kind')}': `speechlm run` trains only "
                              "the 'fallback' vocoder; train a HiFi-GAN with `speechlm vocoder "
                              "train` and copy it to RUN/model/vocoder")
        from speechlm.vocoders.fallback import fit_fallback_vocoder

        opts = {k: v for k, v in voc_conf.items() if k != "kind"}
        fit_fallback_vocoder(train_m, out / "tokenizer", d, **opts)
        return {}

    stages["vocoder"] = run.stage("vocoder", voc_conf, vocoder)
    # outside the stage: a model retrained after the vocoder was fitted needs its copy too
    target = out / "model" / "vocoder"
    if not target.exists():
        tmp = target.with_name("vocoder.partial")  # a kill mid-copy leaves no half vocoder
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(out / "vocoder", tmp, ignore=shutil.ignore_patterns(".done"))
        tmp.rename(target)

    # 5. Zero-shot evaluation on the benchmark sets (voices unseen in training).
    eval_conf = dict(cfg.get("eval") or {})

    def evaluate(d: Path) -> dict:
        from speechlm.evaluate.suite import evaluate_all

        return evaluate_all(out / "model", out / "benchmark", d, **eval_conf)

    stages["eval"] = run.stage("eval", {"benchmark": cfg["benchmark"], **eval_conf}, evaluate)

    # 6. A continuation of a held-out prompt, made audible.
    gen_conf = dict(cfg["generate"])

    def generate(d: Path) -> dict:
        return continue_heldout_prompt(out / "model", valid_m, d, gen_conf)

    stages["generate"] = run.stage("generate", gen_conf, generate)

    from speechlm.recipes.report import write_report

    return write_report(out, cfg, stages)


def continue_heldout_prompt(model_dir: Path, valid_manifest: Path, out_dir: Path,
                            conf: dict[str, Any]) -> dict:
    """Continue the first ``prompt_seconds`` of the longest held-out utterance."""
    import numpy as np

    from speechlm.audio import load_audio, save_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.generate import continue_speech
    from speechlm.models import load_speech_lm

    conf = dict(conf)
    prompt_s = conf.pop("prompt_seconds")
    utt = max(read_manifest(valid_manifest), key=lambda u: (u.duration, u.id))
    wav = load_audio(utt.audio, 16000, utt.start, utt.end)[: int(prompt_s * 16000)]
    lm = load_speech_lm(model_dir)
    streams, audio = continue_speech(lm, wav, 16000, **conf)
    from speechlm.vocoders import load_vocoder

    sr = load_vocoder(model_dir / "vocoder").sample_rate
    save_audio(out_dir / "prompt.wav", wav, 16000)
    save_audio(out_dir / "continuation.wav", audio, sr)
    units = [] if streams.units is None else np.asarray(streams.units).tolist()
    (out_dir / "continuation.json").write_text(json.dumps(
        {"prompt_id": utt.id, "prompt_text": utt.text, "prompt_seconds": prompt_s,
         "units": units}, indent=1))
    return {"prompt_id": utt.id, "prompt_text": utt.text, "sample_rate": sr,
            "continuation_seconds": len(audio) / sr}
