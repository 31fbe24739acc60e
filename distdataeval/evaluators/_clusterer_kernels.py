"""Numba kernels of the legacy ``Clusterer`` (DataEval 0.61.0, spec §8) over a single-linkage tree.

The kernels trust their inputs (contiguous int64 / float64 arrays); ``clusterer.py`` validates and
converts. Vocabulary (spec §8.2): every linkage merge t (node n + t) is one *state* of the cluster
id ``cid[t]`` at ``level[t]``; a cluster-cluster merge whose children sit at different levels also
*copies* its lower child into the levels in between (``copy_hi``). Children are taken in SciPy's
column order (smaller node id first), which is what 0.61.0 walks.
"""

from __future__ import annotations

import numpy as np
from numba import njit

TINY_STD = 1e-5  # 0.61.0's std of a one-element merge-distance list


@njit(cache=True)
def linkage_to_states(left, right, distance, n):
    """Walk the linkage once and derive every state's bookkeeping (spec §8.2), O(n).

    Parameters
    ----------
    left, right : int64 (n-1,)
        Larger / smaller child node id of each merge (our LinkageTree convention).
    distance : float64 (n-1,)
        Merge distance (float32 values).
    n : int

    Returns
    -------
    cid, level, inner, last, copy_hi, n_dist : int64 (n-1,)
        Cluster id, level, absorbed cid (-1 unless a cluster-cluster merge), last sample of the
        state's sample list, highest level the node is copied to (-1: none), and the number of
        merge distances in the state (size - 1).
    avg, std : float64 (n-1,)
        Mean / population std of the state's merge distances, rounded to float32 as 0.61.0 keeps
        them (std of a single distance is 1e-5).
    out1, out2 : bool (n-1,)
    max_level, max_clusters : int
    """
    m = n - 1
    cid = np.empty(m, np.int64)
    level = np.empty(m, np.int64)
    inner = np.full(m, -1, np.int64)
    last = np.empty(m, np.int64)
    copy_hi = np.full(m, -1, np.int64)
    n_dist = np.empty(m, np.int64)
    mean = np.empty(m, np.float64)
    m2 = np.empty(m, np.float64)
    avg = np.empty(m, np.float64)
    std = np.empty(m, np.float64)
    out1 = np.zeros(m, np.bool_)
    out2 = np.zeros(m, np.bool_)
    size = np.empty(m, np.int64)
    next_cid = 0
    max_level = 1
    for t in range(m):
        a = right[t]  # SciPy's column 0: the smaller node id
        b = left[t]
        d = distance[t]
        if a >= n and b >= n:
            ta = a - n
            tb = b - n
            ca = cid[ta]
            cb = cid[tb]
            la = level[ta]
            lb = level[tb]
            cid[t] = min(ca, cb)
            inner[t] = max(ca, cb)
            level[t] = max(la, lb) + 1
            max_level = max(max_level, la, lb)
            # samples: the larger child first (column 0 on ties), so the last sample is the
            # other child's last sample
            last[t] = last[tb] if size[ta] >= size[tb] else last[ta]
            if la < lb:
                copy_hi[ta] = lb
            elif lb < la:
                copy_hi[tb] = la
            # Chan's combination of the two children's merge-distance moments, then d
            na = n_dist[ta]
            nb = n_dist[tb]
            nab = na + nb
            delta = mean[tb] - mean[ta]
            mu = mean[ta] + delta * nb / nab
            s2 = m2[ta] + m2[tb] + delta * delta * na * nb / nab
            size[t] = size[ta] + size[tb]
        elif a >= n or b >= n:
            tc = a - n if a >= n else b - n
            point = b if a >= n else a
            cid[t] = cid[tc]
            level[t] = level[tc] + 1
            last[t] = point
            nab = n_dist[tc]
            mu = mean[tc]
            s2 = m2[tc]
            size[t] = size[tc] + 1
        else:
            cid[t] = next_cid
            next_cid += 1
            level[t] = 0
            last[t] = b  # samples [a, b] with a < b
            nab = 0
            mu = 0.0
            s2 = 0.0
            size[t] = 2
        # append this merge's distance
        k = nab + 1
        delta = d - mu
        mu = mu + delta / k
        s2 = s2 + delta * (d - mu)
        n_dist[t] = k
        mean[t] = mu
        m2[t] = s2
        av = np.float64(np.float32(mu))
        if k > 1:
            sd = np.float64(np.float32(np.sqrt(max(s2, 0.0) / k)))
        else:
            sd = TINY_STD
        avg[t] = av
        std[t] = sd
        bound1 = av + sd
        out1[t] = d > bound1
        out2[t] = d > bound1 + sd
    return cid, level, inner, last, copy_hi, n_dist, avg, std, out1, out2, size, max_level, next_cid


