"""Self-supervised speech encoders through ``transformers``: HuBERT, wav2vec2, WavLM, w2v-BERT 2.0,
and CPC (``speechlm.ssl.cpc``, registered with ``AutoModel``).

Loaded with ``AutoModel.from_pretrained`` from a hub id or a local folder; the encoder is cut after
the chosen hidden layer (the layers above it are never run, as in textlesslib's feature readers).
Waveforms are sorted by length and batched under a sample budget; long audio is cut into chunks
of at most ``max_chunk_seconds`` whose frames are concatenated.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from speechlm.batching import length_buckets
from speechlm.errors import ConfigError

# kind -> config.model_type it must load as
MODEL_TYPES = {"hubert": "hubert", "wav2vec2": "wav2vec2", "wavlm": "wavlm",
               "w2v-bert": "wav2vec2-bert", "cpc": "speechlm_cpc"}
ENCODER_DIR = "encoder"


class SSLEncoder:
    """``__call__(wavs) -> list[(T, D) float32 tensors]``: hidden states of layer ``layer``.

    The tensors are on the model's device (a GPU when there is one).
    """

    def __init__(self, kind: str, model_ref: str, layer: int | None = None,
                 max_chunk_seconds: float = 30.0, batch_seconds: float = 160.0,
                 device: str | None = None, sample_rate: int = 16000) -> None:
        from transformers import AutoConfig, AutoModel

        from speechlm.pretrained import load_pretrained

        if kind not in MODEL_TYPES:
            raise ConfigError(f"encoder kind '{kind}' is unknown; valid: {', '.join(MODEL_TYPES)}")
        self.kind, self.model_ref, self.sample_rate = kind, model_ref, sample_rate
        if kind == "cpc":
            import speechlm.ssl.cpc  # noqa: F401  (registers its config and model with Auto*)
        try:
            config = AutoConfig.from_pretrained(model_ref)
        except (OSError, ValueError) as e:
            raise ConfigError(f"model: cannot load '{model_ref}' ({str(e).splitlines()[0]}); give "
                              "a local folder with config.json + weights or a hub id") from e
        if config.model_type != MODEL_TYPES[kind]:
            raise ConfigError(f"model: '{model_ref}' is a '{config.model_type}' model, not "
                              f"'{MODEL_TYPES[kind]}' as kind '{kind}' needs")
        n_layers = config.num_hidden_layers
        self.layer = n_layers if layer is None else int(layer)
        if not 0 <= self.layer <= n_layers:
            raise ConfigError(f"layer: {self.layer} is outside 0..{n_layers} for '{model_ref}'")
        config.num_hidden_layers = self.layer  # build only the layers we read
        from transformers.utils import logging as hf_logging

        # the layers above ``layer`` are left out on purpose: silence the "unexpected keys" report
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            self.model = load_pretrained(AutoModel, model_ref, f"{kind} encoder",
                                         config=config).eval()
        finally:
            hf_logging.set_verbosity(verbosity)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.dim = config.hidden_size
        self.max_chunk = int(max_chunk_seconds * sample_rate)
        self.batch_samples = int(batch_seconds * sample_rate)
        self.max_chunk_seconds, self.batch_seconds = max_chunk_seconds, batch_seconds
        self.feature_extractor = None
        if kind == "w2v-bert":
            self.feature_extractor = _fbank_extractor(model_ref)
            stride = self.feature_extractor.stride
            self.frame_rate = sample_rate / (stride * 160)
            # fbank windows of 400 samples every 160, ``stride`` of them stacked into one frame
            self.frame_offset = ((400 - 1) / 2 + 160 * (stride - 1) / 2) / sample_rate
            self.use_mask = True
        else:
            self.frame_rate = sample_rate / int(np.prod(config.conv_stride))
            self.frame_offset = conv_frame_offset(config.conv_kernel, config.conv_stride,
                                                  sample_rate)
            # group-norm feature encoders (HuBERT/wav2vec2 base) must not get a mask: zero padding
            self.use_mask = getattr(config, "feat_extract_norm", "layer") == "layer"

    @classmethod
    def create(cls, kind: str, model: str | None = None, **opts) -> SSLEncoder:
        if model is None:
            raise ConfigError(f"model: kind '{kind}' needs model=<hub id or local folder>")
        return cls(kind, str(model), **opts)

    @classmethod
    def from_dict(cls, spec: dict, directory: Path) -> SSLEncoder:
        ref = spec["model"]
        if (directory / ref).is_dir():  # the copy saved inside the tokenizer folder
            ref = str(directory / ref)
        return cls(spec["kind"], ref, layer=spec["layer"],
                   max_chunk_seconds=spec.get("max_chunk_seconds", 30.0),
                   batch_seconds=spec.get("batch_seconds", 160.0))

    def to_dict(self) -> dict:
        local = Path(self.model_ref).is_dir()
        return {"kind": self.kind, "model": ENCODER_DIR if local else self.model_ref,
                "source": self.model_ref, "layer": self.layer, "frame_rate": self.frame_rate,
                "dim": self.dim, "sample_rate": self.sample_rate,
                "max_chunk_seconds": self.max_chunk_seconds, "batch_seconds": self.batch_seconds}

    def save_weights(self, out_dir: Path) -> None:
        """Copy a local encoder folder into the tokenizer so that it is self-contained.

        Only its files: the model is ``config.json`` + weights (+ feature extractor config);
        sub-folders of a training output (``checkpoints/``, ``labels/``) are not part of it.
        """
        src = Path(self.model_ref)
        dst = out_dir / ENCODER_DIR
        if src.is_dir() and src.resolve() != dst.resolve():
            dst.mkdir(parents=True, exist_ok=True)
            for f in src.iterdir():
                if f.is_file():
                    shutil.copy2(f, dst / f.name)

    def n_frames(self, n_samples: int) -> int:
        if self.feature_extractor is not None:
            # Kaldi fbank: 25 ms windows every 10 ms, then ``stride`` frames stacked into one
            return max(0, 1 + (n_samples - 400) // 160) // self.feature_extractor.stride
        return int(self.model._get_feat_extract_output_lengths(torch.tensor(n_samples)))

    @torch.inference_mode()
    def __call__(self, wavs: list[np.ndarray]) -> list[torch.Tensor]:
        # cut long audio into chunks; pieces[k] = (utterance index, chunk)
        pieces = [(i, w[s : s + self.max_chunk]) for i, w in enumerate(wavs)
                  for s in range(0, max(len(w), 1), self.max_chunk)]
        outs: list[torch.Tensor | None] = [None] * len(pieces)
        lengths = [len(p[1]) for p in pieces]
        for batch in length_buckets(lengths, len(pieces), self.batch_samples):
            for k, h in zip(batch, self.forward([pieces[k][1] for k in batch]), strict=True):
                outs[k] = h
        per_utt: list[list[torch.Tensor]] = [[] for _ in wavs]
        for (i, _), h in zip(pieces, outs, strict=True):
            per_utt[i].append(h)
        return [torch.cat(hs) if len(hs) > 1 else hs[0] for hs in per_utt]

    def forward(self, wavs: list[np.ndarray]) -> list[torch.Tensor]:
        """One padded batch -> the chosen layer's frames of each waveform (float32).

        Frames stay on the encoder's device, so k-means assignment runs there too.
        """
        if self.feature_extractor is not None:
            inputs = self.feature_extractor(wavs, sampling_rate=self.sample_rate,
                                            return_tensors="pt", padding=True)
            lengths = inputs["attention_mask"].sum(1).tolist()
        else:
            longest = max(len(w) for w in wavs)
            x = torch.zeros(len(wavs), longest)  # (B, L)
            mask = torch.zeros(len(wavs), longest, dtype=torch.long)
            for b, w in enumerate(wavs):
                x[b, : len(w)] = torch.from_numpy(np.asarray(w, np.float32))
                mask[b, : len(w)] = 1
            inputs = {"input_values": x}
            if self.use_mask:
                inputs["attention_mask"] = mask
            lengths = [self.n_frames(len(w)) for w in wavs]
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        out = self.model(**inputs, output_hidden_states=True)
        h = out.hidden_states[self.layer].float()  # (B, T, D), on the encoder's device
        return [h[b, : lengths[b]] for b in range(len(wavs))]


def conv_frame_offset(kernels: tuple[int, ...], strides: tuple[int, ...],
                      sample_rate: int) -> float:
    """Seconds from the start of the audio to the centre of a conv stack's first frame.

    Frame t sees samples ``t * prod(strides)`` onwards over the stack's receptive field
    (400 samples for HuBERT / wav2vec 2.0), so it is centred half a field later.
    """
    field, jump = 1, 1
    for k, s in zip(kernels, strides, strict=True):
        field += (k - 1) * jump
        jump *= s
    return (field - 1) / 2 / sample_rate


def _fbank_extractor(model_ref: str):
    """The model's own feature extractor, or the w2v-BERT 2.0 default (80 fbank, stride 2)."""
    from transformers import AutoFeatureExtractor, SeamlessM4TFeatureExtractor

    try:
        return AutoFeatureExtractor.from_pretrained(model_ref)
    except (OSError, ValueError):
        return SeamlessM4TFeatureExtractor()
