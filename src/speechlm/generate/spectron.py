"""Spectron's spectrogram continuation: frames decoded with a KV cache, then Griffin-Lim.

:func:`continue_spectrogram` reads ``BOS transcript continuation SPEC`` (and optionally the
prompt's own frames after it) once, then predicts one frame per step from the last hidden
state, feeding it back through the pre-net, until the stop probability passes the threshold
(that frame is kept: it is the last) or ``max_frames``.

:func:`griffin_lim` turns the log-mel back into audio: the power spectrum by the pseudo-inverse
of the front end's own mel filterbank (``SpectralFeatures.fb``, so inversion matches analysis
exactly), then phase by ``librosa.griffinlim`` (a declared dependency; its momentum variant
converges in fewer iterations than the plain algorithm). ``librosa.feature.inverse.mel_to_audio``
is not used: it builds librosa's own filterbank, not the one the frames were made with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from speechlm.errors import ConfigError
from speechlm.models.modeling_spectron import SpectronLM
from speechlm.tokenizers.features import SpectralFeatures


@torch.inference_mode()
def continue_spectrogram(model: SpectronLM, text_ids: Sequence[int],
                         prompt_frames: np.ndarray | torch.Tensor | None = None,
                         max_frames: int = 500, stop_threshold: float = 0.5,
                         prenet_dropout: bool = False) -> np.ndarray:
    """The new log-mel frames (T, n_mels), 1 <= T <= ``max_frames``, after ``text_ids`` (the
    ``SPEC`` marker is appended when they do not end with it) and ``prompt_frames`` (P, n_mels)
    log-mel, read as given.

    ``prenet_dropout`` keeps the pre-net's dropout on, as Tacotron 2 does when synthesising
    (varied output; off by default, so decoding is deterministic).
    """
    from transformers import DynamicCache

    spec = model.config.spec_token_id
    if spec is None:
        raise ConfigError("spec_token_id: required to continue a spectrogram")
    ids = list(text_ids) if list(text_ids)[-1:] == [spec] else [*text_ids, spec]
    dev = model.device
    emb = model.get_input_embeddings()(torch.tensor([ids], device=dev))  # (1, L, H)
    if prompt_frames is not None and len(prompt_frames):
        x = model.normalize(torch.as_tensor(np.asarray(prompt_frames), device=dev))[None]
        emb = torch.cat([emb, model.prenet(x.to(emb.dtype), prenet_dropout).to(emb.dtype)], 1)
    cache = DynamicCache(config=model.config.backbone)
    hidden, cache = model.states(emb, cache=cache, use_cache=True)
    out = []
    for _ in range(max_frames):
        frame, stop = model.frame_heads(hidden[:, -1:])  # (1, 1, M) normalised, (1, 1)
        out.append(frame)
        if float(torch.sigmoid(stop)) > stop_threshold:
            break
        read = model.prenet(frame.to(emb.dtype), prenet_dropout)  # (1, 1, H)
        hidden, cache = model.states(read, cache=cache, use_cache=True)
    return model.denormalize(torch.cat(out, 1)[0]).cpu().numpy()


def griffin_lim(mel: np.ndarray, sample_rate: int = 16000, n_iter: int = 32,
                frontend: SpectralFeatures | None = None, seed: int = 0) -> np.ndarray:
    """Log-mel frames (T, n_mels), as a ``logmel`` front end with ``normalize: False`` makes
    them, -> float32 audio at the front end's rate.

    ``frontend`` defaults to ``make_frontend("logmel", {"n_mels", "sample_rate", "normalize":
    False})``; pass the one that made the frames when its settings differ.
    """
    import librosa

    from speechlm.tokenizers.frontends import make_frontend

    mel = np.asarray(mel, dtype=np.float64)
    if frontend is None:
        frontend = make_frontend("logmel", {"n_mels": mel.shape[1], "sample_rate": sample_rate,
                                            "normalize": False})
    if frontend.kind != "logmel" or frontend.spec.normalize:
        raise ConfigError("griffin_lim: needs an unnormalised logmel front end (per-utterance "
                          "normalisation loses the level, which cannot be inverted)")
    fb = frontend.fb.numpy().astype(np.float64)  # (F, n_mels)
    if fb.shape[1] != mel.shape[1]:
        raise ConfigError(f"griffin_lim: {mel.shape[1]} mel bins, the front end has {fb.shape[1]}")
    power = np.maximum(np.exp(mel) - 1e-6, 0.0)  # (T, n_mels): undo log(mel + 1e-6)
    spec = np.maximum(power @ np.linalg.pinv(fb), 0.0)  # (T, F): least-squares power spectrum
    n_fft = frontend.spec.n_fft
    audio = librosa.griffinlim(np.sqrt(spec).T, n_iter=n_iter, hop_length=frontend.hop,
                               win_length=frontend.win, n_fft=n_fft, window="hann", center=True,
                               length=(len(mel) - 1) * frontend.hop,
                               random_state=np.random.default_rng(seed))
    return audio.astype(np.float32)
