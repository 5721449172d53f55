"""VALL-E's codec language models as HF classes on stock backbones, and their synthesis.

Wang et al. 2023, "Neural Codec Language Models are Zero-Shot Text to Speech Synthesizers".
The inputs are the layouts of :mod:`speechlm.sequences.valle` (vocabulary ids; the ids a model
uses are its config's ``layout``, a :class:`~speechlm.sequences.valle.ValleLayout`):

- :class:`ValleAR`: a stock causal decoder (``AutoModel`` of ``backbone``, Llama by default)
  over ``BOS phonemes [SPEECH] prompt-c0 target-c0 EOS`` with one head over codebook 0's codes
  plus EOS. The loss is the HF ``labels`` convention (``IGNORE`` where none): the format labels
  the target's codebook 0 and EOS, so phonemes and the prompt are context only. VALL-E trains
  on the whole utterance's codebook 0 (a prompt of 0 frames); the format allows either. Text and
  audio share one RoPE position range (VALL-E's separate sinusoidal positions are not
  reproduced; the token ids already tell phonemes from codes).
- :class:`ValleNAR`: the same backbone made bidirectional (``is_causal: false``, forced) over
  ``BOS phonemes [SPEECH]`` (their embeddings), the prompt's frames (the sum of all K codebooks'
  embeddings) and the target's frames (the sum of codebooks ``< j``), plus a learned stage
  embedding of ``j`` at every position; it predicts codebook ``j`` at every target frame. One
  head over the classes of codebooks 1..K-1, sliced to codebook ``j``'s (the same as masking the
  other codebooks' logits), so every parameter is in every step's graph (DDP needs no
  ``find_unused_parameters`` although ranks draw different stages). In training, a stage left
  ``None`` is drawn uniformly from 1..K-1 with torch's RNG, once per batch.
- :class:`DelayedCodecLM`: the second variant, one causal decoder over the delay pattern: at an
  audio step the sum of the K rows' embeddings (a pad where a row has no value), K heads
  (codebook 0's with EOS); :meth:`DelayedCodecLM.generate` samples the K rows step by step and
  undelays.

:func:`synthesize` samples codebook 0 with the AR (KV cache; temperature, top-k, a seed; EOS not
before ``min_frames``, forced at ``max_frames``), then fills codebooks 1..K-1 greedily with the
NAR, stage by stage. :func:`save_valle` / :func:`load_valle` keep the pair in one directory: AR
at the root (the architecture's ``main`` sub-model), NAR in ``nar/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import ModelOutput

from speechlm.errors import ConfigError
from speechlm.sequences.codec import Ints, delayed_codes, musicgen_delays, parallel_codes
from speechlm.sequences.example import IGNORE
from speechlm.sequences.valle import (
    PAD,
    PROMPT,
    TARGET,
    TOKEN,
    ValleLayout,
    delayed_example,
    nar_example,
)

AR_TYPE, NAR_TYPE, DELAYED_TYPE = "speechlm_valle_ar", "speechlm_valle_nar", "speechlm_delayed"
NAR_ROLE = "nar"  # sub-directory of the NAR in a VALL-E model directory


# ---- configs ------------------------------------------------------------------------------------
class CodecLMConfig(PretrainedConfig):
    """A stock backbone config plus the ids the model reads and writes (``layout``)."""

    sub_configs_defaults = {"backbone": SubConfigSpec(config_class=AutoConfig, model_type="llama")}
    causal = True  # what the backbone's attention must be

    backbone: dict | PretrainedConfig | None = None
    layout: dict | None = None  # ValleLayout.to_dict()

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.layout is None:  # a bare config (HF makes some); the model needs a layout
            return
        layout = self.valle_layout
        if layout.max_id >= self.backbone.vocab_size:
            raise ConfigError(f"backbone.vocab_size: {self.backbone.vocab_size} ids, but the "
                              f"layout uses id {layout.max_id}")
        if self.causal and not getattr(self.backbone, "is_causal", True):
            raise ConfigError(f"backbone.is_causal: the {self.model_type} model is causal")
        if not self.causal:
            self.backbone.is_causal = False  # the stock decoder attends both ways

    @property
    def valle_layout(self) -> ValleLayout:
        if self.layout is None:
            raise ConfigError("layout: required (ValleLayout.from_vocab(vocab).to_dict())")
        return ValleLayout.from_dict(self.layout)

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        """The backbone's config (what caches and initialisers look up)."""
        return self.backbone


