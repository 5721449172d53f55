"""``DuplexLM``: a frame-synchronous full-duplex speech LM (LSLM / Moshi style) on a stock Llama.

Ma et al. 2024, "Language Model Can Listen While Speaking" (LSLM); Défossez et al. 2024, "Moshi".

At every frame ``t`` (50 Hz) the model reads three streams and predicts two:

- **in**: ``listen[t]``, the user's unit at ``t`` (the listening channel); ``speak_in[t]``, the
  model's own unit at ``t - 1``; ``text_in[t]``, its own text/control token at ``t - 1`` (both
  BOS at ``t = 0``);
- **out**: logits over its own unit at ``t`` (``n_units`` classes) and over its text/control
  token at ``t`` (``n_text`` classes; ``pad_text_id``, 0, means "no new word at this frame").

The caller shifts the streams (:func:`shift_right` does it for a whole training window); the
model never does. Units are ``0 .. n_units - 1``; id ``n_units`` is BOS for the speak stream and
padding for the listen stream (:attr:`DuplexConfig.speak_bos_id`, ``listen_pad_id``), so those two
tables have ``n_units + 1`` rows. The text vocabulary is the caller's; ``text_vocab`` in the
config carries its strings with the checkpoint.

**Listening encoder** (``listen_encoder`` in the config). As in LSLM, every fusion is fed by a
streaming (causal) encoder of the listening channel, so that what is fused at ``t`` summarises
everything the user said up to ``t``, not only the current unit:

- ``gru`` (the default): one unidirectional GRU layer (hidden to hidden) over the listen
  embeddings ``e``, added as a residual: the listen features are ``e + gru(e)``. The GRU is
  initialised small (normal weights with the backbone's ``initializer_range``, zero biases), so
  the features start close to the embeddings;
- ``none``: the features are the bare embeddings ``e`` (what models saved before the key existed
  run: a saved config without ``listen_encoder`` loads as ``none``).

**Fusion of the listening channel** (LSLM compares the three; ``fusion`` in the config):

- ``early``: the listen features are added to the input embedding (speak + text embeddings)
  before the first block;
- ``middle``: the listen features are added to the input of *every* block (a forward pre-hook on
  each stock decoder layer; the features travel as a keyword that ``LlamaModel`` hands to its
  layers, and the hook takes it out before the layer runs), so the backbone and its KV cache
  stay stock;
- ``late``: the listen features, through a Linear, are added to the final hidden state (after
  the backbone's norm) just before the heads: the backbone never sees the user. With ``none``,
  ``listen[t]`` changes the outputs at ``t`` only; with ``gru`` it reaches every later frame
  through the encoder's state.

The backbone is ``transformers.LlamaModel`` fed ``inputs_embeds``; its own token table is never
read (1 row, dropped). The loss is the speak cross-entropy plus ``text_weight`` times the text
cross-entropy, each a mean over its non-ignored (``-100``) frames (0 when there are none); with
``text_loss_weights`` the text one is a mean weighted by each frame's token class.

Padding goes on the right (``attention_mask``): the GRU runs over the padded frames too, but
they come after every real frame, so they change nothing there.

**Transcript** (``n_transcript`` > 0, training only): a third head on the final hidden state
predicts the word being heard on the listening channel at each frame (``transcript_vocab``),
and ``transcript_weight`` times its cross-entropy joins the loss. It is an auxiliary target that
makes the model transcribe what it hears; it is never an input, and streaming does not compute
it.

**Streaming.** ``with model.streaming(B) as state:`` then ``model.step(state, listen, speak_prev,
text_prev)`` once per frame, with (B,) ids, gives the logits of that frame, equal to the training
forward's. The state (:class:`DuplexState`) holds the stock ``DynamicCache``, its length in
frames, those frames' inputs and listen features, and the GRU's state after the last frame.
Streams are unbounded: when the cache holds ``max_position_embeddings`` frames and another
arrives, the oldest half is dropped: a fresh cache is prefilled from the most recent
``max_position_embeddings // 2 - 1`` frames of the history plus the new one, at positions from 0
again, as a training window starts. The GRU does *not* restart there: it is a recurrent summary
of everything heard since the stream began, so it keeps stepping from its state, and the
re-prefilled frames reuse the listen features stored when they arrived (the GRU is not rerun
over the window). What "equal" means after a re-prefill: from the re-prefill at frame ``t`` of a
window of frames ``s..t`` until the next one, the logits at frame ``u`` equal, up to float
rounding, ``fused_logits(F[:, s:u+1], speak_in[:, s:u+1], text_in[:, s:u+1])[:, -1]`` where
``F = listen_features(listen[:, :u+1])[0]`` are the features of the GRU run from the stream's
first frame: the backbone sees the window alone, at positions from 0, and the listening channel
sees the whole stream. With ``none`` the features are per-frame, so that is also the training
forward over the window alone, ``forward(listen[:, s:u+1], ...)``; with ``gru`` it is not (that
would restart the GRU at ``s``). Re-prefilling
costs one forward over half the context once every ``max_position_embeddings // 2`` frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    DynamicCache,
    LlamaModel,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import ModelOutput

from speechlm.errors import ConfigError
from speechlm.models.modeling_valle import _mean_ce

DUPLEX_TYPE = "speechlm_duplex"
FUSIONS = ("early", "middle", "late")
LISTEN_ENCODERS = ("none", "gru")
# what a saved config without ``listen_encoder`` ran: it was written before the key existed
LEGACY_LISTEN_ENCODER = "none"
LISTEN_KEY = "duplex_listen_embeds"  # the keyword that carries middle fusion to each layer
# the backbone reads embeddings only: its token table is one row and it has no special ids
_NO_VOCAB = {"vocab_size": 1, "pad_token_id": None, "bos_token_id": None, "eos_token_id": None,
             "tie_word_embeddings": False}
_BACKBONE_SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers",
                   "num_attention_heads", "num_key_value_heads")


class DuplexConfigError(ConfigError, ValueError):
    """An invalid :class:`DuplexConfig` value: a ``ConfigError`` (the CLI prints it as one line)
    that is also the ``ValueError`` HF config checks raise."""


# ---- config -------------------------------------------------------------------------------------
class DuplexConfig(PretrainedConfig):
    """The backbone's Llama config (``backbone``) plus the duplex streams' sizes, the listening
    encoder and the fusion."""

    model_type = DUPLEX_TYPE
    sub_configs_defaults = {"backbone": SubConfigSpec(config_class=AutoConfig, model_type="llama")}

    backbone: dict | PretrainedConfig | None = None  # LlamaConfig kwargs
    n_units: int = 500  # units 0..n_units-1; n_units is speak BOS and listen padding
    n_text: int = 2  # text/control vocabulary size (the caller's vocabulary)
    text_vocab: list[str] | None = None  # that vocabulary's strings, carried with the model
    fusion: str = "early"  # where the listening channel joins: early, middle or late
    # the streaming encoder of the listening channel: gru or none (bare embeddings). New configs
    # get gru; a saved config without the key loads as none (see from_dict)
    listen_encoder: str = "gru"
    text_weight: float = 1.0  # weight of the text cross-entropy in the loss
    # the transcript head (training only; 0: none) over transcript_vocab, and its loss weight
    n_transcript: int = 0
    transcript_vocab: list[str] | None = None
    transcript_weight: float = 1.0
    # training only: class weights of the text cross-entropy by token string (others 1), e.g.
    # the state tokens, rare decision frames among thousands of <pad> (the duplex objective's
    # state_weight sets them)
    text_loss_weights: dict[str, float] | None = None
    text_bos_id: int = 1  # text_in at t = 0
    pad_text_id: int = 0  # "no new word at this frame"
    # the unit a silent speaker holds in the training data, written by the duplex objective so
    # that a loaded model knows what its own silence is (as the dialogue LM's config does)
    silence_unit: int | None = None

    def __post_init__(self, **kwargs) -> None:
        b = self.backbone if self.backbone is not None else {}
        b = b if isinstance(b, dict) else b.to_dict()
        self.backbone = {**b, **_NO_VOCAB}
        super().__post_init__(**kwargs)
        bb = self.backbone
        if bb.model_type != "llama":
            raise DuplexConfigError(f"backbone.model_type: the duplex LM runs a stock "
                                    f"LlamaModel, got {bb.model_type!r}")
        if self.fusion not in FUSIONS:
            raise DuplexConfigError(f"fusion: must be one of {', '.join(map(repr, FUSIONS))}, "
                                    f"got {self.fusion!r}")
        if self.listen_encoder not in LISTEN_ENCODERS:
            raise DuplexConfigError(f"listen_encoder: must be one of "
                                    f"{', '.join(map(repr, LISTEN_ENCODERS))}, "
                                    f"got {self.listen_encoder!r}")
        for key in ("n_units", "n_text"):
            _check(key, getattr(self, key), lambda v: v >= 1, "a positive integer")
        for key in _BACKBONE_SIZES:
            _check(f"backbone.{key}", getattr(bb, key), lambda v: v >= 1, "a positive integer")
        # streaming keeps half the context after a re-prefill: at least one frame
        _check("backbone.max_position_embeddings", bb.max_position_embeddings,
               lambda v: v >= 2, "an integer >= 2")
        for key in ("text_bos_id", "pad_text_id"):
            _check(key, getattr(self, key), lambda v: 0 <= v < self.n_text,
                   f"a text id in [0, n_text={self.n_text})")
        if self.silence_unit is not None:
            _check("silence_unit", self.silence_unit, lambda v: 0 <= v < self.n_units,
                   f"a unit in [0, n_units={self.n_units}) (or null)")
        for key in ("text_weight", "transcript_weight"):
            w = getattr(self, key)
            if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
                raise DuplexConfigError(f"{key}: must be a number >= 0, got {w!r}")
        _check("n_transcript", self.n_transcript, lambda v: v >= 0, "an integer >= 0")
        if self.transcript_vocab is not None and len(self.transcript_vocab) != self.n_transcript:
            raise DuplexConfigError(f"transcript_vocab: must be n_transcript="
                                    f"{self.n_transcript} strings, got "
                                    f"{len(self.transcript_vocab)} items")
        if self.text_vocab is not None and (
                len(self.text_vocab) != self.n_text
                or not all(isinstance(s, str) for s in self.text_vocab)):
            raise DuplexConfigError(f"text_vocab: must be n_text={self.n_text} strings, got "
                                    f"{len(self.text_vocab)} items")
        for tok, v in (self.text_loss_weights or {}).items():
            if self.text_vocab is None or tok not in self.text_vocab:
                raise DuplexConfigError(f"text_loss_weights: {tok!r} is not in text_vocab")
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                raise DuplexConfigError(f"text_loss_weights.{tok}: must be a number > 0, "
                                        f"got {v!r}")

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> DuplexConfig:
        """The loading path (``from_pretrained``, ``AutoConfig``): a dict without
        ``listen_encoder`` was saved before the key existed, by a model that had no listening
        encoder (and whose weights hold none), so it loads as ``"none"``, not as the new default.
        Saving always writes the key (it is not a ``PretrainedConfig`` default)."""
        if "listen_encoder" not in config_dict and "listen_encoder" not in kwargs:
            config_dict = {**config_dict, "listen_encoder": LEGACY_LISTEN_ENCODER}
        return super().from_dict(config_dict, **kwargs)

    @property
    def speak_bos_id(self) -> int:
        """``speak_in`` at ``t = 0``: the row after the units."""
        return self.n_units

    @property
    def listen_pad_id(self) -> int:
        """``listen`` where the user's unit is unknown (e.g. padding): the same extra row."""
        return self.n_units

    def get_text_config(self, decoder=None, encoder=None) -> PretrainedConfig:
        """The backbone's config (what caches and initialisers look up)."""
        return self.backbone


