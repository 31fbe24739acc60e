"""Tests of the tree stage (distdataeval.tree).

Oracles:

* fast_hdbscan 0.3.4's ``cluster_trees`` kernels (a test-only dependency). DataEval vendors
  fast_hdbscan 0.2.2's copy of the same functions; 0.3.4 only adds a lambda = 0 guard to
  the label vector (points that fell out at distance inf), which finite MSTs never reach.
  fast_hdbscan keeps lambda in float32 and we keep float64, so condensed lambdas are compared
  after rounding ours to float32, and membership strengths to float32 rounding.
* A naive labeller written from the spec text (§1.5) for the cases where fast_hdbscan
  crashes (see ``_spec_labels``).
* fast_hdbscan's ``HDBSCAN`` estimator end to end.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import Delaunay
from scipy.spatial.distance import pdist, squareform

from distdataeval.errors import IndexOverflowError, InvalidInputError, InvalidParameterError
from distdataeval.mst.records import SpanningTree
from distdataeval.tree import (
    CondensedTree,
    HdbscanTree,
    LinkageTree,
    condensed_tree_to_labels,
    condensed_tree_to_membership,
    condensed_tree_to_stability,
    hdbscan_from_mst,
    linkage_to_condensed_tree,
    mst_to_linkage_tree,
    select_clusters_eom,
)

fh_trees = pytest.importorskip("fast_hdbscan.cluster_trees")


# --------------------------------------------------------------------------- helpers


def _sorted_tree(src, dst, w, n: int) -> SpanningTree:
    """SpanningTree with edges sorted by (weight, source, target), as the MST stage emits."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    w = np.asarray(w, dtype=np.float64)
    order = np.lexsort((dst, src, w))
    return SpanningTree(src[order], dst[order], w[order], n_points=n)


