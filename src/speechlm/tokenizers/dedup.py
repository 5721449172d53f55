"""Run-length de-duplication of unit sequences, keeping the durations."""

from __future__ import annotations

import torch


def deduplicate(units: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(T,) frame units -> (N,) units with no two equal neighbours and (N,) run lengths."""
    return torch.unique_consecutive(units, return_counts=True)


def expand(units: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """Inverse of ``deduplicate``: repeat each unit by its duration."""
    return torch.repeat_interleave(units, durations)
