"""Merge profiles of the legacy ``Clusterer`` (spec §8.3), exact, without an |A| x |B| scan per merge.

A mean-aggregated cluster-cluster merge needs its *profile*: at every level l = 0..l_top the
single-link distance between the states of its two cluster ids at level l. Each state is the
leaf set of one linkage node (a copy repeats the lower state), so in a depth-first leaf order
each side's set at level l is a contiguous position range, and one side's sets are nested
ranges along the cluster id's chain of nodes (``chain_order``: a cid's merges by level). The
points entering a side at level l are its state's range minus the previous one, so the sides are
read off the ranges in O(points) without walking the linkage. Range-restricted nearest
neighbours come from one k-d tree over all involved points (``_range_nn_kernels``) in low
dimensions, or from a scan of the range's rows, kept in leaf order, in high dimensions, where
the tree prunes too little to pay (:func:`_nearest_in_range`).

Every merge takes the first of three exact strategies that applies:

1. **Scan** (:func:`_scan_profile`): 0.61.0's incremental definition as ``_clusterer_kernels.
   _profile_sorted`` runs it (levels in order, each arriving point against the other side as it
   stands, triangle-inequality pruning, stop at the first level <= the merge's own edge length
   ``floor``), given up once it has looked at ``scan_factor`` pairs per point of the smaller
   side plus ``scan_base``. The Clusterer's defaults (0, 0) only let it finish merges whose
   level-0 pairs already reach ``floor``: on a 100k-row mixture any larger budget was slower
   overall (the capped scans of merges that do not stop early are wasted).
2. **Level scan with queries** (:func:`_level_nn_profile`), for sides within a size ratio of
   ``balance``: the same scan, each arriving point's pass over the other side replaced by one
   range nearest-neighbour query bounded by the profile so far (the tightest bound). O(|A| + |B|)
   queries, i.e. O(smaller side) for balanced sides.
3. **Per point of the smaller side**: with entry(p) the level p joins its side, profile(l) = min
   over pairs with both entries <= l. For s in the smaller side S, h_s(l) = D(s, T_l) is a
   non-increasing step function: one query over T's set at level H gives its value d on
   [max(entry(s), entry(t)), H] (t the neighbour found), the levels below are re-queried from
   entry(t) - 1, and a query only counts if it beats the running estimate at entry(s) (its
   bound). Points of S go by ascending entry. The estimate is seeded with ``floor`` from the
   level where the edge's two endpoints are both present, and levels above the first one known
   to be <= floor are never computed; the scan's early stop is applied at the end.

All three give the scan's values bit for bit: distances are the same float64 sums of ``_dist``
and every pruning bound is rounding-safe. Each point is on the smaller side of O(log n) merges,
so strategies 2 and 3 cost O(n log n) queries in all, and strategy 1 is capped at a constant
times the smaller side.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from distdataeval.evaluators._clusterer_kernels import _dist
from distdataeval.evaluators._range_nn_kernels import STACK, _dist_below, range_nn


@njit(cache=True)
def mark_mean_sides(mean_t, l_tops, outer_child, inner_child, level, chain_order, chain_start, cid,
                    start, size, n, cover):
    """Add +1/-1 at the leaf-order ends of both sides' top sets of every mean merge to ``cover``
    (int64 (n + 1,)); its prefix sum is then > 0 exactly on the positions of points involved."""
    for j in range(mean_t.shape[0]):
        for child in (outer_child[j], inner_child[j]):
            node = chain_order[_chain_bounds(child, l_tops[j], level, chain_order, chain_start, cid)[1]]
            s = start[n + node]
            cover[s] += 1
            cover[s + size[node]] -= 1


@njit(cache=True)
def _set_at(c0, k_top, lev_h, chain_order, level):
    """Largest chain index k in [c0, k_top] whose node's level <= lev_h (lev_h >= level of c0)."""
    lo = c0
    hi = k_top + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if level[chain_order[mid]] <= lev_h:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@njit(cache=True)