@njit(cache=True)
def top_levels(cid, level, copy_hi, n_cids):
    """Highest level at which each cluster id has a state (copies included), int64 (n_cids,)."""
    top = np.full(n_cids, -1, np.int64)
    for t in range(cid.shape[0]):
        c = cid[t]
        hi = max(level[t], copy_hi[t])
        if hi > top[c]:
            top[c] = hi
    return top


@njit(cache=True)
def intra_max(cid, level, avg, n_cids, max_level):
    """Per cluster id: max of its states' float32 avg over levels < max_level (spec §8.4)."""
    out = np.zeros(n_cids, np.float64)
    for t in range(cid.shape[0]):
        if level[t] < max_level and avg[t] > out[cid[t]]:
            out[cid[t]] = avg[t]
    return out


@njit(cache=True)
def _push_leaves(node, n, left, right, out, count):
    """Append the points under linkage node ``node`` to ``out[count:]``; return the new count."""
    stack = np.empty(64, np.int64)
    top = 0
    stack[0] = node
    top = 1
    while top > 0:
        top -= 1
        v = stack[top]
        if v < n:
            out[count] = v
            count += 1
            continue
        if top + 2 > stack.shape[0]:
            bigger = np.empty(stack.shape[0] * 2, np.int64)
            bigger[:top] = stack[:top]
            stack = bigger
        stack[top] = left[v - n]
        stack[top + 1] = right[v - n]
        top += 2
    return count


@njit(cache=True)
def lineage_into(t_child, l_top, n, left, right, cid, level, pts, lev):
    """Points of cid ``cid[t_child]``'s states up to level ``l_top`` and the level each enters,
    written to ``pts``/``lev`` (buffers of at least the node's size); returns their count.

    The states of one cid below ``t_child`` form a chain (pair -> ... -> t_child); a point enters
    at the lowest chain node containing it. Entries come grouped by chain node from the top
    down, i.e. in descending entry level.
    """
    c = cid[t_child]
    count = 0
    cur = t_child
    while True:
        a = right[cur]
        b = left[cur]
        lv = level[cur]
        if a < n and b < n:
            if lv <= l_top:
                pts[count] = a
                pts[count + 1] = b
                lev[count] = lv
                lev[count + 1] = lv
                count += 2
            break
        if a >= n and b >= n:
            nxt, other = (a - n, b) if cid[a - n] == c else (b - n, a)
        else:
            nxt, other = (a - n, b) if a >= n else (b - n, a)
        if lv <= l_top:
            start = count
            count = _push_leaves(other, n, left, right, pts, count)
            lev[start:count] = lv
        cur = nxt
    return count


@njit(cache=True)
def lineage_entries(t_child, l_top, n, left, right, cid, level, size):
    """:func:`lineage_into` with fresh arrays: (points int64, entry levels int64)."""
    pts = np.empty(size[t_child], np.int64)
    lev = np.empty(size[t_child], np.int64)
    count = lineage_into(t_child, l_top, n, left, right, cid, level, pts, lev)
    return pts[:count], lev[:count]


@njit(cache=True)
def _dist(x, i, j):
    s = 0.0
    for k in range(x.shape[1]):
        diff = np.float64(x[i, k]) - np.float64(x[j, k])
        s += diff * diff
    return np.sqrt(s)