def _check(key: str, value: Any, ok: Any, what: str) -> None:
    """Raise naming ``key`` unless ``value`` is an int (not a bool) for which ``ok`` holds."""
    if isinstance(value, bool) or not isinstance(value, int) or not ok(value):
        raise DuplexConfigError(f"{key}: must be {what}, got {value!r}")


# ---- outputs and streaming state ----------------------------------------------------------------
@dataclass
class DuplexOutput(ModelOutput):
    """Total loss and its parts; logits (B, T, n_units) and (B, T, n_text)."""

    loss: torch.Tensor | None = None
    speak_logits: torch.Tensor | None = None
    text_logits: torch.Tensor | None = None
    speak_loss: torch.Tensor | None = None
    text_loss: torch.Tensor | None = None
    transcript_logits: torch.Tensor | None = None  # (B, T, n_transcript) with a transcript head
    transcript_loss: torch.Tensor | None = None


@dataclass
class DuplexState:
    """One batch of streams: the backbone's KV cache, how many frames it holds, and those frames'
    inputs (``history`` (B, 3, max_position_embeddings): listen, speak_in, text_in) and listen
    features (``heard`` (B, max_position_embeddings, hidden)), of which only the first ``length``
    columns are valid, kept to re-prefill the cache when it is full; and the listening GRU's
    state after the last frame (``listen_hidden`` (1, B, hidden); None at the stream's start and
    without a GRU), which a re-prefill keeps."""

    cache: DynamicCache
    length: int
    history: torch.Tensor
    heard: torch.Tensor | None = None
    listen_hidden: torch.Tensor | None = None


