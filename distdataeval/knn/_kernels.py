"""Numba kernels of the exact k-NN stage. They trust their inputs (checked by the callers).

Candidate lists are kept as per-row max-heaps of size K ordered by (score, id): the root holds
the worst kept candidate, so a new candidate enters only if it beats the root.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ID_SENTINEL = np.iinfo(np.int64).max


@njit(cache=True, nogil=True)
def _sift_down(hs, hi, K):
    # restore the max-heap property from the root, ordering by (score, id)
    pos = 0
    s = hs[0]
    i = hi[0]
    while True:
        child = 2 * pos + 1
        if child >= K:
            break
        right = child + 1
        if right < K and (hs[right] > hs[child] or (hs[right] == hs[child] and hi[right] > hi[child])):
            child = right
        if hs[child] > s or (hs[child] == s and hi[child] > i):
            hs[pos] = hs[child]
            hi[pos] = hi[child]
            pos = child
        else:
            break
    hs[pos] = s
    hi[pos] = i


@njit(cache=True, nogil=True)
def push_scores(gram, col_offset, self_ids, heap_s, heap_i):
    """Push one tile of scores into the per-row heaps.

    ``gram[r, c] = |ref_c|^2 - 2 q_r . ref_c`` (one GEMM of augmented rows), which orders refs
    like the squared distance to query r. A column whose global id equals ``self_ids[r]`` is
    skipped.
    """
    m, b = gram.shape
    K = heap_s.shape[1]
    for r in range(m):
        hs = heap_s[r]
        hi = heap_i[r]
        top_s = hs[0]
        top_i = hi[0]
        sid = self_ids[r]
        row = gram[r]
        for c in range(b):
            s = row[c]
            if s > top_s:
                continue
            gid = col_offset + c
            if s == top_s and gid >= top_i:
                continue
            if gid == sid:
                continue
            hs[0] = s
            hi[0] = gid
            _sift_down(hs, hi, K)
            top_s = hs[0]
            top_i = hi[0]


@njit(cache=True, nogil=True)
def push_exact(queries, refs, col_offset, self_ids, heap_s, heap_i):
    """Push exact squared distances (float64, direct differences) of refs into the heaps."""
    m, d = queries.shape
    b = refs.shape[0]
    K = heap_s.shape[1]
    for r in range(m):
        hs = heap_s[r]
        hi = heap_i[r]
        sid = self_ids[r]
        for c in range(b):
            gid = col_offset + c
            if gid == sid:
                continue
            acc = 0.0
            for t in range(d):
                diff = queries[r, t] - refs[c, t]
                acc += diff * diff
            if acc > hs[0] or (acc == hs[0] and gid >= hi[0]):
                continue
            hs[0] = acc
            hi[0] = gid
            _sift_down(hs, hi, K)


@njit(cache=True, nogil=True)
def exact_sqdist_of_candidates(queries, refs, col_offset, heap_i, out):
    """Exact float64 squared distances from each query row to those of its candidate ids that
    lie in ``refs`` (ids ``col_offset .. col_offset + len(refs) - 1``), written into ``out``."""
    m, K = heap_i.shape
    d = queries.shape[1]
    b = refs.shape[0]
    for r in range(m):
        for j in range(K):
            gid = heap_i[r, j]
            c = gid - col_offset
            if gid == ID_SENTINEL or c < 0 or c >= b:
                continue
            acc = 0.0
            for t in range(d):
                diff = queries[r, t] - refs[c, t]
                acc += diff * diff
            out[r, j] = acc


@njit(cache=True, nogil=True)
def merge_candidates(ids, sqdist, k):
    """Per row, the k best candidates by (squared distance, id), ascending.

    ``ids``/``sqdist`` are (m, C) concatenations of candidate lists (sentinel id = unused).
    Returns (ids (m, k) int64, sqdist (m, k) float64).
    """
    m, C = ids.shape
    out_i = np.empty((m, k), dtype=np.int64)
    out_d = np.empty((m, k), dtype=np.float64)
    for r in range(m):
        order = np.argsort(ids[r], kind="mergesort")
        dsorted = sqdist[r][order]
        order2 = np.argsort(dsorted, kind="mergesort")
        for j in range(k):
            src = order[order2[j]]
            out_i[r, j] = ids[r, src]
            out_d[r, j] = sqdist[r, src]
    return out_i, out_d


@njit(cache=True, nogil=True)
def sort_heaps(heap_s, heap_i):
    """Sort each row's heap ascending by (score, id), in place."""
    m, K = heap_s.shape
    for r in range(m):
        order = np.argsort(heap_i[r], kind="mergesort")
        s1 = heap_s[r][order]
        i1 = heap_i[r][order]
        order2 = np.argsort(s1, kind="mergesort")
        for j in range(K):
            heap_s[r, j] = s1[order2[j]]
            heap_i[r, j] = i1[order2[j]]


@njit(cache=True, nogil=True)
def push_scores_later(gram, col_offset, q_pos, r_pos, heap_s, heap_i):
    """Like :func:`push_scores`, but a ref c is a candidate for query r only when
    ``r_pos[c] > q_pos[r]`` (component bridging: search later components only)."""
    m, b = gram.shape
    K = heap_s.shape[1]
    for r in range(m):
        hs = heap_s[r]
        hi = heap_i[r]
        top_s = hs[0]
        top_i = hi[0]
        qp = q_pos[r]
        row = gram[r]
        for c in range(b):
            s = row[c]
            if s > top_s:
                continue
            gid = col_offset + c
            if s == top_s and gid >= top_i:
                continue
            if r_pos[c] <= qp:
                continue
            hs[0] = s
            hi[0] = gid
            _sift_down(hs, hi, K)
            top_s = hs[0]
            top_i = hi[0]


@njit(cache=True, nogil=True)
def push_exact_later(queries, refs, col_offset, q_pos, r_pos, heap_s, heap_i):
    """Like :func:`push_exact`, restricted to refs with ``r_pos[c] > q_pos[r]``."""
    m, d = queries.shape
    b = refs.shape[0]
    K = heap_s.shape[1]
    for r in range(m):
        hs = heap_s[r]
        hi = heap_i[r]
        qp = q_pos[r]
        for c in range(b):
            if r_pos[c] <= qp:
                continue
            gid = col_offset + c
            acc = 0.0
            for t in range(d):
                diff = queries[r, t] - refs[c, t]
                acc += diff * diff
            if acc > hs[0] or (acc == hs[0] and gid >= hi[0]):
                continue
            hs[0] = acc
            hi[0] = gid
            _sift_down(hs, hi, K)
