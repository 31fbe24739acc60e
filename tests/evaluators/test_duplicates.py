"""Duplicates: DataEval's scenarios D1-D7 (spec §9.2), the seed rule against a brute-force
reference, exact hashing against NumPy's row uniqueness, and errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from distdataeval import cluster
from distdataeval.errors import InvalidInputError, InvalidParameterError
from distdataeval.evaluators import _hashing as H
from distdataeval.evaluators.duplicates import Duplicates, exact_duplicate_groups
from tests.conftest import mixture

GOLDEN = Path(__file__).parent.parent / "golden"


def blobs_plus_far(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(loc=(0, 0), scale=0.3, size=(50, 2))
    b = rng.normal(loc=(5, 5), scale=0.3, size=(50, 2))
    return np.concatenate([a, b, [[20, 20], [-15, 10], [10, -20]]]).astype(np.float64)


def dup_data(seed=0):
    x = blobs_plus_far(seed)
    return np.concatenate([x, [x[0], x[60], x[10] + 1e-3]])


def unflat(members, sizes):
    return [g.tolist() for g in np.split(members, np.cumsum(sizes)[:-1])] if len(sizes) else []


def near_groups(out):
    return [g for g, methods in out.near if methods == ["cluster"]]


@pytest.fixture(scope="module")
def dup_result(dask_client):
    x = dup_data(0)
    return x, cluster(x, knn="exact")


D1 = [[0, 22, 32, 103], [2, 5, 8, 11, 14, 18], [3, 21], [7, 29], [9, 47], [10, 105], [16, 26, 35], [24, 33],
      [27, 42], [30, 41], [40, 48], [51, 90], [53, 92, 99], [56, 75], [60, 104], [61, 77, 83], [70, 71],
      [72, 80, 87, 91, 94], [73, 89], [85, 96]]
D2 = [[0, 103], [7, 29], [10, 105], [22, 32], [26, 35], [30, 41], [40, 48], [51, 90], [60, 104], [61, 77, 83],
      [70, 71], [72, 94], [85, 96], [87, 91], [92, 99]]


class TestDataEvalScenarios:
    def test_labels_as_dataeval(self, dup_result):
        _, cr = dup_result
        assert int(cr.noise.sum()) == 3 and cr.noise[100:103].all()

    def test_d1_sensitivity_1(self, dup_result):
        _, cr = dup_result
        out = Duplicates(exact=False, cluster_sensitivity=1.0).from_clusters(cr)
        assert near_groups(out) == D1
        assert out.exact == []

    def test_d2_sensitivity_half(self, dup_result):
        _, cr = dup_result
        assert near_groups(Duplicates(exact=False, cluster_sensitivity=0.5).from_clusters(cr)) == D2

    def test_d3_sensitivity_2(self, dup_result):
        _, cr = dup_result
        groups = near_groups(Duplicates(exact=False, cluster_sensitivity=2.0).from_clusters(cr))
        assert len(groups) == 7
        big_a = next(g for g in groups if len(g) == 35)
        big_b = next(g for g in groups if len(g) == 32)
        assert {0, 103, 105} <= set(big_a) and all(i < 50 or i in (103, 105) for i in big_a)
        assert {60, 104} <= set(big_b) and all(50 <= i < 100 or i == 104 for i in big_b)
        for g in ([3, 21, 24, 33], [27, 42], [51, 61, 62, 64, 77, 83, 90], [58, 68, 84], [73, 89]):
            assert g in groups

    def test_with_sensitivity_reuses_the_clustering(self, dup_result):
        _, cr = dup_result
        out = Duplicates(exact=False, cluster_sensitivity=1.0).from_clusters(cr)
        assert near_groups(out.with_sensitivity(0.5)) == D2

    def test_d4_kmeans_labels(self, dup_result):
        """DataEval's KMeans(2) labels (set_seed(0)) on our MST: two whole clusters chained."""
        g = np.load(GOLDEN / "dup_D4.npz")
        x, cr = dup_result
        np.testing.assert_array_equal(g["X"], x)
        km = dataclasses.replace(cr, clusters=g["clusters"], noise=np.zeros(x.shape[0], dtype=bool))
        groups = near_groups(Duplicates(exact=False, cluster_sensitivity=1.0).from_clusters(km))
        assert groups == unflat(g["near_members"], g["near_sizes"])
        assert sorted(len(gr) for gr in groups) == [51, 52]

    def test_d5_identical_points(self, dask_client):
        x = np.ones((20, 4))
        cr = cluster(x, knn="exact")
        out = Duplicates(cluster_sensitivity=1.0).from_clusters(cr, x)
        assert out.near == []  # sigma = 0: nothing strictly below it
        assert out.exact == [list(range(20))]
        assert Duplicates().from_clusters(cr).near == []  # seed rule: 0 < 0 - 0 is false too

    def test_d6_d7_images(self, dask_client):
        g = np.load(GOLDEN / "dup_D6_D7.npz")
        emb = g["imgs"].reshape(40, -1)
        np.testing.assert_array_equal(g["embeddings"].reshape(40, -1), emb)
        out = Duplicates(cluster_sensitivity=1.0).evaluate(emb)
        assert near_groups(out) == unflat(g["d6_near_members"], g["d6_near_sizes"]) == [[3, 5, 20], [12, 30]]
        assert near_groups(out) == unflat(g["d7_near_members"], g["d7_near_sizes"])
        assert out.exact == unflat(g["d7_exact_members"], g["d7_exact_sizes"]) == [[3, 5, 20]]
        rows = out.groups
        assert [(r["dup_type"], r["item_indices"], r["methods"]) for r in rows] == [
            ("exact", [3, 5, 20], ["xxhash"]), ("near", [3, 5, 20], ["cluster"]), ("near", [12, 30], ["cluster"])]
        assert [r["group_id"] for r in rows] == [0, 1, 2]


