"""The ``multistream`` architecture: scoring, generation and streaming of ``MultiStreamLM``.

Scoring counts the unit stream only (the zero-shot benchmarks compare units; the other streams
condition it but are not scored). Generation samples every stream step by step with the KV cache
(a temperature per stream: units use the sampling settings, repetition penalty included, the
others their ``temperature``; continuous streams take the predicted value, rounded, as the token
dataset's values are integers; durations are at least 1), then undelays. The model itself is in
``speechlm.models.modeling_multistream``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel

from speechlm.batching import length_buckets
from speechlm.config import check_hf_config
from speechlm.errors import ConfigError
from speechlm.models.architecture import ARCHITECTURES, Architecture
from speechlm.models.causal_lm import MEAN, SUM, context_length, fit_context, next_token_logprobs
from speechlm.models.modeling_multistream import (
    LOWEST,
    MODEL_TYPE,
    MultiStreamConfig,
    MultiStreamLM,
    StreamSpec,
    stream_specs,
)
from speechlm.sequences.example import undelay
from speechlm.sequences.multistream import (
    NO_VALUE,
    PREFIX,
    STREAM_COLUMNS,
    UNITS,
    multistream,
)


# ---- streaming: the KV cache and the steps fed so far, in a dataclass ---------------------
@dataclass
class StepState:
    """What the stepper carries between steps: the backbone's KV cache and which steps are real."""

    cache: Any
    valid: torch.Tensor  # (B, steps) 1 where a step holds a token, 0 where a prompt was padded


class MultiStreamStepper:
    """Feeds a few steps of every stream at a time; returns each head's output after the last."""

    def __init__(self, model: MultiStreamLM, batch_size: int = 1) -> None:
        self.model = model
        device = next(model.parameters()).device
        self.state = StepState(None, torch.zeros(batch_size, 0, dtype=torch.long, device=device))

    def step(self, streams: Mapping[str, torch.Tensor],
             valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``streams[name]`` (B, n) -> (B, size) logits or (B,) values for the next step."""
        n = streams[UNITS].shape[1]
        valid = torch.ones_like(streams[UNITS]) if valid is None else valid.long()  # (B, n)
        mask = torch.cat([self.state.valid, valid], 1)  # (B, steps + n)
        positions = (mask.cumsum(1) - 1).clamp(min=0)[:, -n:]  # (B, n): left padding takes none
        with torch.inference_mode():
            out = self.model(dict(streams), attention_mask=mask, position_ids=positions,
                             cache=self.state.cache, use_cache=True)
        self.state = StepState(out.cache, mask)
        return {name: x[:, -1] for name, x in out.logits.items()}


def sample(logits: torch.Tensor, temperature: float, generator: torch.Generator,
           top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """One draw per row of (B, C) logits at ``temperature``, after top-k / top-p: (B,) on CPU."""
    logits = logits.float().cpu() / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.shape[-1])).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(-1, descending=True)  # (B, C)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set reaching top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)


def penalize_repeats(logits: torch.Tensor, history: torch.Tensor,
                     penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty on (B, C) logits, as HF's ``RepetitionPenaltyLogitsProcessor``.

    For every id in row b of ``history`` (B, T) (the prompt and what was generated so far), a
    positive logit is divided by ``penalty`` and a negative one multiplied by it, once however
    often the id occurs. A penalty of 1.0 returns ``logits`` unchanged.
    """
    if penalty == 1.0:
        return logits
    seen = logits.gather(1, history)  # (B, T): the logit of every id already in the sequence
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, history, seen)  # a repeated id writes the same value each time


