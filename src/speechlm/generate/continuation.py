"""Continue a spoken prompt: tokenise it, sample a continuation from the speech LM, vocode it.

Sampling is the model architecture's ``generate`` (for a causal LM: HF ``generate`` with a KV
cache, restricted to unit tokens and EOS). A seed makes a call reproducible: the same prompts,
settings and seed give the same units and audio.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.models.sampling import Sampling


@dataclass
class Continuation:
    """One generated continuation: the prompt's streams, the new units and the audio."""

    prompt: Any  # Streams of the prompt
    streams: Any  # Streams of the continuation (durations None when the vocoder predicts them)
    audio: np.ndarray
    sample_rate: int
    stopped_at_eos: bool


def resolve_vocoder(speech_lm: Any, vocoder: Any = None) -> Any:
    """The vocoder object to use: given, a path, ``MODEL/vocoder``, or the codec's own decoder."""
    from speechlm.vocoders import load_vocoder

    if vocoder is not None and not isinstance(vocoder, str | Path):
        return vocoder
    if vocoder is not None:
        return load_vocoder(vocoder)
    model_dir = Path(speech_lm.dir)
    if (model_dir / "vocoder").is_dir():
        return load_vocoder(model_dir / "vocoder")
    tok = speech_lm.speech_tokenizer
    if getattr(tok, "kind", None) in ("encodec", "mimi", "dac"):
        from speechlm.vocoders.codec import CodecVocoder

        return CodecVocoder(tok)
    raise SpeechLMError(
        f"{model_dir}: no vocoder/ in the model directory; fit one with `speechlm vocoder "
        f"fit-fallback --manifest M --tokenizer {model_dir / 'speech_tokenizer'} --out "
        f"{model_dir / 'vocoder'}` or pass --vocoder DIR"
    )


def check_waveform(wav: Any, name: str = "prompt") -> np.ndarray:
    """A usable mono float32 waveform, or a ``SpeechLMError`` naming what is wrong."""
    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise SpeechLMError(f"{name}: expected mono 1-D audio, got shape {wav.shape}")
    if wav.size == 0:
        raise SpeechLMError(f"{name}: empty audio")
    if not np.issubdtype(wav.dtype, np.floating):
        raise SpeechLMError(f"{name}: expected float samples, got {wav.dtype}")
    if not np.isfinite(wav).all():
        raise SpeechLMError(f"{name}: contains NaN or Inf samples")
    return wav.astype(np.float32, copy=False)


def continue_speech(
    speech_lm: Any,
    wav: np.ndarray,
    sample_rate: int,
    max_seconds: float = 10.0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    vocoder: Any = None,
    min_seconds: float = 0.0,
    repetition_penalty: float = 1.0,
) -> tuple[Any, np.ndarray]:
    """Sample a continuation of one spoken prompt; returns (continuation Streams, audio).

    The audio is the continuation only, at the vocoder's ``sample_rate``, at most
    ``max_seconds`` long. An empty continuation (the model ended at once) is an error.
    ``repetition_penalty`` > 1 discourages units already in the prompt or the continuation
    (see ``Sampling``); 1.0 is off.
    """
    out = continue_speech_batch(speech_lm, [wav], sample_rate, Sampling(
        max_seconds, temperature, top_k, top_p, seed, min_seconds, repetition_penalty),
        vocoder=vocoder)[0]
    if len(out.audio) == 0:
        raise SpeechLMError(empty_message(0))
    return out.streams, out.audio


def empty_message(i: int) -> str:
    """What to say when continuation ``i`` came out empty."""
    return (f"prompt {i}: the model ended the continuation at once (end of sequence before any "
            "unit); ask for a minimum length (--min-seconds) or another --seed")


