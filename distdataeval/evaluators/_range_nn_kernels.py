"""Exact nearest neighbour restricted to a range of a dendrogram's leaf order.

Every linkage node's leaf set is a contiguous range of a fixed depth-first leaf order
(:func:`leaf_starts`), so "nearest point to q among the leaves of node v" is a nearest-neighbour
query restricted to a *position range*. Leaf order itself is not spatially compact (a chain of
single-point attachments lists points scattered around a cluster's rim), so the spatial index
is a k-d tree (:func:`build_tree`): a perfect binary tree of buckets in heap layout (node i has
children 2i and 2i+1, the root is 1; splits at the median of the widest coordinate), each node
holding its points' axis-aligned bounding box and, per tree level, the node's points' leaf
positions sorted, so "does this node hold a point of [lo, hi)" is one bisection.
:func:`range_nn` descends it, skipping nodes without a point in the range and nodes whose box is
no closer than the best distance so far.

Exactness: distances are the float64 sums of ``_clusterer_kernels._dist`` (every element
widened to float64, summed in feature order). A box's lower bound is computed the same way from
box corners that are themselves point coordinates, and IEEE rounding is monotone, so it never
exceeds the computed distance of any point in the box: pruning cannot drop a point whose
computed distance is below the bound, and the returned minimum is bit-identical to a
brute-force scan with ``_dist``.

The kernels trust their inputs (contiguous arrays; ``clusterer.py`` converts).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

STACK = 128  # > 2 * tree depth for any array that fits in memory


@njit(cache=True)
def leaf_starts(left, right, size, n):
    """Position of every linkage node's first leaf in a depth-first leaf order, int64 (2n-1,).

    Node v covers positions ``[start[v], start[v] + size(v))`` (size 1 for a point, else
    ``size[v - n]``); ``start[i]`` for a point i < n is its own position. The larger-id child
    (``left``) comes first. Needs a single tree (n - 1 merges, root 2n - 2).
    """
    start = np.empty(2 * n - 1, np.int64)
    start[2 * n - 2] = 0
    for t in range(n - 2, -1, -1):
        s = start[n + t]
        a = left[t]
        b = right[t]
        start[a] = s
        start[b] = s + (size[a - n] if a >= n else 1)
    return start


@njit(cache=True, parallel=True)
def build_tree(x, pos, bucket):
    """k-d tree over the rows of ``x`` for :func:`range_nn`.

    Parameters
    ----------
    x : float32 or float64 (m, d)
    pos : int64 (m,)
        Each row's leaf position (any distinct integers).
    bucket : int
        Rows per leaf bucket.

    Returns
    -------
    perm : int64 (m,)
        Tree order: tree row k is row ``perm[k]`` of ``x``.
    xk : (m, d), ``x``'s dtype
        ``x[perm]``.
    box_lo, box_hi : (2 * n_leaves, d), ``x``'s dtype
        Node boxes (exact point coordinates; empty nodes lo = +inf, hi = -inf; row 0 unused).
    level_pos : int32 or int64 (depth + 1, m)
        Row ``L``: the leaf positions of tree rows, sorted within every node of tree level L
        (level 0 is the root, level ``depth`` the buckets).
    n_leaves : int
        Number of buckets, a power of two.
    """
    m, d = x.shape
    nb = max(1, (m + bucket - 1) // bucket)
    n_leaves = 1
    depth = 0
    while n_leaves < nb:
        n_leaves *= 2
        depth += 1
    perm = np.arange(m)
    keys = np.empty(m, np.float64)
    # top-down median splits on the widest coordinate
    for lev in range(depth):
        width = n_leaves >> lev
        for i in prange(1 << lev):  # disjoint row ranges: the nodes of a level in parallel
            a = i * width * bucket
            b = min((i + 1) * width * bucket, m)
            mid = min(a + (width // 2) * bucket, b)
            if b - a <= 1 or mid >= b:
                continue
            # spans row by row (one contiguous row per point; a column-by-column pass would
            # gather d scattered values per point once perm is shuffled)
            lo = np.full(d, np.inf)
            hi = np.full(d, -np.inf)
            for r in range(a, b):
                row = perm[r]
                for k in range(d):
                    v = np.float64(x[row, k])
                    if v < lo[k]:
                        lo[k] = v
                    if v > hi[k]:
                        hi[k] = v
            best_dim = 0
            best_span = -1.0
            for k in range(d):
                if hi[k] - lo[k] > best_span:
                    best_span = hi[k] - lo[k]
                    best_dim = k
            for r in range(a, b):
                keys[r] = x[perm[r], best_dim]
            order = np.argsort(keys[a:b], kind="mergesort")
            perm[a:b] = perm[a:b][order]
    xk = np.empty((m, d), x.dtype)
    for r in range(m):
        xk[r] = x[perm[r]]
    box_lo = np.full((2 * n_leaves, d), np.inf, x.dtype)
    box_hi = np.full((2 * n_leaves, d), -np.inf, x.dtype)
    for j in prange(nb):
        node = n_leaves + j
        for r in range(j * bucket, min((j + 1) * bucket, m)):
            for k in range(d):
                v = xk[r, k]
                if v < box_lo[node, k]:
                    box_lo[node, k] = v
                if v > box_hi[node, k]:
                    box_hi[node, k] = v
    for i in range(n_leaves - 1, 0, -1):
        for k in range(d):
            box_lo[i, k] = min(box_lo[2 * i, k], box_lo[2 * i + 1, k])
            box_hi[i, k] = max(box_hi[2 * i, k], box_hi[2 * i + 1, k])
    # sorted leaf positions per node, bottom-up (merge sort)
    level_pos = np.empty((depth + 1, m), pos.dtype)
    for j in prange(nb):
        a = j * bucket
        b = min(a + bucket, m)
        seg = pos[perm[a:b]]
        level_pos[depth, a:b] = np.sort(seg)
    for lev in range(depth - 1, -1, -1):
        width = (n_leaves >> lev) * bucket
        for i in prange(1 << lev):  # disjoint row ranges: the nodes of a level in parallel
            a = i * width
            b = min(a + width, m)
            if a >= b:
                continue
            mid = min(a + width // 2, b)
            p = a
            q = mid
            w = a
            src = level_pos[lev + 1]
            dst = level_pos[lev]
            while p < mid and q < b:
                if src[p] <= src[q]:
                    dst[w] = src[p]
                    p += 1
                else:
                    dst[w] = src[q]
                    q += 1
                w += 1
            while p < mid:
                dst[w] = src[p]
                p += 1
                w += 1
            while q < b:
                dst[w] = src[q]
                q += 1
                w += 1
    return perm, xk, box_lo, box_hi, level_pos, n_leaves


@njit(cache=True)
def _box_lb(xk, q, box_lo, box_hi, node, best):
    """Lower bound of the computed distance from tree row q to any point in the node's box, or
    +inf once the partial sum shows it is not below ``best`` (as :func:`_dist_below`)."""
    lim = best * best * (1.0 + 1e-12)
    s = 0.0
    d = xk.shape[1]
    k = 0
    while k < d:
        stop = min(k + 8, d)
        while k < stop:
            v = np.float64(xk[q, k])
            a = np.float64(box_lo[node, k])
            if v < a:
                diff = v - a
                s += diff * diff
            else:
                b = np.float64(box_hi[node, k])
                if v > b:
                    diff = v - b
                    s += diff * diff
            k += 1
        if s > lim:
            return np.inf
    return np.sqrt(s)


@njit(cache=True)
def _dist_below(xk, q, p, best):
    """``_dist(xk, q, p)`` if it can be < ``best``, else +inf (the partial sum already rules it out)."""
    lim = best * best * (1.0 + 1e-12)  # conservative: sqrt(partial) >= best for sure above it
    s = 0.0
    d = xk.shape[1]
    k = 0
    while k < d:
        stop = min(k + 8, d)
        while k < stop:
            diff = np.float64(xk[q, k]) - np.float64(xk[p, k])
            s += diff * diff
            k += 1
        if s > lim:
            return np.inf
    return np.sqrt(s)


@njit(cache=True)
def _holds(level_pos, lev, a, b, lo, hi):
    """Whether the sorted positions ``level_pos[lev, a:b]`` hold one in [lo, hi)."""
    row = level_pos[lev]
    if a >= b or row[a] >= hi or row[b - 1] < lo:
        return False
    i = a
    j = b
    while i < j:  # first index with position >= lo
        mid = (i + j) // 2
        if row[mid] < lo:
            i = mid + 1
        else:
            j = mid
    return i < b and row[i] < hi


@njit(cache=True)
def range_nn(xk, kpos, level_pos, q, lo, hi, bound, box_lo, box_hi, n_leaves, bucket, stack, stack_lb):
    """Nearest tree row to tree row ``q`` among the rows with leaf position in ``[lo, hi)``,
    strictly closer than ``bound``.

    Parameters
    ----------
    xk, level_pos, box_lo, box_hi, n_leaves
        :func:`build_tree` outputs for this ``bucket``.
    kpos : (m,)
        Leaf position of every tree row (``pos[perm]``).
    q : int
        Query tree row (it is not skipped if its own position is in the range).
    lo, hi : int
        Leaf-position range.
    bound : float
        Only distances < bound count (``np.inf`` for a plain nearest neighbour).
    stack, stack_lb : int64 (STACK, 3), float64 (STACK,) scratch.

    Returns
    -------
    dist : float
        The minimum distance if < bound, else ``bound``.
    row : int
        A tree row attaining it, -1 if none is below ``bound``.
    """
    m = xk.shape[0]
    best = bound
    arg = -1
    if hi <= lo or not _holds(level_pos, 0, 0, m, lo, hi):
        return best, arg
    stack[0, 0] = 1
    stack[0, 1] = 0
    stack[0, 2] = n_leaves
    stack_lb[0] = 0.0
    top = 1
    while top > 0:
        top -= 1
        node = stack[top, 0]
        a = stack[top, 1]
        b = stack[top, 2]
        if stack_lb[top] >= best:
            continue
        if b - a == 1:
            for r in range(a * bucket, min(b * bucket, m)):
                if kpos[r] < lo or kpos[r] >= hi:
                    continue
                dd = _dist_below(xk, q, r, best)
                if dd < best:
                    best = dd
                    arg = r
            continue
        mid = (a + b) // 2
        lev = 0
        while (2 << lev) <= node:
            lev += 1
        c1 = 2 * node
        c2 = 2 * node + 1
        l1 = _box_lb(xk, q, box_lo, box_hi, c1, best)
        l2 = _box_lb(xk, q, box_lo, box_hi, c2, best)
        in1 = l1 < best and _holds(level_pos, lev + 1, a * bucket, min(mid * bucket, m), lo, hi)
        in2 = l2 < best and _holds(level_pos, lev + 1, mid * bucket, min(b * bucket, m), lo, hi)
        if in1 and in2:
            if l1 <= l2:
                stack[top, 0] = c2
                stack[top, 1] = mid
                stack[top, 2] = b
                stack_lb[top] = l2
                stack[top + 1, 0] = c1
                stack[top + 1, 1] = a
                stack[top + 1, 2] = mid
                stack_lb[top + 1] = l1
            else:
                stack[top, 0] = c1
                stack[top, 1] = a
                stack[top, 2] = mid
                stack_lb[top] = l1
                stack[top + 1, 0] = c2
                stack[top + 1, 1] = mid
                stack[top + 1, 2] = b
                stack_lb[top + 1] = l2
            top += 2
        elif in1:
            stack[top, 0] = c1
            stack[top, 1] = a
            stack[top, 2] = mid
            stack_lb[top] = l1
            top += 1
        elif in2:
            stack[top, 0] = c2
            stack[top, 1] = mid
            stack[top, 2] = b
            stack_lb[top] = l2
            top += 1
    return best, arg
