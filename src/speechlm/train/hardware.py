"""What the machine computes natively: the precision ``precision: auto`` resolves to."""

from __future__ import annotations

from functools import cache
from pathlib import Path

# CPU feature flags (Linux /proc/cpuinfo) of native bf16 arithmetic: x86 AVX512-BF16 and AMX,
# Arm's BF16 extension. Without them PyTorch emulates bf16 on the CPU, which is slower than fp32.
BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip().lower()
        if key in ("flags", "features"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16() -> bool:
    """Whether the device training would run on computes bf16 natively."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return bool(BF16_FLAGS & cpu_flags())


def resolve_precision(requested: str) -> str:
    """``auto`` -> ``bf16`` where native, else ``fp32``; ``fp32`` / ``bf16`` as asked."""
    if requested != "auto":
        return requested
    return "bf16" if native_bf16() else "fp32"