def continue_speech_batch(
    speech_lm: Any,
    wavs: list[np.ndarray],
    sample_rate: int,
    sampling: Sampling | None = None,
    vocoder: Any = None,
    batch_size: int = 8,
    prompt_voice: bool = True,
    prompts: list[Any] | None = None,
) -> list[Continuation]:
    """Continue many prompts, ``batch_size`` at a time (one ``generate`` call per batch).

    ``prompts``: the ``wavs``' streams when the caller has tokenised them already (e.g. to skip
    the ones too short to give a unit); otherwise they are tokenised here and such a prompt is
    an error.

    A voice-conditioned vocoder speaks each continuation in its prompt's voice, or, with
    ``prompt_voice=False``, in the training voices' mean (then nothing of the prompt's sound
    reaches the audio except through the model's tokens).

    A continuation the model ended at once comes back with empty audio (the caller decides
    whether that is an error or a listed skip).
    """
    sampling = sampling or Sampling()
    voc = resolve_vocoder(speech_lm, vocoder)
    wavs = [check_waveform(w, f"prompt {i}") for i, w in enumerate(wavs)]
    tok = speech_lm.speech_tokenizer
    if prompts is None:
        prompts = tok.encode(wavs, sample_rate)
    for i, (p, w) in enumerate(zip(prompts, wavs, strict=True)):
        if not has_units(p):
            raise SpeechLMError(f"prompt {i}: {no_unit_message(len(w) / sample_rate)}")
    from speechlm.progress import progress_bar

    results: list[Continuation] = []
    starts = range(0, len(prompts), batch_size)
    for start in progress_bar(starts, unit="batch", desc="generating", disable=len(starts) < 2):
        chunk = prompts[start : start + batch_size]
        # per-prompt budgets (20% slack: the vocoder trims to max_seconds), so a prompt's output
        # does not depend on which other prompts share its batch
        budgets = [max(1, math.ceil(sampling.max_seconds * units_per_second(p) * 1.2))
                   for p in chunk]
        floors = [math.ceil(sampling.min_seconds * units_per_second(p)) for p in chunk]
        batch_sampling = dataclasses.replace(sampling, seed=sampling.seed + start)
        outs = speech_lm.generate(chunk, batch_sampling, budgets, min_new=floors)
        for p, (streams, stopped) in zip(chunk, outs, strict=True):
            n_new = 0 if streams.units is None else len(streams.units)
            streams = f0_from_pitch(streams, tok, voc) if n_new else streams
            reference = wavs[len(results)] if prompt_voice else None
            audio = speak(voc, streams, reference, sample_rate) if n_new \
                else np.zeros(0, np.float32)
            audio = audio[: int(sampling.max_seconds * voc.sample_rate)]
            results.append(Continuation(p, streams, audio, int(voc.sample_rate), stopped))
    return results


def has_units(prompt: Any) -> bool:
    """Whether a tokenised prompt holds at least one unit to continue from."""
    return prompt.units is not None and len(prompt.units) > 0


def no_unit_message(seconds: float) -> str:
    """Why a prompt of ``seconds`` cannot be continued."""
    return (f"{seconds:.3f} s of audio gave no unit: too short to tokenise (a unit needs at "
            "least one analysis window, about 25 ms)")


def units_per_second(prompt: Any) -> float:
    """Token rate of a prompt: units over its duration (de-duplication makes it < frame rate)."""
    seconds = prompt.seconds() if hasattr(prompt, "seconds") else 0.0
    if seconds <= 0 or prompt.units is None or len(prompt.units) == 0:
        return float(prompt.frame_rate)
    return len(prompt.units) / seconds


def f0_from_pitch(streams: Any, tokenizer: Any, vocoder: Any) -> Any:
    """Generated pitch tokens (an expressive LM's) as per-unit F0 bins, so an F0-conditioned
    vocoder speaks the pitch the LM chose; durations come from the vocoder's tables.

    ``streams`` comes back unchanged unless it has pitch tokens and no F0, the tokenizer has
    the pitch codebook (``prosody``) and the vocoder predicts durations.
    """
    prosody = getattr(tokenizer, "prosody", None)
    tables = getattr(vocoder, "durations", None)
    if (streams.pitch is None or streams.f0 is not None or prosody is None
            or not hasattr(tables, "predict_durations")):
        return streams
    durations = (tables.predict_durations(streams.units) if streams.durations is None
                 else streams.durations)
    f0 = prosody.unit_bins_from_pitch(streams.pitch, streams.pitch_rate, durations,
                                      streams.frame_rate)
    return dataclasses.replace(streams, durations=durations, f0=f0)


def speak(vocoder: Any, streams: Any, reference: np.ndarray | None,
          sample_rate: int) -> np.ndarray:
    """``vocoder.synthesize(streams)``, in the voice of ``reference`` (audio at
    ``sample_rate``) when the vocoder is conditioned on voices (it has ``voice_of``); with no
    reference, in the vocoder's default voice."""
    if hasattr(vocoder, "voice_of") and reference is not None:
        return vocoder.synthesize(streams, voice=vocoder.voice_of(reference, sample_rate))
    return vocoder.synthesize(streams)


def resynthesize(tokenizer: Any, vocoder: Any, wav: np.ndarray, sample_rate: int,
                 own_voice: bool = True) -> tuple[Any, np.ndarray]:
    """Tokeniser + vocoder only (no language model), in the input's voice when the vocoder
    takes one (``own_voice=False``: its default voice): (Streams, audio at the vocoder's
    rate)."""
    wav = check_waveform(wav, "input")
    streams = tokenizer.encode([wav], sample_rate)[0]
    return streams, speak(vocoder, streams, wav if own_voice else None, sample_rate)
