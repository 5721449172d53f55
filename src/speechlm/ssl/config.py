"""``HubertTrainConfig``: the settings of ``speechlm ssl train``, checked when built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from speechlm.config import Config, at_least, choice, fraction, mapping, positive
from speechlm.errors import ConfigError

SAMPLE_RATE = 16000  # HuBERT's input rate: its conv stack (stride 320) then gives 50 Hz frames


def hubert_config(model: dict[str, Any], key: str = "model") -> Any:
    """The ``HubertConfig`` of ``model`` (HF keys over HF's defaults, which are HuBERT base).

    An unknown key or a value of the wrong type is named (``model.hidden_sise: unknown key``).
    """
    from speechlm.config import check_hf_config

    model_type = model.get("model_type", "hubert")
    if model_type != "hubert":
        raise ConfigError(f"{key}.model_type: ssl train makes HuBERT models, not '{model_type}'")
    config = check_hf_config({**model, "model_type": "hubert"}, key)
    # HubertModel has a mask embedding, and applies a given time mask, only with these
    if not (config.apply_spec_augment and config.mask_time_prob > 0):
        raise ConfigError(f"{key}.mask_time_prob: must be > 0 with apply_spec_augment: true "
                          "(the pre-training mask itself is set by mask_prob and mask_length)")
    return config


@dataclass
class HubertTrainConfig(Config):
    """Settings of one HuBERT pre-training run (``speechlm ssl train`` keys have these names).

    ``targets`` is a unit tokenizer directory whose frame units (before de-duplication) are the
    targets: an MFCC one for HuBERT's first iteration, a ``hubert`` one fitted on a layer of the
    previous iteration's model for the next. Unset, an MFCC tokenizer with 100 units (HuBERT's
    first iteration) is fitted on ``manifest`` into ``output_dir/targets``.

    ``model`` holds ``transformers.HubertConfig`` keys over HF's defaults (HuBERT base).
    ``mask_prob``/``mask_length`` are HuBERT's (0.8 and 10 frames); each step trains on windows
    of at most ``crop_seconds``, cut to the batch's shortest (no padding, as fairseq does);
    utterances under ``min_seconds`` are left out. ``lr``, ``weight_decay`` and
    ``max_grad_norm`` default to fairseq's HuBERT base values; the schedule is the Trainer's
    warm-up + cosine decay that ``speechlm train`` uses.
    """

    manifest: str
    output_dir: str
    targets: str | None = None
    model: dict = mapping()
    final_dim: int = positive(256)
    logit_temperature: float = positive(0.1)
    mask_prob: float = fraction(0.8)
    mask_length: int = positive(10)
    crop_seconds: float = positive(2.0)
    min_seconds: float = positive(1.0)
    batch_size: int = positive(8)
    grad_accum: int = positive(1)
    max_steps: int = positive(1000)
    lr: float = positive(5e-4)
    warmup_steps: int = at_least(0, 100)
    weight_decay: float = at_least(0, 0.01)
    max_grad_norm: float = positive(10.0)
    precision: str = choice("auto", "auto", "fp32", "bf16")
    save_steps: int = positive(500)
    save_total_limit: int = positive(2)
    logging_steps: int = positive(50)
    seed: int = 0
    torch_compile: bool = False
    progress: bool = True

    def validate(self) -> None:
        hubert_config(self.model)
        if self.min_seconds > self.crop_seconds:
            raise ConfigError(f"min_seconds: {self.min_seconds} is longer than crop_seconds "
                              f"({self.crop_seconds})")
