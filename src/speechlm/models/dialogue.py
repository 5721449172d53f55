"""The ``dgslm`` architecture: dGSLM's Dialogue LM behind the one interface, and its samplers.

The model is :class:`~speechlm.models.modeling_dlm.DialogueLM` (two shared towers with
cross-channel attention), trained by the ``dialogue`` objective on two channels of frame-rate
units (``speechlm.sequences.dialogue``). Its model config is a stock Llama config (the backbone
keys) plus a ``dialogue`` mapping of dGSLM's settings (``cross_layers``, ``duration_weight``,
``log_durations``, ``edge_only``, ``delayed_duration``, ``max_duration``).

**Silence.** A channel with nobody speaking is filled with the *silence unit*: the unit a silent
channel holds in the training dialogues (``DialogueLM.config.silence_unit``, set by the
``dialogue`` objective from the token dataset: the most frequent unit of the channels' frames
outside detected speech, see ``speechlm.recipes.stages.dialogue``). A model trained without it
uses the unit its speech tokenizer gives one second of digital silence.

**Scoring** (the zero-shot benchmarks): an item's units, at frame rate (de-duplicated units are
repeated by their durations), go on one channel (``channel``: 0, A, for the registered
architecture) and the silence unit on the other, for the item's whole length. The score is the
sum and the mean of ``log p(next unit)`` over the item channel's *edges*, the positions where the
next unit differs from the current one (BOS included): what the model is trained to predict.
Within-run positions, the other channel and the durations are not scored (the duration head is
an L1 regression and has no likelihood). The towers share their weights and the layout is
symmetric, so an item scores the same on either channel (up to float rounding).

**Generation.** :func:`continue_dialogue` continues both channels (dGSLM), or one channel given
the other's frames (``fixed_channel``: the "no live user" mode), with ``DialogueLM.generate``
(durations drawn from the duration head). A continuation longer than the positions the model was
trained on (``seq_len``) rolls: each call keeps the last frames that fit beside what it
generates, at least half the window. :func:`continue_turn_based` is the cascaded baseline: the
same model samples one channel at a time (the floor holder's), the other channel held at the
silence unit; the floor passes to the other channel when its holder has been silent for
``switch_frames`` frames (checked every ``chunk`` frames), so there are never overlaps and every
gap lasts at least that long. :meth:`DGSLM.generate` (the interface ``speechlm generate`` calls
with a mono prompt) puts the prompt on channel A, silence on B, continues both and returns
channel A's continuation.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel

from speechlm.batching import length_buckets
from speechlm.errors import ConfigError
from speechlm.models.architecture import ARCHITECTURES, Architecture
from speechlm.models.causal_lm import MEAN, SUM
from speechlm.models.modeling_dlm import DialogueLM, DialogueLMConfig
from speechlm.sequences.dialogue import UNITS, collate, dialogue_example

DLM = "dialogue"  # the model config's mapping of dGSLM settings; every other key is the backbone
DLM_KEYS = ("cross_layers", "duration_weight", "log_durations", "edge_only", "delayed_duration",
            "max_duration")
SILENCE_PROBE_SECONDS = 1.0  # digital silence tokenised to find a model's silence unit


def split_model_config(model_cfg: Mapping[str, Any], key: str = "model", section: str = DLM,
                       keys: Sequence[str] = DLM_KEYS) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backbone keys, ``section`` keys) of a model config made of an HF backbone's keys plus
    one mapping of the architecture's own (dGSLM's ``dialogue``); unknown keys are named."""
    if not isinstance(model_cfg, Mapping):
        raise ConfigError(f"{key}: expected a mapping (llama backbone keys + {section})")
    backbone = {k: v for k, v in model_cfg.items() if k != section}
    own = model_cfg.get(section) or {}
    if not isinstance(own, Mapping):
        raise ConfigError(f"{key}.{section}: expected a mapping of {', '.join(keys)}")
    for k in own:
        if k not in keys:
            raise ConfigError(f"{key}.{section}.{k}: unknown key; valid keys: {', '.join(keys)}")
    return backbone, dict(own)


