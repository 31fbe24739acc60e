"""Per-cluster statistics as Dask reductions over row blocks (no loop over clusters).

Only what ``cluster()`` needs so far: cluster centres (label means) and the nearest-centre
assignment used to reassign HDBSCAN noise.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np


def _block_sums(block: np.ndarray, labels: np.ndarray, n_clusters: int):
    keep = labels >= 0
    sums = np.zeros((n_clusters, block.shape[1]), dtype=np.float64)
    np.add.at(sums, labels[keep], block[keep].astype(np.float64, copy=False))
    counts = np.bincount(labels[keep], minlength=n_clusters).astype(np.int64)
    return sums, counts


def _add_sums(*parts):
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def cluster_centers(x: da.Array, labels: da.Array, n_clusters: int, fan_in: int = 8):
    """Lazy (centres (K, d) float64, counts (K,) int64) of labels 0..K-1; label -1 is ignored."""
    if labels.chunks[0] != x.chunks[0]:
        labels = labels.rechunk({0: x.chunks[0]})
    part = dask.delayed(_block_sums, pure=True)
    level = [part(b, lab, n_clusters) for b, lab in zip(x.to_delayed().ravel(), labels.to_delayed().ravel())]
    add = dask.delayed(_add_sums, pure=True)
    while len(level) > 1:
        level = [add(*level[i : i + fan_in]) for i in range(0, len(level), fan_in)]

    def _finish(acc):
        sums, counts = acc
        return sums / np.maximum(counts, 1)[:, None], counts

    return dask.delayed(_finish, pure=True)(level[0])


def _nearest_center_for_noise(block: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    out = labels.copy()
    noise = np.flatnonzero(labels < 0)
    if noise.size == 0 or centers.shape[0] == 0:
        return out
    pts = block[noise].astype(np.float64, copy=False)
    # exact squared distances, chunked so the (points x centres) scratch stays small
    step = max(1, (64 << 20) // max(1, centers.shape[0] * centers.shape[1] * 8))
    for s in range(0, noise.size, step):
        diff = pts[s : s + step, None, :] - centers[None, :, :]
        d2 = np.einsum("ijk,ijk->ij", diff, diff)
        out[noise[s : s + step]] = np.argmin(d2, axis=1)  # ties -> lowest cluster id
    return out


def reassign_noise_to_nearest_center(x: da.Array, labels: da.Array, centers: np.ndarray) -> da.Array:
    """Labels where every -1 is replaced by the id of the nearest centre (other labels kept).

    ``centers`` is a computed (K, d) float64 array; ties go to the lowest cluster id.
    """
    if labels.chunks[0] != x.chunks[0]:
        labels = labels.rechunk({0: x.chunks[0]})
    # blockwise with explicit indices: x rows ("ij") meet the labels of the same rows ("i")
    return da.blockwise(
        _nearest_center_for_noise, "i", x, "ij", labels, "i", centers, None, dtype=np.int64, concatenate=True
    )
