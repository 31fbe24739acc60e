"""A generated dataset for the demo and the benchmarks: a Gaussian mixture with clusters of
varying size and spread, a few exact duplicates and far outliers (deterministic from a seed)."""

from __future__ import annotations

import numpy as np


def make_mixture(
    n: int,
    d: int = 32,
    n_centers: int = 10,
    duplicate_fraction: float = 0.005,
    outlier_fraction: float = 0.005,
    seed: int = 0,
    dtype=np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Mixture embeddings and their generating labels (-1 for the planted outliers).

    Returns
    -------
    x : ndarray, shape (n, d)
    labels : ndarray of int64, shape (n,)
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 5.0, (n_centers, d))
    weights = rng.dirichlet(np.full(n_centers, 2.0))
    spreads = rng.uniform(0.5, 1.5, n_centers)
    labels = rng.choice(n_centers, size=n, p=weights).astype(np.int64)
    x = centers[labels] + rng.normal(0.0, 1.0, (n, d)) * spreads[labels, None]
    n_out = int(n * outlier_fraction)
    if n_out:
        out = rng.choice(n, n_out, replace=False)
        x[out] = rng.normal(0.0, 25.0, (n_out, d))
        labels[out] = -1
    n_dup = int(n * duplicate_fraction)
    if n_dup:
        src = rng.choice(n, n_dup, replace=False)
        dst = rng.choice(np.setdiff1d(np.arange(n), src), n_dup, replace=False)
        x[dst] = x[src]
        labels[dst] = labels[src]
    return x.astype(dtype), labels