def frame_units(streams: Any) -> np.ndarray:
    """An utterance's units at frame rate: de-duplicated units repeated by their durations."""
    units = np.asarray(streams.units, dtype=np.int64)
    durations = getattr(streams, "durations", None)
    return units if durations is None else np.repeat(units, np.asarray(durations, np.int64))


def run_lengths(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame units -> (units with no two equal neighbours, their run lengths), as numpy."""
    from speechlm.tokenizers.dedup import deduplicate

    units, durations = deduplicate(torch.as_tensor(np.asarray(frames, dtype=np.int64)))
    return units.numpy(), durations.numpy()


@functools.lru_cache(maxsize=8)
def _digital_silence_unit(tokenizer_dir: str) -> int:
    from speechlm.tokenizers import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    rate = int(tok.sample_rate)
    streams = tok.encode([np.zeros(int(SILENCE_PROBE_SECONDS * rate), np.float32)], rate)[0]
    return int(np.bincount(frame_units(streams)).argmax())


def silence_unit(lm: Any) -> int:
    """The unit a silent channel holds for this model (see the module docstring)."""
    unit = getattr(lm.model.config, "silence_unit", None)
    if unit is not None:
        return int(unit)
    rel = lm.meta.get("tokenizers", {}).get("speech", "speech_tokenizer")
    return _digital_silence_unit(str((Path(lm.dir) / rel).resolve()))


def context_frames(lm: Any) -> int:
    """Frames one forward pass may hold after BOS: the training ``seq_len`` less one."""
    seq_len = lm.meta.get("seq_len") or lm.model.config.backbone.max_position_embeddings
    return max(int(seq_len) - 1, 2)


def _check_sampling(sampling: Any) -> None:
    if sampling.top_p < 1.0:
        raise ConfigError(f"top_p: dgslm samples with temperature and top-k only, got "
                          f"top_p={sampling.top_p}")
    if sampling.repetition_penalty != 1.0:
        raise ConfigError("repetition_penalty: not used by dgslm (its units repeat by design: "
                          f"they are frames), got {sampling.repetition_penalty}")


def _sample(lm: Any, ids: np.ndarray, step: int, sampling: Any, seed: int,
            fixed_channel: int | None = None, given: np.ndarray | None = None) -> np.ndarray:
    """``step`` new frames (2, step) of vocabulary ids after ``ids`` (2, T), in one call of
    ``DialogueLM.generate`` on the last frames of ``ids`` that fit the context with them.

    With ``fixed_channel``, ``given`` (step,) holds that channel's ids for the new frames.
    """
    keep = min(ids.shape[1], context_frames(lm) - step)
    prompt = ids[:, ids.shape[1] - keep:]
    if fixed_channel is not None:
        prompt = [prompt[0], prompt[1]]
        prompt[fixed_channel] = np.concatenate([prompt[fixed_channel], given])
    offset, n_units = lm.vocab.range(UNITS)
    return lm.model.generate(prompt[0], prompt[1], step, temperature=sampling.temperature,
                             top_k=sampling.top_k, seed=seed, fixed_channel=fixed_channel,
                             allowed=range(offset, offset + n_units))


def continue_dialogue(lm: Any, units: np.ndarray, n_frames: int, sampling: Any,
                      fixed_channel: int | None = None,
                      given: np.ndarray | None = None) -> np.ndarray:
    """Continue a dialogue prompt by ``n_frames`` frames: (2, n_frames) units (unit indices).

    ``units`` (2, P) is the prompt's frame units per channel. With ``fixed_channel``, that
    channel is not sampled: ``given`` (n_frames,) holds its units for the new frames. Seeded by
    ``sampling.seed``; rolls over the model's context (module docstring).
    """
    _check_sampling(sampling)
    vocab = lm.vocab
    ids = np.stack([vocab.units_to_ids(np.asarray(u)) for u in units])  # (2, P)
    given_ids = None if fixed_channel is None else vocab.units_to_ids(np.asarray(given))
    if given_ids is not None and len(given_ids) != n_frames:
        raise ValueError(f"given: {len(given_ids)} frames for {n_frames} to generate")
    span = context_frames(lm)
    done, calls = 0, 0
    while done < n_frames:
        step = min(n_frames - done, max(span - ids.shape[1], span // 2))
        part = None if given_ids is None else given_ids[done:done + step]
        new = _sample(lm, ids, step, sampling, sampling.seed + calls, fixed_channel, part)
        ids = np.concatenate([ids, new], axis=1)
        done, calls = done + step, calls + 1
    return np.stack([vocab.ids_to_units(row) for row in ids[:, -n_frames:]])


def floor_holder(units: np.ndarray, silence: int) -> int:
    """The channel that spoke last in (2, T) frame units (0 when neither spoke)."""
    last = [int(np.flatnonzero(row != silence)[-1]) if (row != silence).any() else -1
            for row in units]
    return int(last[1] > last[0])


def continue_turn_based(lm: Any, units: np.ndarray, n_frames: int, sampling: Any,
                        switch_frames: int = 25, chunk: int = 5) -> np.ndarray:
    """The cascaded baseline: one channel sampled at a time (module docstring); (2, n_frames).

    The floor starts with the channel that spoke last in the prompt (:func:`floor_holder`).
    """
    _check_sampling(sampling)
    if switch_frames < 1 or chunk < 1:
        raise ConfigError(f"switch_frames and chunk: must be >= 1, got {switch_frames}, {chunk}")
    vocab = lm.vocab
    silence = silence_unit(lm)
    silence_id = int(vocab.units_to_ids([silence])[0])
    ids = np.stack([vocab.units_to_ids(np.asarray(u)) for u in units])  # (2, P)
    holder = floor_holder(np.asarray(units), silence)
    quiet = 0  # frames the holder has been silent for, up to now
    done, calls = 0, 0
    while done < n_frames:
        step = min(chunk, n_frames - done)
        new = _sample(lm, ids, step, sampling, sampling.seed + calls, fixed_channel=1 - holder,
                      given=np.full(step, silence_id))
        ids = np.concatenate([ids, new], axis=1)
        done, calls = done + step, calls + 1
        spoke = np.flatnonzero(new[holder] != silence_id)
        quiet = step - 1 - int(spoke[-1]) if len(spoke) else quiet + step
        if quiet >= switch_frames:  # the floor passes
            holder, quiet = 1 - holder, 0
    return np.stack([vocab.ids_to_units(row) for row in ids[:, -n_frames:]])


# ---- the architecture ------------------------------------------------------------------------
class DGSLM(Architecture):
    """dGSLM's Dialogue LM; ``channel`` is the one a single-channel item is put on (0: A)."""

    name = "dgslm"
    objective = "dialogue"
    speech_format = "dialogue"

    def __init__(self, channel: int = 0) -> None:
        if channel not in (0, 1):
            raise ValueError(f"channel must be 0 or 1, got {channel!r}")
        self.channel = channel

    def check_config(self, model_cfg: dict[str, Any], key: str = "model") -> None:
        from speechlm.config import check_hf_config

        backbone, dlm = split_model_config(model_cfg, key)
        if backbone.get("model_type") != "llama":
            raise ConfigError(f"{key}.model_type: the dialogue LM's blocks are llama blocks; "
                              f"give model_type: llama, got {backbone.get('model_type')!r}")
        check_hf_config(backbone, key)
        try:
            DialogueLMConfig(backbone=dict(backbone), **dlm)
        except ConfigError as e:
            raise ConfigError(f"{key}.{DLM}.{e}") from None

    def build(self, model_cfg: dict[str, Any], vocab, seed: int = 0) -> DialogueLM:
        self.check_config(model_cfg)
        backbone, dlm = split_model_config(model_cfg)
        backbone.update(vocab_size=vocab.size, pad_token_id=vocab.pad_id,
                        bos_token_id=vocab.bos_id, eos_token_id=vocab.eos_id)
        torch.manual_seed(seed)
        return DialogueLM(DialogueLMConfig(backbone=backbone, **dlm))

    def load(self, path: Path, device: str = "cpu") -> DialogueLM:
        from speechlm.pretrained import load_pretrained

        model = load_pretrained(AutoModel, path, "dialogue LM")
        if not isinstance(model, DialogueLM):
            raise ConfigError(f"{path}: holds a {type(model).__name__}, not a dialogue LM")
        return model.to(device).eval()

    def prompt(self, lm, streams, eos: bool = False):
        """One utterance's units on ``channel`` at frame rate, the silence unit on the other."""
        frames = frame_units(streams)
        quiet = np.full(len(frames), silence_unit(lm), dtype=np.int64)
        pair = (frames, quiet) if self.channel == 0 else (quiet, frames)
        cfg = lm.model.config
        return dialogue_example(*pair, lm.vocab, cfg.delayed_duration, cfg.max_duration)

    def score(self, lm, examples, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Sum and mean log-probability of the next unit at ``channel``'s edges: (N, 2)."""
        from speechlm.progress import progress_bar

        exs = list(examples)
        lengths = [len(e) for e in exs]
        out = np.full((len(exs), 2), np.nan)
        model, c = lm.model, self.channel
        with torch.inference_mode():
            for batch in progress_bar(length_buckets(lengths, batch_size, 32768), unit="batch",
                                      desc="scoring", disable=not progress):
                inputs = collate([exs[i] for i in batch], lm.vocab.pad_id)
                units = inputs["units"][:, c].to(model.device)  # (B, L)
                nxt = inputs["next_units"][:, c].to(model.device)  # (B, L), IGNORE: no target
                logits = model(inputs["units"].to(model.device)).logits[:, c].float()  # (B, L, V)
                keep = (nxt >= 0) & (nxt != units)  # the edges
                lp = logits.gather(-1, nxt.clamp(min=0)[..., None])[..., 0] - logits.logsumexp(-1)
                sums = (lp * keep).sum(1).double().cpu().numpy()
                counts = keep.sum(1).cpu().numpy()
                for row, i in enumerate(batch):
                    out[i, SUM] = sums[row]
                    out[i, MEAN] = sums[row] / counts[row] if counts[row] else np.nan
        return out

    def generate(self, lm, prompts, sampling, max_new, min_new=None) -> list[tuple[Any, bool]]:
        """Each (mono) prompt on ``channel``, silence on the other, both continued; returns the
        prompt channel's new frames as de-duplicated units with durations (no end of sequence:
        ``min_new`` has nothing to hold back). ``max_new[i]`` counts the prompt's units, as
        ``continue_speech`` sizes it: it becomes as many seconds as the prompt's unit rate
        gives, then frames."""
        from speechlm.generate.continuation import units_per_second
        from speechlm.tokenizers.streams import Streams

        silence = silence_unit(lm)
        results = []
        for i, (p, budget) in enumerate(zip(prompts, max_new, strict=True)):
            frames = frame_units(p)
            n = max(1, round(budget / units_per_second(p) * float(p.frame_rate)))
            quiet = np.full(len(frames), silence, dtype=np.int64)
            pair = np.stack([frames, quiet] if self.channel == 0 else [quiet, frames])
            new = continue_dialogue(lm, pair, n, dataclasses.replace(sampling,
                                                                     seed=sampling.seed + i))
            units, durations = run_lengths(new[self.channel])
            results.append((Streams(float(p.frame_rate), units=units, durations=durations),
                            False))
        return results


def for_channel(lm: Any, channel: int) -> Any:
    """``lm`` with items scored and prompted on ``channel`` (0: A, 1: B)."""
    if not isinstance(lm.architecture, DGSLM):
        raise ConfigError(f"{lm.dir}: a {lm.architecture.name} model has one channel")
    return dataclasses.replace(lm, architecture=DGSLM(channel))


ARCHITECTURES.add("dgslm", DGSLM())
