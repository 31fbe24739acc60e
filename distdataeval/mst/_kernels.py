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