def _emst(X: np.ndarray) -> SpanningTree:
    """Exact Euclidean MST, weights rounded to float32 like the k-NN distances DataEval uses.

    Dense complete graph for small n; for larger 2-D sets the Delaunay graph, which contains
    the Euclidean MST.
    """
    n = X.shape[0]
    if n <= 600:
        graph = squareform(pdist(X))
    else:
        simplices = Delaunay(X).simplices
        pairs = np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]])
        pairs = np.unique(np.sort(pairs, axis=1), axis=0)
        d = np.linalg.norm(X[pairs[:, 0]] - X[pairs[:, 1]], axis=1)
        graph = coo_matrix((d, (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    mst = minimum_spanning_tree(graph).tocoo()
    w = mst.data.astype(np.float32).astype(np.float64)
    return _sorted_tree(mst.row, mst.col, w, n)


def _blobs(rng, n: int, d: int = 2, k: int = 4, spread: float = 6.0) -> np.ndarray:
    centres = rng.normal(0.0, spread, size=(k, d))
    return centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))


def _oracle(tree: SpanningTree, mcs: int, maxcs: float = np.inf):
    """fast_hdbscan 0.3.4 on the same sorted MST: linkage, condensed, selected (+ labels)."""
    mst = np.column_stack([tree.sources, tree.targets, tree.weights]).astype(np.float64)
    linkage = fh_trees.mst_to_linkage_tree(mst)
    condensed = fh_trees.condense_tree(linkage, mcs, maxcs)
    cluster_tree = fh_trees.cluster_tree_from_condensed_tree(condensed)
    selected = np.sort(fh_trees.extract_eom_clusters(condensed, cluster_tree, maxcs, True))
    return linkage, condensed, selected.astype(np.int64)


def _oracle_labels(condensed, selected, n):
    return fh_trees.get_cluster_label_vector(condensed, selected, 0.0, n)


def _oracle_membership(condensed, selected, labels):
    return fh_trees.get_point_membership_strength_vector(condensed, selected, labels)


def _spec_labels(condensed: CondensedTree, selected: np.ndarray) -> np.ndarray:
    """Labels straight from the words of §1.5, walking each point up its parent chain."""
    n = condensed.n_points
    parent_of = dict(zip(condensed.child.tolist(), condensed.parent.tolist()))
    own_lambda = dict(zip(condensed.child.tolist(), condensed.lambda_val.tolist()))
    index = {c: j for j, c in enumerate(sorted(selected.tolist()))}
    root_rows = condensed.lambda_val[condensed.parent == n]
    labels = np.full(n, -1, dtype=np.int64)
    for x in range(n):
        c = parent_of[x]
        while c not in index and c != n:
            c = parent_of[c]
        if c in index and c != n:
            labels[x] = index[c]
        elif c == n and n in index and own_lambda[x] >= root_rows.max():
            labels[x] = 0
    return labels


def _assert_matches_oracle(result: HdbscanTree, tree: SpanningTree, mcs: int, maxcs=np.inf):
    linkage, condensed, selected = _oracle(tree, mcs, maxcs)
    ours = result.linkage
    np.testing.assert_array_equal(ours.left, linkage[:, 0].astype(np.int64))
    np.testing.assert_array_equal(ours.right, linkage[:, 1].astype(np.int64))
    np.testing.assert_array_equal(ours.distance, linkage[:, 2])
    np.testing.assert_array_equal(ours.size, linkage[:, 3].astype(np.int64))

    c = result.condensed
    np.testing.assert_array_equal(c.parent, condensed.parent)
    np.testing.assert_array_equal(c.child, condensed.child)
    np.testing.assert_array_equal(c.child_size, condensed.child_size.astype(np.int64))
    # fast_hdbscan stores float32(1/d); we keep 1/d in float64.
    np.testing.assert_array_equal(c.lambda_val.astype(np.float32), condensed.lambda_val)

    np.testing.assert_array_equal(result.selected_clusters, selected)
    try:
        labels = _oracle_labels(condensed, selected, tree.n_points)
    except KeyError:
        # fast_hdbscan (and DataEval's vendored copy) look up a label for the root when
        # exactly one cluster is selected even if that cluster is not the root: with a
        # finite max_cluster_size that happens and raises KeyError. §1.5 is the truth:
        # the root-only rule applies only when the root is the selected cluster, every
        # other point that reaches the root is noise.
        assert len(selected) == 1 and selected[0] != tree.n_points
        labels = _spec_labels(c, result.selected_clusters)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.labels, _spec_labels(c, result.selected_clusters))
    membership = _oracle_membership(condensed, selected, result.labels)
    np.testing.assert_allclose(result.membership, membership, rtol=1e-6, atol=1e-7)


def _random_tree(data, n: int, weights) -> SpanningTree:
    parents = [data.draw(st.integers(0, i - 1)) for i in range(1, n)]
    perm = data.draw(st.permutations(range(n)))
    perm = np.asarray(perm, dtype=np.int64)
    src = perm[np.arange(1, n)]
    dst = perm[np.asarray(parents, dtype=np.int64)]
    w = [data.draw(weights) for _ in range(n - 1)]
    flip = np.asarray([data.draw(st.booleans()) for _ in range(n - 1)])
    src, dst = np.where(flip, dst, src), np.where(flip, src, dst)
    return _sorted_tree(src, dst, w, n)


# Powers of two (and 0) make every lambda and every stability sum exact in float32 and
# float64 alike, and make ties frequent: the hard cases for condensing and EOM.
DYADIC = st.sampled_from([0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0])
CONTINUOUS = st.floats(0.015625, 16.0, width=32)
HYPO = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- oracle tests


