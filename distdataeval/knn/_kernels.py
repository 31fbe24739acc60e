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
    lie in ``refs`` (ids ``col_offset .. col_offset + len(refs) - 1``), written into ``out``.

    float32 rows are widened element by element (exactly), so passing them gives the same values
    as passing their float64 copies, with half the memory traffic of the random row reads.
    """
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
                diff = np.float64(queries[r, t]) - np.float64(refs[c, t])
                acc += diff * diff
            out[r, j] = acc


@njit(cache=True, nogil=True)
def partition_lists(xo, graph, gid_of, out_row, out_i, out_d):
    """A partition's lists from its pynndescent graph, in one pass.

    ``xo`` (s, d) float32 rows in build order, ``graph`` (s, c) neighbour positions in ``xo``
    (-1 = none), ``gid_of`` the global id of each position. Per row the first ``k`` entries other
    than itself (k = ``out_i.shape[1]``) get exact float64 squared distances (widened element by
    element, as :func:`exact_sqdist_of_candidates`) and are written, sorted by (distance, id),
    to row ``out_row[r]`` of ``out_i``/``out_d`` (pre-filled with the sentinel / inf). The rows
    are read in build order, where neighbours lie close in memory.
    """
    s, c = graph.shape
    k = out_i.shape[1]
    d = xo.shape[1]
    for r in range(s):
        o = out_row[r]
        t = 0
        for j in range(c):
            v = graph[r, j]
            if v < 0 or v == r:
                continue
            if t == k:
                break
            acc = 0.0
            for u in range(d):
                diff = np.float64(xo[r, u]) - np.float64(xo[v, u])
                acc += diff * diff
            g = gid_of[v]
            p = t
            while p > 0 and (out_d[o, p - 1] > acc or (out_d[o, p - 1] == acc and out_i[o, p - 1] > g)):
                out_d[o, p] = out_d[o, p - 1]
                out_i[o, p] = out_i[o, p - 1]
                p -= 1
            out_d[o, p] = acc
            out_i[o, p] = g
            t += 1


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


@njit(cache=True, nogil=True)
def _strictly_sorted(ids, sqd):
    """Whether a list's entries before its first sentinel ascend strictly by (distance, id)."""
    for j in range(1, ids.shape[0]):
        if ids[j] == ID_SENTINEL:
            return True
        if sqd[j] < sqd[j - 1] or (sqd[j] == sqd[j - 1] and ids[j] <= ids[j - 1]):
            return False
    return True


@njit(cache=True, nogil=True)
def merge_row_candidates(rows, nbr, sqd, n_rows, k):
    """Merge candidate lists of rows that appear several times (once per partition).

    ``rows[t]`` is the local row of list t; per row, the lists are pooled, duplicate ids dropped
    and the k best kept by (squared distance, id). Returns (ids (n_rows, k), sqdist (n_rows, k)).
    """
    count = np.zeros(n_rows, dtype=np.int64)
    for t in range(rows.shape[0]):
        count[rows[t]] += 1
    start = np.zeros(n_rows + 1, dtype=np.int64)
    for r in range(n_rows):
        start[r + 1] = start[r] + count[r]
    slot = start[:-1].copy()
    order = np.empty(rows.shape[0], dtype=np.int64)
    for t in range(rows.shape[0]):
        order[slot[rows[t]]] = t
        slot[rows[t]] += 1
    c = nbr.shape[1]
    out_i = np.full((n_rows, k), ID_SENTINEL, dtype=np.int64)
    out_d = np.full((n_rows, k), np.inf)
    for r in range(n_rows):
        lists = order[start[r] : start[r + 1]]
        if lists.shape[0] == 1 and _strictly_sorted(nbr[lists[0]], sqd[lists[0]]):
            # one list already ascending by (distance, id), hence free of repeated ids: the
            # general path below would return its first k entries (most rows of a fold)
            src = lists[0]
            for j in range(min(c, k)):
                if nbr[src, j] == ID_SENTINEL:
                    break
                out_i[r, j] = nbr[src, j]
                out_d[r, j] = sqd[src, j]
            continue
        pool_i = np.empty(lists.shape[0] * c, dtype=np.int64)
        pool_d = np.empty(lists.shape[0] * c)
        for a in range(lists.shape[0]):
            for j in range(c):
                pool_i[a * c + j] = nbr[lists[a], j]
                pool_d[a * c + j] = sqd[lists[a], j]
        o1 = np.argsort(pool_i, kind="mergesort")
        o2 = np.argsort(pool_d[o1], kind="mergesort")
        t = 0
        last = np.int64(-1)
        for j in range(o2.shape[0]):
            src = o1[o2[j]]
            gid = pool_i[src]
            if gid == ID_SENTINEL:
                break
            # equal ids have equal distances, so duplicates sit next to each other here
            if gid == last:
                continue
            dup = False
            for q in range(t):
                if out_i[r, q] == gid:
                    dup = True
                    break
            if dup:
                continue
            out_i[r, t] = gid
            out_d[r, t] = pool_d[src]
            last = gid
            t += 1
            if t == k:
                break
    return out_i, out_d
