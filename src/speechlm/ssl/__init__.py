"""Self-supervised speech encoders trained here: HuBERT pre-training (masked prediction of units).

``train_hubert(HubertTrainConfig(...))`` trains a ``transformers.HubertModel`` on a manifest's
audio against the frame units of a speechlm unit tokenizer and saves it as a plain HF model
folder, which the ``hubert`` tokenizer kind loads like any HuBERT.
"""

from speechlm.ssl.config import HubertTrainConfig


def train_hubert(cfg: HubertTrainConfig, callbacks: list | None = None) -> dict:
    """Pre-train as configured (see :func:`speechlm.ssl.train.train_hubert`)."""
    from speechlm.ssl.train import train_hubert as _train

    return _train(cfg, callbacks)


__all__ = ["HubertTrainConfig", "train_hubert"]
