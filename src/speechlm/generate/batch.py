"""File-level generation: prompts on disk -> continuation audio + units JSON (+ errors.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError


def generate_files(
    model_dir: str | Path,
    prompts: list[Path],
    out: str | Path,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    max_seconds: float = 10.0,
    seed: int = 0,
    min_seconds: float = 0.0,
    vocoder: str | Path | None = None,
    batch_size: int = 8,
    with_prompt: bool = False,
    device: str = "cpu",
    repetition_penalty: float = 1.0,
    fixed_channel: int | None = None,
) -> dict:
    """Continue every prompt file and write ``<out>.wav`` + ``<out>.json`` per prompt.

    One prompt: ``out`` is the wav path (its JSON beside it, e.g. out.json). Several: ``out`` is
    a folder receiving ``<prompt stem>.wav/.json``; unreadable prompts and empty continuations
    are skipped and listed in ``out/errors.jsonl`` (with a single prompt they raise instead).
    Prompts are read like every input: down-mixed to mono and resampled to the tokenizer's rate.
    The sampling settings (``repetition_penalty`` included) are recorded in each JSON.

    A two-channel model (``dgslm``) continues a stereo prompt on both channels, or on one given
    the other (``fixed_channel``: :func:`speechlm.generate.dialogue.continue_stereo`), into a
    stereo file; a mono prompt goes the single-channel way.
    """
    from speechlm.audio import audio_info, load_audio, save_audio
    from speechlm.generate.continuation import (
        continue_speech_batch,
        empty_message,
        has_units,
        no_unit_message,
        resolve_vocoder,
    )
    from speechlm.generate.dialogue import continue_stereo
    from speechlm.models import load_speech_lm
    from speechlm.models.sampling import Sampling

    if not prompts:
        raise SpeechLMError("generate: no prompt given (use --prompt FILE or --prompt-list FILE)")
    sampling = Sampling(max_seconds, temperature, top_k, top_p, seed, min_seconds,
                        repetition_penalty)
    lm = load_speech_lm(model_dir, device=device)
    dialogue = lm.architecture.name == "dgslm"
    if fixed_channel is not None and not dialogue:
        raise SpeechLMError(f"--fixed-channel: only a two-channel model (dgslm) continues one "
                            f"channel given the other; {model_dir} is {lm.architecture.name}")
    voc = resolve_vocoder(lm, vocoder)
    settings = {"temperature": temperature, "top_k": top_k, "top_p": top_p,
                "max_seconds": max_seconds, "min_seconds": min_seconds, "seed": seed,
                "repetition_penalty": sampling.repetition_penalty}
    sr = int(lm.speech_tokenizer.sample_rate)
    single = len(prompts) == 1
    out = Path(out)
    targets = [out] if single else [out / f"{p.stem}.wav" for p in prompts]
    if not single and len({t.name for t in targets}) < len(targets):
        targets = [out / f"{i:05d}_{p.stem}.wav" for i, p in enumerate(prompts)]
    wavs, keep, errors, written = [], [], [], 0
    for p, t in zip(prompts, targets, strict=True):
        try:
            if dialogue and (fixed_channel is not None or audio_info(p).channels == 2):
                audio, rate, record = continue_stereo(lm, voc, p, sampling, fixed_channel)
                save_audio(t, audio, rate)
                t.with_suffix(".json").write_text(json.dumps(
                    {"prompt": str(p), "audio": str(t), "sample_rate": rate,
                     "seconds": round(len(audio) / rate, 3), **record,
                     "sampling": settings}) + "\n")
                written += 1
                continue
            wavs.append(load_audio(p, sr))
            keep.append((p, t))
        except SpeechLMError as e:  # AudioError included
            if single:
                raise
            errors.append({"prompt": str(p), "error": str(e)})
    # tokenised here so that a prompt too short for one unit is skipped, not the whole batch
    streams = lm.speech_tokenizer.encode(wavs, sr) if wavs else []
    usable = [i for i, s in enumerate(streams) if has_units(s)]
    for i in sorted(set(range(len(wavs))) - set(usable)):
        if single:
            raise SpeechLMError(f"{keep[i][0]}: {no_unit_message(len(wavs[i]) / sr)}")
        errors.append({"prompt": str(keep[i][0]), "error": no_unit_message(len(wavs[i]) / sr)})
    keep, wavs = [keep[i] for i in usable], [wavs[i] for i in usable]
    results = continue_speech_batch(lm, wavs, sr, sampling, vocoder=voc, batch_size=batch_size,
                                    prompts=[streams[i] for i in usable]) if wavs else []
    for i, ((p, t), wav, r) in enumerate(zip(keep, wavs, results, strict=True)):
        if len(r.audio) == 0:
            if single:
                raise SpeechLMError(f"{p}: {empty_message(i).split(': ', 1)[1]}")
            errors.append({"prompt": str(p), "error": empty_message(i)})
            continue
        written += 1
        audio = r.audio
        if with_prompt:
            import soxr

            lead = wav if sr == r.sample_rate else soxr.resample(wav, sr, r.sample_rate)
            audio = np.concatenate([lead.astype(np.float32), audio])
        save_audio(t, audio, r.sample_rate)
        record = {
            "prompt": str(p), "audio": str(t), "sample_rate": r.sample_rate,
            "seconds": round(len(audio) / r.sample_rate, 3), "with_prompt": with_prompt,
            "frame_rate": r.streams.frame_rate, "stopped_at_eos": r.stopped_at_eos,
            "prompt_units": r.prompt.units.tolist(),
            "prompt_durations": None if r.prompt.durations is None
            else r.prompt.durations.tolist(),
            "units": r.streams.units.tolist(),
            "sampling": settings,
        }
        t.with_suffix(".json").write_text(json.dumps(record) + "\n")
    if not single:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "errors.jsonl", "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in errors)
    return {"written": written, "skipped": len(errors), "out": str(out)}