@pytest.mark.parametrize(
    ("n", "kind", "mcs", "seed"),
    [
        (50, "blobs", 5, 0),
        (200, "blobs", 10, 1),
        (200, "uniform", 5, 2),
        (600, "gauss", 17, 3),
        (600, "blobs", 30, 4),
        (5_000, "blobs", 100, 5),
        (20_000, "uniform", 50, 6),
        (20_000, "blobs", 8, 7),
    ],
)
def test_matches_fast_hdbscan_on_point_sets(n, kind, mcs, seed):
    rng = np.random.default_rng(seed)
    if kind == "blobs":
        X = _blobs(rng, n)
    elif kind == "uniform":
        X = rng.uniform(size=(n, 2))
    else:
        X = rng.normal(size=(n, 2))
    tree = _emst(X)
    _assert_matches_oracle(hdbscan_from_mst(tree, mcs), tree, mcs)


@pytest.mark.parametrize(("n", "mcs", "maxcs", "seed"), [(300, 5, 40, 0), (600, 10, 150, 1)])
def test_matches_fast_hdbscan_with_max_cluster_size(n, mcs, maxcs, seed):
    rng = np.random.default_rng(seed)
    tree = _emst(_blobs(rng, n, k=6))
    result = hdbscan_from_mst(tree, mcs, maxcs)
    _assert_matches_oracle(result, tree, mcs, maxcs)
    sizes = np.bincount(result.labels[result.labels >= 0])
    assert sizes.size > 0 and sizes.max() <= maxcs


def test_matches_fast_hdbscan_with_duplicates():
    # Blocks of exact copies: merges at distance 0 (lambda = inf) and splits among them.
    rng = np.random.default_rng(11)
    X = _blobs(rng, 300)
    X[:120] = X[rng.integers(0, 300, 120)]
    tree = _emst(X)
    for mcs in (2, 5, 12):
        _assert_matches_oracle(hdbscan_from_mst(tree, mcs), tree, mcs)


@pytest.mark.parametrize("mcs", [5, 10])
def test_labels_equal_fast_hdbscan_estimator(mcs):
    """End to end against ``fast_hdbscan.HDBSCAN(min_samples=1, allow_single_cluster=True)``.

    With min_samples = 1 the mutual-reachability distance is the raw Euclidean distance, and
    for low-dimensional data fast_hdbscan builds the exact Euclidean MST (Boruvka on a
    kd-tree). Our SpanningTree here is the exact EMST of the complete graph (scipy on the
    dense distance matrix), sorted by weight, so on well-separated blobs the labels agree
    exactly, numbering included (both number clusters by condensed-tree id).
    """
    fast_hdbscan = pytest.importorskip("fast_hdbscan")
    rng = np.random.default_rng(100 + mcs)
    centres = np.array([[0.0, 0.0], [40.0, 0.0], [0.0, 40.0], [40.0, 40.0]])
    X = np.concatenate([rng.normal(c, 1.0, size=(rng.integers(60, 120), 2)) for c in centres])
    X = np.concatenate([X, [[100.0, -80.0], [-90.0, 70.0]]])  # two far outliers
    D = squareform(pdist(X))
    mst = minimum_spanning_tree(D).tocoo()
    tree = _sorted_tree(mst.row, mst.col, mst.data, X.shape[0])

    expected = fast_hdbscan.HDBSCAN(
        min_cluster_size=mcs, min_samples=1, allow_single_cluster=True
    ).fit(X).labels_
    result = hdbscan_from_mst(tree, mcs)
    np.testing.assert_array_equal(result.labels, expected)
    assert result.selected_clusters.size == 4
    assert (result.labels[-2:] == -1).all()


# --------------------------------------------------------------------------- property tests