class ValleARConfig(CodecLMConfig):
    model_type = AR_TYPE


class ValleNARConfig(CodecLMConfig):
    model_type = NAR_TYPE
    causal = False

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.layout is not None and self.valle_layout.n_codebooks < 2:
            raise ConfigError("layout: the NAR predicts codebooks 1..K-1, so K must be >= 2")


class DelayedCodecConfig(CodecLMConfig):
    model_type = DELAYED_TYPE

    delays: list | None = None  # per codebook; None: MusicGen's 0, 1, .., K-1

    @property
    def codebook_delays(self) -> list[int]:
        k = self.valle_layout.n_codebooks
        ds = musicgen_delays(k) if self.delays is None else [int(d) for d in self.delays]
        if len(ds) != k or min(ds) < 0:
            raise ConfigError(f"delays: one delay >= 0 per codebook ({k}), got {self.delays}")
        return ds


@dataclass
class CodecLMOutput(ModelOutput):
    """Loss, logits ((B, L, C), or a tuple of K for the delayed model), KV cache, NAR stage."""

    loss: torch.Tensor | None = None
    logits: Any = None
    cache: Any = None
    stage: int | None = None


# ---- models -------------------------------------------------------------------------------------
class CodecLMBase(PreTrainedModel):
    """The backbone, the layout, and summed per-row input embeddings."""

    config_class = CodecLMConfig
    base_model_prefix = "codec_lm"
    _supports_sdpa = True

    def __init__(self, config: CodecLMConfig) -> None:
        super().__init__(config)
        self.layout = config.valle_layout
        self.backbone = AutoModel.from_config(config.backbone)
        self._no_split_modules = self.backbone._no_split_modules  # FSDP wraps backbone layers

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)

    def embed_rows(self, codes: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
        """Sum over rows of ``codes`` (B, K, L) of the embeddings where ``use`` (B, K, L)."""
        e = self.get_input_embeddings()(codes)  # (B, K, L, H)
        return torch.where(use[..., None], e, 0.0).sum(1)  # (B, L, H): unused rows add exact 0

    def _classes(self, ids: torch.Tensor, k: int, keep: torch.Tensor,
                 eos: bool = False) -> torch.Tensor:
        """Ids -> codebook ``k``'s classes (EOS: the last one, if ``eos``); ``IGNORE`` where not
        ``keep``; a kept id of another range is a ``ValueError``."""
        offset, size = self.layout.books.offsets[k], self.layout.books.sizes[k]
        keep = keep.bool()
        cls = ids - offset
        is_eos = (ids == self.layout.eos_id) if eos else torch.zeros_like(keep)
        bad = keep & ~is_eos & ((cls < 0) | (cls >= size))
        if bad.any():
            raise ValueError(f"a target id {int(ids[bad][0])} is not a code of codebook {k}"
                             f"{' or EOS' if eos else ''}")
        return torch.where(keep, torch.where(is_eos, size, cls), IGNORE)


class ValleAR(CodecLMBase):
    """Causal decoder over phonemes and codebook 0; a head over codebook 0's codes + EOS."""

    config_class = ValleARConfig

    def __init__(self, config: ValleARConfig) -> None:
        super().__init__(config)
        self.head = nn.Linear(config.backbone.hidden_size, self.layout.books.sizes[0] + 1)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                cache: Any = None, use_cache: bool = False) -> CodecLMOutput:
        """``input_ids`` (B, L); ``labels`` (B, L) ids or ``IGNORE`` (t predicts t + 1)."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=position_ids, cache=cache, use_cache=use_cache)
        logits = self.head(out.last_hidden_state)  # (B, L, size0 + 1)
        loss = None
        if labels is not None:
            target = self._classes(labels[:, 1:], 0, labels[:, 1:] != IGNORE, eos=True)
            loss = _mean_ce(logits[:, :-1], target)
        return CodecLMOutput(loss=loss, logits=logits, cache=out.cache if use_cache else None)

    @torch.inference_mode()
    def sample_first(self, phonemes: Ints, prompt: Ints | None, max_frames: int,
                     min_frames: int = 0, temperature: float = 1.0, top_k: int = 0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Codebook 0 of the new frames (T,), T in [min_frames, max_frames]: sampled until
        EOS, which is masked before ``min_frames`` and implied at ``max_frames``."""
        size = self.layout.books.sizes[0]
        ids = _rows(self.layout.head(phonemes), self.layout.code_ids(prompt)[0])
        out = self(ids[None].to(self.device), use_cache=True)
        codes: list[int] = []
        for n in range(max_frames):
            logits = out.logits[0, -1].float().clone()
            if n < min_frames:
                logits[size] = float("-inf")
            c = draw(logits, temperature, top_k, generator)
            if c == size:
                break
            codes.append(c)
            step = torch.tensor([[self.layout.books.offsets[0] + c]], device=self.device)
            out = self(step, cache=out.cache, use_cache=True)
        return torch.tensor(codes, dtype=torch.long)


