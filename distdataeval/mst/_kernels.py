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
    return root_labels(parent)


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


@njit(cache=True, nogil=True)
def _edge_less(w1, a1, b1, w2, a2, b2):
    """(w1, a1, b1) < (w2, a2, b2) lexicographically: the edges' total order."""
    if w1 != w2:
        return w1 < w2
    if a1 != a2:
        return a1 < a2
    return b1 < b2


@njit(cache=True, nogil=True)
def cheapest_out_edges(neighbors, distances, row_offset, comp):
    """Per component present in one row block of a k-NN graph, its lightest edge leaving it.

    ``neighbors`` (m, k) global ids (negative or int64 max: padding), ``distances`` (m, k)
    float32, ``comp`` the component label of every point (global). Edges are (w, low, high) with
    w the float32 distance widened, compared in that total order. Returns per component found
    (comp id, w, low, high), sorted by comp id.
    """
    m, k = neighbors.shape
    pad = np.iinfo(np.int64).max
    cid = np.empty(m, np.int64)
    bw = np.empty(m, np.float64)
    blo = np.empty(m, np.int64)
    bhi = np.empty(m, np.int64)
    cnt = 0
    for r in range(m):
        i = row_offset + r
        ci = comp[i]
        found = False
        w0 = 0.0
        lo0 = 0
        hi0 = 0
        for t in range(k):
            j = neighbors[r, t]
            if j < 0 or j == pad:
                continue
            w = np.float64(distances[r, t])
            if not np.isfinite(w):
                continue
            if found and w > w0:
                break  # rows are sorted by distance: nothing lighter follows
            if comp[j] == ci:
                continue
            lo = min(i, j)
            hi = max(i, j)
            if not found or _edge_less(w, lo, hi, w0, lo0, hi0):
                found = True
                w0, lo0, hi0 = w, lo, hi
        if found:
            cid[cnt] = ci
            bw[cnt] = w0
            blo[cnt] = lo0
            bhi[cnt] = hi0
            cnt += 1
    return reduce_cheapest(cid[:cnt], bw[:cnt], blo[:cnt], bhi[:cnt])


@njit(cache=True, nogil=True)
def reduce_cheapest(cid, w, lo, hi):
    """Keep the least edge (w, lo, hi) per component id; output sorted by component id."""
    order = np.argsort(cid, kind="mergesort")
    m = cid.shape[0]
    oc = np.empty(m, np.int64)
    ow = np.empty(m, np.float64)
    ol = np.empty(m, np.int64)
    oh = np.empty(m, np.int64)
    cnt = -1
    for t in range(m):
        s = order[t]
        if cnt < 0 or oc[cnt] != cid[s]:
            cnt += 1
            oc[cnt], ow[cnt], ol[cnt], oh[cnt] = cid[s], w[s], lo[s], hi[s]
        elif _edge_less(w[s], lo[s], hi[s], ow[cnt], ol[cnt], oh[cnt]):
            ow[cnt], ol[cnt], oh[cnt] = w[s], lo[s], hi[s]
    cnt += 1
    return oc[:cnt], ow[:cnt], ol[:cnt], oh[:cnt]


@njit(cache=True, nogil=True)
def root_labels(parent):
    """The root of every point (a component label), int64 (n,)."""
    n = parent.shape[0]
    out = np.empty(n, np.int64)
    for x in range(n):
        out[x] = find(parent, x)
    return out
