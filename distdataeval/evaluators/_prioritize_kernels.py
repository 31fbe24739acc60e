"""NumPy kernels of :class:`distdataeval.Prioritize` that run on O(n) driver arrays (no Dask).

All are O(n log n) at most (a few sorts over n entries) and O(n + K^2 / slab) memory; none loops
in Python over samples or over clusters.
"""

from __future__ import annotations

import numpy as np

SOFTMAX_TEMPERATURE = 0.1
MAX_CENTRE_NEIGHBOURS = 20
CENTRE_SLAB = 1024


def round_robin(groups: np.ndarray) -> np.ndarray:
    """Round-robin over groups along a walk.

    Parameters
    ----------
    groups : ndarray of int, shape (n,)
        Group of each step of the walk, in walk order.

    Returns
    -------
    ndarray of int64, shape (n,)
        Walk positions in round-robin order: groups in order of first appearance along the walk,
        each turn taking the group's next step not yet taken; exhausted groups are skipped.
    """
    n = groups.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    group_turn = np.argsort(np.argsort(first, kind="stable"), kind="stable")[inverse]  # first-appearance rank
    by_group = np.argsort(inverse, kind="stable")
    sorted_g = inverse[by_group]
    starts = np.flatnonzero(np.r_[True, sorted_g[1:] != sorted_g[:-1]])
    occurrence = np.empty(n, dtype=np.int64)
    occurrence[by_group] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.lexsort((group_turn, occurrence)).astype(np.int64)


def score_bins(scores: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin of each score: ``num_bins`` equal-width bins over [min - eps, max + eps],
    eps = (max - min) * 1e-6 (DataEval's edges), via ``np.digitize``."""
    lo, hi = float(np.min(scores)), float(np.max(scores))
    eps = (hi - lo) * 1e-6
    edges = np.linspace(lo - eps, hi + eps, num_bins + 1)
    return np.digitize(scores, edges)


def nearest_centre_distances(centres: np.ndarray, k: int) -> np.ndarray:
    """float64 (K, min(k, K - 1)): distances from each centre to its nearest other centres,
    ascending, computed in slabs of ``CENTRE_SLAB`` rows (no K x K matrix at once)."""
    n_c = centres.shape[0]
    k = min(k, n_c - 1)
    out = np.empty((n_c, max(k, 0)))
    if k <= 0:
        return out
    sq = np.einsum("ij,ij->i", centres, centres)
    for s in range(0, n_c, CENTRE_SLAB):
        e = min(n_c, s + CENTRE_SLAB)
        d2 = sq[s:e, None] + sq[None, :] - 2.0 * centres[s:e] @ centres.T
        d2[np.arange(e - s), np.arange(s, e)] = np.inf
        part = np.partition(np.maximum(d2, 0.0), k - 1, axis=1)[:, :k]
        out[s:e] = np.sort(np.sqrt(part), axis=1)
    return out


def cluster_log_weights(centres: np.ndarray, positions: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """log of DataEval's complexity sampling probability of each cluster (up to a constant).

    d_intra = mean member distance to the centre (an empty cluster: the distance to the nearest
    other centre); d_inter = mean distance to the k_c = clamp(K // 5, 1, 20) nearest other
    centres (0 without any); weight = softmax(d_intra * d_inter / 0.1). Empty clusters get -inf.
    """
    n_c = centres.shape[0]
    counts = np.bincount(positions, minlength=n_c)
    sums = np.bincount(positions, weights=distances.astype(np.float64), minlength=n_c)
    k_c = int(np.clip(n_c // 5, 1, MAX_CENTRE_NEIGHBOURS))
    near = nearest_centre_distances(centres, k_c)
    d_inter = near.mean(axis=1) if near.shape[1] else np.zeros(n_c)
    nearest = near[:, 0] if near.shape[1] else np.zeros(n_c)
    d_intra = np.where(counts > 0, sums / np.maximum(counts, 1), nearest)
    logit = d_intra * d_inter / SOFTMAX_TEMPERATURE
    logit = logit - logit.max()
    return np.where(counts > 0, logit, -np.inf)


def complexity_order(
    positions: np.ndarray, distances: np.ndarray, log_weight: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Easy-first ranking from DataEval's complexity-weighted draw, in O(n log n).

    DataEval draws a cluster with probability proportional to its weight (among clusters not yet
    exhausted), takes that cluster's hardest remaining member (largest distance to the centre)
    and finally reverses the drawn list. That sequence has the same law as a race of
    independent Poisson clocks, one per cluster with rate = its weight, each ringing once per
    member: the next ring is cluster j with probability w_j / sum of the running clocks'
    weights, and memorylessness keeps this true after every ring and every exhausted cluster.
    So each member gets the time of its cluster's i-th ring (a cumulative sum of Exp(1) / w_j
    in hardest-first order) and one sort by time gives the draw order.

    Parameters
    ----------
    positions : ndarray of int64, shape (n,)
        Cluster position (0..K-1) of each sample.
    distances : ndarray, shape (n,)
        Distance of each sample to its cluster centre.
    log_weight : ndarray of float64, shape (K,)
        From :func:`cluster_log_weights`.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int64, shape (n,)
        Sample ids, easy first.
    """
    n = positions.shape[0]
    # hardest first inside each cluster (ties: larger id first, the reverse of a stable ascending sort)
    within = np.lexsort((-np.arange(n), -distances.astype(np.float64), positions))
    waits = rng.standard_exponential(n)
    pos_sorted = positions[within]
    starts = np.flatnonzero(np.r_[True, pos_sorted[1:] != pos_sorted[:-1]])
    run_total = np.cumsum(waits)
    before = np.repeat(np.r_[0.0, run_total][starts], np.diff(np.r_[starts, n]))
    log_time = np.log(run_total - before) - log_weight[pos_sorted]
    drawn = within[np.argsort(log_time, kind="stable")]
    return drawn[::-1].astype(np.int64)
