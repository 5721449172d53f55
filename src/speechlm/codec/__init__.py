"""A DAC-style neural codec (``transformers.DacModel``) trained here: ``speechlm codec train``.

The output folder is a HF model folder that the ``dac`` codec tokenizer loads like a hub
checkpoint (``speechlm tokenizer fit --kind dac --model OUT``).
"""

from speechlm.codec.config import PRESETS, CodecTrainConfig, preset
from speechlm.codec.train import train_codec

__all__ = ["PRESETS", "CodecTrainConfig", "preset", "train_codec"]
