"""Codec benchmarks on CPU: real-time factor of encode and decode, against the fallback
vocoder's synthesis as the baseline, and training throughput (audio seconds per second).

RTF = seconds of compute per second of audio (2 threads by default). The codec is --codec (a
trained ``speechlm codec train`` folder) or, without it, an untrained codec of the tiny preset
(compute does not depend on the weights). The fallback vocoder is fitted in the same run on a
few utterances (an MFCC K=50 tokenizer, then ``fit_fallback_vocoder``) and times the synthesis
of the same audio's units. Training throughput: steps of the tiny preset on that audio.

    .venv/bin/python bench/bench_codec.py [--codec /tmp/codec/run] [--manifest M]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _best(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _corpus(manifest: str | None, work: Path) -> str:
    if manifest is not None:
        return manifest
    from speechlm.corpus.synth import synthesize_corpus

    synthesize_corpus(work / "corpus", hours=0.02, seed=0, workers=2)
    return str(work / "corpus" / "manifest.jsonl")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--codec", help="trained codec folder (default: untrained tiny preset)")
    p.add_argument("--manifest", help="audio to time on (default: a small synthetic corpus)")
    p.add_argument("--utterances", type=int, default=8, help="utterances to fit and time on")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-steps", type=int, default=10)
    a = p.parse_args()

    import torch

    from speechlm.audio import load_audio
    from speechlm.codec import CodecTrainConfig, preset
    from speechlm.codec.train import CodecTrainer
    from speechlm.corpus.manifest import read_manifest
    from speechlm.tokenizers import fit_tokenizer, load_tokenizer
    from speechlm.tokenizers.codecs import CodecTokenizer
    from speechlm.vocoders import load_vocoder
    from speechlm.vocoders.fallback import fit_fallback_vocoder

    torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_codec_"))
    manifest = _corpus(a.manifest, work)
    utts = read_manifest(manifest)[: a.utterances]
    small = work / "few.jsonl"
    small.write_text("".join(json.dumps({"id": u.id, "audio": u.audio, "duration": u.duration,
                                         "sample_rate": u.sample_rate}) + "\n" for u in utts))
    wav = np.concatenate([load_audio(u.audio, 16000) for u in utts])
    seconds = len(wav) / 16000

    codec_dir = a.codec
    cfg = CodecTrainConfig.from_dict({**preset("tiny"), "manifest": str(small),
                                      "output_dir": str(work / "train"), "progress": False})
    if codec_dir is None:
        codec_dir = str(work / "untrained")
        CodecTrainer(cfg).plain_model().save_pretrained(codec_dir)
    codec = CodecTokenizer("dac", codec_dir, device="cpu")
    streams = codec.encode([wav], 16000)
    encode_rtf = _best(lambda: codec.encode([wav], 16000)) / seconds
    decode_rtf = _best(lambda: codec.decode(streams)) / seconds

    fit_tokenizer(small, "mfcc", 50, work / "mfcc")
    fit_fallback_vocoder(small, work / "mfcc", work / "fallback")
    units = load_tokenizer(work / "mfcc").encode([wav], 16000)[0]
    fallback = load_vocoder(work / "fallback")
    fallback_rtf = _best(lambda: fallback.synthesize(units)) / seconds

    trainer = CodecTrainer(cfg)
    batch = np.zeros((cfg.batch_size, 1, cfg.crop_samples), np.float32)
    for row in range(cfg.batch_size):  # crops of the same audio
        start = (row * cfg.crop_samples) % max(1, len(wav) - cfg.crop_samples)
        batch[row, 0] = wav[start:start + cfg.crop_samples]
    trainer.train_step(batch)  # warm-up
    t = time.perf_counter()
    for _ in range(a.train_steps):
        trainer.train_step(batch)
    took = time.perf_counter() - t
    print(json.dumps({
        "threads": a.threads, "audio_seconds": round(seconds, 2), "codec": codec_dir,
        "codebooks": codec.n_codebooks, "codec_encode_rtf": round(encode_rtf, 4),
        "codec_decode_rtf": round(decode_rtf, 4), "fallback_synth_rtf": round(fallback_rtf, 4),
        "decode_vs_fallback": round(decode_rtf / fallback_rtf, 2),
        "encode_plus_decode_vs_fallback": round((encode_rtf + decode_rtf) / fallback_rtf, 2),
        "train_audio_s_per_s": round(a.train_steps * cfg.batch_size * cfg.crop_samples
                                     / 16000 / took, 2),
        "train_step_s": round(took / a.train_steps, 3)}, indent=2))


if __name__ == "__main__":
    main()
