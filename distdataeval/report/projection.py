"""A 2-D view of the input: PCA (SVD of a centred random sample) of at most ``sample_size`` rows."""

from __future__ import annotations

from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np

from distdataeval.config import rng_for
from distdataeval.io.source import Source

SAMPLE_STREAM = 1000  # sub-path of the "sampling" seed stage used by the report


@dataclass(frozen=True)
class Projection:
    """A seeded row sample projected on its first two principal axes.

    Attributes
    ----------
    rows : ndarray of int64, shape (m,)
        Sampled row numbers, ascending.
    xy : ndarray of float64, shape (m, 2)
        Coordinates on principal axes 1 and 2.
    explained : ndarray of float64, shape (2,)
        Share of the sample's variance along each axis.
    clusters : ndarray of int64 or None, shape (m,)
    outliers : ndarray of bool or None, shape (m,)
    duplicates : ndarray of bool or None, shape (m,)
        In an exact or near duplicate group.
    n_total : int
        Rows in the input.
    """

    rows: np.ndarray
    xy: np.ndarray
    explained: np.ndarray
    clusters: np.ndarray | None
    outliers: np.ndarray | None
    duplicates: np.ndarray | None
    n_total: int


def sample_rows(n: int, sample_size: int, seed: int) -> np.ndarray:
    """Ascending row numbers of a seeded sample without replacement (all rows when n is smaller)."""
    if n <= sample_size:
        return np.arange(n, dtype=np.int64)
    rng = rng_for("sampling", SAMPLE_STREAM, seed=seed)
    return np.sort(rng.choice(n, size=sample_size, replace=False)).astype(np.int64)


def pca_2d(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows on their first two principal axes (sign fixed: largest loading positive).

    Returns
    -------
    xy : ndarray of float64, shape (m, 2)
        Zero columns where the sample has fewer than two non-trivial axes.
    explained : ndarray of float64, shape (2,)
    """
    x = np.asarray(sample, dtype=np.float64)
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = np.zeros((2, x.shape[1]))
    k = min(2, vt.shape[0])
    axes[:k] = vt[:k]
    flip = np.sign(axes[np.arange(2), np.argmax(np.abs(axes), axis=1)])
    axes *= np.where(flip == 0, 1.0, flip)[:, None]
    var = s**2
    explained = np.zeros(2)
    if var.sum() > 0:
        explained[:k] = var[:k] / var.sum()
    return centred @ axes.T, explained


def project_sample(
    source: Source,
    *,
    sample_size: int,
    seed: int,
    clusters: da.Array | None = None,
    outlier_flags: da.Array | None = None,
    duplicate_groups=(),
) -> Projection:
    """Sample rows of ``source`` (seeded), project them with PCA, pick up their labels.

    Parameters
    ----------
    source : Source
        The run's input embeddings, opened by :func:`distdataeval.io.source.open_source`.
    sample_size, seed : int
    clusters, outlier_flags : dask array, optional
        (n,) labels and flags, read at the same rows.
    duplicate_groups : sequence of dask array
        (n,) group ids (-1 = none); a sampled row is marked when any is >= 0.
    """
    rows = sample_rows(source.n, sample_size, seed)
    lazy = {"x": source.data[rows]}
    if clusters is not None:
        lazy["clusters"] = clusters[rows]
    if outlier_flags is not None:
        lazy["outliers"] = outlier_flags[rows]
    for i, ids in enumerate(duplicate_groups):
        lazy[f"dups{i}"] = ids[rows]
    keys = list(lazy)
    got = dict(zip(keys, dask.compute(*(lazy[k] for k in keys)), strict=True))  # all Dask arrays
    xy, explained = pca_2d(got["x"])
    dups = None
    if duplicate_groups:
        dups = np.zeros(rows.shape[0], dtype=bool)
        for i in range(len(duplicate_groups)):
            dups |= np.asarray(got[f"dups{i}"]) >= 0
    return Projection(
        rows=rows,
        xy=xy,
        explained=explained,
        clusters=np.asarray(got["clusters"], np.int64) if "clusters" in got else None,
        outliers=np.asarray(got["outliers"], bool) if "outliers" in got else None,
        duplicates=dups,
        n_total=source.n,
    )
