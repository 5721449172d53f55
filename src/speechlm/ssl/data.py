"""Pre-training batches: random windows of the manifest's audio, with what each objective
needs (HuBERT: frame targets and a span mask; wav2vec 2.0: a span mask and distractors; CPC:
the audio alone).

Every random choice is a function of ``(seed, epoch, item index)``: the window an item reads
and the seed of its batch's mask. So a run resumed from a checkpoint (the Trainer replays the
same item order) sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from speechlm.corpus.manifest import Utterance
from speechlm.ssl.config import SAMPLE_RATE
from speechlm.ssl.masking import negative_indices, span_mask
from speechlm.ssl.targets import FrameGrid, align_labels, frame_units


class CropDataset(torch.utils.data.Dataset):
    """Item i: a window of at most ``crop`` samples of the i-th kept utterance (and its labels).

    The window starts on a model frame (a multiple of ``hop`` samples), so the model's frames
    of the window are frames ``first ..`` of the whole utterance, where the labels were made.
    ``labels`` is the label dataset (id, duration, units, durations per row) or None, for
    objectives without targets. Utterances shorter than ``min_samples`` are left out
    (``skipped``). Audio is read at ``sample_rate`` (the encoders': 16 kHz; a codec's may differ).
    """

    def __init__(self, labels: Any | None, utts: list[Utterance], crop: int, hop: int,
                 min_samples: int, seed: int, sample_rate: int = SAMPLE_RATE) -> None:
        self.labels = labels
        self.sample_rate = sample_rate
        self.utts = {u.id: u for u in utts}
        self.crop, self.hop, self.seed = crop, hop, seed
        self.epoch = 0
        if labels is None:
            ids, seconds = [u.id for u in utts], [u.duration for u in utts]
        else:
            ids, seconds = labels["id"], labels["duration"]
        # (label row, utterance id, seconds) of each kept utterance
        self.rows = [(r, uid, s) for r, (uid, s) in enumerate(zip(ids, seconds, strict=True))
                     if s * sample_rate >= min_samples]
        self.skipped = len(seconds) - len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer's data loader at each epoch: new windows every pass."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from speechlm.audio import load_audio

        row, uid, seconds = self.rows[i]
        utt = self.utts[uid]
        sr = self.sample_rate
        n = int(round(seconds * sr))
        rng = np.random.default_rng([self.seed, self.epoch, i])
        first = int(rng.integers(0, max(0, n - self.crop) // self.hop + 1))  # model frame
        start = first * self.hop
        offset = utt.start or 0.0
        wav = load_audio(utt.audio, sr, start=offset + start / sr,
                         end=offset + min(n, start + self.crop) / sr)
        item = {"wav": wav, "first": first, "mask_seed": int(rng.integers(2**63))}
        if self.labels is not None:
            item["labels"] = frame_units(self.labels[row])
        return item


@dataclass
class WindowCollator:
    """Items -> ``input_values`` (B, L) and what the objective takes besides:

    - ``mask_time_indices`` (B, T) when ``mask_prob`` > 0 (HuBERT, wav2vec 2.0);
    - ``labels`` (B, T) when the items have labels (HuBERT): aligned from the targets' ``grid``
      to the model's ``frames``;
    - ``sampled_negative_indices`` (B, T, N) when ``num_negatives`` > 0 (wav2vec 2.0);
    - ``negative_seed`` when ``seed_negatives`` (CPC draws its negatives inside the model).

    The batch is cut to its shortest window (fairseq crops rather than pads), so no attention
    mask is needed, as group-norm encoders expect. Masks and negatives are seeded by the items,
    so a resumed run draws the same ones.
    """

    n_frames: Callable[[int], int]  # model frames of a window of n samples
    mask_prob: float = 0.0
    mask_length: int = 10
    frames: FrameGrid | None = None  # the model's frames
    grid: FrameGrid | None = None  # the targets' frames
    num_negatives: int = 0
    seed_negatives: bool = False

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        n = min(len(it["wav"]) for it in items)
        t = self.n_frames(n)
        batch = {"input_values": torch.from_numpy(np.stack([it["wav"][:n] for it in items]))}
        seeds = np.random.SeedSequence([it["mask_seed"] for it in items]).generate_state(2)
        if self.mask_prob > 0:
            mask = span_mask((len(items), t), self.mask_prob, self.mask_length, int(seeds[0]))
            batch["mask_time_indices"] = mask  # (B, T)
            if self.num_negatives:
                batch["sampled_negative_indices"] = negative_indices(mask, self.num_negatives,
                                                                     int(seeds[1]))
        if "labels" in items[0]:
            batch["labels"] = torch.from_numpy(np.stack([
                align_labels(it["labels"], self.grid, self.frames, it["first"], t)
                for it in items]))  # (B, T)
        if self.seed_negatives:
            batch["negative_seed"] = torch.tensor(int(seeds[1]))
        return batch