class ValleNAR(CodecLMBase):
    """Bidirectional encoder: stage ``j`` reads codebooks ``< j`` and predicts codebook ``j``."""

    config_class = ValleNARConfig

    def __init__(self, config: ValleNARConfig) -> None:
        super().__init__(config)
        hidden, sizes = config.backbone.hidden_size, self.layout.books.sizes
        self.stage_embedding = nn.Embedding(len(sizes), hidden)  # row j: stage j (row 0 unused)
        self.head = nn.Linear(hidden, sum(sizes[1:]))  # codebooks 1..K-1's classes, in order
        self.post_init()

    def stage_classes(self, stage: int) -> slice:
        """The head's outputs that are codebook ``stage``'s classes."""
        start = sum(self.layout.books.sizes[1:stage])
        return slice(start, start + self.layout.books.sizes[stage])

    def forward(self, codes: torch.Tensor, kinds: torch.Tensor, stage: int | None = None,
                loss_mask: torch.Tensor | None = None) -> CodecLMOutput:
        """``codes`` (B, K, L) ids, ``kinds`` (B, L); logits (B, L, size_stage) and, where
        ``loss_mask`` (B, K, L) is given, the loss on its row ``stage`` at TARGET frames.

        ``stage=None`` draws a stage in training; in eval mode, with ``loss_mask``, the loss is
        the mean over all stages (a held-out loss that does not depend on a draw)."""
        k = self.layout.n_codebooks
        if stage is None and not self.training:
            if loss_mask is None:
                raise ValueError("stage: required outside training (1 .. K-1)")
            # _stage, not self(...): a forward wrapped in one autocast instance (accelerate's
            # mixed precision) must not be re-entered, or its exit leaves autocast on for the
            # whole process
            outs = [self._stage(codes, kinds, j, loss_mask) for j in range(1, k)]
            return CodecLMOutput(loss=torch.stack([o.loss for o in outs]).mean(),
                                 logits=outs[-1].logits, stage=None)
        if stage is None:
            stage = int(torch.randint(1, k, ()))  # one stage per batch, uniform
        return self._stage(codes, kinds, stage, loss_mask)

    def _stage(self, codes: torch.Tensor, kinds: torch.Tensor, stage: int,
               loss_mask: torch.Tensor | None) -> CodecLMOutput:
        """Stage ``stage``'s logits and loss (see :meth:`forward`)."""
        k = self.layout.n_codebooks
        if not 1 <= stage < k:
            raise ValueError(f"stage {stage}: the NAR stages of {k} codebooks are 1..{k - 1}")
        row = torch.arange(k, device=codes.device)[None, :, None]  # (1, K, 1)
        kind = kinds[:, None]  # (B, 1, L)
        use = (((kind == TOKEN) & (row == 0)) | (kind == PROMPT)
               | ((kind == TARGET) & (row < stage)))  # (B, K, L)
        x = self.embed_rows(codes, use) + self.stage_embedding.weight[stage]  # (B, L, H)
        h = self.backbone(inputs_embeds=x, attention_mask=(kinds != PAD).long()).last_hidden_state
        logits = self.head(h)[..., self.stage_classes(stage)]  # (B, L, size_stage)
        loss = None
        if loss_mask is not None:
            keep = (kinds == TARGET) & loss_mask[:, stage]  # (B, L)
            loss = _mean_ce(logits, self._classes(codes[:, stage], stage, keep))
        return CodecLMOutput(loss=loss, logits=logits, stage=stage)

    @torch.inference_mode()
    def fill(self, phonemes: Ints, prompt: Ints | None, first: Ints) -> torch.Tensor:
        """Codes (K, T) of the new frames from their codebook 0 ``first`` (T,): each stage's
        argmax in turn (codebooks not predicted yet are never read)."""
        k, offsets = self.layout.n_codebooks, self.layout.books.offsets
        first = torch.as_tensor(first, dtype=torch.long).reshape(1, -1)  # (1, T)
        target = torch.cat([first, torch.zeros(k - 1, first.shape[1], dtype=torch.long)])
        ex = nar_example(phonemes, prompt, target, self.layout)
        codes = torch.from_numpy(ex.streams["codes"])[None].to(self.device)  # (1, K, L)
        kinds = torch.from_numpy(ex.streams["kinds"])[None].to(self.device)  # (1, L)
        frames = kinds[0] == TARGET
        for j in range(1, k):
            best = self(codes, kinds, stage=j).logits[0].argmax(-1)  # (L,)
            codes[0, j, frames] = best[frames] + offsets[j]
        return parallel_codes(codes[0][:, frames].cpu(), self.layout.books)