def _draw(spec: StreamSpec, out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A stream's next values (B,): sampled classes, or rounded predictions (continuous)."""
    low = LOWEST.get(spec.name, 0)
    if spec.kind == "continuous":  # the stream's values are the dataset's integers
        return out.float().cpu().round().clamp(min=low).long()
    too_low = torch.arange(spec.size) < low  # (size,)
    return sample(out.float().cpu().masked_fill(too_low, float("-inf")), spec.temperature,
                  generator)


# ---- the architecture --------------------------------------------------------------------
class MultiStream(Architecture):
    """Units plus per-unit streams (durations, F0) in parallel: pGSLM's MS-TLM on any backbone."""

    name = "multistream"
    objective = "multistream"
    speech_format = "multistream"

    def check_config(self, model_cfg: dict[str, Any], key: str = "model") -> None:
        if not isinstance(model_cfg, Mapping):
            raise ConfigError(f"{key}: expected a mapping (backbone keys + streams)")
        backbone = {k: v for k, v in model_cfg.items() if k != "streams"}
        if backbone.get("model_type") == MODEL_TYPE:
            raise ConfigError(f"{key}.model_type: the backbone is a stock model (e.g. llama)")
        check_hf_config(backbone, key)
        stream_specs(model_cfg.get("streams"), 2, f"{key}.streams")  # any vocabulary size

    def build(self, model_cfg: dict[str, Any], vocab, seed: int = 0) -> MultiStreamLM:
        self.check_config(model_cfg)
        backbone = {k: v for k, v in model_cfg.items() if k != "streams"}
        backbone.update(vocab_size=vocab.size, pad_token_id=vocab.pad_id,
                        bos_token_id=vocab.bos_id, eos_token_id=vocab.eos_id)
        specs = stream_specs(model_cfg.get("streams"), vocab.size)
        torch.manual_seed(seed)
        return MultiStreamLM(MultiStreamConfig(backbone=backbone,
                                               streams=[asdict(s) for s in specs]))

    def load(self, path: Path, device: str = "cpu") -> MultiStreamLM:
        from speechlm.pretrained import load_pretrained

        model = load_pretrained(AutoModel, path, "speech LM")
        if not isinstance(model, MultiStreamLM):
            raise ConfigError(f"{path}: holds a {type(model).__name__}, not a multistream model")
        return model.to(device).eval()

    def prompt(self, lm, streams, eos: bool = False):
        """One utterance's streams as this model's example (its streams and delays)."""
        row = {n: getattr(streams, n) for n in streams.names()}
        try:
            return multistream(row, lm.vocab, None, eos=eos, delays=lm.model.config.delays)
        except ValueError as e:  # e.g. a speech tokenizer that makes no F0
            raise ConfigError(f"{lm.dir}: the model reads {', '.join(lm.model.config.delays)} "
                              f"beside units, but {e}") from None

    def score(self, lm, examples, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Summed and mean log-probability of the unit stream after its first step: (N, 2)."""
        from speechlm.progress import progress_bar

        model, pad = lm.model, lm.vocab.pad_id
        exs = list(examples)  # built by ``prompt``: the model's streams and delays
        for e in exs:
            if set(e.streams) != {UNITS, *model.config.delays}:
                raise ConfigError(f"{lm.dir}: the model reads "
                                  f"{', '.join([UNITS, *model.config.delays])}, an example has "
                                  f"{', '.join(e.streams)}; build examples with lm.speech_example")
        # the unit stream ends where its mask does: later (delay) steps predict no unit
        lengths = [int(e.masks[UNITS].sum()) for e in exs]
        out = np.full((len(exs), 2), np.nan)
        with torch.inference_mode():
            for batch in progress_bar(length_buckets(lengths, batch_size, 16384), unit="batch",
                                      desc="scoring", disable=not progress):
                rows = [{n: a[: lengths[i]] for n, a in exs[i].streams.items()} for i in batch]
                streams, valid = _pad(rows, lengths[batch[0]], pad, model.device, left=False)
                logits = model(streams, attention_mask=valid).logits[UNITS]  # (B, W, V)
                token_lp = next_token_logprobs(logits, streams[UNITS])  # (B, W-1)
                keep = valid[:, 1:].to(token_lp.dtype)
                sums, counts = (token_lp * keep).sum(1).double().cpu(), keep.sum(1).cpu()
                for row, i in enumerate(batch):
                    out[i, SUM] = sums[row]
                    out[i, MEAN] = sums[row] / counts[row] if counts[row] else np.nan
        return out

    def generate(self, lm, prompts, sampling, max_new, min_new=None) -> list[tuple[Any, bool]]:
        """Sample every stream step by step after each prompt (left-padded batch), then undelay.

        A delayed stream's values that the prompt already holds are fed as they are; the unit
        stream ends at EOS (not sampled before ``min_new`` units) or when ``max_new`` units are
        out (EOS is then fed), and the other streams run on for their delay so that the last
        units get their values. From EOS on, streams are fed as in training (pad, no value).
        """
        from speechlm.tokenizers.streams import Streams

        model, vocab = lm.model, lm.vocab
        specs, delays = model.config.stream_specs, model.config.delays
        span = max(delays.values(), default=0)
        context = context_length(model.config.backbone)
        exs = [self.prompt(lm, _fit(p, context, max(max_new) + span, i))
               for i, p in enumerate(prompts)]
        own = [len(e) - span for e in exs]  # aligned steps of each prompt
        first, valid = _pad([{n: a[: own[i]] for n, a in e.streams.items()}
                             for i, e in enumerate(exs)], max(own), vocab.pad_id, model.device,
                            left=True)
        tail = {n: torch.tensor(np.stack([e.streams[n][own[i]:] for i, e in enumerate(exs)]))
                for n in delays}  # (B, span): the prompt's values of the delayed streams
        budget, floor = torch.tensor(max_new), torch.tensor(min_new or [0] * len(exs))  # (B,)
        offset, n_units = vocab.range("units")
        allowed = torch.full((vocab.size,), float("-inf"))
        allowed[[*range(offset, offset + n_units), vocab.eos_id]] = 0.0
        gen = torch.Generator().manual_seed(sampling.seed)
        end = torch.full((len(exs),), -1)  # (B,) new units once a row's unit stream ended
        stopped = torch.zeros(len(exs), dtype=torch.bool)
        steps: dict[str, list[torch.Tensor]] = {n: [] for n in first}  # each (B,)
        history = first[UNITS].cpu()  # (B, steps): unit-stream ids so far (left pads included)
        with self.streaming(lm, len(exs)) as stepper:
            out = stepper.step(first, valid)
            for j in count():
                # penalty first, then the unit/EOS mask: HF's order in CausalLM.generate
                logits = penalize_repeats(out[UNITS].float().cpu(), history,
                                          sampling.repetition_penalty) + allowed  # (B, V)
                logits[:, vocab.eos_id] += torch.where(j < floor, float("-inf"), 0.0)
                units = sample(logits, sampling.temperature, gen, sampling.top_k, sampling.top_p)
                ending = (end < 0) & ((units == vocab.eos_id) | (j == budget))  # (B,)
                # EOS drawn past the budget is the budget's end, not the model's
                stopped |= ending & (units == vocab.eos_id) & (j < budget)
                end = torch.where(ending, j, end)
                new = {UNITS: torch.where(end < 0, units,
                                          torch.where(end == j, vocab.eos_id, vocab.pad_id))}
                for s in specs[1:]:
                    v = tail[s.name][:, j] if j < s.delay else _draw(s, out[s.name], gen)
                    new[s.name] = torch.where((end >= 0) & (j - s.delay >= end), NO_VALUE, v)
                for n, v in new.items():
                    steps[n].append(v)
                history = torch.cat([history, new[UNITS][:, None]], 1)
                if bool(((end >= 0) & (j >= end + max(span, 1) - 1)).all()):
                    break
                out = stepper.step({n: v[:, None].to(model.device) for n, v in new.items()})
        generated = {n: torch.stack(v, 1).numpy() for n, v in steps.items()}  # (B, steps)
        results = []
        for i, prompt in enumerate(prompts):
            n_new = int(end[i])
            layout = {n: np.concatenate([exs[i].streams[n][: own[i]], g[i, : n_new + span]])
                      for n, g in generated.items()}  # the prompt, the new units, the delay tail
            aligned, _ = undelay(layout, delays)
            units = vocab.ids_to_units(aligned[UNITS][own[i]:])
            extra = {n: aligned[n][own[i]:] for n in delays}
            results.append((Streams(float(prompt.frame_rate), units=units, **extra),
                            bool(stopped[i])))
        return results

    @contextmanager
    def streaming(self, lm, batch_size: int = 1) -> Iterator[MultiStreamStepper]:
        stepper = MultiStreamStepper(lm.model, batch_size)
        try:
            yield stepper
        finally:
            stepper.state.cache = None  # free the cache when the stream ends


def _fit(streams: Any, context: int | None, room: int, index: int) -> Any:
    """A prompt cut to its last units that leave ``room`` steps in the context (a warning)."""
    n = len(streams.units)
    kept = fit_context(list(range(n + PREFIX)), context, room, index)[PREFIX:]
    if len(kept) == n:
        return streams
    cut = {k: getattr(streams, k)[n - len(kept):] for k in (UNITS, *STREAM_COLUMNS)
           if getattr(streams, k) is not None}
    return replace(streams, **cut)


def _pad(rows: list[Mapping[str, Any]], width: int, pad_id: int, device: Any,
         left: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Rows of aligned streams -> (B, width) tensors (units: ``pad_id``, others: NO_VALUE)."""
    streams = {n: torch.full((len(rows), width), pad_id if n == UNITS else NO_VALUE,
                             dtype=torch.long) for n in rows[0]}
    valid = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row[UNITS])
        cols = slice(width - n, width) if left else slice(0, n)
        for name, values in row.items():
            streams[name][i, cols] = torch.as_tensor(np.asarray(values, dtype=np.int64))
        valid[i, cols] = 1
    return {n: t.to(device) for n, t in streams.items()}, valid.to(device)


ARCHITECTURES.add("multistream", MultiStream())
