"""Numba kernels of the MST stage: union-find and Kruskal. They trust their inputs."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def find(parent, x):
    """Root of x, with path halving."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True, nogil=True)
def union(parent, size, a, b):
    """Merge the sets of a and b (union by size; ties: the smaller root id wins).

    Returns True when a and b were in different sets.
    """
    ra = find(parent, a)
    rb = find(parent, b)
    if ra == rb:
        return False
    if size[ra] < size[rb] or (size[ra] == size[rb] and rb < ra):
        ra, rb = rb, ra
    parent[rb] = ra
    size[ra] += size[rb]
    return True


@njit(cache=True, nogil=True)
def kruskal_select(a, b, parent, size):
    """Walk edges (a[t], b[t]) in the given order; return the mask of edges that join two sets.

    ``parent``/``size`` are the union-find state, updated in place (so a second call continues
    from the forest left by the first).
    """
    m = a.shape[0]
    keep = np.zeros(m, dtype=np.bool_)
    for t in range(m):
        if union(parent, size, a[t], b[t]):
            keep[t] = True
    return keep


@njit(cache=True, nogil=True)
def component_labels(parent):
    """Label every point by its component, numbering components by their smallest member id."""
    n = parent.shape[0]
    root_label = np.full(n, -1, dtype=np.int64)
    labels = np.empty(n, dtype=np.int64)
    next_label = 0
    for x in range(n):
        r = find(parent, x)
        if root_label[r] < 0:
            root_label[r] = next_label
            next_label += 1
        labels[x] = root_label[r]
    return labels


@njit(cache=True)
def dataeval_union_roots(neighbors, distances):
    """Replay DataEval 1.1.4's Kruskal over a k-NN graph and return each point's union-find root.

    DataEval orders the components it bridges by these root ids. They depend on its exact union
    sequence: the flattened (row-major) float32 distances sorted by numba's default (unstable)
    argsort, union by rank where, on equal ranks, the root of the row's point wins.
    """
    n, k = neighbors.shape
    flat_n = neighbors.ravel()
    order = np.argsort(distances.ravel())
    parent = np.arange(n)
    rank = np.zeros(n, dtype=np.int64)
    for t in range(order.shape[0]):
        e = order[t]
        p = e // k
        q = flat_n[e]
        if q < 0:
            continue
        x = find(parent, p)
        y = find(parent, q)
        if x == y:
            continue
        if rank[x] < rank[y]:
            x, y = y, x
        parent[y] = x
        if rank[x] == rank[y]:
            rank[x] += 1
    roots = np.empty(n, dtype=np.int64)
    for i in range(n):
        roots[i] = find(parent, i)
    return roots


@njit(cache=True, nogil=True)
def canonical_order(weight, low, high):
    """Permutation sorting edges by (weight, low, high).

    One quicksort on the weights, then each run of equal weights (rare, except for duplicate
    points) is sorted by the combined key ``low * (max_id + 1) + high`` (exact while
    max_id < 3e9).
    """
    m = weight.shape[0]
    order = np.argsort(weight)
    if m == 0:
        return order
    span = np.int64(0)
    for t in range(m):
        if high[t] > span:
            span = high[t]
    span += 1
    i = 0
    while i < m:
        w = weight[order[i]]
        j = i + 1
        while j < m and weight[order[j]] == w:
            j += 1
        if j - i > 1:
            run = order[i:j].copy()
            key = np.empty(j - i, dtype=np.int64)
            for t in range(j - i):
                key[t] = low[run[t]] * span + high[run[t]]
            sub = np.argsort(key)
            for t in range(j - i):
                order[i + t] = run[sub[t]]
        i = j
    return order


@njit(cache=True, nogil=True)
def compact_ids(a, b):
    """Relabel the ids of two arrays to 0..u-1 (u = distinct ids) with an open-addressing hash.

    Returns (local_a, local_b, u). Memory O(len(a)), whatever the magnitude of the ids.
    """
    m = a.shape[0]
    cap = 16
    while cap < 4 * m:
        cap <<= 1
    mask = np.uint64(cap - 1)
    keys = np.full(cap, -1, dtype=np.int64)
    vals = np.empty(cap, dtype=np.int64)
    out_a = np.empty(m, dtype=np.int64)
    out_b = np.empty(m, dtype=np.int64)
    count = 0
    mult = np.uint64(0x9E3779B97F4A7C15)
    for side in range(2):
        src = a if side == 0 else b
        dst = out_a if side == 0 else out_b
        for t in range(m):
            x = src[t]
            h = (np.uint64(x) * mult) >> np.uint64(32)
            slot = np.int64(h & mask)
            while True:
                k = keys[slot]
                if k == x:
                    dst[t] = vals[slot]
                    break
                if k == -1:
                    keys[slot] = x
                    vals[slot] = count
                    dst[t] = count
                    count += 1
                    break
                slot = (slot + 1) & (cap - 1)
    return out_a, out_b, count
