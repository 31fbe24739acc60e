"""Block kernels for exact-duplicate detection and near-duplicate grouping (no Dask here).

Exact duplicates: each row's bytes are hashed with xxhash's XXH3-64 (the family DataEval uses for
its hash duplicates); rows are routed to buckets by hash, and within a bucket rows whose hash
occurs more than once become candidates; candidates are then grouped by (hash, raw bytes), so a
hash collision never merges rows whose bytes differ.
"""

from __future__ import annotations

import numpy as np
import xxhash


def row_hashes(block: np.ndarray) -> np.ndarray:
    """uint64 XXH3-64 digest of each row's bytes (C order)."""
    block = np.ascontiguousarray(block)
    m = block.shape[0]
    out = np.empty(m, dtype=np.uint64)
    if m == 0:
        return out
    width = block.strides[0] if block.ndim > 1 else block.itemsize
    view = memoryview(block.reshape(m, -1)).cast("B")
    digest = xxhash.xxh3_64_intdigest
    for i in range(m):
        out[i] = digest(view[i * width : (i + 1) * width])
    return out


def split_by_bucket(hashes: np.ndarray, offset: int, n_buckets: int) -> list:
    """Route (hash, global row index) pairs to ``n_buckets`` buckets by hash."""
    idx = np.arange(offset, offset + hashes.size, dtype=np.int64)
    bucket = (hashes % np.uint64(n_buckets)).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    cuts = np.searchsorted(bucket[order], np.arange(n_buckets + 1))
    return [(hashes[order[a:b]], idx[order[a:b]]) for a, b in zip(cuts[:-1], cuts[1:])]


def repeated_hashes(*pieces) -> tuple[np.ndarray, np.ndarray]:
    """(hash, row index) of the rows of one bucket whose hash occurs at least twice."""
    h = np.concatenate([p[0] for p in pieces]) if pieces else np.empty(0, np.uint64)
    idx = np.concatenate([p[1] for p in pieces]) if pieces else np.empty(0, np.int64)
    if h.size == 0:
        return h, idx
    order = np.lexsort((idx, h))
    h, idx = h[order], idx[order]
    same_prev = np.zeros(h.size, dtype=bool)
    same_prev[1:] = h[1:] == h[:-1]
    keep = same_prev.copy()
    keep[:-1] |= same_prev[1:]
    return h[keep], idx[keep]


def candidate_rows_by_bucket(block: np.ndarray, offset: int, local: np.ndarray, hashes: np.ndarray,
                             n_buckets: int) -> list:
    """Per bucket: (hash, global index, raw row bytes as uint8 (m, width)) of the candidate rows
    ``local`` (positions inside this block) whose hashes are ``hashes``."""
    rows = np.ascontiguousarray(block[local]).reshape(local.size, -1)
    raw = rows.view(np.uint8).reshape(local.size, -1)
    bucket = (hashes % np.uint64(n_buckets)).astype(np.int64)
    out = []
    for b in range(n_buckets):
        sel = bucket == b
        out.append((hashes[sel], local[sel].astype(np.int64) + offset, raw[sel]))
    return out


def byte_equal_groups(*pieces) -> tuple[np.ndarray, np.ndarray]:
    """Groups of rows with equal hash *and* equal bytes, size >= 2, from one bucket.

    Returns (members int64, sizes int64): members sorted within each group, groups in
    ascending order of their smallest member.
    """
    pieces = [p for p in pieces if p[0].size]
    if not pieces:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    h = np.concatenate([p[0] for p in pieces])
    idx = np.concatenate([p[1] for p in pieces])
    raw = np.concatenate([p[2] for p in pieces])
    key = np.concatenate([h.view(np.uint8).reshape(-1, 8), raw], axis=1)
    key = np.ascontiguousarray(key).view(np.dtype((np.void, key.shape[1]))).ravel()
    _, inverse = np.unique(key, return_inverse=True)
    return members_from_components(idx, inverse.ravel())


def members_from_components(nodes: np.ndarray, comp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Groups (component ids ``comp`` of ``nodes``) of size >= 2 as (members, sizes).

    Members are sorted within a group; groups are ordered by their smallest member (for
    disjoint groups, the lexicographic order of the sorted index lists).
    """
    if nodes.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.lexsort((nodes, comp))
    nodes, comp = nodes[order].astype(np.int64), comp[order]
    starts = np.flatnonzero(np.r_[True, comp[1:] != comp[:-1]])
    sizes = np.diff(np.r_[starts, nodes.size])
    big = sizes >= 2
    starts, sizes = starts[big], sizes[big]
    by_first = np.argsort(nodes[starts], kind="stable")
    starts, sizes = starts[by_first], sizes[by_first]
    if starts.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    take = np.repeat(starts - np.r_[0, np.cumsum(sizes)[:-1]], sizes) + np.arange(sizes.sum())
    return nodes[take], sizes.astype(np.int64)


def nn_flags(nn_dist: np.ndarray, pos: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Seed rule per row: nearest-neighbour distance < mean - std of its cluster (pos >= 0)."""
    ok = pos >= 0
    p = np.maximum(pos, 0)
    if mean.size == 0:
        return np.zeros(pos.size, dtype=bool)
    return ok & (nn_dist.astype(np.float64) < (mean[p] - std[p]))


def flagged_edges(nn_dist: np.ndarray, nn_idx: np.ndarray, pos: np.ndarray, offset: int, mean: np.ndarray,
                  std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, nn(i)) global index pairs of the flagged rows of one block."""
    flag = nn_flags(nn_dist, pos, mean, std)
    rows = np.flatnonzero(flag)
    return rows.astype(np.int64) + offset, np.asarray(nn_idx)[rows].astype(np.int64)