@njit(cache=True)
def row_distance(x, i, j):
    """Euclidean distance of rows i and j of ``x`` in float64."""
    return _dist(x, i, j)


@njit(cache=True)
def row_distances(x, a, b):
    """Euclidean distances of row pairs (a[j], b[j]) of ``x`` in float64, as :func:`row_distance`."""
    out = np.empty(a.shape[0], np.float64)
    for j in range(a.shape[0]):
        out[j] = _dist(x, a[j], b[j])
    return out


@njit(cache=True)
def closest_pair_profile(x, o_rows, o_lev, i_rows, i_lev, l_top, floor):
    """Single-link distance between two growing point sets at every level 0..l_top (spec §8.3).

    ``o_rows``/``i_rows`` index rows of ``x`` (float32 or float64, widened per element);
    ``*_lev`` give the level at which each point joins its set (any order). Returns float64
    (l_top + 1,): at level l the minimum Euclidean distance between the points with entry level
    <= l on each side. See :func:`_profile_sorted`.
    """
    o_order = np.argsort(o_lev, kind="mergesort")
    i_order = np.argsort(i_lev, kind="mergesort")
    ro = np.empty(o_rows.shape[0], np.float64)
    ri = np.empty(i_rows.shape[0], np.float64)
    return _profile_sorted(x, o_rows[o_order], o_lev[o_order], i_rows[i_order], i_lev[i_order],
                           l_top, floor, ro, ri)


@njit(cache=True)
def _profile_sorted(x, o_rows, o_lev, i_rows, i_lev, l_top, floor, ro, ri):
    """Profile core; both sides sorted by entry level, ``ro``/``ri`` scratch buffers.

    Incremental: each arriving point is compared with the other side as it stands, skipping
    candidates by the triangle inequality around a pivot (each side's first point); once the
    minimum reaches ``floor`` (the exact length of the merge's own edge, a lower bound of every
    level) the rest of the profile is ``floor``.
    """
    po = o_rows[0]
    pi = i_rows[0]
    prof = np.empty(l_top + 1, np.float64)
    best = np.inf
    no = 0  # o-side members present
    ni = 0
    max_ro = 0.0
    max_ri = 0.0
    for lv in range(l_top + 1):
        # o-side arrivals against the i side as it stands
        while no < o_rows.shape[0] and o_lev[no] <= lv:
            p = o_rows[no]
            rp = _dist(x, p, pi)
            ro[no] = _dist(x, p, po)
            if rp - max_ri < best:
                for k in range(ni):
                    if abs(rp - ri[k]) >= best:
                        continue
                    dd = _dist(x, p, i_rows[k])
                    if dd < best:
                        best = dd
            max_ro = max(max_ro, ro[no])
            no += 1
        # i-side arrivals against the o side (now including this level's arrivals)
        while ni < i_rows.shape[0] and i_lev[ni] <= lv:
            q = i_rows[ni]
            rq = _dist(x, q, po)
            ri[ni] = _dist(x, q, pi)
            if rq - max_ro < best:
                for k in range(no):
                    if abs(rq - ro[k]) >= best:
                        continue
                    dd = _dist(x, q, o_rows[k])
                    if dd < best:
                        best = dd
            max_ri = max(max_ri, ri[ni])
            ni += 1
        prof[lv] = best
        if best <= floor:
            prof[lv:] = best
            break
    return prof


