"""MST stage: block reduction, Kruskal and component bridging, against scipy and brute force."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial.distance import cdist

import distdataeval as dde
from distdataeval.mst import _kernels as K
from distdataeval.mst.bridge import dataeval_component_positions
from distdataeval.mst import reduce as mst_reduce
from distdataeval.mst.reduce import EdgeList, knn_forest, task_groups
from tests.conftest import mixture
from tests.knn.test_exact import brute_knn


def scipy_forest_weight(nbr: np.ndarray, dist: np.ndarray) -> float:
    n, k = nbr.shape
    rows = np.repeat(np.arange(n), k)
    g = coo_matrix((dist.ravel().astype(np.float64), (rows, nbr.ravel())), shape=(n, n)).tocsr()
    g = g.maximum(g.T)  # undirected
    return float(minimum_spanning_tree(g).sum())


def knn_block_to_edges(neighbors: np.ndarray, distances: np.ndarray, row_offset: int = 0) -> EdgeList:
    """Oracle: every edge (i, neighbors[i, j]) of a k-NN graph, padding dropped."""
    m, k = neighbors.shape
    rows = np.repeat(np.arange(row_offset, row_offset + m, dtype=np.int64), k)
    cols = neighbors.reshape(-1).astype(np.int64)
    w = distances.reshape(-1).astype(np.float32).astype(np.float64)
    ok = (cols >= 0) & (cols != np.iinfo(np.int64).max) & np.isfinite(w)
    rows, cols, w = rows[ok], cols[ok], w[ok]
    return EdgeList(np.minimum(rows, cols), np.maximum(rows, cols), w)


def kruskal(edges: EdgeList) -> EdgeList:
    """Oracle: Kruskal over all edges in (weight, low, high) order (plain Python union-find)."""
    order = sorted(range(len(edges)), key=lambda t: (edges.weight[t], edges.low[t], edges.high[t]))
    parent: dict = {}

    def root(a):
        while parent.get(a, a) != a:
            a = parent[a]
        return a

    keep = []
    for t in order:
        ra, rb = root(int(edges.low[t])), root(int(edges.high[t]))
        if ra != rb:
            parent[rb] = ra
            keep.append(t)
    keep = np.array(keep, dtype=np.int64)
    return EdgeList(edges.low[keep], edges.high[keep], edges.weight[keep])


def _forest(client, nbr, dist, chunk):
    k = nbr.shape[1]
    return knn_forest(client, da.from_array(nbr, chunks=(chunk, k)), da.from_array(dist, chunks=(chunk, k)))


def _assert_same_edges(a: EdgeList, b: EdgeList):
    np.testing.assert_array_equal(a.low, b.low)
    np.testing.assert_array_equal(a.high, b.high)
    np.testing.assert_array_equal(a.weight, b.weight)


@pytest.mark.parametrize("chunk", [50, 128, 1000])
def test_boruvka_forest_equals_kruskal_and_scipy(chunk, dask_client):
    x, _ = mixture(600, d=6, n_centers=3, spread=2.0, seed=4)
    nbr, dist = brute_knn(x, 10)
    dist = dist.astype(np.float32)
    forest = _forest(dask_client, nbr, dist, chunk)
    ncomp = connected_components(coo_matrix((np.ones(nbr.size), (np.repeat(np.arange(600), 10), nbr.ravel())), shape=(600, 600)), directed=False)[0]
    assert len(forest) == 600 - ncomp
    assert np.isclose(forest.weight.sum(), scipy_forest_weight(nbr, dist), rtol=1e-9)
    # edge for edge the forest of Kruskal over all n k edges, whatever the blocking, sorted
    _assert_same_edges(forest, kruskal(knn_block_to_edges(nbr, dist)))


def test_boruvka_ties_padding_and_components(dask_client):
    """Integer grid (every distance tied many times), duplicate points, rows with padding, and
    a graph in several components: the unique forest of the (weight, low, high) order."""
    rng = np.random.default_rng(7)
    grid = np.stack(np.meshgrid(np.arange(12), np.arange(12)), -1).reshape(-1, 2).astype(np.float64)
    far = grid[:30] + 100.0  # a second component
    x = np.concatenate([grid, grid[:20], far])  # 20 exact duplicates
    x = x[rng.permutation(x.shape[0])]
    nbr, dist = brute_knn(x, 6)
    dist = dist.astype(np.float32)
    nbr[5, 3:] = -1  # padding, as a short approx row has
    dist[5, 3:] = np.inf
    nbr[9, 4:] = np.iinfo(np.int64).max
    dist[9, 4:] = np.inf
    ref = kruskal(knn_block_to_edges(nbr, dist))
    for chunk in (17, 64, x.shape[0]):
        _assert_same_edges(_forest(dask_client, nbr, dist, chunk), ref)


@pytest.mark.parametrize("chunk", [17, 50])
def test_boruvka_over_task_groups_of_persisted_blocks_equals_kruskal(chunk, monkeypatch, dask_client):
    """Rounds run one task per run of blocks held by one worker (at most TASK_ROWS rows): with
    many such groups, the forest is still Kruskal's over all edges, edge for edge."""
    x, _ = mixture(600, d=6, n_centers=3, spread=2.0, seed=4)
    nbr, dist = brute_knn(x, 10)
    dist = dist.astype(np.float32)
    monkeypatch.setattr(mst_reduce, "TASK_ROWS", 120)
    a, b = dask_client.persist([da.from_array(nbr, chunks=(chunk, 10)), da.from_array(dist, chunks=(chunk, 10))])
    _assert_same_edges(knn_forest(dask_client, a, b), kruskal(knn_block_to_edges(nbr, dist)))


