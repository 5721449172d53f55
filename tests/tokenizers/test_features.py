"""MFCC / log-mel front ends, k-means, frame sampling and de-duplication."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.errors import ConfigError
from speechlm.tokenizers.dedup import deduplicate, expand
from speechlm.tokenizers.features import SpectralFeatures, SpectralSpec
from speechlm.tokenizers.kmeans import FrameSampler, KMeansQuantizer


def test_mfcc39_shape_rate_and_normalisation():
    f = SpectralFeatures(SpectralSpec(kind="mfcc", frame_rate=50))
    wav = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    (x,) = f([wav])
    assert x.shape == (f.n_frames(16000), 39) == (51, 39)
    assert torch.allclose(x.mean(0), torch.zeros(39), atol=1e-4)  # per-utterance CMVN
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(39), atol=1e-3)


def test_logmel_100hz_and_batch_invariance():
    f = SpectralFeatures(SpectralSpec(kind="logmel", frame_rate=100, n_mels=80, normalize=False))
    rng = np.random.default_rng(1)
    a, b = (rng.normal(0, 0.1, n).astype(np.float32) for n in (8000, 20000))
    xa, _ = f([a, b])
    assert xa.shape == (8000 // 160 + 1, 80)
    assert torch.equal(xa, f([a])[0])  # features never depend on batch neighbours


def test_deltas_of_stationary_signal_are_small():
    t = np.arange(32000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    f = SpectralFeatures(SpectralSpec(kind="mfcc", normalize=False))
    x = f([wav])[0]
    assert x[5:-5, 13:].abs().max() < 1e-2 * x[5:-5, :13].abs().max()


def test_bad_spec_names_the_key():
    with pytest.raises(ConfigError, match="frame_rate"):
        SpectralSpec(frame_rate=33.0)
    with pytest.raises(ConfigError, match="kind"):
        SpectralSpec(kind="plp")


def test_dedup_round_trip():
    units = torch.tensor([3, 3, 3, 1, 1, 4, 3, 3])
    u, d = deduplicate(units)
    assert u.tolist() == [3, 1, 4, 3] and d.tolist() == [3, 2, 1, 2]
    assert torch.equal(expand(u, d), units)


def test_kmeans_fits_separated_blobs_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (4, 3)).astype(np.float32)
    x = np.concatenate([c + rng.normal(0, 0.1, (200, 3)) for c in centres]).astype(np.float32)
    q = KMeansQuantizer.fit(x, 4, seed=0, n_redo=5)  # best of 5 random starts
    labels = q.assign(torch.from_numpy(x)).numpy().reshape(4, 200)
    assert all(len(set(row)) == 1 for row in labels) and len(set(labels[:, 0])) == 4
    q.save(tmp_path / "q.safetensors")
    q2 = KMeansQuantizer.load(tmp_path / "q.safetensors")
    assert torch.equal(q2.assign(torch.from_numpy(x)), q.assign(torch.from_numpy(x)))


def test_frame_sampler_is_bounded_and_uniform():
    s = FrameSampler(max_frames=1000, seed=0)
    for i in range(100):
        s.add(np.full((100, 1), i, np.float32))
    kept = s.frames()
    assert kept.shape == (1000, 1) and s.seen == 10_000
    # each of the 100 blocks should keep about 10 rows; the mean block index is about 49.5
    assert abs(kept.mean() - 49.5) < 5
