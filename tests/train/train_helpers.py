"""Helpers the train tests import by name (a conftest cannot be imported reliably by name:
every test folder has one)."""

from __future__ import annotations

TINY_LLAMA = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2}


def tiny_cfg(data, out, **kw) -> dict:
    """Keyword arguments of a few-second TrainConfig."""
    cfg = dict(data=str(data), output_dir=str(out), init="cold", model=dict(TINY_LLAMA),
               seq_len=32, batch_size=4, max_steps=6, lr=3e-3, warmup_steps=2, save_steps=1000,
               eval_steps=1000, logging_steps=1, seed=0, progress=False)
    cfg.update(kw)
    return cfg
