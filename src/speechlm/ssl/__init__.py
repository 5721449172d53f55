"""Self-supervised speech encoders trained here: HuBERT, wav2vec 2.0 and CPC pre-training.

``train_ssl(SSLTrainConfig(...))`` trains an encoder on a manifest's audio and saves it as a
plain HF model folder (``HubertModel``, ``Wav2Vec2Model``, or ``CPCModel`` registered with
``AutoModel``), which the ``hubert``, ``wav2vec2`` and ``cpc`` tokenizer kinds load like any
checkpoint.
"""

from speechlm.ssl.config import SSLTrainConfig


def train_ssl(cfg: SSLTrainConfig, callbacks: list | None = None) -> dict:
    """Pre-train as configured (see :func:`speechlm.ssl.train.train_ssl`)."""
    from speechlm.ssl.train import train_ssl as _train

    return _train(cfg, callbacks)


__all__ = ["SSLTrainConfig", "train_ssl"]