class DelayedCodecLM(CodecLMBase):
    """One causal decoder over the delay pattern: K summed rows in, K heads out."""

    config_class = DelayedCodecConfig

    def __init__(self, config: DelayedCodecConfig) -> None:
        super().__init__(config)
        self.delays = config.codebook_delays
        sizes = self.layout.books.sizes
        self.heads = nn.ModuleList(nn.Linear(config.backbone.hidden_size, n + (k == 0))
                                   for k, n in enumerate(sizes))  # codebook 0's: + EOS
        self.post_init()

    def forward(self, codes: torch.Tensor, kinds: torch.Tensor,
                loss_mask: torch.Tensor | None = None, cache: Any = None,
                use_cache: bool = False) -> CodecLMOutput:
        """``codes`` (B, K, L), ``kinds`` (B, L); logits: K tensors (B, L, C_k); the loss is the
        mean over the ``loss_mask`` (B, K, L) entries (step t predicts t + 1). Padding is read
        from ``kinds`` without a cache; stepping with one is for a batch of one."""
        row = torch.arange(self.layout.n_codebooks, device=codes.device)[None, :, None]
        kind = kinds[:, None]  # (B, 1, L)
        use = ((kind == TOKEN) & (row == 0)) | (kind == PROMPT) | (kind == TARGET)  # (B, K, L)
        mask = (kinds != PAD).long() if cache is None else None
        out = self.backbone(inputs_embeds=self.embed_rows(codes, use), attention_mask=mask,
                            cache=cache, use_cache=use_cache)
        logits = tuple(head(out.last_hidden_state) for head in self.heads)  # K x (B, L, C_k)
        loss = None
        if loss_mask is not None:
            nll, kept = 0.0, 0
            for k, lk in enumerate(logits):
                target = self._classes(codes[:, k, 1:], k, loss_mask[:, k, 1:], eos=k == 0)
                nll = nll + F.cross_entropy(lk[:, :-1].float().transpose(1, 2), target,
                                            ignore_index=IGNORE, reduction="sum")
                kept = kept + (target != IGNORE).sum()
            loss = nll / kept.clamp(min=1)
        return CodecLMOutput(loss=loss, logits=logits, cache=out.cache if use_cache else None)

    @torch.inference_mode()
    def generate(self, phonemes: Ints, prompt: Ints | None, max_frames: int,
                 min_frames: int = 0, temperature: float = 1.0, top_k: int = 0,
                 seed: int = 0) -> torch.Tensor:
        """Codes (K, T) of the new frames, undelayed; T in [min_frames, max_frames].

        Every row is sampled at each step where it holds a new frame (the prompt's own values
        are fed where a delayed row still reads the prompt, pads where it has none); codebook
        0's EOS (masked before ``min_frames``, implied at ``max_frames``) ends the frames, and
        the delayed rows run on for their delay.
        """
        gen = torch.Generator().manual_seed(seed)
        lay, ds, k = self.layout, self.delays, self.layout.n_codebooks
        span, size0 = max(ds), lay.books.sizes[0]
        tp = lay.code_ids(prompt).shape[1]  # prompt frames
        ex = delayed_example(phonemes, prompt, torch.zeros(k, 0, dtype=torch.long), lay, ds,
                             eos=False)
        codes = torch.from_numpy(ex.streams["codes"])  # (K, P + Tp + D)
        kinds = torch.from_numpy(ex.streams["kinds"])
        fed = codes.shape[1] - span  # steps fed at the start: tokens and the prompt's steps
        tail = codes[:, fed:]  # (K, D): the prompt's values of the delayed rows, or pads
        out = self(codes[None, :, :fed].to(self.device), kinds[None, :fed].to(self.device),
                   use_cache=True)
        steps, end = [], None  # end: new frames, once codebook 0 has ended
        for s in count():
            col = torch.full((k,), lay.pad_id, dtype=torch.long)
            if end is None:
                logits = out.logits[0][0, -1].float().clone()
                if s < min_frames:
                    logits[size0] = float("-inf")
                c = size0 if s == max_frames else draw(logits, temperature, top_k, gen)
                end = s if c == size0 else None
                col[0] = lay.eos_id if c == size0 else lay.books.offsets[0] + c
            for r in range(1, k):
                frame = s - ds[r]  # new frame index this row holds at step s
                if frame < 0:
                    col[r] = tail[r, s]
                elif end is None or frame < end:
                    col[r] = lay.books.offsets[r] + draw(out.logits[r][0, -1].float(),
                                                         temperature, top_k, gen)
            steps.append(col)
            if end is not None and s >= end + max(span, 1) - 1:
                break
            out = self(col[None, :, None].to(self.device),
                       torch.tensor([[TARGET]], device=self.device), cache=out.cache,
                       use_cache=True)
        layout = torch.cat([codes[:, fed - tp: fed], torch.stack(steps, 1)], 1)  # (K, Tp + S)
        ids = delayed_codes(layout[:, : tp + end + span], ds)[:, tp:]  # (K, T)
        return parallel_codes(ids, lay.books)


