"""Continue a spoken prompt: tokenise it, sample units from the speech LM, vocode them.

Sampling is HF ``generate`` (KV cache on, left padding for batches) restricted to unit tokens and
EOS, so a model with a text vocabulary (TWIST-style extension) cannot wander into text. A seed
makes a call reproducible: the same prompts, settings and seed give the same units and audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError


@dataclass
class Sampling:
    """Sampling settings of one generation call (validated on construction)."""

    max_seconds: float = 10.0
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filtering
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.max_seconds > 0:
            raise SpeechLMError(f"max_seconds must be > 0, got {self.max_seconds}")
        if not self.temperature > 0:
            raise SpeechLMError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise SpeechLMError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise SpeechLMError(f"top_p must be in (0, 1], got {self.top_p}")


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
) -> tuple[Any, np.ndarray]:
    """Sample a continuation of one spoken prompt; returns (continuation Streams, audio).

    The audio is the continuation only, at the vocoder's ``sample_rate``, at most
    ``max_seconds`` long.
    """
    out = continue_speech_batch(speech_lm, [wav], sample_rate, Sampling(
        max_seconds, temperature, top_k, top_p, seed), vocoder=vocoder)[0]
    return out.streams, out.audio


def continue_speech_batch(
    speech_lm: Any,
    wavs: list[np.ndarray],
    sample_rate: int,
    sampling: Sampling | None = None,
    vocoder: Any = None,
    batch_size: int = 8,
) -> list[Continuation]:
    """Continue many prompts, ``batch_size`` at a time (one ``generate`` call per batch)."""
    sampling = sampling or Sampling()
    voc = resolve_vocoder(speech_lm, vocoder)
    wavs = [check_waveform(w, f"prompt {i}") for i, w in enumerate(wavs)]
    tok = speech_lm.speech_tokenizer
    prompts = tok.encode(wavs, sample_rate)
    for i, p in enumerate(prompts):
        if p.units is None or len(p.units) == 0:
            raise SpeechLMError(f"prompt {i}: the tokenizer produced no units (too short?)")
    from tqdm import tqdm

    results: list[Continuation] = []
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc="generating", unit="batch", disable=len(starts) < 2):
        chunk = prompts[start : start + batch_size]
        units, eos = _sample(speech_lm, chunk, sampling, seed=sampling.seed + start)
        for p, u, stopped in zip(chunk, units, eos, strict=True):
            streams = _continuation_streams(tok, p, u)
            audio = voc.synthesize(streams) if len(u) else np.zeros(0, np.float32)
            audio = audio[: int(sampling.max_seconds * voc.sample_rate)]
            results.append(Continuation(p, streams, audio, int(voc.sample_rate), stopped))
    return results


def units_per_second(prompt: Any) -> float:
    """Token rate of a prompt: units over its duration (de-duplication makes it < frame rate)."""
    seconds = prompt.seconds() if hasattr(prompt, "seconds") else 0.0
    if seconds <= 0 or prompt.units is None or len(prompt.units) == 0:
        return float(prompt.frame_rate)
    return len(prompt.units) / seconds


def _sample(speech_lm: Any, prompts: list[Any], s: Sampling,
            seed: int) -> tuple[list[np.ndarray], list[bool]]:
    """Left-padded batched sampling; returns new unit ids per prompt and whether EOS ended it."""
    import torch
    from transformers import LogitsProcessorList

    vocab, model = speech_lm.vocab, speech_lm.model
    ids = [speech_lm.speech_ids(p) for p in prompts]
    # per-prompt budgets (20% slack: the vocoder trims to max_seconds), so a prompt's output
    # does not depend on which other prompts share its batch
    budgets = [max(1, math.ceil(s.max_seconds * units_per_second(p) * 1.2)) for p in prompts]
    max_new = max(budgets)
    width = max(len(x) for x in ids)
    device = next(model.parameters()).device
    input_ids = torch.full((len(ids), width), vocab.pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):  # left padding: every prompt ends where generation starts
        input_ids[i, width - len(x):] = torch.tensor(x)
        mask[i, width - len(x):] = 1
    allowed = list(range(vocab.unit_offset, vocab.unit_offset + vocab.n_units)) + [vocab.eos_id]
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids.to(device), attention_mask=mask.to(device), do_sample=True,
            temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,  # 0: off
            max_new_tokens=max_new, use_cache=True, eos_token_id=vocab.eos_id,
            pad_token_id=vocab.pad_id,
            logits_processor=LogitsProcessorList([AllowOnly(allowed, vocab.size)]),
        )
    new = out[:, width:].cpu().numpy()
    units, stopped = [], []
    for row, budget in zip(new, budgets, strict=True):
        row = row[:budget]
        ends = np.flatnonzero(row == vocab.eos_id)
        cut = int(ends[0]) if len(ends) else len(row)
        units.append(vocab.ids_to_units(row[:cut]))
        stopped.append(bool(len(ends)))
    return units, stopped


class AllowOnly:
    """Logits processor: every token outside ``allowed`` gets -inf (units and EOS only)."""

    def __init__(self, allowed: list[int], vocab_size: int) -> None:
        self.allowed = allowed
        self.vocab_size = vocab_size
        self._mask = None

    def __call__(self, input_ids, scores):
        import torch

        if self._mask is None or self._mask.shape[-1] != scores.shape[-1]:
            self._mask = torch.full((scores.shape[-1],), float("-inf"), device=scores.device)
            self._mask[[a for a in self.allowed if a < scores.shape[-1]]] = 0.0
        return scores + self._mask


def _continuation_streams(tokenizer: Any, prompt: Any, units: np.ndarray) -> Any:
    """Streams of generated units: durations left to the vocoder when units are de-duplicated."""
    from speechlm.tokenizers.streams import Streams

    units = np.asarray(units, dtype=np.int64)
    dedup = getattr(tokenizer, "dedup", prompt.durations is not None)
    durations = None if dedup else np.ones(len(units), dtype=np.int64)
    return Streams(float(prompt.frame_rate), units=units, durations=durations)


def resynthesize(tokenizer: Any, vocoder: Any, wav: np.ndarray,
                 sample_rate: int) -> tuple[Any, np.ndarray]:
    """Tokeniser + vocoder only (no language model): (Streams, audio at the vocoder's rate)."""
    wav = check_waveform(wav, "input")
    streams = tokenizer.encode([wav], sample_rate)[0]
    return streams, vocoder.synthesize(streams)
