"""Vocoder benchmarks: real-time factor on 2 CPU threads, and intelligibility (pocketsphinx WER).

RTF (default): seconds of compute per second of audio for the fallback vocoder (the baseline of
this run), the envelope vocoder and the unit HiFi-GAN, each at its tiny and paper sizes; compute
does not depend on the weights, so untrained networks of the right size are timed.

--wer: fits the fallback on a synthetic corpus (or --manifest), resynthesises held-out sentences
(a corpus made with another seed: sentences never seen while fitting) and reports the WER of the
resynthesised audio next to the WER of the original audio, with the same ASR.

--train-step: the envelope vocoder's training step (forward, loss, backward, AdamW) in fp32
(the baseline of this run) and under bf16 autocast (``precision: bf16``), at the tiny and paper
sizes, alternating the two precisions; ms per step and the ratio.

    .venv/bin/python bench/bench_vocoder.py                 # RTF
    .venv/bin/python bench/bench_vocoder.py --wer --n 12    # intelligibility
    .venv/bin/python bench/bench_vocoder.py --train-step    # envelope training step, fp32 vs bf16
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _units(seconds: float, n_units: int, rng: np.random.Generator):
    from speechlm.tokenizers.streams import Streams

    n = int(seconds * 40)  # ~40 de-duplicated units/s, as MFCC K=100 at 50 Hz gives
    durs = rng.integers(1, 3, n)
    return Streams(50.0, units=rng.integers(0, n_units, n), durations=durs)


def _rtf(vocoder, streams, repeats: int = 3) -> float:
    vocoder.synthesize(streams)  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        wav = vocoder.synthesize(streams)
    return (time.perf_counter() - t) / repeats / (len(wav) / vocoder.sample_rate)


def bench_rtf(seconds: float) -> dict:
    import torch

    from speechlm.vocoders.envelope.model import EnvelopeNet
    from speechlm.vocoders.envelope.model import preset as envelope_preset
    from speechlm.vocoders.envelope.vocoder import EnvelopeVocoder
    from speechlm.vocoders.fallback import FallbackVocoder
    from speechlm.vocoders.hifigan.config import preset
    from speechlm.vocoders.hifigan.generator import UnitGenerator
    from speechlm.vocoders.hifigan.vocoder import HifiganVocoder

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    k = 100
    fallback = FallbackVocoder(16000, 50.0, rng.normal(-3, 1, (k, 257)).astype(np.float32),
                               rng.uniform(0, 1, k).astype(np.float32),
                               np.full(k, np.log(120), np.float32),
                               np.full(k, 1.3, np.float32), np.ones(k, np.float32))
    streams = _units(seconds, k, rng)
    out = {"audio_seconds": seconds, "threads": 2, "fallback_rtf": _rtf(fallback, streams)}
    for name in ("tiny", "paper"):
        torch.manual_seed(0)
        voc = HifiganVocoder(UnitGenerator(preset(name, n_units=k)))
        out[f"hifigan_{name}_rtf"] = _rtf(voc, streams, repeats=1 if name == "paper" else 3)
        out[f"hifigan_{name}_vs_fallback"] = out[f"hifigan_{name}_rtf"] / out["fallback_rtf"]
        voc = EnvelopeVocoder(EnvelopeNet(envelope_preset(name, n_units=k)), fallback)
        out[f"envelope_{name}_rtf"] = _rtf(voc, streams)
        out[f"envelope_{name}_vs_fallback"] = out[f"envelope_{name}_rtf"] / out["fallback_rtf"]
    return out


def bench_wer(n: int, manifest: str | None, tokenizer: str | None, hours: float) -> dict:
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.corpus.synth import synthesize_corpus
    from speechlm.evaluate.asr import default_transcriber, wer_details
    from speechlm.tokenizers import fit_tokenizer, load_tokenizer
    from speechlm.vocoders import load_vocoder
    from speechlm.vocoders.fallback import fit_fallback_vocoder

    work = Path(tempfile.mkdtemp(prefix="bench_vocoder_"))
    if manifest is None:
        synthesize_corpus(work / "train", hours=hours, seed=0, workers=2)
        manifest = str(work / "train" / "manifest.jsonl")
    if tokenizer is None:
        fit_tokenizer(manifest, "mfcc", 100, work / "tok")
        tokenizer = str(work / "tok")
    t = time.perf_counter()
    fit_fallback_vocoder(manifest, tokenizer, work / "voc")
    fit_seconds = time.perf_counter() - t
    synthesize_corpus(work / "held", hours=n * 4 / 3600, seed=12345, workers=2)
    held = read_manifest(work / "held" / "manifest.jsonl")[:n]
    tok, voc, asr = load_tokenizer(tokenizer), load_vocoder(work / "voc"), default_transcriber()
    refs, orig, resyn, resyn_pred = [], [], [], []
    for u in held:
        wav = load_audio(u.audio)
        s = tok.encode([wav], 16000)[0]
        from speechlm.tokenizers.streams import Streams

        refs.append(u.text)
        orig.append(asr.transcribe(wav))
        resyn.append(asr.transcribe(voc.synthesize(s)))
        resyn_pred.append(asr.transcribe(voc.synthesize(Streams(s.frame_rate, units=s.units))))
    return {"utterances": len(refs), "fit_seconds": round(fit_seconds, 1),
            "wer_original": wer_details(refs, orig),
            "wer_fallback_resynth": wer_details(refs, resyn),
            "wer_fallback_resynth_predicted_durations": wer_details(refs, resyn_pred),
            "examples": [{"ref": r, "orig": o, "resynth": s}
                         for r, o, s in list(zip(refs, orig, resyn, strict=True))[:5]]}


def bench_train_step(steps: int = 20, rounds: int = 2) -> dict:
    """ms per envelope training step in fp32 and bf16 autocast (best of ``rounds``), per size."""
    import torch

    from speechlm.vocoders.envelope.model import N_CEP, EnvelopeNet, preset
    from speechlm.vocoders.envelope.train import losses

    out = {}
    for size in ("tiny", "paper"):
        cfg = preset(size)
        torch.manual_seed(0)
        net = EnvelopeNet(cfg)
        opt = torch.optim.AdamW(net.parameters(), 1e-4)
        b, t = cfg.batch_size, cfg.segment_frames
        batch = (torch.randint(0, cfg.n_units, (b, t)), torch.rand(b, t, 2),
                 torch.zeros(b, t, dtype=torch.long), torch.randn(b, 256),
                 torch.randn(b, t, N_CEP), torch.randn(b, t), (torch.rand(b, t) > 0.5).float(),
                 torch.ones(b, t))

        def step(bf16: bool, net=net, opt=opt, batch=batch) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = losses(net, *batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()

        best = {"fp32": float("inf"), "bf16": float("inf")}
        for _ in range(rounds):
            for name in best:
                for _ in range(3):  # warm-up
                    step(name == "bf16")
                t0 = time.perf_counter()
                for _ in range(steps):
                    step(name == "bf16")
                best[name] = min(best[name], (time.perf_counter() - t0) / steps * 1000)
        audio_s = b * t / cfg.frame_rate
        out[size] = {"batch_audio_s": audio_s, "ms_per_step": best,
                     "audio_s_per_s": {k: audio_s / v * 1000 for k, v in best.items()},
                     "bf16_speedup": best["fp32"] / best["bf16"]}
    return {"threads": torch.get_num_threads(), **out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="audio per RTF measurement")
    p.add_argument("--wer", action="store_true", help="measure intelligibility instead of RTF")
    p.add_argument("--n", type=int, default=12, help="held-out sentences for --wer")
    p.add_argument("--hours", type=float, default=0.25, help="synthetic fitting corpus size")
    p.add_argument("--manifest", help="fit on this manifest instead of a synthetic corpus")
    p.add_argument("--tokenizer", help="use this tokenizer instead of fitting MFCC K=100")
    p.add_argument("--train-step", action="store_true",
                   help="time the envelope training step in fp32 and bf16 instead")
    a = p.parse_args()
    if a.train_step:
        result = bench_train_step()
    else:
        result = (bench_wer(a.n, a.manifest, a.tokenizer, a.hours) if a.wer
                  else bench_rtf(a.seconds))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
