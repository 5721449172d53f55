"""Zero-shot text to speech with a codec LM (VALL-E, or the delay-pattern variant).

VALL-E's inference: the phonemes of the prompt's transcript and of the text to say, then the
prompt's codec codes; the model continues the codes (the AR samples codebook 0, the NAR fills
the others greedily; the delayed model samples all rows), and the model's codec decodes them.
Without a transcript of the prompt (``prompt_text``), :func:`tts_file` transcribes it with the
bundled English ASR and records what it heard: a wrong transcript misaligns text and audio, so
give the transcript when it is known.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechlm.errors import ConfigError

# generation lengths when not given: generous bounds per target phoneme symbol (English speaks
# about 12 phones a second; the symbols include stress marks and word breaks)
MAX_SECONDS_PER_PHONEME = 0.25
MIN_SECONDS_PER_PHONEME = 0.03


@dataclass(frozen=True)
class TtsSettings:
    """How :func:`speak` samples and how long it may speak."""

    temperature: float = 1.0
    top_k: int = 0
    seed: int = 0
    max_seconds: float | None = None  # None: MAX_SECONDS_PER_PHONEME per target symbol
    min_seconds: float | None = None  # None: MIN_SECONDS_PER_PHONEME per target symbol
    language: str = "en-us"  # espeak-ng voice whose pronunciation the phonemes follow

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.top_k < 0:
            raise ConfigError(f"temperature and top_k: must be >= 0, got {self.temperature}, "
                              f"{self.top_k}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"max_seconds: must be > 0, got {self.max_seconds}")


def speak(lm: Any, text: str, prompt_wav: np.ndarray | None, sample_rate: int,
          prompt_text: str = "", settings: TtsSettings | None = None) -> np.ndarray:
    """Speech of ``text`` in the voice of ``prompt_wav`` at the codec's sample rate.

    ``lm`` is a loaded ``valle`` or ``viola`` (with its ``nar`` sub-model) or
    ``codec_delayed`` model directory; without a prompt the model speaks in a voice of its own
    choosing. VioLA speaks through its TTS task (``[TTS]`` and the language token of
    ``settings.language``) with the codebook-0 codes of the prompt forced first.
    """
    from speechlm.corpus.phones import phoneme_indices
    from speechlm.models.modeling_valle import NAR_ROLE, DelayedCodecLM, synthesize
    from speechlm.tokenizers.streams import Streams

    s = settings or TtsSettings()
    if lm.architecture.name not in ("valle", "codec_delayed", "viola"):
        raise ConfigError(f"{lm.dir}: a {lm.architecture.name} model does not speak text; "
                          "tts needs a valle, viola or codec_delayed model")
    target = phoneme_indices(text, s.language)
    if len(target) == 0:
        raise ConfigError(f"text: nothing to say in {text!r}")
    codec = lm.speech_tokenizer
    prompt = None if prompt_wav is None else np.asarray(
        codec.encode([prompt_wav], sample_rate)[0].codes)
    phonemes = np.concatenate([phoneme_indices(prompt_text, s.language), target])
    rate = float(codec.frame_rate)
    max_frames = math.ceil(rate * (s.max_seconds or MAX_SECONDS_PER_PHONEME * len(target)))
    min_seconds = MIN_SECONDS_PER_PHONEME * len(target) if s.min_seconds is None \
        else s.min_seconds
    min_frames = min(max_frames, int(rate * min_seconds))
    with torch.inference_mode():
        if isinstance(lm.model, DelayedCodecLM):
            codes = lm.model.generate(phonemes, prompt, max_frames, min_frames, s.temperature,
                                      s.top_k, s.seed)
        else:
            nar = lm.submodels.get(NAR_ROLE)
            if nar is None:
                raise ConfigError(f"{lm.dir}: this {lm.architecture.name} model has no NAR "
                                  "(nar/); train one (architecture valle_nar) and add it with "
                                  "speechlm.models.codec_lm.attach_nar")
            if lm.architecture.name == "viola":
                codes = _viola_codes(lm.model, nar, phonemes, prompt, max_frames, min_frames, s)
            else:
                codes = synthesize(lm.model, nar, phonemes, prompt, max_frames, min_frames,
                                   s.temperature, s.top_k, s.seed)
    return codec.decode([Streams(rate, codes=np.asarray(codes))])[0]


def _viola_codes(model: Any, nar: Any, phonemes: np.ndarray, prompt: np.ndarray | None,
                 max_frames: int, min_frames: int, s: TtsSettings) -> torch.Tensor:
    """VioLA's TTS task samples codebook 0 after the prompt's; VALL-E's NAR fills the rest."""
    from speechlm.sequences.viola import LANGUAGES

    language = s.language.split("-")[0]
    if language not in LANGUAGES:
        raise ConfigError(f"language: VioLA has tokens for {', '.join(LANGUAGES)}, not "
                          f"{s.language}")
    first = model.continue_task(
        "tts", language, language, text=phonemes, prefix=() if prompt is None else prompt[0],
        max_new=max_frames, min_new=min_frames, temperature=s.temperature, top_k=s.top_k,
        generator=torch.Generator().manual_seed(s.seed))
    return nar.fill(phonemes, prompt, np.asarray(first, dtype=np.int64))


def tts_file(model: str | Path, text: str, prompt: str | Path | None, out: str | Path,
             prompt_text: str | None = None, settings: TtsSettings | None = None,
             device: str = "cpu") -> dict:
    """:func:`speak` from files: writes ``out`` (a WAV) and ``out`` with ``.json`` (the text,
    the prompt and its transcript, the settings, the length); returns that record."""
    from speechlm.audio import load_audio, save_audio
    from speechlm.models.speech_lm import load_speech_lm

    lm = load_speech_lm(model, device)
    s = settings or TtsSettings()
    wav, heard = None, None
    rate = int(lm.speech_tokenizer.sample_rate)
    if prompt is not None:
        wav = load_audio(prompt, rate)
        if prompt_text is None:
            from speechlm.evaluate.asr import transcribe

            prompt_text = heard = transcribe(load_audio(prompt, 16000), 16000)
    audio = speak(lm, text, wav, rate, prompt_text or "", s)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_audio(out, audio, rate)
    record = {"out": str(out), "text": text, "prompt": None if prompt is None else str(prompt),
              "prompt_text": prompt_text or "", "prompt_text_from_asr": heard is not None,
              "seconds": round(len(audio) / rate, 3), "sample_rate": rate, **asdict(s)}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record
