"""Training batches for HuBERT: random windows of the manifest's audio, frame targets, a mask.

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
from speechlm.ssl.masking import span_mask
from speechlm.ssl.targets import FrameGrid, align_labels, frame_units


class CropDataset(torch.utils.data.Dataset):
    """Item i: a window of at most ``crop`` samples of the i-th kept utterance, and its labels.

    The window starts on a model frame (a multiple of ``hop`` samples), so the model's frames
    of the window are frames ``first ..`` of the whole utterance, where the labels were made.
    Utterances shorter than ``min_samples`` are left out (``skipped``).
    """

    def __init__(self, labels: Any, utts: list[Utterance], crop: int, hop: int,
                 min_samples: int, seed: int) -> None:
        self.labels = labels  # the label dataset: id, duration, units, durations per row
        self.utts = {u.id: u for u in utts}
        self.crop, self.hop, self.seed = crop, hop, seed
        self.epoch = 0
        seconds = labels["duration"]
        self.rows = [i for i, s in enumerate(seconds) if s * SAMPLE_RATE >= min_samples]
        self.skipped = len(seconds) - len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer's data loader at each epoch: new windows every pass."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from speechlm.audio import load_audio

        row = self.labels[self.rows[i]]
        utt = self.utts[row["id"]]
        n = int(round(row["duration"] * SAMPLE_RATE))
        rng = np.random.default_rng([self.seed, self.epoch, i])
        first = int(rng.integers(0, max(0, n - self.crop) // self.hop + 1))  # model frame
        start = first * self.hop
        offset = utt.start or 0.0
        wav = load_audio(utt.audio, SAMPLE_RATE, start=offset + start / SAMPLE_RATE,
                         end=offset + min(n, start + self.crop) / SAMPLE_RATE)
        return {"wav": wav, "labels": frame_units(row), "first": first,
                "mask_seed": int(rng.integers(2**63))}


@dataclass
class HubertCollator:
    """Items -> ``input_values`` (B, L), ``labels`` and ``mask_time_indices`` (B, T).

    The batch is cut to its shortest window (fairseq's HuBERT crops rather than pads), so no
    attention mask is needed, as group-norm HuBERT expects.
    """

    n_frames: Callable[[int], int]  # model frames of a window of n samples
    frames: FrameGrid  # the model's frames
    grid: FrameGrid  # the targets' frames
    mask_prob: float
    mask_length: int

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        n = min(len(it["wav"]) for it in items)
        t = self.n_frames(n)
        wav = np.stack([it["wav"][:n] for it in items])  # (B, n)
        labels = np.stack([align_labels(it["labels"], self.grid, self.frames, it["first"], t)
                           for it in items])  # (B, T)
        seed = int(np.random.SeedSequence([it["mask_seed"] for it in items]).generate_state(1)[0])
        mask = span_mask((len(items), t), self.mask_prob, self.mask_length, seed)  # (B, T)
        return {"input_values": torch.from_numpy(wav), "labels": torch.from_numpy(labels),
                "mask_time_indices": mask}