def _entry_of(q, c0, k_top, chain_order, level, start, size, cnt, n):
    """Level at which compact position q joins the side whose chain is chain_order[c0 : k_top + 1]
    (nested ranges), -1 if q is not in the top set."""
    t = chain_order[k_top]
    if q < cnt[start[n + t]] or q >= cnt[start[n + t] + size[t]]:
        return -1
    lo = c0
    hi = k_top
    while lo < hi:  # smallest k whose range holds q
        mid = (lo + hi) // 2
        t = chain_order[mid]
        if cnt[start[n + t]] <= q < cnt[start[n + t] + size[t]]:
            hi = mid
        else:
            lo = mid + 1
    return level[chain_order[lo]]


@njit(cache=True)
def _chain_bounds(child, l_top, level, chain_order, chain_start, cid):
    """(first chain index, chain index of the state at level l_top) of ``child``'s cid."""
    c = cid[child]
    lo = chain_start[c]
    hi = chain_start[c + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if level[chain_order[mid]] <= l_top:
            lo = mid + 1
        else:
            hi = mid
    return chain_start[c], lo - 1


@njit(cache=True)
def _arrive(p, piv_own, piv_other, own_rows, own_r, n_own, other_rows, other_r, n_other, max_other, best,
            xk):
    """One point joins its side: compare it with the other side as it stands (triangle-inequality
    pruning around the other side's pivot, with a margin that covers rounding); returns the new
    best, the point's pivot distance and the work done (pairs looked at)."""
    rp = _dist(xk, p, piv_other)
    own_r[n_own] = _dist(xk, p, piv_own)
    own_rows[n_own] = p
    if rp - max_other - 1e-9 * (rp + max_other) >= best:
        return best, own_r[n_own], 1
    for k in range(n_other):
        gap = abs(rp - other_r[k]) - 1e-9 * (rp + other_r[k])
        if gap >= best:
            continue
        dd = _dist_below(xk, p, other_rows[k], best)
        if dd < best:
            best = dd
    return best, own_r[n_own], n_other + 1


@njit(cache=True)
def _scan_profile(a0, a_top, b0, b_top, l_top, floor, level, chain_order, start, size, cnt, n, krow, xk,
                  rows_a, rows_b, ra, rb, budget, prof):
    """The incremental pairwise scan of ``_clusterer_kernels._profile_sorted`` (levels in order,
    each arriving point against the other side as it stands, stop at ``floor``), with the sides'
    arrivals read off the leaf-order ranges of their chains. Gives up (returns False) once it has
    looked at more than ``budget`` pairs."""
    pa = krow[cnt[start[n + chain_order[a0]]]]
    pb = krow[cnt[start[n + chain_order[b0]]]]
    na = 0
    nb = 0
    ka = a0
    kb = b0
    a_lo = a_hi = b_lo = b_hi = -1
    best = np.inf
    max_ra = 0.0
    max_rb = 0.0
    work = 0
    for lv in range(l_top + 1):
        for side in range(2):
            k = ka if side == 0 else kb
            k_top = a_top if side == 0 else b_top
            if k > k_top or level[chain_order[k]] != lv:
                continue
            t = chain_order[k]
            lo = cnt[start[n + t]]
            hi = cnt[start[n + t] + size[t]]
            p_lo = a_lo if side == 0 else b_lo
            p_hi = a_hi if side == 0 else b_hi
            if p_lo < 0:
                p_lo = p_hi = hi
            for part in range(2):
                r0, r1 = (lo, p_lo) if part == 0 else (p_hi, hi)
                for q in range(r0, r1):
                    p = krow[q]
                    if side == 0:
                        best, r, w = _arrive(p, pa, pb, rows_a, ra, na, rows_b, rb, nb, max_rb, best, xk)
                        max_ra = max(max_ra, r)
                        na += 1
                    else:
                        best, r, w = _arrive(p, pb, pa, rows_b, rb, nb, rows_a, ra, na, max_ra, best, xk)
                        max_rb = max(max_rb, r)
                        nb += 1
                    work += w
            if side == 0:
                a_lo, a_hi, ka = lo, hi, k + 1
            else:
                b_lo, b_hi, kb = lo, hi, k + 1
        prof[lv] = best
        if best <= floor:
            prof[lv:] = best
            return True
        if work > budget:
            return False
    return True


@njit(cache=True)
def _level_nn_profile(a0, a_top, b0, b_top, l_top, floor, level, chain_order, start, size, cnt, n, krow, xk, xp, kpos,
                      level_pos, box_lo, box_hi, n_leaves, bucket, stack, stack_lb, prof):
    """The scan of :func:`_scan_profile` with each arriving point's pass over the other side
    replaced by one range nearest-neighbour query (bound: the profile so far). Costs one query
    per point of either side up to the stopping level; returns the number of queries."""
    a_lo = a_hi = b_lo = b_hi = -1
    ka = a0
    kb = b0
    best = np.inf
    n_q = 0
    for lv in range(l_top + 1):
        for side in range(2):
            k = ka if side == 0 else kb
            k_top = a_top if side == 0 else b_top
            if k > k_top or level[chain_order[k]] != lv:
                continue
            t = chain_order[k]
            lo = cnt[start[n + t]]
            hi = cnt[start[n + t] + size[t]]
            p_lo = a_lo if side == 0 else b_lo
            p_hi = a_hi if side == 0 else b_hi
            o_lo = b_lo if side == 0 else a_lo
            o_hi = b_hi if side == 0 else a_hi
            if p_lo < 0:
                p_lo = p_hi = hi
            if o_lo >= 0:
                for part in range(2):
                    r0, r1 = (lo, p_lo) if part == 0 else (p_hi, hi)
                    for q in range(r0, r1):
                        n_q += 1
                        d, r = _nearest_in_range(xk, xp, kpos, krow, level_pos, krow[q], o_lo, o_hi, best, box_lo,
                                                 box_hi, n_leaves, bucket, stack, stack_lb)
                        if r >= 0:
                            best = d
            if side == 0:
                a_lo, a_hi, ka = lo, hi, k + 1
            else:
                b_lo, b_hi, kb = lo, hi, k + 1
        prof[lv] = best
        if best <= floor:
            prof[lv:] = best
            break
    return n_q


@njit(cache=True)
def _nearest_in_range(xk, xp, kpos, krow, level_pos, q, lo, hi, bound, box_lo, box_hi, n_leaves, bucket,
                      stack, stack_lb):
    """:func:`~._range_nn_kernels.range_nn`'s answer (the same ``_dist_below`` values, strictly
    below ``bound``); without a tree (``n_leaves == 0``) by a plain scan of the range's rows,
    which ``xp`` holds in position order (read contiguously; among equal distances the first
    position wins).

    Measured on one 1M x 64 ``cluster()`` result (approx; all merges one at a time on one
    thread, one run each): tree only 18.5-19.6 s; scans reading rows through ``krow``: all
    ranges 17.1 s, ranges up to 65,536 rows (tree above) 13.7 s; contiguous scans: up to 65,536
    rows 11.4 s, all ranges 10.3-11.2 s. In 8-d the other way round (100k mixture of
    ``benchmarks/bench_clusterer.py``, merge levels): tree only 3.9 s, contiguous scans up to
    65,536 rows 31.4 s: the large balanced merges cost a scan of the other side per point.
    """
    if n_leaves > 0:
        return range_nn(xk, kpos, level_pos, q, lo, hi, bound, box_lo, box_hi, n_leaves, bucket, stack, stack_lb)
    best = bound
    arg = -1
    for p in range(lo, hi):
        dd = _dist_below_to(xk, q, xp, p, best)
        if dd < best:
            best = dd
            arg = p
    return best, (krow[arg] if arg >= 0 else -1)


@njit(cache=True)
def _dist_below_to(xa, i, xb, j, best):
    """``_dist_below`` between row i of ``xa`` and row j of ``xb`` (same sums, same order)."""
    lim = best * best * (1.0 + 1e-12)
    s = 0.0
    d = xa.shape[1]
    k = 0
    while k < d:
        stop = min(k + 8, d)
        while k < stop:
            diff = np.float64(xa[i, k]) - np.float64(xb[j, k])
            s += diff * diff
            k += 1
        if s > lim:
            return np.inf
    return np.sqrt(s)


@njit(cache=True, parallel=True)
def mean_profiles(mean_t, l_tops, outer_child, inner_child, level, cid, chain_order, chain_start, start,
                  size, cnt, n, src_pos, dst_pos, floors, xk, xp, kpos, krow, level_pos, box_lo, box_hi,
                  n_leaves, bucket, scan_factor, scan_base, balance, offsets, out, order, n_chunks=1):
    """Profiles of the mean-aggregated merges ``mean_t``, written to ``out[offsets[j]:offsets[j+1]]``
    (length l_tops[j] + 1), equal to ``_profile_sorted`` of each merge's two sides (module doc).

    The merges are independent (each reads the shared tree and writes its own slice of ``out``):
    taken in ``order`` (costliest first), they are dealt round-robin into ``n_chunks`` chunks run
    on numba's threads, each with its own scratch buffers; the values do not depend on the order
    or the chunking.

    Parameters
    ----------
    mean_t, l_tops, outer_child, inner_child : int64 (k,)
        Merge indices, their top levels and their (outer, inner) child merges.
    level, cid, size : int64 (n-1,)
        Per-merge state bookkeeping (``linkage_to_states``).
    chain_order, chain_start : int64
        Merges sorted by (cid, level) and each cid's offset.
    start : int64 (2n-1,)
        :func:`~._range_nn_kernels.leaf_starts`.
    cnt : int64 (n + 1,)
        cnt[p] = number of tree rows before full leaf-order position p (rows are a subset of the
        points, containing every point of every side, in leaf order).
    src_pos, dst_pos : int64 (k,)
        Tree rows of each merge's MST edge endpoints (-1: not a tree row).
    floors : float64 (k,)
        The edges' lengths (``_dist`` of the endpoints' rows).
    xk, level_pos, box_lo, box_hi, n_leaves, bucket
        :func:`~._range_nn_kernels.build_tree` of the rows (``cnt`` positions); ``n_leaves = 0``:
        no tree (``xk`` is then ``xp``, ``kpos`` and ``krow`` the identity).
    xp : (m, d)
        The rows in position order (``xk[krow]``), read by range scans.
    kpos, krow : int64 (m,)
        Position of each tree row, tree row of each position.
    scan_factor, scan_base : int
        A merge first tries the pairwise scan with a budget of ``scan_factor`` pairs per point of
        its smaller side plus ``scan_base``; past it, the range queries take over.
    balance : int
        Sides within this size ratio are scanned level by level with one range query per point
        of either side (the tightest bound); more unbalanced ones query per point of the smaller
        side only.
    offsets : int64 (k + 1,)
    out : float64 (offsets[-1],)
    order : int64 (k,)
        A permutation of 0..k-1: the merges dealt to the chunks in this order.
    n_chunks : int
        Round-robin chunks of merges (run in parallel).

    Returns
    -------
    n_scanned, n_queries : int
        Merges done by the scan, range queries run (cost figures).
    """
    k = mean_t.shape[0]
    counts = np.zeros((n_chunks, 2), np.int64)
    for c in prange(n_chunks):
        js = order[c:k:n_chunks]
        a, b = _profiles_of(js, mean_t, l_tops, outer_child, inner_child, level, cid, chain_order, chain_start,
                            start, size, cnt, n, src_pos, dst_pos, floors, xk, xp, kpos, krow, level_pos, box_lo,
                            box_hi, n_leaves, bucket, scan_factor, scan_base, balance, offsets, out)
        counts[c, 0] = a
        counts[c, 1] = b
    return counts[:, 0].sum(), counts[:, 1].sum()


@njit(cache=True, nogil=True)
def _profiles_of(js, mean_t, l_tops, outer_child, inner_child, level, cid, chain_order, chain_start, start,
                 size, cnt, n, src_pos, dst_pos, floors, xk, xp, kpos, krow, level_pos, box_lo, box_hi,
                 n_leaves, bucket, scan_factor, scan_base, balance, offsets, out):
    """:func:`mean_profiles` of the merges ``js`` (indices into its arrays), in one thread."""
    stack = np.empty((STACK, 3), np.int64)
    stack_lb = np.empty(STACK, np.float64)
    m = xk.shape[0]
    rows_a = np.empty(m, np.int64)
    rows_b = np.empty(m, np.int64)
    ra = np.empty(m, np.float64)
    rb = np.empty(m, np.float64)
    s_pos = np.empty(m, np.int64)
    s_lev = np.empty(m, np.int64)
    n_queries = 0
    n_scanned = 0
    for j in js:
        l_top = l_tops[j]
        prof = out[offsets[j] : offsets[j + 1]]
        prof[:] = np.inf
        a0, a_top = _chain_bounds(outer_child[j], l_top, level, chain_order, chain_start, cid)
        b0, b_top = _chain_bounds(inner_child[j], l_top, level, chain_order, chain_start, cid)
        u = src_pos[j]
        v = dst_pos[j]
        floor = floors[j]
        # the edge's endpoints: one per side (unless a side's top state was cut off by l_top)
        eu = _entry_of(u, a0, a_top, chain_order, level, start, size, cnt, n)
        if eu >= 0:
            ev = _entry_of(v, b0, b_top, chain_order, level, start, size, cnt, n)
        else:
            eu = _entry_of(u, b0, b_top, chain_order, level, start, size, cnt, n)
            ev = _entry_of(v, a0, a_top, chain_order, level, start, size, cnt, n)
        small = min(size[chain_order[a_top]], size[chain_order[b_top]])
        if _scan_profile(a0, a_top, b0, b_top, l_top, floor, level, chain_order, start, size, cnt, n, krow, xk,
                         rows_a, rows_b, ra, rb, scan_factor * small + scan_base, prof):
            n_scanned += 1
            continue
        prof[:] = np.inf
        big = max(size[chain_order[a_top]], size[chain_order[b_top]])
        if big <= balance * small:
            n_queries += _level_nn_profile(a0, a_top, b0, b_top, l_top, floor, level, chain_order, start, size, cnt,
                                           n, krow, xk, xp, kpos, level_pos, box_lo, box_hi, n_leaves, bucket,
                                           stack, stack_lb, prof)
            continue
        upper = l_top  # exact values are needed on [0, upper] only
        if eu >= 0 and ev >= 0:
            upper = max(eu, ev)
            prof[upper] = floor
        # S: the smaller side at the upper level
        ka = _set_at(a0, a_top, upper, chain_order, level)
        kb = _set_at(b0, b_top, upper, chain_order, level)
        if size[chain_order[ka]] <= size[chain_order[kb]]:
            s0, s_top, t0, t_top = a0, a_top, b0, b_top
        else:
            s0, s_top, t0, t_top = b0, b_top, a0, a_top
        # S's points up to the upper level, by ascending entry
        ns = 0
        prev_lo = cnt[start[n + chain_order[s0]]]
        prev_hi = prev_lo
        for k in range(s0, s_top + 1):
            ts = chain_order[k]
            e = level[ts]
            if e > upper:
                break
            lo_k = cnt[start[n + ts]]
            hi_k = cnt[start[n + ts] + size[ts]]
            # the points entering at this state: its range minus the previous (nested) one
            for q in range(lo_k, prev_lo):
                s_pos[ns] = q
                s_lev[ns] = e
                ns += 1
            for q in range(prev_hi, hi_k):
                s_pos[ns] = q
                s_lev[ns] = e
                ns += 1
            prev_lo = lo_k
            prev_hi = hi_k
        # each s's step function h_s(l) = D(s, T_l) where it beats the estimate, top down
        for i in range(ns):
            e = s_lev[i]
            if e > upper:
                break
            q = krow[s_pos[i]]
            h = upper
            while True:
                kt = _set_at(t0, t_top, h, chain_order, level)
                tt = chain_order[kt]
                n_queries += 1
                d, r = _nearest_in_range(xk, xp, kpos, krow, level_pos, q, cnt[start[n + tt]],
                                         cnt[start[n + tt] + size[tt]], prof[e], box_lo, box_hi, n_leaves, bucket,
                                         stack, stack_lb)
                if r < 0:
                    break
                et = _entry_of(kpos[r], t0, kt, chain_order, level, start, size, cnt, n)
                first = max(e, et)
                for lv in range(first, h + 1):
                    if prof[lv] <= d:
                        break
                    prof[lv] = d
                if d <= floor and first < upper:
                    upper = first
                if et <= e:
                    break
                h = min(et - 1, upper)
        # the scan's early stop: from the first level <= floor on, that level's value
        for lv in range(upper + 1):
            if prof[lv] <= floor:
                prof[lv + 1 :] = prof[lv]
                break
    return n_scanned, n_queries
