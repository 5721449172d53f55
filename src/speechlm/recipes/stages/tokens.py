"""Speech tokens: ``tokenizer`` (fitted on the training split) and ``tokens`` (both splits
tokenised into token datasets).

Outputs: ``RUN/tokenizer/`` (a tokenizer directory) and ``RUN/tokens/{train,valid}/`` (token
datasets whose ``info.json`` names the tokenizer by a path relative to the dataset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from speechlm.config import Config, at_least, choice, positive
from speechlm.errors import ConfigError
from speechlm.recipes.stages import STAGES, RunContext, Stage, config_values, offline_hf_config
from speechlm.recipes.stages.corpus import TRAIN, VALID
from speechlm.tokenizers.features import SPECTRAL_KINDS, SpectralSpec
from speechlm.tokenizers.fitting import ALL_KINDS, CODEC_KINDS, CONTINUOUS_KIND
from speechlm.tokenizers.frontends import ENCODER_KINDS, FRONTEND_KINDS

FROM_SSL = "<ssl>"  # model placeholder: the encoder the ssl stage trains (stages/ssl.py)
FROM_CODEC = "<codec>"  # model placeholder: the codec the codec stage trains (stages/codec_lm.py)

# Which options each kind takes (read by fit_tokenizer, its front end or its codec).
KMEANS_OPTIONS = ("seed", "max_frames", "max_hours", "n_iter", "dedup", "smoothing", "prosody")
SPECTRAL_OPTIONS = ("sample_rate", "frame_rate", "win_ms", "n_fft", "n_mels", "n_mfcc", "deltas",
                    "normalize", "fmin", "fmax", "causal")  # SpectralSpec's fields (test: equal)
ENCODER_OPTIONS = ("model", "layer", "max_chunk_seconds", "batch_seconds", "device")
CODEC_OPTIONS = ("model", "n_codebooks", "device")
PROSODY_OPTIONS = ("n_f0_bins", "n_pitch", "n_style")  # Prosody.fit's codebook sizes


def frontend_options(kind: str) -> tuple[str, ...]:
    """Options of the feature front end ``kind`` (spectral or SSL encoder)."""
    return SPECTRAL_OPTIONS if kind in SPECTRAL_KINDS else ENCODER_OPTIONS


def kind_options(kind: str, features: str | None = None) -> tuple[str, ...]:
    """Every option a tokenizer of ``kind`` takes (``continuous``: by its ``features`` kind)."""
    if kind in CODEC_KINDS:
        return CODEC_OPTIONS
    if kind == CONTINUOUS_KIND:
        return ("features", *frontend_options(features or "logmel"))
    return KMEANS_OPTIONS + frontend_options(kind)


@dataclass
class TokenizerConfig(Config):
    """``fit_tokenizer``'s settings: ``kind``, ``units`` and the options of that kind (unset:
    the tokenizer's default). Setting an option another kind takes is an error."""

    kind: str = choice("mfcc", *ALL_KINDS)
    units: int = at_least(2, 100)
    # k-means unit kinds (spectral features and SSL encoders)
    seed: int | None = None
    max_frames: int | None = positive(None)
    max_hours: float | None = positive(None)
    n_iter: int | None = positive(None)
    dedup: bool | None = None
    smoothing: float | None = at_least(0, None)
    prosody: bool | dict | None = None
    # SSL encoders and codecs
    model: str | None = None  # hub id or local folder
    layer: int | None = at_least(0, None)
    max_chunk_seconds: float | None = positive(None)
    batch_seconds: float | None = positive(None)
    n_codebooks: int | None = positive(None)
    device: str | None = None
    # continuous features: the front end kind
    features: str | None = choice(None, *FRONTEND_KINDS)
    # spectral front ends (SpectralSpec)
    sample_rate: int | None = positive(None)
    frame_rate: float | None = positive(None)
    win_ms: float | None = positive(None)
    n_fft: int | None = positive(None)
    n_mels: int | None = positive(None)
    n_mfcc: int | None = positive(None)
    deltas: bool | None = None
    normalize: bool | None = None
    fmin: float | None = at_least(0, None)
    fmax: float | None = positive(None)
    causal: bool | None = None  # a front end the real-time engine runs frame by frame

    def validate(self) -> None:
        allowed = kind_options(self.kind, self.features)
        for f in fields(self):
            if f.name not in ("kind", "units") and getattr(self, f.name) is not None \
                    and f.name not in allowed:
                raise ConfigError(f"{f.name}: not an option of kind '{self.kind}'; its options: "
                                  f"{', '.join(allowed)}")
        if self.frontend_kind in ENCODER_KINDS + CODEC_KINDS and not self.model:
            raise ConfigError(f"model: kind '{self.frontend_kind}' needs "
                              "model=<hub id or local folder>")
        if isinstance(self.prosody, dict):
            for k, v in self.prosody.items():
                if k not in PROSODY_OPTIONS:
                    raise ConfigError(f"prosody.{k}: unknown key; valid keys: "
                                      f"{', '.join(PROSODY_OPTIONS)}")
                if not isinstance(v, int) or isinstance(v, bool) or v < 2:
                    raise ConfigError(f"prosody.{k}: must be an integer >= 2, got {v!r}")
        if self.causal and self.smoothing:
            raise ConfigError(f"smoothing: {self.smoothing:g} cannot be used with causal: true "
                              "(its Viterbi path looks at the whole utterance); set smoothing: 0 "
                              "or causal: false")
        if self.causal and self.kind == CONTINUOUS_KIND and self.normalize is not False:
            raise ConfigError("causal: a continuous tokenizer fits no normalisation statistics; "
                              "set normalize: false with causal: true")
        kind = self.frontend_kind
        if kind in SPECTRAL_KINDS:  # the front end's own checks (frame rate vs sample rate)
            spectral = {k: v for k in SPECTRAL_OPTIONS if (v := getattr(self, k)) is not None}
            try:
                SpectralSpec(kind=kind, **spectral)
            except ConfigError as e:
                raise ConfigError(str(e).removeprefix("features.")) from None

    @property
    def frontend_kind(self) -> str:
        """The feature front end's kind (a codec kind for codecs)."""
        return (self.features or "logmel") if self.kind == CONTINUOUS_KIND else self.kind

    def options(self) -> dict:
        """The keyword options of ``fit_tokenizer`` (everything set but kind and units)."""
        return {k: v for k, v in config_values(self).items() if k not in ("kind", "units")}


