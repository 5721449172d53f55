"""HuBERT's targets: frame units of a speechlm unit tokenizer, aligned to the model's frames.

The units come from the ordinary tokenisation job (``speechlm tokenize``) run into
``OUT/labels``, so they are computed once per utterance, resumably, and a rerun reuses them.
De-duplicated units are expanded back to one unit per frame with their durations.

Alignment is by time: model frame t is given the unit of the label frame whose centre is
nearest to its own. The two grids differ even at equal rates: HuBERT's frame t is centred on
its 400-sample receptive field (t * 20 ms + 12.5 ms), a centred-STFT MFCC frame j on j * 20 ms,
so MFCC frame t + 1 labels HuBERT frame t (7.5 ms apart, against 12.5 ms for frame t); a
``hubert`` tokenizer on the same conv stack labels frame t with its own frame t. Model frames
whose nearest label frame lies outside the utterance's labels take no loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from speechlm.errors import ConfigError
from speechlm.sequences.example import IGNORE

TARGETS_DIR = "targets"  # the MFCC tokenizer fitted when no --targets is given
LABELS_DIR = "labels"  # the token dataset of the targets
DEFAULT_UNITS = 100  # HuBERT's first iteration: k-means of MFCCs with 100 clusters


class FrameGrid(NamedTuple):
    """Where frames lie in time: ``rate`` per second, frame 0 centred ``offset`` s in."""

    rate: float
    offset: float


def align_labels(labels: np.ndarray, grid: FrameGrid, frames: FrameGrid, first: int,
                 n: int) -> np.ndarray:
    """Labels of frames ``first .. first + n - 1`` of ``frames`` from ``labels`` on ``grid``.

    Each frame takes the label whose centre is nearest in time; ``IGNORE`` where that is
    outside ``labels``. Returns (n,) int64.
    """
    centres = (first + np.arange(n)) / frames.rate + frames.offset  # (n,) seconds
    j = np.rint((centres - grid.offset) * grid.rate).astype(np.int64)
    inside = (j >= 0) & (j < len(labels))
    return np.where(inside, np.asarray(labels, np.int64)[np.clip(j, 0, len(labels) - 1)], IGNORE)


def check_targets(targets: str | Path) -> Path:
    """``targets`` as a path, once it is known to be a unit tokenizer directory."""
    from speechlm.tokenizers.base import read_spec

    path = Path(targets)
    spec = read_spec(path)
    if spec.get("class") != "units":
        raise ConfigError(f"targets: {path} is a '{spec.get('kind')}' tokenizer without k-means "
                          "units; HuBERT targets need a unit tokenizer (mfcc, logmel, hubert, ...)")
    return path


def default_targets(manifest: str | Path, out: Path) -> Path:
    """HuBERT's first-iteration targets: an MFCC tokenizer (100 units) fitted into ``out``."""
    from speechlm.tokenizers.base import SPEC_FILE

    path = out / TARGETS_DIR
    if not (path / SPEC_FILE).is_file():  # written last: a folder with it is complete
        from speechlm.tokenizers import fit_tokenizer

        fit_tokenizer(manifest, "mfcc", DEFAULT_UNITS, path)
    return path


def label_dataset(manifest: str | Path, tokenizer_dir: Path, out: Path, progress: bool = True):
    """Frame units of every utterance (a token dataset in ``out``; made once, then reused)."""
    from speechlm.tokenizers.job import load_token_dataset, tokenize_manifest

    tokenize_manifest(manifest, tokenizer_dir, out, progress=progress)
    return load_token_dataset(out).select_columns(["id", "duration", "units", "durations"])


def frame_units(row: dict) -> np.ndarray:
    """A label-dataset row's units, one per frame (durations expanded)."""
    return np.repeat(np.asarray(row["units"], np.int64), row["durations"])
