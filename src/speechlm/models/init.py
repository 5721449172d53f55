"""Model initialisation for any ``AutoModelForCausalLM``: cold from a config, warm from a text LM,
or from an existing speechlm model (fine-tuning).

Embeddings are resized in :func:`resize_vocab` only: it maps old embedding rows to the new
vocabulary explicitly and checks every shape. :func:`warm_start` (TWIST's replace, SpiRit-LM's
extend) and :func:`from_model_init` (new task markers) are mappings passed to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from speechlm.errors import ConfigError
from speechlm.sequences.vocab import DEFAULT_MARKERS, SpeechVocab

# How rows without a source start (``new_rows``). "mean": the old rows' mean plus noise of 0.02 x
# their std, so every new token starts almost alike; "normal": the same mean with the old rows'
# own spread (1.0 x std), so new tokens start as distinct as the old ones; "copy": copies of old
# rows drawn at random (each new token inherits a trained row and its output logit).
NEW_ROW_NOISE = {"mean": 0.02, "normal": 1.0}
NEW_ROWS = ("mean", "normal", "copy")


def cold_init(model_cfg: dict[str, Any], vocab: SpeechVocab, seed: int = 0):
    """A randomly initialised causal LM from HF config kwargs (``model_type`` is required)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = dict(model_cfg)
    model_type = kwargs.pop("model_type", None)
    if not model_type:
        raise ConfigError("model.model_type: required for init=cold (e.g. llama, qwen2, opt, gpt2)")
    kwargs.pop("vocab_size", None)  # always the speech vocabulary's size
    try:
        config = AutoConfig.for_model(
            model_type, vocab_size=vocab.size, bos_token_id=vocab.bos_id,
            eos_token_id=vocab.eos_id, pad_token_id=vocab.pad_id, **kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model: invalid config for model_type={model_type}: {e}") from e
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")


def _new_rows(old: torch.Tensor, n: int, generator: torch.Generator, how: str = "mean",
              picks: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` rows made from ``old`` as ``how`` (one of :data:`NEW_ROWS`) says; ``copy`` copies
    the old rows ``picks``."""
    if how == "copy":
        return old[picks].clone()
    mean = old.mean(0, keepdim=True)
    std = old.std(0, keepdim=True) if old.shape[0] > 1 else torch.zeros_like(mean)
    noise = torch.randn(n, old.shape[1], generator=generator, dtype=torch.float32)
    return (mean.float() + NEW_ROW_NOISE[how] * std.float() * noise).to(old.dtype)


def _check_new_rows(how: str) -> None:
    if how not in NEW_ROWS:
        raise ConfigError(f"new_rows: must be one of {', '.join(NEW_ROWS)}, got {how!r}")


def resize_vocab(model, size: int, mapping: dict[int, int], seed: int = 0,
                 new_rows: str = "mean") -> None:
    """Give ``model`` ``size`` embedding rows: row ``new`` copies old row ``mapping[new]``.

    The one place that resizes embeddings. Rows without a source start as ``new_rows`` says
    (:data:`NEW_ROWS`); the output layer (when untied) is remapped the same way (for ``copy``
    from the same old tokens) and its bias zeroed. Transformer weights are untouched (checked); tied
    embeddings stay tied.
    """
    _check_new_rows(new_rows)
    g = torch.Generator().manual_seed(seed)
    old_in = model.get_input_embeddings().weight.data
    old_out_layer = model.get_output_embeddings()
    tied = old_out_layer is not None and old_out_layer.weight is model.get_input_embeddings().weight
    old_out = None if old_out_layer is None or tied else old_out_layer.weight.data
    n_old, dim = old_in.shape

    # "copy" takes both rows (input and output) of the same old token, distinct old tokens while
    # there are enough (two new tokens with one row would start indistinguishable)
    picks = None
    if new_rows == "copy":
        picks = (torch.randperm(n_old, generator=g)[:size] if n_old >= size
                 else torch.randint(0, max(n_old, 1), (size,), generator=g))

    def remap(old: torch.Tensor) -> torch.Tensor:
        new = _new_rows(old[: max(n_old, 1)], size, g, new_rows, picks)
        if mapping:
            dst = torch.tensor(list(mapping), dtype=torch.long)
            src = torch.tensor(list(mapping.values()), dtype=torch.long)
            new[dst] = old[src]
        return new

    new_in = remap(old_in)
    new_out = remap(old_out) if old_out is not None else None
    before = {k: v.shape for k, v in model.state_dict().items()}

    model.resize_token_embeddings(size, mean_resizing=False)
    model.get_input_embeddings().weight.data.copy_(new_in)
    if new_out is not None:
        model.get_output_embeddings().weight.data.copy_(new_out)
        bias = getattr(model.get_output_embeddings(), "bias", None)
        if bias is not None:
            bias.data.zero_()
    if tied:
        model.tie_weights()

    # only embedding-shaped tensors may change shape; everything else must be untouched
    for k, v in model.state_dict().items():
        if k in before and before[k] != v.shape and before[k][0] != n_old:
            raise AssertionError(f"resizing changed the shape of {k}: {before[k]} -> {v.shape}")
    assert model.get_input_embeddings().weight.shape == (size, dim)
    model.config.vocab_size = size


def _set_special_ids(model, vocab: SpeechVocab) -> None:
    model.config.bos_token_id = vocab.bos_id
    model.config.eos_token_id = vocab.eos_id
    model.config.pad_token_id = vocab.pad_id


def warm_start(model, text_tokenizer, vocab: SpeechVocab, mode: str, seed: int = 0,
               new_rows: str = "mean") -> dict:
    """Give a text causal LM the speech vocabulary; return what was done (for speechlm.json).

    ``extend``: rows ``[0, n_text)`` keep the text LM's embeddings (and output rows), the
    appended markers/units are new. ``replace`` (TWIST): every row is new except BOS/EOS/PAD,
    which copy the text LM's rows for its own BOS/EOS/PAD when it has them. New rows start as
    ``new_rows`` says (:data:`NEW_ROWS`).
    """
    if mode not in ("extend", "replace"):
        raise ConfigError(f"vocab_mode: must be 'extend' or 'replace', got {mode!r}")
    n_old = model.get_input_embeddings().weight.shape[0]
    if mode == "extend":
        n_text = vocab.layout.n_text
        if n_text > n_old:
            raise ConfigError(f"init_from: the tokenizer has {n_text} tokens but the model only "
                              f"{n_old} embedding rows")
        mapping = {i: i for i in range(n_text)}  # new id -> old row
    else:
        mapping = {}
        for new_id, old_id in ((vocab.bos_id, text_tokenizer.bos_token_id),
                               (vocab.eos_id, text_tokenizer.eos_token_id),
                               (vocab.pad_id, text_tokenizer.pad_token_id)):
            if old_id is not None and old_id < n_old:
                mapping[new_id] = old_id
    resize_vocab(model, vocab.size, mapping, seed, new_rows)
    _set_special_ids(model, vocab)
    return {"vocab_mode": mode, "text_vocab_size": n_old, "copied_rows": len(mapping),
            "new_rows": vocab.size - len(mapping), "new_row_init": new_rows}


def warm_init(init_from: str, vocab_mode: str, n_units: int, seed: int = 0,
              markers: tuple[str, ...] = DEFAULT_MARKERS, n_pitch: int = 0, n_style: int = 0,
              new_rows: str = "mean"):
    """Load a text LM (local dir or hub id), build the vocabulary and warm-start it.

    ``n_pitch`` / ``n_style`` add pitch and style tokens (SpiRit-LM Expressive); ``new_rows``
    says how the rows of new tokens start (:data:`NEW_ROWS`).
    Returns ``(model, vocab, info)``.
    """
    from transformers import AutoModelForCausalLM

    from speechlm.pretrained import load_pretrained, load_tokenizer_files

    try:
        text_tok = load_tokenizer_files(init_from, "text LM's tokenizer")
        model = load_pretrained(AutoModelForCausalLM, init_from, "text LM",
                                attn_implementation="sdpa", dtype=torch.float32)
    except ConfigError as e:
        raise ConfigError(f"init_from: {e}") from None
    vocab = (SpeechVocab.extend(text_tok, n_units, n_pitch, n_style, markers=markers)
             if vocab_mode == "extend"
             else SpeechVocab.speech_only(n_units, n_pitch, n_style, markers=markers))
    info = warm_start(model, text_tok, vocab, vocab_mode, seed=seed, new_rows=new_rows)
    info["init_from"] = str(init_from)
    return model, vocab, info


def from_model_init(model_dir: str | Path, markers: list[str] = (), ranges: dict | None = None,
                    seed: int = 0):
    """Start from a speechlm model directory: its weights and vocabulary (``init: from_model``).

    Markers or ranges the vocabulary lacks are appended (existing ids and rows unchanged, new
    rows as in :func:`resize_vocab`). Returns ``(lm, vocab, info)``; ``lm.model`` (the main
    sub-model) is in train mode on the CPU.
    """
    from speechlm.models.speech_lm import load_speech_lm

    lm = load_speech_lm(model_dir)
    old = lm.vocab
    vocab = old.with_tokens(markers, ranges)
    if vocab.size != old.size:
        resize_vocab(lm.model, vocab.size, {i: i for i in range(old.size)}, seed)
        _set_special_ids(lm.model, vocab)
    lm.model.train()
    info = {"init_from": str(model_dir), "kept_rows": old.size,
            "new_tokens": [m for m in vocab.layout.markers if m not in old.layout.markers]
            + [r for r in vocab.layout.ranges if r not in old.layout.ranges]}
    return lm, vocab, info