def token_rate(ctx: RunContext, conf: TokenizerConfig) -> tuple[int, float] | None:
    """(sample rate, frame rate) of the tokens, when known without data or weights."""
    kind = conf.frontend_kind
    if conf.model == FROM_SSL:  # the encoder the ssl stage will train
        from speechlm.recipes.stages.ssl import frame_rate

        return 16000, frame_rate(ctx.conf("ssl"))
    if conf.model == FROM_CODEC:  # the codec the codec stage will train
        dac = ctx.conf("codec").dac_config()
        return dac.sampling_rate, dac.sampling_rate / math.prod(dac.downsampling_ratios)
    if kind in SPECTRAL_KINDS:
        return (conf.sample_rate or SpectralSpec.sample_rate,
                conf.frame_rate or SpectralSpec.frame_rate)
    if kind in ENCODER_KINDS and kind != "w2v-bert":  # w2v-BERT's rate is its extractor's
        if kind == "cpc":
            import speechlm.ssl.cpc  # noqa: F401  (registers its config with AutoConfig)
        cfg = offline_hf_config(conf.model)
        if cfg is not None and getattr(cfg, "conv_stride", None):
            return 16000, 16000 / math.prod(cfg.conv_stride)
    return None


def _run_tokenizer(ctx: RunContext, conf: TokenizerConfig, d: Path) -> dict:
    from speechlm.tokenizers import fit_tokenizer, load_tokenizer

    options = conf.options()
    if conf.model in (FROM_SSL, FROM_CODEC):
        options["model"] = str(ctx.dir("ssl" if conf.model == FROM_SSL else "codec"))
    tok = load_tokenizer(fit_tokenizer(ctx.dir("data") / TRAIN, conf.kind, conf.units, d,
                                       **options))
    return {"kind": tok.kind, "n_units": tok.n_units, "frame_rate": tok.frame_rate}


def _plan_tokenizer(ctx: RunContext, conf: TokenizerConfig) -> dict:
    rate = token_rate(ctx, conf)
    fr = f"{rate[1]:g} Hz" if rate else "set by the model (unknown offline)"
    return {"tokens": f"{conf.kind}, {conf.units} units, frame rate {fr}"}


def _tokenizer_needs(conf: TokenizerConfig) -> tuple[str, ...]:
    return {FROM_SSL: ("ssl",), FROM_CODEC: ("codec",)}.get(conf.model or "", ())


STAGES.add("tokenizer", Stage("tokenizer", _run_tokenizer, _plan_tokenizer,
                              config=TokenizerConfig, needs=("data",),
                              extra_needs=_tokenizer_needs))


def _run_tokens(ctx: RunContext, conf: None, d: Path) -> dict:
    from speechlm.tokenizers.job import tokenize_manifest

    return {split: tokenize_manifest(ctx.dir("data") / manifest, ctx.dir("tokenizer"), d / split)
            for split, manifest in (("train", TRAIN), ("valid", VALID))}


def _plan_tokens(ctx: RunContext, conf: None) -> dict:
    return {"datasets": "train, valid (data splits through the tokenizer)"}


STAGES.add("tokens", Stage("tokens", _run_tokens, _plan_tokens, needs=("data", "tokenizer")))
