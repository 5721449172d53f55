"""Vocoders: token streams back to audio (unit HiFi-GAN, a training-free fallback, codec decoders).

``load_vocoder(dir)`` reads any vocoder directory; every vocoder has ``sample_rate`` and
``synthesize(streams) -> np.ndarray``.
"""

from speechlm.vocoders.base import Vocoder, load_vocoder

__all__ = ["Vocoder", "load_vocoder"]
