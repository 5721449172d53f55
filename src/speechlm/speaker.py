"""Voice embeddings (d-vectors) from the pretrained speaker encoder in the resemblyzer wheel.

One loaded encoder serves the speech metrics (speaker similarity) and the envelope vocoder's
voice conditioning, so both measure a voice the same way. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from speechlm.errors import AudioError

SAMPLE_RATE = 16000  # the encoder's rate
EMBEDDING_DIM = 256
# resemblyzer pads anything shorter than its 1.6 s window; under a second of speech the
# embedding is mostly padding
MIN_SECONDS = 1.0


@functools.cache
def _resemblyzer():
    """(the encoder, resemblyzer's preprocess_wav), loaded once."""
    with warnings.catch_warnings():
        # webrtcvad (resemblyzer's VAD) reads its version through pkg_resources, which warns
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder, preprocess_wav

    return VoiceEncoder("cpu", verbose=False), preprocess_wav


def voice_embedding(wav: np.ndarray, where: str, sample_rate: int = SAMPLE_RATE,
                    min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """The unit-norm d-vector (256,) of speech in ``wav``; raises ``AudioError`` naming
    ``where`` when fewer than ``min_seconds`` of speech remain after silence trimming."""
    from speechlm.tokenizers.features import single_thread

    wav = np.asarray(wav, dtype=np.float32)
    if not wav.size or float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) < 1e-5:
        raise AudioError(f"{where}: silent, no voice to embed")  # volume normalising would NaN
    encoder, preprocess_wav = _resemblyzer()
    speech = preprocess_wav(wav, source_sr=sample_rate)
    if len(speech) == 0:
        raise AudioError(f"{where}: no speech left after silence trimming")
    if len(speech) < min_seconds * SAMPLE_RATE:
        raise AudioError(f"{where}: {len(speech) / SAMPLE_RATE:.2f} s of speech after "
                         f"silence trimming, too short for the speaker encoder "
                         f"(needs {min_seconds:g} s)")
    # a 3-layer LSTM over a few 1.6 s windows: ~0.05 s on one thread, while two OpenMP
    # threads on cores shared with other work (the ASR, DNSMOS, other jobs) took 7-23 s
    with single_thread():
        return encoder.embed_utterance(speech).astype(np.float32)
