"""The legacy ``Clusterer``'s merge profiles computed without the |A| x |B| scan.

References: brute force in NumPy (every distance of a range, the same float64 sum of squares as
the kernels), SciPy's single-linkage tree for the leaf order, and the incremental pairwise scan
``_clusterer_kernels.merge_profile`` (the previous implementation, itself checked against brute
force in ``test_clusterer.py``), whose merge statistics must be reproduced bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distdataeval import Clusterer
from distdataeval.evaluators import _range_nn_kernels as R
from distdataeval.evaluators import clusterer as CM


def _brute_dist(x: np.ndarray, q: int, rows: np.ndarray) -> np.ndarray:
    """float64 distances summed feature by feature in order (the kernels' arithmetic; numpy's
    ``sum`` would pair the terms differently and differ in the last bit)."""
    diff = x[rows].astype(np.float64) - x[q].astype(np.float64)
    s = np.zeros(len(rows))
    for k in range(x.shape[1]):
        s = s + diff[:, k] * diff[:, k]
    return np.sqrt(s)


def _tree(x: np.ndarray, pos: np.ndarray, bucket: int):
    perm, xk, lo, hi, level_pos, n_leaves = R.build_tree(x, pos, bucket)
    return perm, xk, lo, hi, level_pos, n_leaves


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 300),
    d=st.sampled_from([1, 2, 3, 8, 19]),
    bucket=st.sampled_from([1, 2, 4, 16]),
    dtype=st.sampled_from([np.float32, np.float64]),
    dup=st.booleans(),
)
def test_range_nn_equals_brute_force(seed, m, d, bucket, dtype, dup):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, d)) * rng.uniform(0.01, 100)
    if dup:  # duplicate points and an integer grid: exact distance ties
        x = np.round(x / x.std() * 2) if m > 1 else x
        x[rng.integers(0, m, m // 3)] = x[0]
    x = np.ascontiguousarray(x.astype(dtype))
    pos = rng.permutation(m).astype(np.int32)  # leaf position of each row
    perm, xk, lo, hi, level_pos, n_leaves = _tree(x, pos, bucket)
    assert np.array_equal(xk, x[perm])
    kpos = pos[perm].astype(np.int64)
    row_of_pos = np.empty(m, np.int64)
    row_of_pos[pos] = np.arange(m)
    krow = np.empty(m, np.int64)
    krow[perm] = np.arange(m)
    stack = np.empty((R.STACK, 3), np.int64)
    stack_lb = np.empty(R.STACK, np.float64)
    for _ in range(8):
        a, b = np.sort(rng.integers(0, m + 1, 2))
        q = int(rng.integers(0, m))
        rows = row_of_pos[a:b]
        dist = _brute_dist(x, q, rows)
        if rng.random() < 0.5 or dist.size == 0:
            bound = np.inf
        else:  # a bound at, above or below the true minimum
            bound = float(rng.choice([dist.min(), dist.min() * 1.5, dist.min() * 0.5, np.median(dist)]))
        best, r = R.range_nn(xk, kpos, level_pos, int(krow[q]), int(a), int(b), bound, lo, hi, n_leaves, bucket,
                             stack, stack_lb)
        below = dist[dist < bound]
        if below.size == 0:
            assert r == -1 and best == bound
        else:
            assert best == below.min()  # bit for bit
            assert a <= kpos[r] < b
            assert _brute_dist(x, q, np.array([perm[r]]))[0] == best


def test_leaf_starts_give_contiguous_ranges():
    from scipy.cluster.hierarchy import linkage

    rng = np.random.default_rng(3)
    for n in (2, 3, 17, 200):
        x = rng.normal(size=(n, 3))
        z = linkage(x, "single")
        a, b = z[:, 0].astype(np.int64), z[:, 1].astype(np.int64)
        left, right = np.maximum(a, b), np.minimum(a, b)
        size = z[:, 3].astype(np.int64)
        start = R.leaf_starts(left, right, size, n)
        assert sorted(start[:n].tolist()) == list(range(n))
        members = {i: {i} for i in range(n)}
        for t in range(n - 1):
            members[n + t] = members[int(a[t])] | members[int(b[t])]
            got = sorted(start[list(members[n + t])].tolist())
            assert got == list(range(start[n + t], start[n + t] + size[t]))


def _mixture(n: int, d: int, seed: int, dup: bool = False) -> np.ndarray:
    """Clusters of clusters (8 groups of 60 tight sub-clusters, varied spread): many
    cluster-cluster merges, many of them mean-aggregated, also in 64 dimensions."""
    rng = np.random.default_rng(seed)
    macro = rng.normal(0.0, 8.0, (8, d))
    micro = macro[rng.integers(0, 8, 60)] + rng.normal(0.0, 2.0, (60, d))
    x = micro[rng.integers(0, 60, n)] + rng.normal(0.0, 0.3, (n, d)) * np.exp(rng.normal(0.0, 0.5, (n, 1)))
    if dup:  # repeated rows and coarse coordinates: many equal distances
        x = np.round(x * 2) / 2
        x[rng.integers(0, n, n // 10)] = x[rng.integers(0, n, 1)]
    return x.astype(np.float32)


def _stats(c: Clusterer, strategy: str | None, monkeypatch) -> tuple[np.ndarray, int]:
    entries = c._merge_entries()
    with monkeypatch.context() as mp:
        if strategy == "level_nn":  # no scan, every merge balanced
            mp.setattr(CM, "PROFILE_SCAN_FACTOR", -10**12)
            mp.setattr(CM, "PROFILE_BALANCE", 10**12)
        elif strategy == "per_point":  # no scan, never balanced
            mp.setattr(CM, "PROFILE_SCAN_FACTOR", -10**12)
            mp.setattr(CM, "PROFILE_BALANCE", 0)
        elif strategy == "scan":  # the pairwise scan with an unlimited budget
            mp.setattr(CM, "PROFILE_SCAN_BASE", 10**15)
        elif strategy == "batches":  # one merge per kernel call
            mp.setattr(CM, "PROFILE_BATCH", 1)
        elif strategy == "small_buckets":  # a deeper tree than the default's on these sizes
            mp.setattr(CM, "PROFILE_BUCKET", 4)
        elif strategy == "tree_only":  # every range query through the k-d tree, whatever d
            mp.setattr(CM, "PROFILE_TREE_MAX_DIM", 10**9)
        elif strategy == "scan_only":  # no tree: every range query scans its range
            mp.setattr(CM, "PROFILE_TREE_MAX_DIM", 0)
        stat, intra = c._merge_statistics(entries, exhaustive=strategy == "exhaustive")
    st_ = c._st
    use_mean = st_.out2[entries] | (st_.out1[entries] & (st_.size[entries] >= c.min_cluster_size))
    return stat, int(use_mean.sum())


@pytest.mark.parametrize("d,n,dup", [(2, 1500, False), (8, 1500, False), (64, 800, False), (2, 1200, True),
                                     (8, 1000, True)])
def test_profiles_equal_the_pairwise_scan(dask_client, monkeypatch, d, n, dup):
    x = _mixture(n, d, seed=d + n, dup=dup)
    c = Clusterer(x, knn="exact", client=dask_client)
    ref, n_mean = _stats(c, "exhaustive", monkeypatch)
    assert n_mean > 40  # the test needs many mean-aggregated merges
    for strategy in (None, "scan", "level_nn", "per_point", "batches", "small_buckets", "tree_only", "scan_only"):
        got, _ = _stats(c, strategy, monkeypatch)
        assert np.array_equal(got.view(np.int32), ref.view(np.int32)), strategy


def test_float64_input(dask_client, monkeypatch):
    x = _mixture(1500, 5, seed=11).astype(np.float64)
    c = Clusterer(x, knn="exact", client=dask_client)
    ref, n_mean = _stats(c, "exhaustive", monkeypatch)
    assert n_mean > 40
    for strategy in (None, "scan", "level_nn", "per_point", "tree_only", "scan_only"):
        got, _ = _stats(c, strategy, monkeypatch)
        assert np.array_equal(got.view(np.int32), ref.view(np.int32)), strategy


def test_last_good_merge_levels_identical_on_20k_rows(dask_client, monkeypatch):
    x = _mixture(20_000, 8, seed=0)
    new = Clusterer(x, knn="exact", client=dask_client)
    levels = new.last_good_merge_levels
    old = Clusterer(x, client=dask_client, cluster_result=new.cluster_result)
    orig = Clusterer._merge_statistics
    monkeypatch.setattr(Clusterer, "_merge_statistics", lambda self, e: orig(self, e, exhaustive=True))
    assert old.last_good_merge_levels == levels
    assert list(old.last_good_merge_levels.items()) == list(levels.items())
    assert len(levels) > 10
