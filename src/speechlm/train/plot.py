"""The loss-curve PNG written at the end of training."""

from __future__ import annotations

from pathlib import Path


def plot_losses(train: list[tuple[int, float]], eval_: list[tuple[int, float]], out: str | Path,
                title: str = "", kept_step: int | None = None) -> Path:
    """Plot train (and eval) loss against step into ``out`` (PNG); mark the kept checkpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if eval_:
        ax.plot(*zip(*eval_, strict=True), marker="o", label="held-out loss")
    if kept_step is not None:
        ax.axvline(kept_step, color="tab:green", linestyle="--", label=f"kept (step {kept_step})")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or eval_:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def plot_curves(curves: dict[str, list[tuple[int, float]]], out: str | Path,
                title: str = "") -> Path:
    """Plot several held-out loss curves (label -> (step, loss) points) into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for label, points in curves.items():
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("held-out cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(curves.values()):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)
