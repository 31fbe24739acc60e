"""NumPy kernels on one row block for the per-cluster statistics (no Dask here).

They trust their inputs; :mod:`distdataeval.stats` validates and builds the graph around them.
Cluster ids inside these kernels are *positions* 0..K-1 in the sorted array of cluster ids.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from distdataeval.kmeans_kernels import nearest_centres


def labels_to_positions(labels: np.ndarray, cluster_ids: np.ndarray) -> np.ndarray:
    """Position of each label in ``cluster_ids`` (int64); -1 for negative labels."""
    labels = np.asarray(labels, dtype=np.int64)
    pos = np.searchsorted(cluster_ids, labels)
    return np.where(labels >= 0, pos, -1).astype(np.int64)


def block_center_sums(block: np.ndarray, pos: np.ndarray, n_clusters: int):
    """Per-cluster (sum of rows float64 (K, d), count int64 (K,)) of the rows with pos >= 0.

    Rows are added in row order in float64 (the same sums as ``np.add.at``, ~15x faster).
    """
    block = np.asarray(block)
    if block.dtype not in (np.float32, np.float64):
        block = block.astype(np.float64)
    sums = np.zeros((n_clusters, block.shape[1]), dtype=np.float64)
    counts = np.zeros(n_clusters, dtype=np.int64)
    _add_rows(np.ascontiguousarray(block), np.asarray(pos, dtype=np.int64), sums, counts)
    return sums, counts


@njit(cache=True, nogil=True)
def _add_rows(block, pos, sums, counts):
    for i in range(block.shape[0]):
        p = pos[i]
        if p < 0:
            continue
        counts[p] += 1
        for j in range(block.shape[1]):
            sums[p, j] += np.float64(block[i, j])


def add_center_sums(*parts):
    """Sum of several :func:`block_center_sums` results."""
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def nearest_center(rows: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Position of the nearest centre of each row (int64); ties go to the lowest position.

    Squared distances ``|x|^2 - 2 x.c + |c|^2`` in float64, tiled over rows and centres so the
    scratch stays bounded for thousands of centres (KMeans' kernel,
    :func:`distdataeval.kmeans_kernels.nearest_centres`).
    """
    if rows.shape[0] == 0 or centers.shape[0] == 0:
        return np.full(rows.shape[0], -1, dtype=np.int64)
    labels, _ = nearest_centres(rows.astype(np.float64, copy=False), np.asarray(centers, dtype=np.float64))
    return labels


def assign_block(block: np.ndarray, pos: np.ndarray, centers: np.ndarray, mode: str) -> np.ndarray:
    """Assigned centre position per row: "all" (every row to its nearest centre), "noise"
    (only rows with pos -1), "none" (pos kept)."""
    if mode == "all":
        return nearest_center(block, centers)
    out = pos.copy()
    if mode == "noise":
        noise = np.flatnonzero(pos < 0)
        if noise.size and centers.shape[0]:
            out[noise] = nearest_center(block[noise], centers)
    return out


def center_distances(block: np.ndarray, assigned: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """float32 ``||x_i - centers[assigned_i]||``; +inf where assigned is -1."""
    out = np.full(block.shape[0], np.inf, dtype=np.float32)
    ok = assigned >= 0
    if ok.any():
        diff = block[ok].astype(np.float64, copy=False) - centers[assigned[ok]]
        out[ok] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def block_moments(dist: np.ndarray, assigned: np.ndarray, n_clusters: int):
    """Per-cluster (count, mean, M2) of the distances of one block (rows with assigned >= 0).

    M2 is the sum of squared deviations from the block mean, so blocks combine without the
    cancellation of a plain sum of squares (Chan et al.'s pairwise update).
    """
    ok = assigned >= 0
    a, d = assigned[ok], dist[ok].astype(np.float64)
    cnt = np.bincount(a, minlength=n_clusters).astype(np.float64)
    mean = np.bincount(a, weights=d, minlength=n_clusters) / np.maximum(cnt, 1.0)
    m2 = np.bincount(a, weights=(d - mean[a]) ** 2, minlength=n_clusters)
    return cnt, mean, m2


def combine_moments(*parts):
    """Merge several :func:`block_moments` results."""
    cnt, mean, m2 = parts[0]
    for cb, mb, m2b in parts[1:]:
        total = cnt + cb
        safe = np.maximum(total, 1.0)
        delta = mb - mean
        mean = mean + delta * cb / safe
        m2 = m2 + m2b + delta**2 * cnt * cb / safe
        cnt = total
    return cnt, mean, m2