@HYPO
@given(data=st.data(), n=st.integers(2, 60), dyadic=st.booleans())
def test_linkage_union_find_invariants(data, n, dyadic):
    tree = _random_tree(data, n, DYADIC if dyadic else CONTINUOUS)
    lt = mst_to_linkage_tree(tree)
    assert lt.left.dtype == lt.right.dtype == lt.size.dtype == np.int64
    assert lt.distance.dtype == np.float64
    assert lt.size[-1] == n
    node_size = np.concatenate([np.ones(n, dtype=np.int64), lt.size])
    np.testing.assert_array_equal(lt.size, node_size[lt.left] + node_size[lt.right])
    assert (lt.left > lt.right).all()
    # each node except the root is merged exactly once, and only after it exists
    children = np.concatenate([lt.left, lt.right])
    np.testing.assert_array_equal(np.sort(children), np.arange(2 * n - 2))
    assert (lt.left < n + np.arange(n - 1)).all()
    np.testing.assert_array_equal(lt.distance, tree.weights)
    # against fast_hdbscan's union-find (ties included: same edge order -> same tree)
    ref = fh_trees.mst_to_linkage_tree(
        np.column_stack([tree.sources, tree.targets, tree.weights]).astype(np.float64)
    )
    np.testing.assert_array_equal(lt.as_dataeval(), ref.astype(np.float32))


@HYPO
@given(data=st.data(), n=st.integers(2, 80), mcs=st.integers(2, 12), dyadic=st.booleans())
def test_condensed_tree_invariants(data, n, mcs, dyadic):
    tree = _random_tree(data, n, DYADIC if dyadic else CONTINUOUS)
    ct = linkage_to_condensed_tree(mst_to_linkage_tree(tree), mcs)
    points = ct.child[ct.child < n]
    np.testing.assert_array_equal(np.sort(points), np.arange(n))  # each point exactly once
    is_cluster = ct.child >= n
    assert (ct.child_size[is_cluster] >= mcs).all()
    assert (ct.child_size[~is_cluster] == 1).all()
    k = ct.n_clusters
    np.testing.assert_array_equal(ct.child[is_cluster], np.arange(n + 1, n + k))
    assert (ct.parent >= n).all() and (ct.parent[is_cluster] < ct.child[is_cluster]).all()
    # splits come in pairs of siblings
    assert np.all(np.bincount(ct.parent[is_cluster] - n, minlength=k) % 2 == 0)
    # child sizes add up to the parent's size
    size = np.zeros(k, dtype=np.int64)
    size[0] = n
    size[ct.child[is_cluster] - n] = ct.child_size[is_cluster]
    summed = np.bincount(ct.parent - n, weights=ct.child_size, minlength=k)
    np.testing.assert_array_equal(summed, size)
    # lambda never decreases from a cluster's birth to its rows
    birth = np.zeros(k)
    birth[ct.child[is_cluster] - n] = ct.lambda_val[is_cluster]
    assert (ct.lambda_val >= birth[ct.parent - n]).all()
    stab = condensed_tree_to_stability(ct)
    assert stab.shape == (k,) and (stab >= 0).all()


@HYPO
@given(
    data=st.data(),
    n=st.integers(2, 80),
    mcs=st.integers(2, 10),
    maxcs=st.one_of(st.none(), st.integers(3, 60)),
    dyadic=st.booleans(),
)
def test_selection_labels_membership_invariants_and_oracle(data, n, mcs, maxcs, dyadic):
    tree = _random_tree(data, n, DYADIC if dyadic else CONTINUOUS)
    result = hdbscan_from_mst(tree, mcs, maxcs)
    ct, sel, labels = result.condensed, result.selected_clusters, result.labels
    limit = np.inf if maxcs is None else maxcs

    # selection: sorted, an antichain, nothing larger than max_cluster_size (the root
    # counting as n - 1 points, DataEval's quirk)
    assert (np.diff(sel) > 0).all()
    parent_of = dict(zip(ct.child.tolist(), ct.parent.tolist()))
    size_of = dict(zip(ct.child.tolist(), ct.child_size.tolist()))
    size_of[n] = n - 1
    chosen = set(sel.tolist())
    for c in chosen:
        a = c
        while a != n:
            a = parent_of[a]
            assert a not in chosen, f"{a} is an ancestor of selected {c}"
        assert size_of[c] <= limit
    if ct.n_clusters > 1 and maxcs is None:
        assert sel.size >= 1  # without a size limit EOM always selects something

    # labels: every non-root selected cluster keeps all its points (so >= mcs of them);
    # the root, when selected, may keep fewer (root-only rule)
    assert labels.dtype == np.int64 and labels.shape == (n,)
    assert labels.min() >= -1 and labels.max() < max(sel.size, 1)
    counts = np.bincount(labels[labels >= 0], minlength=sel.size)
    for j, c in enumerate(sel.tolist()):
        if c != n:
            assert counts[j] == size_of[c] >= mcs
    if sel.size == 0:
        assert (labels == -1).all()

    m = result.membership
    assert m.dtype == np.float32 and m.shape == (n,)
    assert (m[labels < 0] == 0).all()
    assert ((m >= 0) & (m <= 1)).all()

    # against fast_hdbscan and the spec's words, ties and lambda = inf included
    _assert_matches_oracle(result, tree, mcs, limit)