# ---- model --------------------------------------------------------------------------------------
class DuplexLM(PreTrainedModel):
    """Listen/speak/text embeddings -> stock ``LlamaModel`` -> speak and text heads, with the
    listening channel fused early, in every block, or late (see the module docstring)."""

    config_class = DuplexConfig
    base_model_prefix = "duplex"
    _supports_sdpa = True
    _no_split_modules = ["LlamaDecoderLayer"]  # FSDP wraps backbone layers

    def __init__(self, config: DuplexConfig) -> None:
        super().__init__(config)
        hidden = config.backbone.hidden_size
        self.listen_embed = nn.Embedding(config.n_units + 1, hidden)
        self.speak_embed = nn.Embedding(config.n_units + 1, hidden)
        self.text_embed = nn.Embedding(config.n_text, hidden)
        self.backbone = LlamaModel(config.backbone)
        # never read (the backbone gets embeddings): dropped, so DDP waits for no gradient
        self.backbone.set_input_embeddings(None)
        if config.fusion == "middle":
            for layer in self.backbone.layers:
                layer.register_forward_pre_hook(_add_listen, with_kwargs=True)
        self.listen_proj = nn.Linear(hidden, hidden) if config.fusion == "late" else None
        self.speak_head = nn.Linear(hidden, config.n_units, bias=False)
        self.text_head = nn.Linear(hidden, config.n_text, bias=False)
        self.listen_gru = None
        if config.listen_encoder == "gru":
            # for a given seed every other weight starts as it does without the GRU, so the two
            # encoders are compared from the same initialisation: it is registered last (post_init
            # draws its weights after the others') and torch's own init of it, which _init_weights
            # overwrites, draws from a forked RNG (it would shift every later draw)
            with torch.random.fork_rng(devices=[]):
                self.listen_gru = nn.GRU(hidden, hidden, batch_first=True)
        self.transcript_head = None
        if config.n_transcript:
            # last, and built on a forked RNG (as the GRU): every other weight starts as it does
            # in a model without it
            with torch.random.fork_rng(devices=[]):
                self.transcript_head = nn.Linear(hidden, config.n_transcript, bias=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, nn.GRU):
            # small weights and zero biases: gru(e) starts small next to e, so the residual
            # features start close to the embeddings (torch's default, U(+-1/sqrt(hidden)) with
            # biases, would outweigh them); the initialiser skips what a checkpoint filled
            std = self.config.backbone.initializer_range
            for name, param in module.named_parameters():
                if name.startswith("weight"):
                    init.normal_(param, mean=0.0, std=std)
                else:
                    init.zeros_(param)

    def get_input_embeddings(self) -> nn.Module:
        """The speak stream's table (the model's own units)."""
        return self.speak_embed

    # ---- the computation the training forward and ``step`` share --------------------------
    def listen_features(self, listen: torch.Tensor, hidden: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, L) listen ids -> the features the fusions add (B, L, hidden) and the listening
        GRU's state after the last of them ((1, B, hidden); None without a GRU). ``hidden``: the
        state after the frames before these (None: these start the stream). Causal: feature
        ``t`` depends on ``listen[..t]`` only."""
        heard = self.listen_embed(listen)  # (B, L, H)
        gru = self.listen_gru
        if gru is None:
            return heard, None
        if listen.shape[1] == 1 and hidden is not None:
            # a streaming step: the same GRU's cell op, without nn.GRU's per-call overhead
            # (about half of the GRU's cost per frame)
            h = torch.gru_cell(heard[:, 0], hidden[0], gru.weight_ih_l0, gru.weight_hh_l0,
                               gru.bias_ih_l0, gru.bias_hh_l0)  # (B, H)
            return heard + h[:, None], h[None]
        out, hidden = gru(heard, hidden)
        return heard + out, hidden  # residual: starts close to the embeddings

    def fused_logits(self, heard: torch.Tensor, speak_in: torch.Tensor, text_in: torch.Tensor,
                     attention_mask: torch.Tensor | None = None,
                     cache: DynamicCache | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Listen features (B, L, hidden) (from :meth:`listen_features`) and (B, L) speak and
        text ids of the frames after ``cache``'s (which grows by L) -> speak logits
        (B, L, n_units) and text logits (B, L, n_text)."""
        h = self.hidden(heard, speak_in, text_in, attention_mask, cache)
        return self.speak_head(h), self.text_head(h)

    def hidden(self, heard: torch.Tensor, speak_in: torch.Tensor, text_in: torch.Tensor,
               attention_mask: torch.Tensor | None = None,
               cache: DynamicCache | None = None) -> torch.Tensor:
        """The final hidden state (B, L, hidden) the heads read (see :meth:`fused_logits`)."""
        x = self.speak_embed(speak_in) + self.text_embed(text_in)  # (B, L, H)
        fusion, extra = self.config.fusion, {}
        if fusion == "early":
            x = x + heard
        elif fusion == "middle":
            extra[LISTEN_KEY] = heard  # every layer's pre-hook adds it to that layer's input
        h = self.backbone(inputs_embeds=x, attention_mask=attention_mask, cache=cache,
                          use_cache=cache is not None, **extra).last_hidden_state  # (B, L, H)
        if fusion == "late":
            h = h + self.listen_proj(heard)
        return h

    # ---- training forward -------------------------------------------------------------------
    def forward(self, listen: torch.Tensor, speak_in: torch.Tensor, text_in: torch.Tensor,
                speak_labels: torch.Tensor | None = None,
                text_labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                transcript_labels: torch.Tensor | None = None) -> DuplexOutput:
        """Streams (B, T), already shifted (see the module docstring), from the stream's start;
        labels (B, T): the unit and the text token at each frame (and, for a model with a
        transcript head, the word heard there), ``-100`` where none; ``attention_mask`` (B, T),
        1 on real frames (pad on the right: the listening GRU is causal, so frames after the
        real ones change nothing). Losses are computed for the labels given."""
        if not listen.shape == speak_in.shape == text_in.shape:
            raise ValueError(f"listen, speak_in and text_in must be frame-aligned (B, T), got "
                             f"{tuple(listen.shape)}, {tuple(speak_in.shape)}, "
                             f"{tuple(text_in.shape)}")
        h = self.hidden(self.listen_features(listen)[0], speak_in, text_in, attention_mask)
        speak_logits, text_logits = self.speak_head(h), self.text_head(h)
        out = DuplexOutput(speak_logits=speak_logits, text_logits=text_logits)
        if self.transcript_head is not None:
            out.transcript_logits = self.transcript_head(h)
        if speak_labels is not None:
            out.speak_loss = _mean_ce(speak_logits, speak_labels)
        if text_labels is not None:
            out.text_loss = _mean_ce(text_logits, text_labels, self._text_class_weights())
        if transcript_labels is not None:
            if self.transcript_head is None:
                raise ValueError("transcript_labels given to a model without a transcript head "
                                 "(n_transcript = 0)")
            out.transcript_loss = _mean_ce(out.transcript_logits, transcript_labels)
        c = self.config
        parts = [x for x in (out.speak_loss,
                             None if out.text_loss is None else c.text_weight * out.text_loss,
                             None if out.transcript_loss is None
                             else c.transcript_weight * out.transcript_loss) if x is not None]
        out.loss = sum(parts) if parts else None
        return out

    def _text_class_weights(self) -> torch.Tensor | None:
        weights = self.config.text_loss_weights
        if not weights:
            return None
        w = torch.ones(self.config.n_text, device=self.text_head.weight.device)
        for tok, v in weights.items():
            w[self.config.text_vocab.index(tok)] = float(v)
        return w

    # ---- streaming --------------------------------------------------------------------------
    @contextmanager
    def streaming(self, batch_size: int) -> Iterator[DuplexState]:
        """A fresh state for ``batch_size`` streams, stepped with :meth:`step`; the model is in
        eval mode inside (restored on exit) and the cache is released on exit."""
        was_training = self.training
        self.eval()
        full, hidden = (self.config.backbone.max_position_embeddings,
                        self.config.backbone.hidden_size)
        with torch.inference_mode():
            history = torch.empty(batch_size, 3, full, dtype=torch.long, device=self.device)
            heard = torch.empty(batch_size, full, hidden, dtype=self.dtype, device=self.device)
        state = DuplexState(DynamicCache(config=self.config.backbone), 0, history, heard)
        try:
            yield state
        finally:
            self.train(was_training)
            state.cache = DynamicCache(config=self.config.backbone)
            state.length = 0
            state.listen_hidden = None

    @torch.inference_mode()
    def step(self, state: DuplexState, listen: torch.Tensor, speak_prev: torch.Tensor,
             text_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame: (B,) ids (the user's unit now, the model's unit and text token of the
        previous frame) -> speak logits (B, n_units) and text logits (B, n_text) of this frame.
        A full cache is re-prefilled first; the listening GRU steps on from its state either way
        (see the module docstring)."""
        hist, heard, full = state.history, state.heard, state.history.shape[2]
        start = state.length
        if start == full:  # drop the oldest half: keep the last full//2 - 1 frames + this one
            keep = full // 2 - 1
            hist[:, :, :keep] = hist[:, :, full - keep:].clone()
            # their features as computed when they arrived: the GRU is not rerun from the window
            heard[:, :keep] = heard[:, full - keep:].clone()
            state.cache = DynamicCache(config=self.config.backbone)
            start = keep
        new, state.listen_hidden = self.listen_features(listen[:, None], state.listen_hidden)
        heard[:, start] = new[:, 0]
        hist[:, 0, start] = listen
        hist[:, 1, start] = speak_prev
        hist[:, 2, start] = text_prev
        # one new frame, or after a re-prefill the whole kept window from position 0
        first = start if state.length < full else 0
        window = hist[:, :, first:start + 1]  # (B, 3, L)
        speak, text = self.fused_logits(heard[:, first:start + 1], window[:, 1], window[:, 2],
                                        cache=state.cache)
        state.length = start + 1
        return speak[:, -1], text[:, -1]


def _add_listen(layer: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook of a decoder layer (middle fusion): adds the listen features that
    ``LlamaModel`` passed along with its keyword arguments to the layer's input, and removes
    them, so the layer itself never sees the extra keyword."""
    heard = kwargs.pop(LISTEN_KEY)
    return (args[0] + heard, *args[1:]), kwargs


def shift_right(stream: torch.Tensor, bos: int) -> torch.Tensor:
    """(B, T) ids -> (B, T) ids one frame later: ``bos`` at ``t = 0`` and ``stream[t - 1]`` after
    (what ``speak_in`` and ``text_in`` are to the model's own units and text)."""
    return torch.cat([torch.full_like(stream[:, :1], bos), stream[:, :-1]], dim=1)


AutoConfig.register(DUPLEX_TYPE, DuplexConfig, exist_ok=True)
AutoModel.register(DuplexConfig, DuplexLM, exist_ok=True)