def seed_rule_reference(x, labels):
    """Independent: scikit-learn's exact nearest neighbour, a loop over clusters, union-find."""
    from sklearn.neighbors import NearestNeighbors

    dist, idx = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)
    d, nn = dist[:, 1], idx[:, 1]
    self_first = idx[:, 0] == np.arange(len(x))
    d = np.where(self_first, d, dist[:, 0])
    nn = np.where(self_first, nn, idx[:, 0])
    parent = list(range(len(x)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    touched = set()
    for c in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == c)
        mean, std = d[members].mean(), d[members].std()
        for i in members:
            if d[i] < mean - std and labels[nn[i]] == c:
                parent[find(i)] = find(nn[i])
                touched |= {i, nn[i]}
    groups = {}
    for i in touched:
        groups.setdefault(find(i), []).append(int(i))
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


class TestSeedRule:
    def test_dup_data_finds_the_copies(self, dup_result):
        x, cr = dup_result
        out = Duplicates(exact=False).from_clusters(cr)
        labels = np.where(cr.noise, -1, cr.clusters)
        assert near_groups(out) == seed_rule_reference(x, labels)
        assert [0, 103] in near_groups(out) and [10, 105] in near_groups(out) and [60, 104] in near_groups(out)
        assert out.near_method == "nn"

    def test_mixture_against_reference(self, dask_client):
        x, _ = mixture(3000, d=4, n_centers=4, seed=11, dtype=np.float64)
        rng = np.random.default_rng(12)
        src = rng.choice(3000, 40, replace=False)
        x = np.concatenate([x, x[src[:20]], x[src[20:]] + rng.normal(0, 1e-4, (20, 4))])
        cr = cluster(x, knn="exact", chunk_rows=700)
        out = Duplicates().from_clusters(cr, x)
        labels = np.where(cr.noise & ~cr.noise.all(), -1, cr.clusters)
        assert near_groups(out) == seed_rule_reference(x, labels)
        assert len(near_groups(out)) >= 40  # the 40 planted copies at least
        # the 20 exact copies: byte-equal pairs only
        assert out.exact == sorted([sorted([int(s), 3000 + j]) for j, s in enumerate(src[:20])])
        gid = out.near_group
        assert gid.dtype == np.int64 and gid.shape == (x.shape[0],)
        for j, g in enumerate(near_groups(out)):
            assert (gid[g] == j).all()
        assert (gid >= 0).sum() == sum(len(g) for g in near_groups(out))
        np.testing.assert_array_equal(out.is_exact_duplicate, out.exact_group >= 0)

    def test_graph_as_dask_arrays_reads_column_zero_blockwise(self, dup_result):
        """Approx mode hands the k-NN graph over as Dask arrays: same groups as NumPy."""
        _, cr = dup_result
        lazy = dataclasses.replace(cr, k_neighbors=da.from_array(cr.k_neighbors, chunks=(30, 5)),
                                   k_distances=da.from_array(cr.k_distances, chunks=(30, 5)))
        assert near_groups(Duplicates(exact=False).from_clusters(lazy)) == near_groups(
            Duplicates(exact=False).from_clusters(cr))


class TestExactHashing:
    def test_groups_equal_numpy_unique_rows_across_blocks(self, dask_client):
        rng = np.random.default_rng(13)
        x = rng.integers(0, 3, (4000, 3)).astype(np.float32)  # 27 distinct rows, many copies
        x[::5] = rng.normal(size=(800, 3))  # and unique rows
        members, sizes = exact_duplicate_groups(da.from_array(x, chunks=(300, 3)), dask_client)
        _, inv, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
        ref = sorted(np.flatnonzero(inv.ravel() == u).tolist() for u in np.flatnonzero(counts > 1))
        assert unflat(members, sizes) == ref

    def test_colliding_hashes_do_not_merge_different_rows(self):
        rows = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        same = np.full(5, 42, dtype=np.uint64)  # every row gets the same "hash"
        h, idx = H.repeated_hashes((same[:3], np.arange(3)), (same[3:], np.arange(3, 5)))
        assert idx.tolist() == [0, 1, 2, 3, 4]
        piece = H.candidate_rows_by_bucket(rows, 0, idx, h, 1)[0]
        members, sizes = H.byte_equal_groups(piece)
        assert unflat(members, sizes) == [[0, 2], [1, 3]]

    def test_row_hash_is_xxh3_of_the_row_bytes(self):
        import xxhash

        x = np.random.default_rng(14).normal(size=(5, 7))
        assert H.row_hashes(x).tolist() == [xxhash.xxh3_64_intdigest(r.tobytes()) for r in x]

    def test_no_duplicates(self, dask_client):
        x = np.random.default_rng(15).normal(size=(500, 2))
        out = Duplicates(near=False).evaluate(x)
        assert out.exact == [] and out.near == [] and out.near_method is None
        assert (out.exact_group == -1).all()


class TestErrors:
    @pytest.mark.parametrize("s", [0, -1.0, float("nan"), "1", True])
    def test_bad_sensitivity(self, s):
        with pytest.raises(InvalidParameterError, match="cluster_sensitivity must be a finite number > 0"):
            Duplicates(cluster_sensitivity=s)

    def test_nothing_to_do(self):
        with pytest.raises(InvalidParameterError, match="nothing to do"):
            Duplicates(exact=False, near=False)

    def test_not_a_result(self):
        with pytest.raises(InvalidInputError, match="must be a ClusterResult"):
            Duplicates().from_clusters({"clusters": np.zeros(3)})

    def test_result_of_other_embeddings(self, dup_result):
        _, cr = dup_result
        with pytest.raises(InvalidInputError, match="covers 106 samples but the embeddings have 50"):
            Duplicates().from_clusters(cr, np.zeros((50, 2)))

    def test_with_sensitivity_needs_a_result(self, dask_client):
        out = Duplicates(near=False).evaluate(np.eye(4))
        with pytest.raises(InvalidParameterError, match="needs near duplicates"):
            out.with_sensitivity(1.0)

    @pytest.mark.parametrize("kwargs,match", [
        ({"cluster_algorithm": "dbscan"}, "cluster_algorithm must be one of"),
        ({"knn": "fast"}, "knn must be one of"),
        ({"n_clusters": 0}, "n_clusters must be None or an int >= 1"),
    ])
    def test_bad_cluster_options(self, kwargs, match):
        with pytest.raises(InvalidParameterError, match=match):
            Duplicates(**kwargs)
