"""Codec language models behind the one interface: ``valle``, ``valle_nar``, ``codec_delayed``,
``viola``.

The models are :mod:`speechlm.models.modeling_valle`'s, trained by the ``codec`` objective
(``speechlm.train.codec_lm``) on a codec's token dataset. A model config is a stock Llama
config (the backbone keys); ``codec_delayed`` also takes ``delays`` (one per codebook; default
MusicGen's 0, 1, .., K-1).

- ``valle``: VALL-E. The main sub-model is the AR (codebook 0); the ``nar`` sub-model (in
  ``MODEL/nar/``) fills codebooks 1..K-1. Each is trained on its own (``valle`` builds the AR,
  ``valle_nar`` the NAR) and :func:`attach_nar` puts the NAR into the AR's model directory.
- ``codec_delayed``: one causal model over all K codebooks in the delay pattern.
- ``viola``: VioLA, one causal model for ASR, speech and text translation and TTS
  (:mod:`speechlm.models.modeling_viola`); its TTS uses VALL-E's NAR, attached like VALL-E's.

What these models do is text to speech (``speechlm.generate.tts``, ``speechlm tts``): they have no
likelihood of speech alone to score the zero-shot benchmarks with, and no continuation without
text, so ``score`` and ``generate`` are refused with what to use instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoModel

from speechlm.errors import ConfigError
from speechlm.models.architecture import ARCHITECTURES, MAIN, Architecture
from speechlm.models.modeling_valle import (
    NAR_ROLE,
    CodecLMBase,
    DelayedCodecLM,
    ValleAR,
    ValleNAR,
    build_codec_lm,
    build_delayed,
)
from speechlm.models.modeling_viola import Viola, build_viola
from speechlm.sequences.valle import ValleLayout
from speechlm.sequences.viola import ViolaLayout

DELAYS = "delays"  # the codec_delayed model config's own key


class CodecLM(Architecture):
    """Shared by the codec LMs: a Llama backbone config, loading, and the refusals."""

    objective = "codec"
    model_class: type = CodecLMBase
    own_keys: tuple[str, ...] = ()

    def check_config(self, model_cfg: dict[str, Any], key: str = "model") -> None:
        from speechlm.config import check_hf_config

        if not isinstance(model_cfg, dict):
            raise ConfigError(f"{key}: expected a mapping of llama backbone keys")
        backbone = {k: v for k, v in model_cfg.items() if k not in self.own_keys}
        if backbone.get("model_type", "llama") != "llama":
            raise ConfigError(f"{key}.model_type: the codec LMs' blocks are llama blocks; give "
                              f"model_type: llama, got {backbone.get('model_type')!r}")
        check_hf_config({"model_type": "llama", **backbone}, key)

    def _backbone(self, model_cfg: dict[str, Any]) -> dict[str, Any]:
        self.check_config(model_cfg)
        return {k: v for k, v in model_cfg.items() if k not in self.own_keys}

    def build(self, model_cfg: dict[str, Any], vocab, seed: int = 0) -> Any:
        """A cold ``model_class`` for ``vocab`` (only that model: the AR and NAR of VALL-E are
        built, trained and saved on their own)."""
        return build_codec_lm(self.model_class, self._backbone(model_cfg),
                              ValleLayout.from_vocab(vocab), vocab.size, seed)

    def load(self, path: Path, device: str = "cpu") -> Any:
        from speechlm.pretrained import load_pretrained

        model = load_pretrained(AutoModel, path, "codec LM")
        if not isinstance(model, CodecLMBase):
            raise ConfigError(f"{path}: holds a {type(model).__name__}, not a codec LM")
        return model.to(device).eval()

    def score(self, lm, examples, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        raise ConfigError(f"{lm.dir}: a {self.name} model speaks text (speechlm tts); it has no "
                          "likelihood of speech alone for the zero-shot benchmarks")

    def generate(self, lm, prompts, sampling, max_new, min_new=None):
        raise ConfigError(f"{lm.dir}: a {self.name} model speaks text; use speechlm tts --model "
                          f"{lm.dir} --text ... --prompt speaker.wav --out out.wav")


class Valle(CodecLM):
    """VALL-E: the AR at the directory root, the NAR in ``nar/`` (:func:`attach_nar`)."""

    name = "valle"
    speech_format = "valle_ar"
    submodels = (MAIN, NAR_ROLE)

    model_class = ValleAR


class ValleNarArch(CodecLM):
    """VALL-E's NAR, trained on its own (then :func:`attach_nar`)."""

    name = "valle_nar"
    speech_format = "valle_nar"

    model_class = ValleNAR