def test_task_groups_are_consecutive_runs_held_by_one_worker(dask_client):
    from distributed import futures_of, wait

    rows = np.arange(1000 * 3, dtype=np.int64).reshape(1000, 3)
    sizes = [50] * 20
    lazy = da.from_array(rows, chunks=(50, 3))
    # not persisted: runs of consecutive blocks by size only
    assert task_groups(dask_client, lazy, 120) == [[2 * i, 2 * i + 1] for i in range(10)]
    assert task_groups(dask_client, lazy, 10) == [[i] for i in range(20)]  # a block larger than the cap
    held = dask_client.persist(lazy)
    wait(futures_of(held))
    groups = task_groups(dask_client, held, 120)
    assert [b for g in groups for b in g] == list(range(20))
    assert all(sum(sizes[b] for b in g) <= 120 for g in groups)
    where = {key: sorted(w)[0] for key, w in dask_client.who_has(futures_of(held)).items()}
    keys = [d.key for d in held.to_delayed().ravel()]
    for g in groups:
        assert len({where[keys[b]] for b in g}) == 1
    for g, h in zip(groups, groups[1:]):  # a run ends at the size cap or where the holder changes
        assert sum(sizes[b] for b in g) + sizes[h[0]] > 120 or where[keys[g[-1]]] != where[keys[h[0]]]


def test_boruvka_edgeless_graph(dask_client):
    nbr = np.full((8, 3), -1, dtype=np.int64)
    dist = np.full((8, 3), np.inf, dtype=np.float32)
    assert len(_forest(dask_client, nbr, dist, 4)) == 0


def test_forest_sorted_and_canonical():
    e = EdgeList(np.array([3, 0, 1, 0]), np.array([4, 1, 2, 2]), np.array([1.0, 1.0, 0.5, 1.0]))
    f = kruskal(e)
    # (0.5, 1, 2) first; ties at 1.0 by (low, high): (0,1) taken, (0,2) closes a cycle, (3,4) taken
    np.testing.assert_array_equal(f.low, [1, 0, 3])
    np.testing.assert_array_equal(f.high, [2, 1, 4])
    np.testing.assert_array_equal(K.canonical_order(e.weight, e.low, e.high), [2, 1, 3, 0])


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40), st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=120))
def test_union_find_matches_connected_components(n, pairs):
    pairs = [(a % n, b % n) for a, b in pairs]
    parent = np.arange(n, dtype=np.int64)
    size = np.ones(n, dtype=np.int64)
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    keep = K.kruskal_select(a, b, parent, size)
    labels = K.component_labels(parent)
    if pairs:
        g = coo_matrix((np.ones(len(pairs)), (a, b)), shape=(n, n))
    else:
        g = coo_matrix((n, n))
    ncomp, ref = connected_components(g, directed=False)
    assert labels.max() + 1 == ncomp
    assert keep.sum() == n - ncomp  # a spanning forest: one union per merged component
    # same partition, components numbered by smallest member id
    for c in range(ncomp):
        members = np.flatnonzero(labels == c)
        assert len(set(ref[members])) == 1 and (ref == ref[members[0]]).sum() == members.size
    firsts = [np.flatnonzero(labels == c).min() for c in range(ncomp)]
    assert firsts == sorted(firsts)
    # sizes at roots add up
    roots = np.array([K.find(parent, i) for i in range(n)])
    assert size[np.unique(roots)].sum() == n


