"""Pre-training step time of the three SSL objectives, and our wav2vec 2.0 loss against the stock
``Wav2Vec2ForPreTraining`` loss on the same model, batch, mask and distractors.

One optimizer step (forward + backward + AdamW) on ``--batch`` random windows of ``--seconds``,
for a 4 x 256 encoder over a 256-channel conv stack (the size of docs/tokenizers.md's table),
in fp32 and under bf16 autocast. Printed: seconds per step and audio seconds per wall second for
HuBERT, wav2vec 2.0 (ours and stock) and CPC, and the stock / ours ratio.

    .venv/bin/python bench/bench_ssl.py [--batch 16] [--seconds 2] [--steps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

SMALL = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
         "intermediate_size": 1024, "conv_dim": [256] * 7, "num_conv_pos_embeddings": 64,
         "num_conv_pos_embedding_groups": 16}


def step_time(model, inputs: dict, steps: int, bf16: bool) -> float:
    """Median seconds of one forward + backward + AdamW step (after one warm-up step)."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    from transformers import Wav2Vec2ForPreTraining

    from speechlm.ssl.config import encoder_config
    from speechlm.ssl.cpc import CPCConfig, CPCForPreTraining
    from speechlm.ssl.hubert import HubertForPreTraining
    from speechlm.ssl.masking import negative_indices, span_mask
    from speechlm.ssl.wav2vec2 import Wav2Vec2Objective

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = int(args.seconds * 16000)
    wav = torch.randn(args.batch, n)
    hubert_cfg, w2v_cfg = encoder_config("hubert", SMALL), encoder_config("wav2vec2", SMALL)
    hubert = HubertForPreTraining(hubert_cfg, 100)
    t = int(hubert.hubert._get_feat_extract_output_lengths(n))
    mask = span_mask((args.batch, t), 0.65, 10, seed=0)
    cases = {
        "hubert": (hubert, {"input_values": wav, "mask_time_indices": span_mask(
            (args.batch, t), 0.8, 10, seed=0), "labels": torch.randint(0, 100, (args.batch, t))}),
        "wav2vec2 (ours)": (Wav2Vec2Objective(w2v_cfg), {
            "input_values": wav, "mask_time_indices": mask,
            "sampled_negative_indices": negative_indices(mask, w2v_cfg.num_negatives, 1)}),
        "wav2vec2 (stock HF)": (Wav2Vec2ForPreTraining(w2v_cfg), {
            "input_values": wav, "mask_time_indices": mask,
            "sampled_negative_indices": negative_indices(mask, w2v_cfg.num_negatives, 1)}),
        "cpc": (CPCForPreTraining(CPCConfig()), {"input_values": wav,
                                                 "negative_seed": torch.tensor(1)}),
    }
    audio = args.batch * args.seconds
    results = {}
    for precision in ("fp32", "bf16"):
        for name, (model, inputs) in cases.items():
            s = step_time(model.train(), inputs, args.steps, precision == "bf16")
            results[f"{name}, {precision}"] = {"s_per_step": round(s, 3),
                                               "audio_s_per_s": round(audio / s, 1)}
            print(f"{name:20s} {precision}: {s:.3f} s/step, {audio / s:.1f} audio s/s", flush=True)
        ratio = (results[f"wav2vec2 (stock HF), {precision}"]["s_per_step"]
                 / results[f"wav2vec2 (ours), {precision}"]["s_per_step"])
        results[f"wav2vec2 stock / ours, {precision}"] = round(ratio, 2)
        print(f"wav2vec2 stock / ours ({precision}): {ratio:.2f}x", flush=True)
    print(json.dumps({"batch": args.batch, "seconds": args.seconds, "threads": args.threads,
                      **results}, indent=1))


if __name__ == "__main__":
    main()
