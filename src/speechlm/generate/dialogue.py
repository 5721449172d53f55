"""Held-out dialogue prompts continued by dGSLM and by the cascaded baseline, made audible.

For each held-out dialogue (a row of the ``dialogue_tokens`` stage's valid set: both channels'
frame units) the first ``prompt_seconds`` are the prompt and the next ``seconds`` are what is
compared. Four stereo files per prompt, each ``seconds`` long, one folder per source:

- ``data``: the dialogue's own audio over that stretch (what people, here espeak voices, did);
- ``resynth``: the dialogue's own units over that stretch through the vocoder (what the
  vocoder and the units keep of the data's turn-taking: the control for the two below);
- ``model``: dGSLM's continuation of both channels (:func:`continue_dialogue`);
- ``baseline``: the cascaded baseline, one channel at a time (:func:`continue_turn_based`).

Each channel is spoken on its own by the model's vocoder from its de-duplicated units and
durations, in the voice of that channel's speaker in the prompt (a voice-conditioned vocoder;
the vocoder's default voice when the channel is silent in the prompt). ``full/`` holds, for the
first prompts, the prompt (resynthesised) followed by each continuation, for listening.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SOURCES = ("data", "resynth", "model", "baseline")


@dataclass
class DialogueSampling:
    """Settings of the continuations (``seed`` + prompt index seeds each prompt)."""

    prompt_seconds: float = 10.0
    seconds: float = 20.0
    temperature: float = 1.0
    top_k: int = 0
    seed: int = 0
    switch_seconds: float = 0.5  # baseline: the floor passes after this much silence
    chunk_frames: int = 5  # baseline: how often (frames) the rule is checked


def speak_channels(vocoder: Any, frames: np.ndarray, frame_rate: float,
                   voices: list[Any]) -> np.ndarray:
    """(2, T) frame units -> (samples, 2) float32 audio, each channel spoken on its own by
    ``vocoder`` (``voices[c]``: a d-vector for a voice-conditioned vocoder, or None)."""
    from speechlm.models.dialogue import run_lengths
    from speechlm.tokenizers.streams import Streams

    n = int(round(frames.shape[1] * vocoder.sample_rate / frame_rate))
    out = np.zeros((n, 2), dtype=np.float32)
    for c, row in enumerate(frames):
        units, durations = run_lengths(row)
        streams = Streams(frame_rate, units=units, durations=durations)
        kwargs = {"voice": voices[c]} if voices[c] is not None else {}
        wav = np.asarray(vocoder.synthesize(streams, **kwargs), dtype=np.float32)[:n]
        out[: len(wav), c] = wav
    return out


def _voices(vocoder: Any, wav: np.ndarray, sample_rate: int) -> list[Any]:
    """Each channel's voice in ``wav`` (2, samples) for a voice-conditioned vocoder."""
    if not hasattr(vocoder, "voice_of"):
        return [None, None]
    return [vocoder.voice_of(ch, sample_rate) for ch in wav]


def continue_dialogues(lm: Any, vocoder: Any, rows: list[dict], records: dict[str, dict],
                       out_dir: Path, settings: DialogueSampling, max_prompts: int,
                       full: int = 2, progress: bool = False) -> dict:
    """Write the four sources for up to ``max_prompts`` rows (see the module docstring).

    A row whose dialogue is shorter than ``prompt_seconds + seconds``, or whose audio cannot be
    read as two channels, is skipped and listed. Returns the figures: prompts used, skipped
    (with reasons), and each source's share of frames that are not the silence unit.
    """
    from speechlm.audio import load_audio, save_audio
    from speechlm.errors import SpeechLMError
    from speechlm.models.dialogue import continue_dialogue, continue_turn_based, silence_unit
    from speechlm.models.sampling import Sampling
    from speechlm.progress import progress_bar

    fr = float(lm.meta.get("frame_rate") or lm.speech_tokenizer.frame_rate)
    rate = int(lm.speech_tokenizer.sample_rate)
    p, n = round(settings.prompt_seconds * fr), round(settings.seconds * fr)
    switch = max(1, round(settings.switch_seconds * fr))
    silence = silence_unit(lm)
    for s in (*SOURCES, "full"):
        (out_dir / s).mkdir(parents=True, exist_ok=True)
    used, skipped, units = [], [], {}
    speaking = {s: [] for s in SOURCES[1:]}
    for row in progress_bar(rows, unit="dialogue", desc="dialogue continuations",
                            disable=not progress):
        if len(used) >= max_prompts:
            break
        rid = row["id"]
        frames = np.stack([np.asarray(row["units_a"]), np.asarray(row["units_b"])])  # (2, T)
        if frames.shape[1] < p + n:
            skipped.append({"id": rid, "reason": f"shorter than prompt + continuation "
                            f"({frames.shape[1] / fr:.1f} s < {(p + n) / fr:.1f} s)"})
            continue
        try:
            wav = load_audio(records[rid]["audio"], rate, mono=False)
            if wav.shape[0] != 2:
                raise SpeechLMError(f"{wav.shape[0]} channel(s), not 2")
        except (SpeechLMError, KeyError) as e:
            skipped.append({"id": rid, "reason": f"audio: {e}"})
            continue
        i = len(used)
        sampling = Sampling(max_seconds=settings.seconds, temperature=settings.temperature,
                            top_k=settings.top_k, seed=settings.seed + 1000 * i)
        prompt = frames[:, :p]
        made = {"resynth": frames[:, p:p + n],
                "model": continue_dialogue(lm, prompt, n, sampling),
                "baseline": continue_turn_based(lm, prompt, n, sampling, switch,
                                                settings.chunk_frames)}
        hop = rate / fr
        voices = _voices(vocoder, wav[:, : int(p * hop)], rate)
        save_audio(out_dir / "data" / f"{rid}.wav",
                   wav[:, int(round(p * hop)): int(round((p + n) * hop))].T, rate)
        prompt_audio = speak_channels(vocoder, prompt, fr, voices) if i < full else None
        for name, new in made.items():
            audio = speak_channels(vocoder, new, fr, voices)
            save_audio(out_dir / name / f"{rid}.wav", audio, vocoder.sample_rate)
            if prompt_audio is not None:
                save_audio(out_dir / "full" / f"{rid}_{name}.wav",
                           np.concatenate([prompt_audio, audio]), vocoder.sample_rate)
            speaking[name].append(float(np.mean(new != silence)))
        units[rid] = {name: new.tolist() for name, new in made.items() if name != "resynth"}
        used.append(rid)
    (out_dir / "units.json").write_text(json.dumps({"silence_unit": silence, "prompt_frames": p,
                                                    "units": units}))
    if not used:
        raise SpeechLMError(f"dialogue continuations: no held-out dialogue could be used "
                            f"({len(skipped)} skipped; the first: "
                            f"{skipped[0]['reason'] if skipped else 'none given'})")
    return {"prompts": len(used), "prompt_ids": used, "skipped": len(skipped),
            "skipped_dialogues": skipped, "prompt_seconds": p / fr, "seconds": n / fr,
            "switch_frames": switch, "silence_unit": silence,
            # share of the continuations' frames (both channels) that are not silence
            "speech_frames": {k: round(float(np.mean(v)), 4) for k, v in speaking.items()}}