# --------------------------------------------------------------------------- edge cases


class TestEdgeCases:
    def test_two_points_are_noise(self):
        tree = _sorted_tree([0], [1], [0.5], 2)
        result = hdbscan_from_mst(tree, 2)
        np.testing.assert_array_equal(result.linkage.as_dataeval(), [[1, 0, 0.5, 2]])
        assert result.selected_clusters.size == 0
        np.testing.assert_array_equal(result.labels, [-1, -1])
        np.testing.assert_array_equal(result.membership, [0.0, 0.0])
        assert result.membership.dtype == np.float32

    def test_identical_points_form_one_cluster(self):
        # 20 identical points: two chains of 10 joined last, all weights 0 (lambda = inf).
        src = list(range(9)) + list(range(10, 19)) + [19]
        dst = list(range(1, 10)) + list(range(11, 20)) + [0]
        tree = _sorted_tree(src, dst, np.zeros(19), 20)
        result = hdbscan_from_mst(tree, 5)
        assert np.isinf(result.condensed.lambda_val).all()
        np.testing.assert_array_equal(result.selected_clusters, [20])
        np.testing.assert_array_equal(result.labels, np.zeros(20))
        np.testing.assert_array_equal(result.membership, np.ones(20, dtype=np.float32))
        _assert_matches_oracle(result, tree, 5)

    @pytest.mark.parametrize("n", [2, 3, 5, 9])
    def test_fewer_than_two_min_cluster_sizes_is_all_noise(self, n):
        rng = np.random.default_rng(n)
        tree = _emst(rng.normal(size=(n, 3)))
        result = hdbscan_from_mst(tree, 5)
        assert result.condensed.n_clusters == 1
        np.testing.assert_array_equal(result.labels, np.full(n, -1))
        np.testing.assert_array_equal(result.membership, np.zeros(n, dtype=np.float32))

    def test_grid_is_one_cluster(self):
        # 8x8 integer grid, all MST weights 1.0: rows joined at their last column, so the
        # (weight, source, target) order merges a 7-point row piece into the growing block
        # each time -- true splits, all at lambda = 1 (spec scenario C8).
        ids = np.arange(64).reshape(8, 8)
        src = np.concatenate([ids[:, :-1].ravel(), ids[:-1, -1]])
        dst = np.concatenate([ids[:, 1:].ravel(), ids[1:, -1]])
        tree = _sorted_tree(src, dst, np.ones(63), 64)
        result = hdbscan_from_mst(tree, 5)
        assert result.condensed.n_clusters > 1
        np.testing.assert_array_equal(result.selected_clusters, [64])
        np.testing.assert_array_equal(result.labels, np.zeros(64))
        np.testing.assert_array_equal(result.membership, np.ones(64, dtype=np.float32))
        _assert_matches_oracle(result, tree, 5)

    def test_max_cluster_size_splits_a_large_cluster(self):
        # Two blobs of 40 close together, one far blob of 40: unbounded EOM keeps the pair
        # whole or splits it by stability; with max_cluster_size = 50 the pair (80 points)
        # and the root are not eligible, so three clusters of 40 come out.
        rng = np.random.default_rng(3)
        X = np.concatenate(
            [rng.normal(c, 0.5, size=(40, 2)) for c in ([0, 0], [6, 0], [200, 0])]
        )
        tree = _emst(X)
        result = hdbscan_from_mst(tree, 10, 50)
        assert result.max_cluster_size == 50.0
        assert result.selected_clusters.size == 3
        for j in range(3):
            members = np.flatnonzero(result.labels == j)
            assert members.size <= 50
        groups = [set(result.labels[i * 40:(i + 1) * 40].tolist()) - {-1} for i in range(3)]
        assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3
        _assert_matches_oracle(result, tree, 10, 50)

    def test_both_sides_above_max_cluster_size_continue_the_parent(self):
        # Pairs (A, B) and (C, D) of 40-point blobs, the pairs far apart. With
        # max_cluster_size = 50 the root's split (80 | 80) is condensing case 5: no split is
        # recorded and both halves keep the root's label, so A, B, C, D are all born
        # directly under the root. The root (size n - 1 = 159 > 50) is not eligible.
        rng = np.random.default_rng(8)
        centres = ([0, 0], [8, 0], [300, 0], [308, 0])
        X = np.concatenate([rng.normal(c, 0.5, size=(40, 2)) for c in centres])
        tree = _emst(X)
        result = hdbscan_from_mst(tree, 10, 50)
        ct = result.condensed
        under_root = (ct.parent == 160) & (ct.child >= 160)
        np.testing.assert_array_equal(ct.child_size[under_root], [40] * 4)
        assert result.selected_clusters.size >= 4
        for i in range(4):  # no selected cluster mixes blobs
            block = result.labels[i * 40:(i + 1) * 40]
            others = np.delete(result.labels, np.arange(i * 40, (i + 1) * 40))
            assert not set(block[block >= 0].tolist()) & set(others.tolist())
        _assert_matches_oracle(result, tree, 10, 50)
        # unbounded, the same data gives a root split into two pair clusters first
        unbounded = hdbscan_from_mst(tree, 10).condensed
        under_root = (unbounded.parent == 160) & (unbounded.child >= 160)
        np.testing.assert_array_equal(unbounded.child_size[under_root], [80, 80])

    def test_single_non_root_cluster_leaves_the_rest_as_noise(self):
        # The root splits into A (a 30-point chain, no inner split, so a leaf that
        # max_cluster_size = 25 makes ineligible) and B (12 points). EOM selects only B, not
        # the root (size n - 1 > 25). A's points reach the unselected root: fast_hdbscan
        # (like DataEval's vendored copy) raises KeyError there; §1.5 makes them noise.
        a = np.arange(30)
        b = np.arange(30, 42)
        src = np.concatenate([a[1:], b[1:], [41]])
        dst = np.concatenate([a[:-1], b[:-1], [0]])
        w = np.concatenate([np.linspace(0.1, 0.2, 29), np.full(11, 0.5), [10.0]])
        tree = _sorted_tree(src, dst, w, 42)
        result = hdbscan_from_mst(tree, 10, 25)
        assert result.selected_clusters.size == 1 and result.selected_clusters[0] != 42
        b_label = result.labels[30:]
        np.testing.assert_array_equal(b_label, np.zeros(12))
        np.testing.assert_array_equal(result.labels[:30], np.full(30, -1))
        linkage, condensed, selected = _oracle(tree, 10, 25)
        np.testing.assert_array_equal(selected, result.selected_clusters)
        with pytest.raises(KeyError):
            _oracle_labels(condensed, selected, 42)
        _assert_matches_oracle(result, tree, 10, 25)

    def test_root_only_rule_uses_largest_root_lambda(self):
        # Two loose groups of 5 (inner edges 0.9) split at distance 1.0, then three
        # stragglers join at 2, 3, 4. The groups' stabilities are small, so EOM selects the
        # root; the root's largest lambda is the split's 1.0, so the groups' points (lambda
        # 1/0.9) keep label 0 and the stragglers (lambda < 1) become noise.
        src = [1, 2, 3, 4, 6, 7, 8, 9, 5, 10, 11, 12]
        dst = [0, 1, 2, 3, 5, 6, 7, 8, 4, 9, 10, 11]
        w = [0.9] * 8 + [1.0, 2.0, 3.0, 4.0]
        tree = _sorted_tree(src, dst, w, 13)
        result = hdbscan_from_mst(tree, 5)
        np.testing.assert_array_equal(result.selected_clusters, [13])
        np.testing.assert_array_equal(result.labels, [0] * 10 + [-1] * 3)
        _assert_matches_oracle(result, tree, 5)


