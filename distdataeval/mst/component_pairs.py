"""Joining the components of an approximate k-NN forest without an all-pairs search.

DataEval's rule (:mod:`distdataeval.mst.bridge`, used in exact mode) asks every point for its
exact nearest point in a later component: a brute-force pass over all pairs, which at millions
of rows costs as much as exact k-NN itself. Approx mode joins components as Borůvka would, with
the nearest pair of each pair of *nearby* components found by a bounded search:

1. **Centroids** of the components (one pass over the row blocks).
2. **Candidate pairs**: every component with its ``n_partners`` nearest components by centroid
   distance (made symmetric).
3. **Seeds**: for a pair (A, B), the ``seed_rows`` points of A nearest to B's centroid and the
   ``seed_rows`` points of B nearest to A's (one pass; top-m per block, merged).
4. **Closest seed pair** of every candidate pair, exact (float64).
5. **Refinement**: ``x <- nearest point of A to y`` and ``y <- nearest point of B to x`` over the
   whole components (one pass over the blocks each), keeping the best pair seen, so a pair's
   distance never grows.
6. Every pair's edge goes to Kruskal with the forest. If the candidate graph leaves components
   apart, the loop repeats on the merged components (each round at least halves their number).

Every added edge is a real pair of points with its exact distance. What is approximate is that
the pair found for (A, B) is a local optimum, not always the closest pair of A and B, and that
only nearby pairs are examined; ``benchmarks/`` measures the agreement with exact bridging.

This module holds the NumPy steps run inside tasks and on the driver; the orchestrator
(:mod:`distdataeval.pipeline`) builds the passes over the blocks.
"""

from __future__ import annotations

import numpy as np

from distdataeval.knn.blocks import PreparedBlock

N_PARTNERS = 8
SEED_ROWS = 32
REFINE_PASSES = 3
_CHUNK_ENTRIES = 1 << 18  # (row, slot) entries ranked at once in a block (float32, ~64 MB at d=64)


def block_component_sums(block: PreparedBlock, labels: np.ndarray):
    """Sum of the (centred) rows and row count of every component present in one block."""
    comps, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((comps.shape[0], block.x64.shape[1]))
    np.add.at(sums, inverse, block.x64)
    return comps, sums, counts


def combine_centroids(parts: list, n_components: int) -> np.ndarray:
    """Centroids (C, d) from the per-block sums of :func:`block_component_sums`."""
    d = parts[0][1].shape[1]
    sums = np.zeros((n_components, d))
    counts = np.zeros(n_components)
    for comps, s, c in parts:
        sums[comps] += s
        counts[comps] += c
    return sums / np.maximum(counts, 1)[:, None]


