"""The ``causal_lm`` architecture: one stream of tokens through any ``AutoModelForCausalLM``.

The model directory is a plain HF checkpoint (``AutoModelForCausalLM.from_pretrained`` loads it
with no speechlm import). Scoring is batched and exact under padding: sequences are sorted by
length, cut into batches of at most ``batch_size`` sequences and ``max_tokens`` padded tokens,
and right-padded with an attention mask, so every real token keeps the positions and context it
has when scored alone (batch 1 and 32 agree to 1e-4). Generation is HF ``generate`` (KV cache,
left padding) restricted to unit tokens and EOS, so a model with a text vocabulary cannot
wander into text. Streaming steps the model with its KV cache kept in a state dataclass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.batching import length_buckets
from speechlm.errors import SpeechLMError
from speechlm.models.architecture import ARCHITECTURES, Architecture
from speechlm.sequences.example import TOKENS

SUM, MEAN = 0, 1  # columns of score_sequences' output
logger = logging.getLogger("speechlm")


def score_sequences(model, seqs: Sequence[Sequence[int]], batch_size: int = 32,
                    max_tokens: int = 16384, progress: bool = False,
                    targets: tuple[int, int] | None = None) -> np.ndarray:
    """Summed and mean log-probability of every token after the first, shape (N, 2), float64.

    ``targets`` (offset, size) counts only the tokens with ids in that range (e.g. the units of
    a sequence that also holds other tokens); the others still condition what follows.

    ``model`` is a ``transformers`` causal LM or anything with one in ``.model`` (a ``SpeechLM``).
    A sequence of one token has sum 0 and mean NaN (there is nothing to predict).
    ``max_tokens`` bounds padded tokens per batch, hence the (B, T, vocab) logits in memory.
    """
    import torch

    from speechlm.progress import progress_bar

    # an HF causal LM also has a ``.model`` (its backbone): only unwrap non-modules (SpeechLM)
    lm = model if isinstance(model, torch.nn.Module) else model.model
    device = next(lm.parameters()).device
    lengths = [len(s) for s in seqs]
    if any(n == 0 for n in lengths):
        raise SpeechLMError(f"score_sequences: sequence {lengths.index(0)} is empty; "
                            "every sequence needs at least one token")
    out = np.full((len(seqs), 2), np.nan, dtype=np.float64)
    batches = length_buckets(lengths, batch_size, max_tokens)
    with torch.inference_mode():
        for batch in progress_bar(batches, unit="batch", desc="scoring", disable=not progress):
            longest = lengths[batch[0]]
            ids = torch.zeros(len(batch), longest, dtype=torch.long)
            mask = torch.zeros(len(batch), longest, dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = torch.as_tensor(seqs[i], dtype=torch.long)
                mask[row, : lengths[i]] = 1
            ids, mask = ids.to(device), mask.to(device)
            logits = lm(input_ids=ids, attention_mask=mask, use_cache=False).logits
            token_lp = next_token_logprobs(logits, ids)  # (B, T-1)
            valid = mask[:, 1:] > 0  # a target counts iff it is a real token (in ``targets``)
            if targets is not None:
                valid &= (ids[:, 1:] >= targets[0]) & (ids[:, 1:] < targets[0] + targets[1])
            valid = valid.to(token_lp.dtype)
            sums = (token_lp * valid).sum(1).double().cpu().numpy()
            counts = valid.sum(1).double().cpu().numpy()
            for row, i in enumerate(batch):
                out[i, SUM] = sums[row]
                out[i, MEAN] = sums[row] / counts[row] if counts[row] else np.nan
    return out


def left_padded(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """(B, width) ids and attention mask, left-padded: every prompt ends where generation
    starts."""
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, width - len(x):] = torch.as_tensor(x, dtype=torch.long)
        mask[i, width - len(x):] = 1
    return input_ids, mask


def next_token_logprobs(logits, ids):
    """log p(ids[:, t+1] | ids[:, :t+1]) for every t, in float32 whatever the model dtype."""
    logits = logits[:, :-1].float()  # (B, T-1, V)
    target = ids[:, 1:].unsqueeze(-1)  # (B, T-1, 1)
    # gather - logsumexp avoids materialising a second (B, T, V) log-softmax tensor
    return logits.gather(-1, target).squeeze(-1) - logits.logsumexp(-1)


class AllowOnly:
    """Logits processor: every token outside ``allowed`` gets -inf (units and EOS only)."""

    def __init__(self, allowed: list[int]) -> None:
        self.allowed = allowed
        self._mask = None

    def __call__(self, input_ids, scores):
        import torch

        if self._mask is None or self._mask.shape[-1] != scores.shape[-1]:
            self._mask = torch.full((scores.shape[-1],), float("-inf"), device=scores.device)
            self._mask[[a for a in self.allowed if a < scores.shape[-1]]] = 0.0
        return scores + self._mask


def context_length(config: Any) -> int | None:
    """The longest sequence the model's position embeddings cover (None when unbounded)."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def fit_context(ids: list[int], context: int | None, max_new: int, index: int = 0) -> list[int]:
    """A prompt cut to its last part that leaves room for ``max_new`` tokens, with a warning.

    The first two ids (BOS and the modality marker) are kept, so the prompt stays well formed.
    """
    if context is None or len(ids) + max_new <= context:
        return ids
    keep = context - max_new - 2
    if keep < 1:
        raise SpeechLMError(f"max_seconds asks for {max_new} new tokens but the model's context "
                            f"is {context}; ask for a shorter continuation")
    logger.warning("prompt %d: %d tokens do not fit the model's context of %d with %d new "
                   "tokens; keeping its last %d units", index, len(ids), context, max_new, keep)
    return ids[:2] + ids[-keep:]