def test_bridging_connects_and_uses_true_nearest_distances(dask_client):
    rng = np.random.default_rng(5)
    centers = np.array([[0, 0], [100, 0], [0, 100], [60, 70]])
    x = np.concatenate([rng.normal(c, 0.1, (30, 2)) for c in centers])
    r = dde.cluster(x, reassign_noise=False)
    assert r.n_knn_components == 4
    assert r.mst.shape == (119, 3)
    edges = {(a, b) for a, b in zip(r.spanning_tree.sources.tolist(), r.spanning_tree.targets.tolist())}
    g = coo_matrix((np.ones(119), (r.spanning_tree.sources, r.spanning_tree.targets)), shape=(120, 120))
    assert connected_components(g, directed=False)[0] == 1
    assert len(edges) == 119
    # every bridge weight is a real distance between the two points it joins
    d = cdist(x, x)
    for a, b, w in zip(r.spanning_tree.sources, r.spanning_tree.targets, r.spanning_tree.weights):
        assert np.isclose(w, d[a, b], rtol=1e-6)
    # the three bridges: each is the nearest pair between the groups it joins (blobs are tiny)
    big = np.sort(r.spanning_tree.weights)[-3:]
    group = np.repeat(np.arange(4), 30)
    pair_min = {(i, j): d[np.ix_(group == i, group == j)].min() for i in range(4) for j in range(i + 1, 4)}
    for w in big:
        assert min(abs(w - v) for v in pair_min.values()) < 1e-4


def test_dataeval_component_positions_orders_by_union_roots():
    # two components {0,1,2} and {3,4}; DataEval's union replay: edge weights sorted, root of the
    # row's point wins on equal rank
    nbr = np.array([[1], [2], [1], [4], [3]], dtype=np.int64)
    dist = np.array([[1.0], [2.0], [2.0], [0.5], [0.5]], dtype=np.float32)
    pos = dataeval_component_positions(nbr, dist)
    assert pos[0] == pos[1] == pos[2] and pos[3] == pos[4] and pos[0] != pos[3]
    roots = K.dataeval_union_roots(nbr, dist)
    assert (pos[3] < pos[0]) == (roots[3] < roots[0])


def test_as_dataeval_refuses_overflowing_ids():
    from distdataeval.errors import IndexOverflowError
    from distdataeval.mst.records import SpanningTree

    n = 2**24 + 2
    t = SpanningTree.__new__(SpanningTree)
    object.__setattr__(t, "n_points", n)
    with pytest.raises(IndexOverflowError, match="use SpanningTree.sources/targets"):
        t.as_dataeval()


@pytest.mark.parametrize("chunk", [40, 97, 500])
def test_nearest_later_points_with_tile_pruning_is_exact(chunk, dask_client):
    from distdataeval.pipeline import _nearest_later_points, _Timer

    rng = np.random.default_rng(8)
    centers = rng.uniform(-200, 200, (12, 3))
    sizes = rng.integers(10, 60, 12)
    x = np.concatenate([rng.normal(c, rng.uniform(0.1, 3.0), (s, 3)) for c, s in zip(centers, sizes)])
    x = x[rng.permutation(len(x))]
    n = len(x)
    positions = rng.permutation(12)[np.repeat(np.arange(12), sizes)][np.argsort(rng.permutation(n))]
    positions = np.asarray(positions, dtype=np.int64)
    from distdataeval.knn.exact import prepare_blocks

    xd = da.from_array(x, chunks=(chunk, 3))
    row_chunks = tuple(int(c) for c in xd.chunks[0])
    blocks = dask_client.persist(prepare_blocks(xd, x.mean(axis=0)))
    nearest, d2, used, total = _nearest_later_points(dask_client, blocks, 3, positions, row_chunks, _Timer())
    d = cdist(x, x)
    for i in range(n):
        later = np.flatnonzero(positions > positions[i])
        if later.size == 0:
            assert nearest[i] == -1
            continue
        j = later[np.argmin(d[i, later])]
        assert nearest[i] == j and np.isclose(np.sqrt(d2[i]), d[i, j])
    if len(row_chunks) > 3:
        assert used < total  # tiles whose refs all precede their queries are not scheduled


def test_useful_pairs_keep_everything_when_components_overlap():
    from distdataeval.mst.bridge import ordered_tile_mask, useful_component_pairs

    allowed = useful_component_pairs(np.zeros((3, 2)), np.ones(3))
    np.testing.assert_array_equal(allowed, np.triu(np.ones((3, 3), dtype=bool), 1))
    pos = [np.array([0, 0]), np.array([1, 1]), np.array([2, 2])]
    np.testing.assert_array_equal(ordered_tile_mask(pos), np.triu(np.ones((3, 3), dtype=bool), 1))


def test_useful_pairs_prune_far_components():
    from distdataeval.mst.bridge import useful_component_pairs

    # on a line: 0 at x=0, 1 at x=10, 2 at x=1000 (radii 1): from 0, component 2 is useless
    centers = np.array([[0.0], [10.0], [1000.0]])
    allowed = useful_component_pairs(centers, np.ones(3))
    assert allowed[0, 1] and not allowed[0, 2] and allowed[1, 2]
    assert not allowed[1, 0] and not allowed[2, 0]