class CodecDelayed(CodecLM):
    """One causal model over the delay pattern of all codebooks (MusicGen, Moshi)."""

    name = "codec_delayed"
    speech_format = "codec_delayed"
    own_keys = (DELAYS,)

    def check_config(self, model_cfg, key: str = "model") -> None:
        super().check_config(model_cfg, key)
        delays = model_cfg.get(DELAYS)
        if delays is not None and (not isinstance(delays, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in delays)):
            raise ConfigError(f"{key}.{DELAYS}: a list of delays >= 0 (one per codebook), got "
                              f"{delays!r}")

    model_class = DelayedCodecLM

    def build(self, model_cfg, vocab, seed: int = 0) -> DelayedCodecLM:
        return build_delayed(self._backbone(model_cfg), ValleLayout.from_vocab(vocab),
                             model_cfg.get(DELAYS), vocab.size, seed=seed)


class ViolaArch(CodecLM):
    """VioLA: one causal model for ASR, speech and text translation and TTS (task and language
    tokens); a TTS-capable directory holds VALL-E's NAR in ``nar/`` (:func:`attach_nar`)."""

    name = "viola"
    speech_format = "viola_asr"
    submodels = (MAIN, NAR_ROLE)

    model_class = Viola

    def build(self, model_cfg, vocab, seed: int = 0) -> Viola:
        return build_viola(self._backbone(model_cfg), ViolaLayout.from_vocab(vocab), vocab.size,
                           seed=seed)

    def generate(self, lm, prompts, sampling, max_new, min_new=None):
        raise ConfigError(f"{lm.dir}: a viola model does tasks; use speechlm viola --model "
                          f"{lm.dir} --task asr|st|mt ... or speechlm tts --model {lm.dir} ...")


def attach_nar(valle_dir: str | Path, nar_dir: str | Path) -> Path:
    """Copy a trained NAR (a ``valle_nar`` model directory) into a ``valle`` or ``viola`` model
    directory as its ``nar`` sub-model. VALL-E's AR and NAR must read the same ids (the same
    vocabulary and codec); VioLA hands the NAR code values, so the codebooks must agree."""
    from speechlm.models.modeling_valle import load_codec_lm
    from speechlm.models.speech_lm import META_FILE, read_meta

    valle, nar = Path(valle_dir), Path(nar_dir)
    meta = read_meta(valle)
    if meta["architecture"] not in ("valle", "viola"):
        raise ConfigError(f"{valle}: a {meta['architecture']} model, not valle or viola")
    main = load_codec_lm(valle, ValleAR if meta["architecture"] == "valle" else Viola).layout
    nar_layout = load_codec_lm(nar, ValleNAR).layout
    same = main == nar_layout if meta["architecture"] == "valle" \
        else main.books.sizes == nar_layout.books.sizes
    if not same:
        raise ConfigError(f"{nar}: its NAR reads other ids than the AR of {valle} (train both "
                          "on the same token dataset)")
    dst = valle / NAR_ROLE
    dst.mkdir(exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(nar / name, dst / name)
    meta["submodels"] = {MAIN: ".", NAR_ROLE: NAR_ROLE}
    (valle / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return valle


ARCHITECTURES.add("valle", Valle())
ARCHITECTURES.add("valle_nar", ValleNarArch())
ARCHITECTURES.add("codec_delayed", CodecDelayed())
ARCHITECTURES.add("viola", ViolaArch())
