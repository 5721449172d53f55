"""Acoustic tokens from neural codecs through ``transformers``: EnCodec, Mimi and DAC.

``encode`` gives ``codes`` (K x T int64) at the codec's frame rate with K = ``n_codebooks``
(the first K residual codebooks); ``decode`` turns codes back into audio. Utterances are coded one
at a time, so codes never depend on what an utterance was batched with.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import torch

from speechlm.errors import ConfigError
from speechlm.tokenizers.base import Tokenizer
from speechlm.tokenizers.streams import Streams

MODEL_TYPES = {"encodec": "encodec", "mimi": "mimi", "dac": "dac"}
CODEC_DIR = "codec"


class CodecTokenizer(Tokenizer):
    """A ``transformers`` codec model behind the tokenizer protocol."""

    def __init__(self, kind: str, model_ref: str, n_codebooks: int | None = None,
                 device: str | None = None) -> None:
        from transformers import AutoConfig, AutoModel

        from speechlm.pretrained import load_pretrained

        if kind not in MODEL_TYPES:
            raise ConfigError(f"codec kind '{kind}' is unknown; valid: {', '.join(MODEL_TYPES)}")
        try:
            config = AutoConfig.from_pretrained(model_ref)
        except (OSError, ValueError) as e:
            raise ConfigError(f"model: cannot load '{model_ref}' ({str(e).splitlines()[0]})") from e
        if config.model_type != MODEL_TYPES[kind]:
            raise ConfigError(f"model: '{model_ref}' is a '{config.model_type}' model, "
                              f"not '{kind}'")
        if kind == "encodec" and (config.chunk_length_s or config.normalize):
            # the 48 kHz EnCodec codes overlapping chunks with per-chunk scales: one K x T code
            # matrix cannot hold it, so it is refused rather than decoded wrongly
            raise ConfigError(f"model: '{model_ref}' is a chunked/normalised EnCodec (48 kHz); "
                              "use a non-chunked one such as facebook/encodec_24khz")
        self.kind, self.model_ref = kind, model_ref
        self.model = load_pretrained(AutoModel, model_ref, f"{kind} codec").eval()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.sample_rate = int(config.sampling_rate)
        self.max_codebooks = _max_codebooks(kind, config)
        self.n_codebooks = self.max_codebooks if n_codebooks is None else int(n_codebooks)
        if not 1 <= self.n_codebooks <= self.max_codebooks:
            raise ConfigError(f"n_codebooks: {self.n_codebooks} is outside 1..{self.max_codebooks}"
                              f" for '{model_ref}'")
        self.n_units = int(config.codebook_size)  # codes per codebook
        self.hop = _hop_length(kind, config)
        self.frame_rate = self.sample_rate / self.hop
        self._bandwidth = (_encodec_bandwidth(config, self.n_codebooks)
                           if kind == "encodec" else None)

    @classmethod
    def create(cls, kind: str, model: str | None = None, **opts) -> CodecTokenizer:
        if model is None:
            raise ConfigError(f"model: codec kind '{kind}' needs model=<hub id or local folder>")
        return cls(kind, str(model), **opts)

    @torch.inference_mode()
    def encode(self, waveforms: list[np.ndarray], sample_rate: int,
               speakers: list[str | None] | None = None) -> list[Streams]:
        out = []
        for w in self.resample(waveforms, sample_rate):
            x = torch.from_numpy(w)[None, None].to(self.device)  # (1, 1, L)
            if self.kind == "encodec":
                codes = self.model.encode(x, bandwidth=self._bandwidth).audio_codes[0, 0]
            elif self.kind == "mimi":
                codes = self.model.encode(x, num_quantizers=self.n_codebooks).audio_codes[0]
            else:
                codes = self.model.encode(x, n_quantizers=self.n_codebooks).audio_codes[0]
            codes = codes[: self.n_codebooks].long().cpu().numpy()  # (K, T)
            out.append(Streams(self.frame_rate, codes=codes))
        return out

    @torch.inference_mode()
    def decode(self, streams: list[Streams]) -> list[np.ndarray]:
        out = []
        for s in streams:
            if s.codes is None:
                raise ConfigError("decode: this record has no 'codes' stream")
            codes = torch.as_tensor(s.codes, dtype=torch.long, device=self.device)[None]  # (1,K,T)
            if self.kind == "encodec":
                wav = self.model.decode(codes[None], [None]).audio_values
            elif self.kind == "mimi":
                wav = self.model.decode(codes).audio_values
            else:
                wav = self.model.decode(audio_codes=codes).audio_values
            out.append(wav.reshape(-1).float().cpu().numpy())
        return out

    def spec(self) -> dict:
        local = Path(self.model_ref).is_dir()
        return {"class": "codec", "kind": self.kind,
                "model": CODEC_DIR if local else self.model_ref,
                "source": self.model_ref, "n_units": self.n_units,
                "n_codebooks": self.n_codebooks, "frame_rate": self.frame_rate,
                "sample_rate": self.sample_rate}

    def save_weights(self, out_dir: Path) -> None:
        src, dst = Path(self.model_ref), out_dir / CODEC_DIR
        if src.is_dir() and src.resolve() != dst.resolve():
            # a codec trained here (`speechlm codec train`) keeps its training state beside the
            # weights: the tokenizer needs the weights only
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
                "checkpoints", "log.jsonl", "errors.jsonl", "metrics.json", "train_config.json"))

    @classmethod
    def from_spec(cls, spec: dict, directory: Path) -> CodecTokenizer:
        ref = spec["model"]
        if (directory / ref).is_dir():
            ref = str(directory / ref)
        return cls(spec["kind"], ref, n_codebooks=spec["n_codebooks"])


def _max_codebooks(kind: str, config) -> int:
    if kind == "encodec":
        return _encodec_codebooks(config, max(config.target_bandwidths))
    if kind == "mimi":
        return int(config.num_quantizers)
    return int(config.n_codebooks)


def _hop_length(kind: str, config) -> int:
    if kind == "encodec":
        return int(np.prod(config.upsampling_ratios))
    if kind == "mimi":
        return int(round(config.sampling_rate / config.frame_rate))
    return int(config.hop_length)


def _encodec_codebooks(config, bandwidth: float) -> int:
    """EnCodec's codebook count at ``bandwidth`` kbps: bits per second over bits per frame."""
    frame_rate = math.ceil(config.sampling_rate / np.prod(config.upsampling_ratios))
    bits = math.log2(config.codebook_size)
    return max(1, int(bandwidth * 1000 // (frame_rate * bits)))


def _encodec_bandwidth(config, n_codebooks: int) -> float:
    """The smallest target bandwidth that yields at least ``n_codebooks`` codebooks."""
    for bw in sorted(config.target_bandwidths):
        if _encodec_codebooks(config, bw) >= n_codebooks:
            return bw
    return max(config.target_bandwidths)
