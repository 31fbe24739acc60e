"""Approx-mode bridging (mst.component_pairs) against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial.distance import cdist

import distdataeval as dde
from distdataeval.knn.blocks import prepare_block
from distdataeval.mst import component_pairs as cp


def _blobs(seed: int, n_blobs: int = 10, d: int = 12):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (n_blobs, d))
    sizes = rng.integers(60, 300, n_blobs)
    x = np.concatenate([c + rng.normal(0, 0.4 + 0.05 * i, (s, d)) for i, (c, s) in enumerate(zip(centres, sizes))])
    return x[rng.permutation(len(x))].astype(np.float32)


def test_candidate_pairs_are_symmetric_nearest_centroids():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(40, 5))
    a, b = cp.candidate_pairs(c, n_partners=3)
    assert np.all(a < b) and len(set(zip(a, b))) == len(a)
    d = cdist(c, c)
    np.fill_diagonal(d, np.inf)
    pairs = set(zip(a.tolist(), b.tolist()))
    for i in range(40):
        for j in np.argsort(d[i], kind="stable")[:3]:
            assert (min(i, j), max(i, j)) in pairs
    # nothing beyond the union of each side's 3 nearest
    for i, j in pairs:
        assert j in np.argsort(d[i], kind="stable")[:3] or i in np.argsort(d[j], kind="stable")[:3]


def test_block_seeds_are_the_nearest_rows_to_the_target_centroid():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 6))
    labels = rng.integers(0, 4, 500)
    block = prepare_block(x, 1000, np.zeros(6))
    cent = np.stack([x[labels == c].mean(0) for c in range(4)])
    pa, pb = np.array([0, 1]), np.array([2, 3])
    slots, d2, ids = cp.block_seeds(block, labels, cent, pa, pb, 7)
    for s, (own, tgt) in enumerate([(0, 2), (2, 0), (1, 3), (3, 1)]):
        rows = np.flatnonzero(labels == own)
        want = rows[np.argsort(((x[rows] - cent[tgt]) ** 2).sum(1), kind="stable")[:7]] + 1000
        assert sorted(ids[slots == s].tolist()) == sorted(want.tolist())


def test_nearest_in_component_matches_brute_force():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 5))
    labels = rng.integers(0, 5, 300)
    block = prepare_block(x, 50, np.zeros(5))
    q = rng.normal(size=(20, 5))
    target = rng.integers(0, 6, 20)  # component 5 has no row in this block
    ids, d2 = cp.block_nearest_in_component(block, labels, q, target)
    for j in range(20):
        rows = np.flatnonzero(labels == target[j])
        if rows.size == 0:
            assert ids[j] == -1 and np.isinf(d2[j])
            continue
        dd = ((x[rows] - q[j]) ** 2).sum(1)
        assert ids[j] == rows[np.argmin(dd)] + 50
        assert d2[j] == pytest.approx(dd.min(), rel=1e-12)


def _true_bridge_weights(x, neighbors):
    n = len(x)
    g = sp.coo_matrix((np.ones(neighbors.size), (np.repeat(np.arange(n), neighbors.shape[1]), neighbors.ravel())), shape=(n, n))
    C, lab = connected_components(g, directed=False)
    D = cdist(x.astype(np.float64), x.astype(np.float64))
    M = np.zeros((C, C))
    for a in range(C):
        for b in range(a + 1, C):
            M[a, b] = D[np.ix_(lab == a, lab == b)].min()
    T = minimum_spanning_tree(M).toarray()
    return C, lab, np.sort(T[T > 0])


@pytest.mark.parametrize("seed", [0, 3])
def test_approx_bridges_are_the_components_minimum_spanning_tree(seed, dask_client):
    x = _blobs(seed)
    r = dde.cluster(x, knn="approx", client=dask_client, chunk_rows=400)
    nb = np.asarray(r.k_neighbors)
    C, lab, want = _true_bridge_weights(x, nb)
    assert C > 1 and r.n_knn_components == C
    st = r.spanning_tree
    cross = lab[st.sources] != lab[st.targets]
    np.testing.assert_allclose(np.sort(st.weights[cross]), want, rtol=1e-6)
    # every bridge is a real pair of points at its exact distance
    dist = np.linalg.norm(x[st.sources[cross]].astype(np.float64) - x[st.targets[cross]], axis=1)
    np.testing.assert_allclose(st.weights[cross], dist, rtol=1e-6)


def test_approx_bridging_is_deterministic(dask_client):
    x = _blobs(5)
    with dde.config.use_seed(7):
        a = dde.cluster(x, knn="approx", client=dask_client, chunk_rows=300)
    with dde.config.use_seed(7):
        b = dde.cluster(x, knn="approx", client=dask_client, chunk_rows=300)
    assert a.n_knn_components > 1
    np.testing.assert_array_equal(a.spanning_tree.sources, b.spanning_tree.sources)
    np.testing.assert_array_equal(a.spanning_tree.targets, b.spanning_tree.targets)
    np.testing.assert_array_equal(a.spanning_tree.weights, b.spanning_tree.weights)
