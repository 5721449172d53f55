"""AudioLM's speech continuation: semantic units, then the codec codes that speak them.

Borsos et al. 2023: a semantic stage continues the prompt's semantic tokens; a coarse acoustic
stage generates the first codebooks conditioned on all the semantic tokens and the prompt's
codes (so the continuation keeps the prompt's voice and recording conditions); a fine stage adds
the remaining codebooks. Here the semantic stage is a speech LM over de-duplicated units (the
gslm model), and the acoustic stages are VALL-E's AR and NAR with semantic units where VALL-E
has phonemes (formats ``audiolm_coarse`` and ``audiolm_fine``): one acoustic model directory
of architecture ``valle``, its ``nar`` sub-model the fine stage.

:func:`continue_audiolm` returns, for each prompt, both AudioLM's continuation and the semantic
model's own (its unit vocoder speaking the same new units, in the prompt's voice when the
vocoder takes one, and in its own voice): the comparison the seed's "acoustic tokens keep the
speaker, semantic tokens keep the content" trade-off is about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from speechlm.errors import ConfigError


@dataclass
class AudioLMContinuation:
    """One prompt's continuations: AudioLM's (codec audio) and the semantic model's own."""

    units: np.ndarray  # the new semantic units
    audio: np.ndarray  # AudioLM: the acoustic stages' codes, decoded by the codec
    sample_rate: int
    semantic_audio: np.ndarray  # the same units through the semantic model's vocoder
    semantic_sample_rate: int
    # the same units through that vocoder in its own voice (not the prompt's): what the
    # semantic tokens alone carry of the speaker
    units_only_audio: np.ndarray | None = None


def continue_audiolm(semantic: Any, acoustic: Any, wavs: list[np.ndarray], sample_rate: int,
                     sampling: Any, acoustic_temperature: float = 0.8,
                     acoustic_top_k: int = 50) -> list[AudioLMContinuation]:
    """Continue each prompt (``wavs`` at ``sample_rate``) by the semantic model ``semantic``
    (a loaded unit LM with its vocoder) and speak the result with ``acoustic`` (a loaded
    ``valle`` model trained on ``audiolm_coarse`` / ``audiolm_fine``).

    ``sampling`` (a :class:`~speechlm.models.sampling.Sampling`) drives the semantic stage;
    the coarse stage samples at ``acoustic_temperature`` / ``acoustic_top_k`` with the same
    seed; the fine stage is greedy. The acoustic stage stops at its EOS, at most 1.5 times the
    semantic continuation's length.
    """
    from speechlm.generate.continuation import (
        continue_speech_batch,
        resolve_vocoder,
        speak,
        units_per_second,
    )
    from speechlm.models.modeling_valle import NAR_ROLE, synthesize
    from speechlm.tokenizers.streams import Streams

    nar = acoustic.submodels.get(NAR_ROLE)
    if acoustic.architecture.name != "valle" or nar is None:
        raise ConfigError(f"{acoustic.dir}: AudioLM's acoustic stages are a valle model with its "
                          "nar sub-model (recipe audiolm: stages coarse and fine)")
    if not acoustic.vocab.has_range("units"):
        raise ConfigError(f"{acoustic.dir}: this codec LM reads phonemes (VALL-E), not "
                          "semantic units")
    n_units = acoustic.vocab.n_units
    if semantic.speech_tokenizer.n_units != n_units:
        raise ConfigError(f"{acoustic.dir}: reads {n_units} semantic units but "
                          f"{semantic.dir}'s tokenizer makes {semantic.speech_tokenizer.n_units}")
    codec = acoustic.speech_tokenizer
    rate = int(codec.sample_rate)
    results = []
    conts = continue_speech_batch(semantic, wavs, sample_rate, sampling)
    vocoder = resolve_vocoder(semantic, None)
    for i, (wav, cont) in enumerate(zip(wavs, conts, strict=True)):
        new = np.asarray(cont.streams.units if cont.streams.units is not None else [], np.int64)
        prompt_units = np.asarray(cont.prompt.units, np.int64)
        prompt_codes = np.asarray(codec.encode([wav], sample_rate)[0].codes)
        seconds = len(new) / units_per_second(cont.prompt)
        max_frames = max(1, math.ceil(1.5 * seconds * codec.frame_rate))
        # each de-duplicated unit lasts at least one semantic frame
        min_frames = min(max_frames, math.ceil(len(new) * codec.frame_rate
                                               / semantic.speech_tokenizer.frame_rate))
        with torch.inference_mode():
            codes = synthesize(acoustic.model, nar, np.concatenate([prompt_units, new]),
                               prompt_codes, max_frames, min_frames,
                               acoustic_temperature, acoustic_top_k, sampling.seed + i)
        audio = codec.decode([Streams(codec.frame_rate, codes=np.asarray(codes))])[0]
        own_voice = speak(vocoder, cont.streams, None, sample_rate)[: len(cont.audio)] \
            if len(new) else np.zeros(0, np.float32)
        results.append(AudioLMContinuation(new, audio, rate, cont.audio, cont.sample_rate,
                                           own_voice))
    return results