def _mean_ce(logits: torch.Tensor, target: torch.Tensor,
             weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the non-``IGNORE`` targets (0 when there are none); with
    ``weight`` (one per class), the mean weighted by each target's class weight."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=IGNORE,
                          weight=weight, reduction="sum")
    keep = target != IGNORE
    if weight is None:
        return nll / keep.sum().clamp(min=1)
    return nll / weight[target[keep]].sum().clamp(min=1e-12)


def _rows(*parts: Any) -> torch.Tensor:
    return torch.cat([torch.as_tensor(p, dtype=torch.long).reshape(-1) for p in parts])


# ---- sampling and synthesis ------------------------------------------------------------------
def draw(logits: torch.Tensor, temperature: float, top_k: int,
         generator: torch.Generator | None) -> int:
    """One class from (C,) logits: argmax at temperature 0 (or top-k 1), else a draw at
    ``temperature`` among the ``top_k`` best (0: all)."""
    from speechlm.models.multistream import sample

    if temperature <= 0 or top_k == 1:
        return int(logits.argmax())
    return int(sample(logits[None], temperature, generator, top_k)[0])


def synthesize(ar: ValleAR, nar: ValleNAR, phonemes: Ints, prompt_codes: Ints | None,
               max_frames: int, min_frames: int = 0, temperature: float = 1.0, top_k: int = 0,
               seed: int = 0) -> torch.Tensor:
    """Codes (K, T) of new speech in the prompt's voice, T in [min_frames, max_frames].

    ``phonemes``: phoneme indices of the prompt's transcript followed by the text to say (as
    VALL-E's inference: the AR continues the prompt's codebook 0); ``prompt_codes`` (K, Tp) the
    prompt's codes (None or Tp = 0: no acoustic prompt). The AR samples codebook 0 with a
    generator seeded by ``seed``; the NAR fills codebooks 1..K-1 greedily.
    """
    if not 0 <= min_frames <= max_frames:
        raise ValueError(f"need 0 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    if ar.layout != nar.layout:
        raise ConfigError("the AR and NAR models read different id layouts")
    gen = torch.Generator().manual_seed(seed)
    first = ar.sample_first(phonemes, prompt_codes, max_frames, min_frames, temperature, top_k,
                            gen)
    return nar.fill(phonemes, prompt_codes, first)


# ---- construction, saving and loading ------------------------------------------------------
def _backbone(cfg: Mapping[str, Any], layout: ValleLayout, vocab_size: int | None) -> dict:
    return {"model_type": "llama", **cfg, "vocab_size": vocab_size or layout.max_id + 1,
            "pad_token_id": layout.pad_id, "bos_token_id": layout.bos_id,
            "eos_token_id": layout.eos_id}


def build_codec_lm(cls: type, backbone: Mapping[str, Any], layout: ValleLayout,
                   vocab_size: int | None = None, seed: int = 0, **config: Any) -> Any:
    """One randomly initialised model of this module (``ValleAR``, ``ValleNAR`` or
    ``DelayedCodecLM``); ``config`` adds keys of its config class (``delays``)."""
    torch.manual_seed(seed)
    return cls(cls.config_class(backbone=_backbone(backbone, layout, vocab_size),
                                layout=layout.to_dict(), **config))


def build_valle(backbone: Mapping[str, Any], layout: ValleLayout, vocab_size: int | None = None,
                nar_backbone: Mapping[str, Any] | None = None,
                seed: int = 0) -> tuple[ValleAR, ValleNAR]:
    """A randomly initialised AR and NAR (the NAR's backbone keys default to the AR's)."""
    torch.manual_seed(seed)
    ar = ValleAR(ValleARConfig(backbone=_backbone(backbone, layout, vocab_size),
                               layout=layout.to_dict()))
    nar_cfg = _backbone(backbone if nar_backbone is None else nar_backbone, layout, vocab_size)
    return ar, ValleNAR(ValleNARConfig(backbone=nar_cfg, layout=layout.to_dict()))


def build_delayed(backbone: Mapping[str, Any], layout: ValleLayout,
                  delays: Sequence[int] | None = None, vocab_size: int | None = None,
                  seed: int = 0) -> DelayedCodecLM:
    """A randomly initialised delay-pattern model (``delays``: MusicGen's by default)."""
    return build_codec_lm(DelayedCodecLM, backbone, layout, vocab_size, seed,
                          delays=None if delays is None else list(delays))


def save_valle(out_dir: str | Path, ar: ValleAR, nar: ValleNAR) -> Path:
    """The pair in one directory: the AR at the root, the NAR in ``nar/`` (safetensors)."""
    out = Path(out_dir)
    ar.save_pretrained(out)
    nar.save_pretrained(out / NAR_ROLE)
    return out


def load_valle(path: str | Path, device: str = "cpu") -> tuple[ValleAR, ValleNAR]:
    """The pair :func:`save_valle` wrote, through ``AutoModel``, in eval mode."""
    return (load_codec_lm(path, ValleAR, device),
            load_codec_lm(Path(path) / NAR_ROLE, ValleNAR, device))


def load_codec_lm(path: str | Path, cls: type, device: str = "cpu") -> Any:
    """One model of this module through ``AutoModel`` (safetensors only), checked to be ``cls``."""
    from speechlm.pretrained import load_pretrained

    model = load_pretrained(AutoModel, path, cls.__name__)
    if not isinstance(model, cls):
        raise ConfigError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
    return model.to(device).eval()


for _config, _model in ((ValleARConfig, ValleAR), (ValleNARConfig, ValleNAR),
                        (DelayedCodecConfig, DelayedCodecLM)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