@dataclass
class StepState:
    """What a causal LM carries between streaming steps: its KV cache and the steps taken."""

    cache: Any
    steps: int = 0


class CausalLMStepper:
    """Feeds tokens a few at a time and returns the next-token logits after each call."""

    def __init__(self, model: Any) -> None:
        import inspect

        from transformers import DynamicCache

        self.model = model
        self.state = StepState(cache=DynamicCache(config=model.config))
        # transformers 5 renamed the argument; the cache object updates itself in place
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def step(self, ids) -> Any:
        """``ids`` (B, n) new tokens -> logits (B, vocab) for the token after them."""
        import torch

        with torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=True, **{self._cache_arg: self.state.cache})
        self.state.steps += ids.shape[1]
        return out.logits[:, -1]


def sample_ids(model, prefixes: Sequence[Sequence[int]], vocab, allowed: Sequence[int],
               sampling, max_new: int, min_new: int = 0) -> np.ndarray:
    """Left-padded batched sampling after each id prefix, of ``allowed`` ids and EOS only:
    (B, <= max_new) new ids (rows that ended early are padded after their EOS).

    EOS is not sampled before ``min_new`` tokens. HF applies the repetition penalty to every id
    of the input (the prefix too) before ``AllowOnly`` and the warpers; a penalised pad or
    marker stays -inf under ``AllowOnly``.
    """
    import torch
    from transformers import LogitsProcessorList

    input_ids, mask = left_padded(prefixes, vocab.pad_id)
    width = input_ids.shape[1]
    device = next(model.parameters()).device
    torch.manual_seed(sampling.seed)
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids.to(device), attention_mask=mask.to(device), do_sample=True,
            temperature=sampling.temperature, top_k=sampling.top_k,  # 0: off
            top_p=sampling.top_p, max_new_tokens=max_new, use_cache=True,
            min_new_tokens=min_new, repetition_penalty=float(sampling.repetition_penalty),
            eos_token_id=vocab.eos_id, pad_token_id=vocab.pad_id,
            logits_processor=LogitsProcessorList([AllowOnly([*allowed, vocab.eos_id])]),
        )
    return out[:, width:].cpu().numpy()


class CausalLM(Architecture):
    """Any ``AutoModelForCausalLM`` (Llama, Qwen2, OPT, GPT-2, ...) over one token stream."""

    name = "causal_lm"
    objective = "lm"
    speech_format = "speech_only"

    def check_config(self, model_cfg: dict[str, Any], key: str = "model") -> None:
        from speechlm.config import check_hf_config

        check_hf_config(model_cfg, key)

    def build(self, model_cfg: dict[str, Any], vocab, seed: int = 0) -> Any:
        from speechlm.models.init import cold_init

        return cold_init(model_cfg, vocab, seed=seed)

    def load(self, path: Path, device: str = "cpu") -> Any:
        from transformers import AutoModelForCausalLM

        from speechlm.pretrained import load_pretrained

        model = load_pretrained(AutoModelForCausalLM, path, "speech LM",
                                attn_implementation="sdpa")
        return model.to(device).eval()

    def score(self, lm, examples, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        return score_sequences(lm.model, [e.streams[TOKENS] for e in examples],
                               batch_size=batch_size, progress=progress)

    def generate(self, lm, prompts, sampling, max_new, min_new=None) -> list[tuple[Any, bool]]:
        """Left-padded batched sampling of unit tokens (and EOS) after each prompt."""

        from speechlm.tokenizers.streams import Streams

        vocab, model = lm.vocab, lm.model
        context = context_length(model.config)
        ids = [fit_context(lm.speech_example(p).input_ids, context, max(max_new), i)
               for i, p in enumerate(prompts)]
        offset, n_units = vocab.range("units")
        new = sample_ids(model, ids, vocab, [*range(offset, offset + n_units)], sampling,
                         max(max_new), min(min_new) if min_new else 0)
        results = []
        for row, budget, prompt in zip(new, max_new, prompts, strict=True):
            row = row[:budget]
            ends = np.flatnonzero(row == vocab.eos_id)
            cut = int(ends[0]) if len(ends) else len(row)
            units = vocab.ids_to_units(row[:cut])
            # de-duplicated units leave their durations to the vocoder
            dedup = getattr(lm.speech_tokenizer, "dedup", prompt.durations is not None)
            durations = None if dedup else np.ones(len(units), dtype=np.int64)
            results.append((Streams(float(prompt.frame_rate), units=units, durations=durations),
                            bool(len(ends))))
        return results

    @contextmanager
    def streaming(self, lm, batch_size: int = 1) -> Iterator[CausalLMStepper]:
        stepper = CausalLMStepper(lm.model)
        try:
            yield stepper
        finally:
            stepper.state.cache = None  # free the cache when the stream ends


ARCHITECTURES.add("causal_lm", CausalLM())