def candidate_pairs(centroids: np.ndarray, n_partners: int = N_PARTNERS) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a < b) where b is among a's ``n_partners`` nearest centroids or a among b's.

    Ties are broken by component id, so the pairs depend on the centroids only.
    """
    C = centroids.shape[0]
    t = min(n_partners, C - 1)
    if t <= 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    sq = (centroids**2).sum(axis=1)
    src, dst = [], []
    for lo in range(0, C, 1024):
        hi = min(C, lo + 1024)
        d2 = sq[lo:hi, None] + sq[None, :] - 2.0 * centroids[lo:hi] @ centroids.T
        d2[np.arange(hi - lo), np.arange(lo, hi)] = np.inf
        order = np.argsort(d2, axis=1, kind="stable")[:, :t]  # ties: the lower component id
        src.append(np.repeat(np.arange(lo, hi), t))
        dst.append(order.reshape(-1))
    a, b = np.concatenate(src), np.concatenate(dst)
    low, high = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(low * C + high)
    return (key // C).astype(np.int64), (key % C).astype(np.int64)


def _slot_table(pair_a: np.ndarray, pair_b: np.ndarray, n_components: int):
    """Directed slots of the pairs grouped by owning component (CSR).

    Slot ``2p`` is side A of pair p (points of A, target centroid B); slot ``2p + 1`` side B.
    """
    P = pair_a.shape[0]
    own = np.concatenate([pair_a, pair_b])
    target = np.concatenate([pair_b, pair_a])
    slot = np.concatenate([2 * np.arange(P), 2 * np.arange(P) + 1])
    order = np.argsort(own, kind="stable")
    indptr = np.zeros(n_components + 1, dtype=np.int64)
    np.add.at(indptr, own + 1, 1)
    return np.cumsum(indptr), slot[order], target[order]


def _top_per_key(keys: np.ndarray, dist: np.ndarray, ids: np.ndarray, m: int):
    """The m smallest (dist, id) entries of every key."""
    order = np.lexsort((ids, dist, keys))
    keys, dist, ids = keys[order], dist[order], ids[order]
    start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    run = np.arange(keys.shape[0]) - np.repeat(start, np.diff(np.r_[start, keys.shape[0]]))
    keep = run < m
    return keys[keep], dist[keep], ids[keep]


def block_seeds(block: PreparedBlock, labels: np.ndarray, centroids: np.ndarray, pair_a, pair_b, m: int):
    """Per directed slot, the block's m points nearest to the slot's target centroid.

    Returns (slot, sqdist, row id) arrays, sorted by slot then (sqdist, id).
    """
    indptr, slots, targets = _slot_table(pair_a, pair_b, centroids.shape[0])
    centroids32 = centroids.astype(np.float32)
    deg = np.diff(indptr)[labels]
    rows = np.repeat(np.arange(labels.shape[0]), deg)
    first = np.repeat(indptr[labels] - np.cumsum(np.r_[0, deg[:-1]]), deg)
    entry = first + np.arange(rows.shape[0])
    out_s, out_d, out_i = [], [], []
    for lo in range(0, rows.shape[0], _CHUNK_ENTRIES):
        r, e = rows[lo : lo + _CHUNK_ENTRIES], entry[lo : lo + _CHUNK_ENTRIES]
        # ranking only (the seeds' distances are computed exactly later): float32 halves the traffic
        diff = block.x32[r] - centroids32[targets[e]]
        d2 = np.einsum("ij,ij->i", diff, diff)
        s, d2, i = _top_per_key(slots[e], d2, r + block.offset, m)
        out_s.append(s), out_d.append(d2), out_i.append(i)
    if not out_s:
        return np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64)
    return _top_per_key(np.concatenate(out_s), np.concatenate(out_d), np.concatenate(out_i), m)


def merge_seeds(parts: list, m: int):
    """Merge the per-block seeds into the m best per slot."""
    return _top_per_key(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]), m
    )


def closest_seed_pairs(slots: np.ndarray, seed_ids: np.ndarray, vectors: np.ndarray, vector_ids: np.ndarray, n_pairs: int):
    """Exact closest pair (x in A, y in B) among the seeds of every pair.

    ``vectors`` are the float64 rows of ``vector_ids`` (sorted). Returns (x, y, sqdist) per pair;
    ties go to the smaller (x, y).
    """
    x_out = np.full(n_pairs, -1, dtype=np.int64)
    y_out = np.full(n_pairs, -1, dtype=np.int64)
    d_out = np.full(n_pairs, np.inf)
    bounds = np.searchsorted(slots, np.arange(2 * n_pairs + 1))
    for p in range(n_pairs):
        ia = seed_ids[bounds[2 * p] : bounds[2 * p + 1]]
        ib = seed_ids[bounds[2 * p + 1] : bounds[2 * p + 2]]
        if ia.size == 0 or ib.size == 0:
            continue
        xa = vectors[np.searchsorted(vector_ids, ia)]
        xb = vectors[np.searchsorted(vector_ids, ib)]
        d2 = (xa**2).sum(1)[:, None] + (xb**2).sum(1)[None, :] - 2.0 * xa @ xb.T
        # recompute the few best exactly (the expansion can lose digits)
        cand = np.argsort(d2, axis=None, kind="stable")[:8]
        ca, cb = np.unravel_index(cand, d2.shape)
        exact = ((xa[ca] - xb[cb]) ** 2).sum(axis=1)
        best = np.lexsort((ib[cb], ia[ca], exact))[0]
        x_out[p], y_out[p], d_out[p] = ia[ca[best]], ib[cb[best]], exact[best]
    return x_out, y_out, d_out


def block_nearest_in_component(block: PreparedBlock, labels: np.ndarray, queries: np.ndarray, query_target: np.ndarray):
    """For every query vector, its nearest row of the block inside component ``query_target``.

    Returns (row id, sqdist) per query (-1, inf where the block has no row of that component).
    The float64 distances are ranked by expansion; the best few per query are recomputed
    directly, ties going to the lower id.
    """
    q = queries.shape[0]
    best_id = np.full(q, -1, dtype=np.int64)
    best_d = np.full(q, np.inf)
    order = np.argsort(labels, kind="stable")
    lab_sorted = labels[order]
    by_target = np.argsort(query_target, kind="stable")
    targets, starts = np.unique(query_target[by_target], return_index=True)
    ends = np.r_[starts[1:], by_target.shape[0]]
    lo = np.searchsorted(lab_sorted, targets, side="left")
    hi = np.searchsorted(lab_sorted, targets, side="right")
    x64 = block.x64  # widened once (compact blocks)
    for t in np.flatnonzero(hi > lo):
        rows = order[lo[t] : hi[t]]
        qs = by_target[starts[t] : ends[t]]
        xr, xq = x64[rows], queries[qs]
        score = (xr**2).sum(axis=1)[:, None] - 2.0 * xr @ xq.T  # + |q|^2, constant per query
        c = min(4, rows.shape[0])
        cand = np.argpartition(score, c - 1, axis=0)[:c] if rows.shape[0] > c else np.arange(c)[:, None].repeat(len(qs), 1)
        diff = xr[cand] - xq[None, :, :]
        d2 = np.einsum("cqd,cqd->cq", diff, diff)
        ids = rows[cand] + block.offset
        pick = np.lexsort((ids, d2), axis=0)[0]
        cols = np.arange(len(qs))
        best_id[qs], best_d[qs] = ids[pick, cols], d2[pick, cols]
    return best_id, best_d


def merge_nearest(parts: list):
    """Per query, the nearest over blocks (ties to the lower id)."""
    ids = np.stack([p[0] for p in parts], axis=1)
    d2 = np.stack([p[1] for p in parts], axis=1)
    big = np.where(ids < 0, np.iinfo(np.int64).max, ids)
    order = np.lexsort((big, d2), axis=1)[:, 0]
    rows = np.arange(ids.shape[0])
    return ids[rows, order], d2[rows, order]