# --------------------------------------------------------------------------- records, errors


class TestRecordsAndErrors:
    def _small(self):
        return _sorted_tree([0, 2, 1], [1, 3, 2], [1.0, 1.5, 4.0], 4)

    def test_linkage_as_dataeval_layout(self):
        lt = mst_to_linkage_tree(self._small())
        out = lt.as_dataeval()
        assert out.dtype == np.float32 and out.shape == (3, 4)
        np.testing.assert_array_equal(out, [[1, 0, 1.0, 2], [3, 2, 1.5, 2], [5, 4, 4.0, 4]])

    def test_linkage_as_dataeval_refuses_ids_beyond_float32(self):
        m = 2**23 + 1  # n = 2**23 + 2 points: node ids reach 2**24 + 2
        zeros_i = np.broadcast_to(np.int64(0), (m,))
        lt = LinkageTree(zeros_i, zeros_i, np.broadcast_to(0.0, (m,)), zeros_i)
        with pytest.raises(IndexOverflowError, match=r"2\*\*24"):
            lt.as_dataeval()

    def test_record_shapes_are_checked(self):
        with pytest.raises(ValueError, match=r"LinkageTree.size must have shape \(2,\)"):
            ids = np.zeros(2, np.int64)
            LinkageTree(ids, ids, np.zeros(2), np.zeros(3, np.int64))

    @pytest.mark.parametrize(
        ("value", "match"),
        [(1, r"min_cluster_size must be an int >= 2, got 1"),
         (0, r"got 0"),
         (2.5, r"got 2\.5 of type float"),
         (True, r"got True of type bool"),
         ("5", r"got '5' of type str")],
    )
    def test_min_cluster_size_is_validated(self, value, match):
        with pytest.raises(InvalidParameterError, match=match):
            hdbscan_from_mst(self._small(), value)

    @pytest.mark.parametrize(
        ("value", "match"),
        [(0, r"max_cluster_size must be a number > 0 .*got 0\.0"),
         (-3, r"got -3\.0"),
         (float("nan"), r"got nan"),
         ("big", r"got 'big' of type str")],
    )
    def test_max_cluster_size_is_validated(self, value, match):
        with pytest.raises(InvalidParameterError, match=match):
            hdbscan_from_mst(self._small(), 2, value)

    def test_parameter_errors_are_value_errors(self):
        with pytest.raises(ValueError):
            linkage_to_condensed_tree(mst_to_linkage_tree(self._small()), 1)

    @pytest.mark.parametrize(
        ("src", "dst", "w", "match"),
        [([0, 2, 1], [1, 3, 2], [1.0, 4.0, 1.5], r"sorted by weight .*edge 2 has weight 1\.5"),
         ([0, 1, 0], [1, 0, 3], [1.0, 1.5, 4.0],
          r"edge 1 \(1, 0\) joins points .* not form a spanning tree"),
         ([0, 2, 1], [1, 4, 2], [1.0, 1.5, 4.0], r"targets has ids in \[1, 4\], outside \[0, 3\]"),
         ([0, 2, 1], [1, 3, 2], [-1.0, 1.5, 4.0], r"must be >= 0"),
         ([0, 2, 1], [1, 3, 2], [1.0, 1.5, np.inf], r"must be finite, edge 2 has weight inf")],
    )
    def test_malformed_spanning_trees_are_rejected(self, src, dst, w, match):
        tree = SpanningTree(np.array(src), np.array(dst), np.array(w), n_points=4)
        with pytest.raises(InvalidInputError, match=match):
            hdbscan_from_mst(tree, 2)

    def test_single_point_is_rejected(self):
        tree = SpanningTree(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), n_points=1)
        with pytest.raises(InvalidInputError, match=r"at least 2 points"):
            mst_to_linkage_tree(tree)

    def test_malformed_records_are_rejected(self):
        lt = mst_to_linkage_tree(self._small())
        bad_size = LinkageTree(lt.left, lt.right, lt.distance, lt.size + 1)
        with pytest.raises(InvalidInputError, match=r"size must equal the sum"):
            linkage_to_condensed_tree(bad_size, 2)
        swapped = LinkageTree(lt.right, lt.left, lt.distance, lt.size)
        with pytest.raises(InvalidInputError, match=r"0 <= right < left < n \+ t"):
            linkage_to_condensed_tree(swapped, 2)
        reused = LinkageTree(np.array([1, 1, 5]), np.array([0, 0, 4]), lt.distance, lt.size)
        with pytest.raises(InvalidInputError, match=r"exactly once"):
            linkage_to_condensed_tree(reused, 2)
        ct = linkage_to_condensed_tree(lt, 2)
        twice = CondensedTree(ct.parent, np.where(ct.child == 0, 1, ct.child),
                              ct.lambda_val, ct.child_size, ct.n_points)
        with pytest.raises(InvalidInputError, match=r"every point exactly once"):
            condensed_tree_to_labels(twice, np.array([5, 6]))
        beyond = CondensedTree(ct.parent, np.where(ct.child == 6, 9, ct.child),
                               ct.lambda_val, ct.child_size, ct.n_points)
        with pytest.raises(InvalidInputError, match=r"clusters \[4, 6\]"):
            select_clusters_eom(beyond)
        with pytest.raises(InvalidInputError, match=r"expected a CondensedTree"):
            condensed_tree_to_stability(lt)

    def test_selected_and_labels_are_validated(self):
        ct = linkage_to_condensed_tree(mst_to_linkage_tree(self._small()), 2)
        with pytest.raises(InvalidInputError, match=r"sorted ascending"):
            condensed_tree_to_labels(ct, np.array([6, 5]))
        with pytest.raises(InvalidInputError, match=r"must lie in \[4, 6\]"):
            condensed_tree_to_labels(ct, np.array([3]))
        with pytest.raises(InvalidInputError, match=r"labels must lie in \[-1, 1\]"):
            condensed_tree_to_membership(ct, np.array([5, 6]), np.array([0, 2, 1, 1]))
        with pytest.raises(InvalidInputError, match=r"shape \(4,\)"):
            condensed_tree_to_membership(ct, np.array([5, 6]), np.array([0, 1]))

    def test_stage_functions_compose_like_hdbscan_from_mst(self):
        tree = _emst(np.random.default_rng(9).normal(size=(120, 2)))
        result = hdbscan_from_mst(tree, 7)
        ct = linkage_to_condensed_tree(mst_to_linkage_tree(tree), 7)
        sel = select_clusters_eom(ct, np.inf, allow_single_cluster=True)
        labels = condensed_tree_to_labels(ct, sel)
        np.testing.assert_array_equal(sel, result.selected_clusters)
        np.testing.assert_array_equal(labels, result.labels)
        np.testing.assert_array_equal(
            condensed_tree_to_membership(ct, sel, labels), result.membership
        )
        assert result.min_cluster_size == 7 and result.max_cluster_size == np.inf
        # allow_single_cluster=False never selects the root
        assert ct.n_points not in select_clusters_eom(ct, allow_single_cluster=False)