def continue_stereo(lm: Any, vocoder: Any, path: str | Path, sampling: Any,
                    fixed_channel: int | None = None) -> tuple[np.ndarray, int, dict]:
    """A stereo prompt file continued by a dgslm model: ``((samples, 2) audio, rate, record)``.

    Each channel is tokenised as the model's training data was (``config.channel_tokens``).
    Without ``fixed_channel`` the whole file is the prompt and both channels continue for
    ``sampling.max_seconds``. With ``fixed_channel`` (0 or 1) that channel is given, as a user
    who is not live (moshi #174): its last ``max_seconds`` in the file are kept as recorded, the
    file before them is the prompt, and only the other channel is generated.
    """
    import soxr

    from speechlm.audio import load_audio
    from speechlm.errors import AudioError, SpeechLMError
    from speechlm.models.dialogue import continue_dialogue, silence_unit
    from speechlm.tokenizers.dialogue import UNFILLED, channel_frames

    tok = lm.speech_tokenizer
    rate, fr = int(tok.sample_rate), float(tok.frame_rate)
    wav = load_audio(path, rate, mono=False)  # (C, samples)
    if wav.shape[0] != 2:
        raise AudioError(f"{path}: {wav.shape[0]} channel(s); a dialogue prompt needs 2, one "
                         "speaker per channel")
    how = lm.model.config.channel_tokens or {}
    silence = silence_unit(lm)
    frames = [channel_frames(tok, ch, how.get("segments", "whole"), how.get("region_gap", 1.0),
                             how.get("pad", 0.2))[0] for ch in wav]
    total = min(len(f) for f in frames)
    units = np.stack([np.where(f[:total] == UNFILLED, silence, f[:total]) for f in frames])
    n = max(1, round(sampling.max_seconds * fr))
    if fixed_channel is None:
        prompt, given = units, None
    elif fixed_channel not in (0, 1):
        raise SpeechLMError(f"fixed channel: 0 (a) or 1 (b), got {fixed_channel!r}")
    elif total - n < 1:
        raise SpeechLMError(f"{path}: {total / fr:.2f} s leaves no prompt before the "
                            f"{n / fr:g} s of channel {'ab'[fixed_channel]} it gives; use a "
                            "longer file or a smaller --max-seconds")
    else:
        prompt, given = units[:, : total - n], units[fixed_channel, total - n:]
    new = continue_dialogue(lm, prompt, n, sampling, fixed_channel, given)  # (2, n)
    hop = rate / fr
    voices = _voices(vocoder, wav[:, : int(prompt.shape[1] * hop)], rate)
    audio = speak_channels(vocoder, new, fr, voices)
    if fixed_channel is not None:  # the given side as recorded, not its resynthesis
        own = wav[fixed_channel, int(round(prompt.shape[1] * hop)):]
        own = soxr.resample(own, rate, vocoder.sample_rate) if rate != vocoder.sample_rate \
            else own
        audio[:, fixed_channel] = 0.0
        audio[: min(len(own), len(audio)), fixed_channel] = own[: len(audio)]
    record = {"prompt_seconds": round(prompt.shape[1] / fr, 3), "frame_rate": fr,
              "fixed_channel": fixed_channel, "silence_unit": silence,
              "prompt_units": prompt.tolist(), "units": new.tolist()}
    return audio, int(vocoder.sample_rate), record
