"""k-means quantiser: fitted with faiss on a bounded frame sample, assigned with one matmul."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speechlm.errors import ConfigError


class KMeansQuantizer:
    """Nearest-centroid assignment; centroids (K, D) float32 are saved as safetensors."""

    def __init__(self, centroids: np.ndarray | torch.Tensor) -> None:
        self.centroids = torch.as_tensor(np.asarray(centroids, dtype=np.float32))  # (K, D)
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # per device

    @property
    def n_units(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    def _partial(self, x: torch.Tensor) -> torch.Tensor:
        """||c||^2 - 2 x.c (T, K): the squared distance less ||x||^2, one matmul."""
        if x.device not in self._on:
            c = self.centroids.to(x.device)
            self._on[x.device] = (c, c.square().sum(1))
        c, sq = self._on[x.device]  # (K, D), (K,)
        return sq[None, :] - 2 * x.float() @ c.T

    @torch.inference_mode()
    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """Squared-L2 distance of each row of ``x`` (T, D) to every centroid -> (T, K)."""
        return (self._partial(x) + x.float().square().sum(1, keepdim=True)).clamp_min_(0)

    @torch.inference_mode()
    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """Unit id of each row of ``x`` (T, D) -> (T,) int64 (squared-L2 nearest centroid)."""
        return self._partial(x).argmin(1)  # ||x||^2 does not change the argmin

    def median_distortion(self, frames: np.ndarray) -> float:
        """Median squared distance of ``frames`` (N, D) to their nearest centroid."""
        d = self.distances(torch.as_tensor(np.asarray(frames, dtype=np.float32)))
        return float(d.min(1).values.median())

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({"centroids": self.centroids.contiguous()}, str(path))

    @classmethod
    def load(cls, path: str | Path) -> KMeansQuantizer:
        from safetensors.torch import load_file

        return cls(load_file(str(path))["centroids"])

    @classmethod
    def fit(cls, frames: np.ndarray, n_units: int, seed: int = 0, n_iter: int = 25,
            n_redo: int = 1) -> KMeansQuantizer:
        """Fit ``n_units`` centroids on ``frames`` (N, D) with faiss (k-means++-free Lloyd)."""
        import faiss

        frames = np.ascontiguousarray(frames, dtype=np.float32)
        if len(frames) < n_units:
            raise ConfigError(f"units: {n_units} units need at least as many frames, got "
                              f"{len(frames)} (use a larger manifest or fewer units)")
        km = faiss.Kmeans(frames.shape[1], n_units, niter=n_iter, nredo=n_redo, seed=seed,
                          max_points_per_centroid=max(256, len(frames) // n_units + 1),
                          min_points_per_centroid=1, verbose=False)
        km.train(frames)
        return cls(km.centroids.copy())


class FrameSampler:
    """Keeps a uniform random sample of at most ``max_frames`` rows from a stream of (T, D) arrays.

    Reservoir sampling over frames, so memory stays bounded however long the corpus is.
    """

    def __init__(self, max_frames: int, seed: int = 0) -> None:
        self.max_frames = max_frames
        self.rng = np.random.default_rng(seed)
        self.buf: np.ndarray | None = None
        self.seen = 0

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        if self.buf is None:
            self.buf = np.empty((self.max_frames, x.shape[1]), np.float32)
        free = max(0, self.max_frames - self.seen)
        take = min(free, len(x))
        self.buf[self.seen : self.seen + take] = x[:take]
        rest = x[take:]
        if len(rest):
            # Algorithm R, vectorised: row j (0-based global index g) replaces slot r < max_frames
            g = self.seen + take + np.arange(len(rest))
            r = (self.rng.random(len(rest)) * (g + 1)).astype(np.int64)
            keep = r < self.max_frames
            self.buf[r[keep]] = rest[keep]  # later rows win on collisions, as in sequential R
        self.seen += len(x)

    def frames(self) -> np.ndarray:
        if self.buf is None:
            return np.zeros((0, 0), np.float32)
        return self.buf[: min(self.seen, self.max_frames)]


def smooth_path(dist: np.ndarray, penalty: float) -> np.ndarray:
    """Unit sequence minimising the summed distance plus ``penalty`` per change of unit.

    ``dist``: (T, K) squared distances of one utterance's frames. Frame-wise nearest-centroid
    units flicker between neighbouring centroids at phone transitions and inside long vowels;
    run-length de-duplication keeps every flicker as a token. Paying a fixed cost per segment
    (the duration-penalised segmentation of Kamper, 2022, with a constant penalty) removes those
    one-frame detours while a real change of sound, which lowers the distance over many frames,
    is kept. Exact Viterbi over K states, O(T K); ``penalty=0`` gives the nearest centroids.
    """
    n_frames, n_units = dist.shape
    if n_frames == 0:
        return np.zeros(0, np.int64)
    cost = dist[0].astype(np.float64)
    back = np.empty((n_frames, n_units), np.int32)
    stay_idx = np.arange(n_units, dtype=np.int32)
    for t in range(1, n_frames):
        best = int(cost.argmin())
        switch = cost[best] + penalty
        stay = cost <= switch
        back[t] = np.where(stay, stay_idx, best)
        cost = np.where(stay, cost, switch) + dist[t]
    path = np.empty(n_frames, np.int64)
    k = int(cost.argmin())
    for t in range(n_frames - 1, -1, -1):
        path[t] = k
        k = back[t, k]
    return path
