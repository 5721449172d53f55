"""``SSLTrainConfig``: the settings of ``speechlm ssl train``, checked when built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from speechlm.config import Config, at_least, choice, fraction, mapping, positive
from speechlm.errors import ConfigError

SAMPLE_RATE = 16000  # the encoders' input rate (HuBERT/wav2vec2: 50 Hz frames, CPC: 100 Hz)

OBJECTIVES = ("hubert", "wav2vec2", "cpc")
# objective -> the HF model_type of the encoder it trains
MODEL_TYPES = {"hubert": "hubert", "wav2vec2": "wav2vec2", "cpc": "speechlm_cpc"}
# the published span masking: HuBERT masks 80% of start frames, wav2vec 2.0 65% (CPC none)
MASK_PROB = {"hubert": 0.8, "wav2vec2": 0.65}


def encoder_config(objective: str, model: dict[str, Any], key: str = "model") -> Any:
    """The HF config of the encoder ``objective`` trains: ``model`` keys over HF's defaults
    (HuBERT base, wav2vec 2.0 base, the Libri-light CPC baseline).

    An unknown key or a value of the wrong type is named (``model.hidden_sise: unknown key``).
    """
    from speechlm.config import check_hf_config

    if objective == "cpc":
        import speechlm.ssl.cpc  # noqa: F401  (registers model_type speechlm_cpc)
    want = MODEL_TYPES[objective]
    model_type = model.get("model_type", want)
    if model_type != want:
        raise ConfigError(f"{key}.model_type: objective {objective} trains '{want}' models, "
                          f"not '{model_type}'")
    config = check_hf_config({**model, "model_type": want}, key)
    # HuBERT/wav2vec2 have a mask embedding, and apply a given time mask, only with these
    if objective != "cpc" and not (config.apply_spec_augment and config.mask_time_prob > 0):
        raise ConfigError(f"{key}.mask_time_prob: must be > 0 with apply_spec_augment: true "
                          "(the pre-training mask itself is set by mask_prob and mask_length)")
    return config


@dataclass
class SSLTrainConfig(Config):
    """Settings of one pre-training run (``speechlm ssl train`` keys have these names).

    ``objective``: ``hubert`` (masked prediction of k-means units), ``wav2vec2`` (contrastive,
    over Gumbel-quantised features) or ``cpc`` (predicting future frames, InfoNCE).

    ``targets`` (HuBERT only) is a unit tokenizer directory whose frame units (before
    de-duplication) are the targets: an MFCC one for HuBERT's first iteration, a ``hubert`` one
    fitted on a layer of the previous iteration's model for the next. Unset, an MFCC tokenizer
    with 100 units (HuBERT's first iteration) is fitted on ``manifest`` into
    ``output_dir/targets``.

    ``model`` holds the HF config keys of the encoder (``HubertConfig``, ``Wav2Vec2Config`` or
    ``CPCConfig``) over their defaults (the base models). ``mask_prob``/``mask_length`` are the
    published ones (HuBERT 0.8, wav2vec 2.0 0.65; 10 frames); ``final_dim`` and
    ``logit_temperature`` are HuBERT's head; ``gumbel_start``/``gumbel_end`` wav2vec 2.0's
    quantiser temperatures (2 -> 0.5). Each step trains on windows of at most ``crop_seconds``,
    cut to the batch's shortest (no padding, as fairseq does); utterances under ``min_seconds``
    are left out. ``lr``, ``weight_decay`` and ``max_grad_norm`` default to fairseq's HuBERT
    base values; the schedule is the Trainer's warm-up + cosine decay that ``speechlm train``
    uses.
    """

    manifest: str
    output_dir: str
    objective: str = choice("hubert", *OBJECTIVES)
    targets: str | None = None
    model: dict = mapping()
    final_dim: int = positive(256)
    logit_temperature: float = positive(0.1)
    mask_prob: float | None = fraction(None)
    mask_length: int = positive(10)
    gumbel_start: float = positive(2.0)
    gumbel_end: float = positive(0.5)
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
        encoder_config(self.objective, self.model)
        if self.targets is not None and self.objective != "hubert":
            raise ConfigError(f"targets: only the hubert objective has targets, not "
                              f"{self.objective}")
        if self.objective == "cpc":
            if self.mask_prob is not None:
                raise ConfigError("mask_prob: the cpc objective masks nothing (it predicts the "
                                  "future)")
        elif self.mask_prob is None:  # recorded as used, so train_config.json says it
            self.mask_prob = MASK_PROB[self.objective]
        if self.min_seconds > self.crop_seconds:
            raise ConfigError(f"min_seconds: {self.min_seconds} is longer than crop_seconds "
                              f"({self.crop_seconds})")

    @property
    def span_prob(self) -> float:
        """The masking probability in force (0 for CPC)."""
        return self.mask_prob or 0.0