@njit(cache=True)
def merge_profile(outer_child, inner_child, l_top, n, left, right, cid, level, rows, row_pos, floor, buf):
    """Profile of one cluster-cluster merge from its two children (no per-call allocation of
    the sides: ``buf`` is int64 (6, n) scratch, reused across calls)."""
    no = lineage_into(outer_child, l_top, n, left, right, cid, level, buf[0], buf[1])
    ni = lineage_into(inner_child, l_top, n, left, right, cid, level, buf[2], buf[3])
    # lineage order is descending entry level: reverse into row positions
    o_rows = buf[4, :no]
    i_rows = buf[5, :ni]
    o_lev = np.empty(no, np.int64)
    i_lev = np.empty(ni, np.int64)
    for k in range(no):
        o_rows[k] = row_pos[buf[0, no - 1 - k]]
        o_lev[k] = buf[1, no - 1 - k]
    for k in range(ni):
        i_rows[k] = row_pos[buf[2, ni - 1 - k]]
        i_lev[k] = buf[3, ni - 1 - k]
    ro = np.empty(no, np.float64)
    ri = np.empty(ni, np.float64)
    return _profile_sorted(x=rows, o_rows=o_rows, o_lev=o_lev, i_rows=i_rows, i_lev=i_lev, l_top=l_top,
                           floor=floor, ro=ro, ri=ri)


@njit(cache=True)
def _mark_leaves(node, n, left, right, flags):
    stack = np.empty(64, np.int64)
    stack[0] = node
    top = 1
    while top > 0:
        top -= 1
        v = stack[top]
        if v < n:
            flags[v] = True
            continue
        if top + 2 > stack.shape[0]:
            bigger = np.empty(stack.shape[0] * 2, np.int64)
            bigger[:top] = stack[:top]
            stack = bigger
        stack[top] = left[v - n]
        stack[top + 1] = right[v - n]
        top += 2


@njit(cache=True)
def find_outliers(n, left, right, cid, level, inner, last, copy_hi, out1, out2, size,
                  has_lgml, lgml, top, min_size):
    """0.61.0's ``find_outliers`` (spec §8.6) in one pass over the merges, O(n + flagged samples).

    0.61.0 visits states by ascending level; every state that can touch a point is in the
    subtree of the node that holds it, so visiting merges in linkage order (the copies of a
    child just before its parent) sees the same sets at every step. Copy runs are O(1).

    Returns (outliers, possible) as bool (n,) masks.
    """
    outl = np.zeros(n, np.bool_)
    poss = np.zeros(n, np.bool_)
    seen = np.zeros(has_lgml.shape[0], np.bool_)
    m = n - 1
    for t in range(m):
        # copies of this merge's cluster children, at levels level[u]+1 .. copy_hi[u]
        for child in (right[t], left[t]):
            if child < n:
                continue
            u = child - n
            if copy_hi[u] < 0:
                continue
            c = cid[u]
            if not has_lgml[c]:
                continue
            lo = max(level[u] + 1, lgml[c] + 1)
            hi = copy_hi[u]
            if lo > hi:
                continue
            x = last[u]
            fired_at_top = False
            if seen[c] and not outl[x]:
                outl[x] = True
                fired_at_top = lo == hi
            if hi == top[c] and size[u] < min_size and not fired_at_top:
                _mark_leaves(child, n, left, right, outl)
        if inner[t] >= 0:
            continue
        c = cid[t]
        lv = level[t]
        if not has_lgml[c] or lv <= lgml[c]:
            continue
        x = last[t]
        if seen[c] and not outl[x]:
            outl[x] = True
        elif out2[t]:
            if size[t] < min_size:
                _mark_leaves(n + t, n, left, right, outl)
            else:
                outl[x] = True
            seen[c] = True
        elif out1[t] and size[t] >= min_size:
            poss[x] = True
        elif lv == top[c] and size[t] < min_size:
            _mark_leaves(n + t, n, left, right, outl)
    return outl, poss


@njit(cache=True)
def _find(parent, i):
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@njit(cache=True)
def pair_components(n, a, b):
    """Union-find over pairs (a[j], b[j]); returns (root per point, degree > 0 mask)."""
    parent = np.arange(n, dtype=np.int64)
    touched = np.zeros(n, np.bool_)
    for j in range(a.shape[0]):
        ra = _find(parent, a[j])
        rb = _find(parent, b[j])
        touched[a[j]] = True
        touched[b[j]] = True
        if ra != rb:
            if ra < rb:
                parent[rb] = ra
            else:
                parent[ra] = rb
    for i in range(n):
        parent[i] = _find(parent, i)
    return parent, touched
