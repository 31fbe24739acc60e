"""KMeans (``distdataeval.kmeans``): against scikit-learn, brute-force NumPy and DataEval's outputs.

References: scikit-learn ``KMeans``/``adjusted_rand_score`` (independent implementation), exact
NumPy distances, and DataEval 1.1.4's observed outputs of spec §9.1 (C1d, C1e, C3k).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from distdataeval import config
from distdataeval import kmeans_kernels as kk
from distdataeval.errors import InvalidParameterError
from distdataeval.kmeans import KMeansFit, fit_kmeans, membership_from_distances

from .conftest import mixture


@pytest.fixture(autouse=True)
def _seed():
    config.set_seed(0)
    yield
    config.set_seed(None)


def _dx(x, rows):
    return da.from_array(x, chunks=(rows, x.shape[1]))


def _brute_labels(x, centres):
    d2 = ((x[:, None, :].astype(np.float64) - centres[None, :, :]) ** 2).sum(-1)
    return d2.argmin(1), d2


def _sklearn_best3(x, k):
    return min(KMeans(n_clusters=k, n_init=1, random_state=s).fit(x).inertia_ for s in range(3))


def blobs_plus_far(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(loc=(0, 0), scale=0.3, size=(50, 2))
    b = rng.normal(loc=(5, 5), scale=0.3, size=(50, 2))
    far = [[20, 20], [-15, 10], [10, -20]]
    return np.concatenate([a, b, far]).astype(np.float64)


def _same_partition(a, b):
    return adjusted_rand_score(a, b) == 1.0


class TestAgainstScikitLearn:
    def test_well_separated_blobs_recover_truth(self, dask_client):
        x, truth = make_blobs(8_000, 16, centers=30, cluster_std=1.0, center_box=(-20, 20), random_state=1)
        fit = fit_kmeans(_dx(x, 2_000), 30, client=dask_client)
        assert adjusted_rand_score(truth, fit.labels) >= 0.99
        assert fit.inertia <= 1.01 * _sklearn_best3(x, 30)

    @pytest.mark.parametrize("k", [30, 90])
    def test_overlapping_blobs_inertia_within_one_percent(self, dask_client, k):
        # touching blobs where one scikit-learn k-means++ draw is often 7-20% worse than the best of 3
        x, _ = make_blobs(9_000, 16, centers=k, cluster_std=1.5, center_box=(-6, 6), random_state=3)
        fit = fit_kmeans(_dx(x, 3_000), k, client=dask_client)
        assert fit.inertia <= 1.01 * _sklearn_best3(x, k)

    def test_float32_input(self, dask_client):
        x, truth = make_blobs(6_000, 8, centers=10, center_box=(-15, 15), random_state=2)
        fit = fit_kmeans(_dx(x.astype(np.float32), 1_000), 10, client=dask_client)
        assert adjusted_rand_score(truth, fit.labels) >= 0.99
        assert fit.centers.dtype == np.float64


class TestFixedPointAndOutputs:
    @pytest.fixture(scope="class")
    def data_fit(self, dask_client):
        config.set_seed(7)
        x, _ = mixture(5_000, d=6, n_centers=8, spread=3.0, seed=11, dtype=np.float64)
        # tol=0: iterate until the centres stop moving, so they are exactly a Lloyd fixed point
        return x, fit_kmeans(_dx(x, 700), 12, client=dask_client, tol=0.0)

    def test_types_and_shapes(self, data_fit):
        x, fit = data_fit
        assert isinstance(fit, KMeansFit)
        assert fit.labels.dtype == np.int64 and fit.labels.shape == (5_000,)
        assert fit.centers.dtype == np.float64 and fit.centers.shape == (12, 6)
        assert fit.membership.dtype == np.float32 and fit.membership.shape == (5_000,)
        assert fit.labels.min() >= 0 and fit.labels.max() < 12
        assert 1 <= fit.n_iter <= 300

    def test_labels_are_nearest_centres_brute_force(self, data_fit):
        x, fit = data_fit
        brute, d2 = _brute_labels(x, fit.centers)
        np.testing.assert_array_equal(fit.labels, brute)
        np.testing.assert_allclose(fit.inertia, d2[np.arange(len(x)), brute].sum(), rtol=1e-10)

    def test_centres_are_means_of_their_rows(self, data_fit):
        x, fit = data_fit
        means = np.stack([x[fit.labels == c].mean(0) for c in range(12)])
        np.testing.assert_allclose(fit.centers, means, rtol=1e-12, atol=1e-12)

    def test_membership_formula_global_max(self, data_fit):
        x, fit = data_fit
        dist = np.linalg.norm(x - fit.centers[fit.labels], axis=1).astype(np.float32)
        expect = 1 - dist / dist.max()
        np.testing.assert_allclose(fit.membership, expect, atol=1e-6)
        assert fit.membership.min() == 0.0  # the single farthest row in the whole data set
        assert np.argmin(fit.membership) == np.argmax(dist)


    def test_column_chunks_are_merged(self, dask_client):
        x, truth = make_blobs(3_000, 6, centers=5, center_box=(-15, 15), random_state=6)
        fit = fit_kmeans(da.from_array(x, chunks=(800, 2)), 5, client=dask_client)
        assert adjusted_rand_score(truth, fit.labels) >= 0.99
        np.testing.assert_array_equal(fit.labels, _brute_labels(x, fit.centers)[0])


class TestDeterminism:
    def test_same_seed_same_chunks_identical(self, dask_client):
        x, _ = mixture(4_000, d=8, n_centers=15, spread=2.5, seed=5, dtype=np.float32)
        config.set_seed(123)
        a = fit_kmeans(_dx(x, 700), 20, client=dask_client)
        config.set_seed(123)
        b = fit_kmeans(_dx(x, 700), 20, client=dask_client)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.centers, b.centers)
        np.testing.assert_array_equal(a.membership, b.membership)
        assert a.inertia == b.inertia and a.n_iter == b.n_iter

    def test_seed_changes_the_initialisation(self, dask_client):
        x, _ = mixture(4_000, d=8, n_centers=15, spread=2.5, seed=5, dtype=np.float32)
        config.set_seed(1)
        a = fit_kmeans(_dx(x, 700), 20, client=dask_client)
        config.set_seed(2)
        b = fit_kmeans(_dx(x, 700), 20, client=dask_client)
        assert not np.array_equal(a.centers, b.centers)

    def test_many_blocks_deep_reduction_same_partition(self, dask_client):
        # 80 blocks -> a two-level tree reduction; same seed and sample as one block
        x, truth = make_blobs(8_000, 8, centers=12, center_box=(-20, 20), random_state=4)
        one = fit_kmeans(_dx(x, 8_000), 12, client=dask_client)
        many = fit_kmeans(_dx(x, 100), 12, client=dask_client)
        assert _same_partition(one.labels, many.labels)
        np.testing.assert_allclose(one.centers, many.centers, rtol=1e-9, atol=1e-9)

    def test_n_init_keeps_the_lowest_inertia(self, dask_client):
        x, _ = mixture(3_000, d=4, n_centers=12, spread=2.0, seed=8, dtype=np.float64)
        single = fit_kmeans(_dx(x, 1_000), 12, client=dask_client, n_init="auto")
        several = fit_kmeans(_dx(x, 1_000), 12, client=dask_client, n_init=3)
        # run 0 of n_init=3 is the n_init='auto' run; the kept run is the best of three
        assert several.inertia <= single.inertia
        brute, d2 = _brute_labels(x, several.centers)
        np.testing.assert_allclose(several.inertia, d2[np.arange(len(x)), several.labels].sum(), rtol=1e-10)


class TestEdgeCases:
    def test_identical_points_c3k(self, dask_client):
        fit = fit_kmeans(_dx(np.ones((20, 4)), 7), 2, client=dask_client)
        np.testing.assert_array_equal(fit.labels, np.zeros(20, dtype=np.int64))
        np.testing.assert_array_equal(fit.membership, np.ones(20, dtype=np.float32))
        assert fit.inertia == 0.0

    def test_fewer_distinct_points_than_k(self, dask_client):
        x = np.repeat(np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 5.0]]), 6, axis=0)
        fit = fit_kmeans(_dx(x, 5), 6, client=dask_client)
        assert len(np.unique(fit.labels)) == 3
        assert _same_partition(fit.labels, np.repeat([0, 1, 2], 6))
        assert fit.inertia == 0.0
        np.testing.assert_array_equal(fit.membership, np.ones(18, dtype=np.float32))

    def test_one_cluster_is_the_mean(self, dask_client):
        x, _ = mixture(1_000, d=3, seed=2, dtype=np.float64)
        fit = fit_kmeans(_dx(x, 300), 1, client=dask_client)
        assert (fit.labels == 0).all()
        np.testing.assert_allclose(fit.centers[0], x.mean(0), rtol=1e-12, atol=1e-12)

    def test_two_rows(self, dask_client):
        x = np.array([[0.0, 1.0], [2.0, 3.0]])
        fit = fit_kmeans(_dx(x, 1), 1, client=dask_client)
        np.testing.assert_array_equal(fit.labels, [0, 0])
        np.testing.assert_array_equal(fit.membership, [0.0, 0.0])  # both at the global max distance

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"n_clusters": 0}, "1 <= n_clusters < n"),
            ({"n_clusters": 10}, r"n_clusters < n = 10, got 10"),
            ({"n_clusters": 2.5}, "n_clusters must be an int"),
            ({"n_clusters": 2, "n_init": 0}, "n_init must be 'auto' or a positive int, got 0"),
            ({"n_clusters": 2, "n_init": "many"}, "n_init must be 'auto' or a positive int, got 'many'"),
            ({"n_clusters": 2, "max_iter": 0}, "max_iter must be a positive int"),
            ({"n_clusters": 2, "tol": -1.0}, "tol must be a finite number >= 0"),
        ],
    )
    def test_bad_parameters(self, dask_client, kwargs, match):
        x = _dx(np.arange(20.0).reshape(10, 2), 5)
        with pytest.raises(InvalidParameterError, match=match):
            fit_kmeans(x, client=dask_client, **kwargs)


class TestKernels:
    def test_nearest_centres_tiled_equals_brute_force(self, monkeypatch):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(700, 5))
        centres = rng.normal(size=(3_000, 5))
        monkeypatch.setattr(kk, "ROW_TILE", 64)
        monkeypatch.setattr(kk, "TILE_ELEMENTS", 64 * 100)  # 30 centre tiles of 100
        labels, sq = kk.nearest_centres(x, centres)
        brute, d2 = _brute_labels(x, centres)
        np.testing.assert_array_equal(labels, brute)
        np.testing.assert_allclose(sq, d2[np.arange(700), brute], rtol=1e-9, atol=1e-12)

    def test_ties_go_to_the_lowest_centre_across_tiles(self, monkeypatch):
        monkeypatch.setattr(kk, "TILE_ELEMENTS", 2)  # 2 rows -> one centre per tile
        x = np.array([[0.0, 0.0], [1.0, 0.0]])
        centres = np.array([[5.0, 5.0], [0.0, 1.0], [0.0, -1.0], [0.0, 1.0]])
        labels, _ = kk.nearest_centres(x, centres)
        np.testing.assert_array_equal(labels, [1, 1])

    def test_block_sums_and_reduction_match_numpy(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(900, 4))
        mean = x.mean(0)
        centres = rng.normal(size=(7, 4))
        parts = [kk.lloyd_block(x[i : i + 300], mean, centres, i, 5)[0] for i in range(0, 900, 300)]
        step = kk.combine_steps(parts, 5)
        lab, d2 = _brute_labels(x - mean, centres)
        np.testing.assert_array_equal(step.counts, np.bincount(lab, minlength=7))
        sums = np.stack([(x - mean)[lab == c].sum(0) for c in range(7)])
        np.testing.assert_allclose(step.sums, sums, rtol=1e-10, atol=1e-10)
        dmin = d2[np.arange(900), lab]
        np.testing.assert_allclose(step.sse, dmin.sum(), rtol=1e-10)
        top = np.argsort(-dmin, kind="stable")[:5]
        np.testing.assert_array_equal(step.far_index, top)
        np.testing.assert_allclose(step.far_rows, (x - mean)[top])

    def test_nearest_two_equals_brute_force(self, monkeypatch):
        rng = np.random.default_rng(3)
        x = rng.normal(size=(500, 6)).astype(np.float32)
        centres = rng.normal(size=(230, 6))
        monkeypatch.setattr(kk, "ROW_TILE", 64)
        monkeypatch.setattr(kk, "TILE_ELEMENTS", 64 * 50)  # 5 centre tiles
        labels, best, second = kk.nearest_two(x, centres)
        d2 = ((x.astype(np.float64)[:, None, :] - centres[None]) ** 2).sum(-1)
        order = np.argsort(d2, axis=1, kind="stable")
        np.testing.assert_array_equal(labels, order[:, 0])
        np.testing.assert_allclose(best, d2[np.arange(500), order[:, 0]], rtol=1e-5)
        np.testing.assert_allclose(second, d2[np.arange(500), order[:, 1]], rtol=1e-5)
        assert np.isinf(kk.nearest_two(x, centres[:1])[2]).all()

    def test_pruned_steps_assign_every_row_to_its_nearest_centre(self):
        """Lloyd steps with the bounds carried from step to step: each step's labels, counts and
        sums equal a full search's, and later steps (small moves) search only a few rows."""
        from distdataeval.kmeans import _half_gaps, _moved, _update

        rng = np.random.default_rng(5)
        blobs = rng.normal(0, 6, (40, 8))
        x = (blobs[rng.integers(0, 40, 6000)] + rng.normal(size=(6000, 8))).astype(np.float32)
        mean = x.astype(np.float64).mean(0)
        centres = x[rng.choice(6000, 40, replace=False)].astype(np.float64) - mean
        prev, moved, gaps, searched = [None, None], None, None, []
        for _ in range(12):
            outs = [
                kk.lloyd_block(x[i : i + 3000], mean, centres, i, 8, p, moved, gaps)
                for i, p in zip((0, 3000), prev)
            ]
            step = kk.combine_steps([o[0] for o in outs], 8)
            labels = np.concatenate([o[1].labels for o in outs])
            full, _ = kk.nearest_centres(x - mean.astype(np.float32), centres)
            np.testing.assert_array_equal(labels, full)
            np.testing.assert_array_equal(step.counts, np.bincount(full, minlength=40))
            searched.append(sum(o[1].searched for o in outs))
            new = _update(centres, step)
            moved, gaps = _moved(centres, new), _half_gaps(new)
            centres, prev = new, outs
        assert searched[0] == 6000 and searched[-1] < 600, searched

    def test_half_gaps_and_moves(self):
        from distdataeval.kmeans import _half_gaps, _moved

        c = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
        np.testing.assert_allclose(_half_gaps(c, rows=2), [0.5, 0.5 * np.sqrt(18.0), 0.5], rtol=1e-9)
        shift = np.array([[0.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
        movers, rest = _moved(c, c + shift, n_movers=1)
        assert movers.tolist() == [1] and rest == pytest.approx(1.0) and rest >= 1.0  # rounded up
        movers, rest = _moved(c, c + shift, n_movers=5)
        assert movers.tolist() == [0, 1, 2] and rest == 0.0

    def test_zero_row_block(self):
        step = kk.lloyd_block(np.empty((0, 3)), np.zeros(3), np.ones((4, 3)), 10, 4)[0]
        assert step.counts.tolist() == [0, 0, 0, 0] and step.sse == 0.0 and step.far_index.size == 0
        assert kk.assign_block(np.empty((0, 3)), np.zeros(3), np.ones((4, 3))).shape == (0, 2)

    def test_empty_cluster_moves_to_the_farthest_row(self):
        from distdataeval.kmeans import _update

        x = np.array([[0.0], [1.0], [10.0]])
        centres = np.array([[0.5], [100.0]])  # centre 1 owns no row
        step = kk.combine_steps([kk.lloyd_block(x, np.zeros(1), centres, 0, 2)[0]], 2)
        assert step.counts.tolist() == [3, 0]
        new = _update(centres, step)
        np.testing.assert_allclose(new, [[11.0 / 3.0], [10.0]])

    def test_membership_from_distances(self):
        d = np.array([0.5, 2.0, 0.0, 1.0])
        np.testing.assert_array_equal(membership_from_distances(d), np.float32(1) - d.astype(np.float32) / 2)
        np.testing.assert_array_equal(membership_from_distances(np.zeros(3)), np.ones(3, dtype=np.float32))


def _sse(x, labels):
    return sum(((x[labels == c] - x[labels == c].mean(0)) ** 2).sum() for c in np.unique(labels))


class TestClusterKMeansEndToEnd:
    """``cluster(x, algorithm="kmeans")`` against DataEval 1.1.4's outputs (spec §9.1)."""

    def test_c1d_two_clusters_fields_and_membership(self, dask_client):
        from distdataeval import cluster

        x = blobs_plus_far(0)
        config.set_seed(0)
        r = cluster(x, "kmeans", n_clusters=2, client=dask_client)
        assert list(r.keys()) == ["clusters", "mst", "linkage_tree", "membership_strengths", "k_neighbors",
                                  "k_distances"]
        expect = np.array([1] * 50 + [0] * 51 + [1, 1])  # DataEval: rows 0-49 -> 1, 50-100 -> 0, 101-102 -> 1
        assert r["clusters"].dtype == np.int64 and _same_partition(r["clusters"], expect)
        ms = r["membership_strengths"]
        assert ms.dtype == np.float32 and ms.shape == (103,)
        np.testing.assert_allclose(ms[100:], [0.0656, 0.1910, 0.0], atol=1e-4)
        # the KMeans path still carries DataEval's k-NN, MST and linkage (C1 goldens)
        assert r["k_neighbors"].shape == (103, 25) and r["k_neighbors"].dtype == np.int64
        assert r["k_distances"].shape == (103, 25) and r["k_distances"].dtype == np.float32
        np.testing.assert_array_equal(np.asarray(r["k_neighbors"])[0, :5], [22, 32, 48, 17, 40])
        mst = r["mst"]
        assert mst.shape == (102, 3) and mst.dtype == np.float32
        np.testing.assert_allclose(mst[-1, 2], 21.6848, atol=1e-3)
        assert set(mst[-1, :2].astype(int)) == {102, 34}
        assert r["linkage_tree"].shape == (102, 4) and r["linkage_tree"][-1, 3] == 103

    def test_c1e_default_k_isolates_the_far_points(self, dask_client):
        from distdataeval import cluster

        config.set_seed(0)
        r = cluster(blobs_plus_far(0), "kmeans", client=dask_client)
        counts = np.bincount(r["clusters"])
        assert len(counts) == 10  # floor(sqrt(103))
        far = r["clusters"][100:]
        assert len(set(far.tolist())) == 3 and (counts[far] == 1).all()  # DataEval: three singletons

    @pytest.mark.parametrize(
        "n, dataeval",
        [(5, [0, 0, 0, 0, 1]), (10, [0, 2, 2, 0, 2, 0, 2, 2, 1, 2])],
    )
    def test_c2k_small_n_at_least_as_good_as_dataeval(self, dask_client, n, dataeval):
        # a different RNG than scikit-learn's, so a different local optimum is allowed; it must use
        # floor(sqrt(n)) clusters and be no worse (SSE) than DataEval's observed partition
        from distdataeval import cluster

        x = np.random.default_rng(1).normal(size=(n, 3))
        config.set_seed(0)
        r = cluster(x, "kmeans", client=dask_client)
        assert len(np.unique(r["clusters"])) == int(np.sqrt(n))
        assert _sse(x, r["clusters"]) <= _sse(x, np.array(dataeval)) + 1e-12

    def test_c3k_identical_points(self, dask_client):
        from distdataeval import cluster

        config.set_seed(0)
        r = cluster(np.ones((20, 4)), "kmeans", n_clusters=2, client=dask_client)
        np.testing.assert_array_equal(r["clusters"], np.zeros(20, dtype=np.int64))
        np.testing.assert_array_equal(r["membership_strengths"], np.ones(20, dtype=np.float32))
        np.testing.assert_array_equal(r["mst"][:, 2], np.zeros(19, dtype=np.float32))

    def test_deterministic_and_n_clusters_checked(self, dask_client):
        from distdataeval import cluster

        x, _ = mixture(2_000, d=6, n_centers=6, spread=3.0, seed=9)
        config.set_seed(11)
        a = cluster(x, "kmeans", n_clusters=8, client=dask_client, chunk_rows=500)
        config.set_seed(11)
        b = cluster(x, "kmeans", n_clusters=8, client=dask_client, chunk_rows=500)
        np.testing.assert_array_equal(a["clusters"], b["clusters"])
        np.testing.assert_array_equal(a["membership_strengths"], b["membership_strengths"])
        with pytest.raises(InvalidParameterError, match="must be smaller than the number of samples"):
            cluster(x[:10], "kmeans", n_clusters=10, client=dask_client)


class TestSeeding:
    @pytest.mark.parametrize("large_k", [False, True])
    def test_sample_seeding_covers_separated_blobs_and_is_reproducible(self, monkeypatch, large_k):
        from distdataeval import kmeans as km

        if large_k:
            monkeypatch.setattr(km, "LARGE_K", 5)  # the one-draw path used above 1000 clusters
        x, truth = make_blobs(4_000, 8, centers=12, center_box=(-30, 30), random_state=12)
        mean = x.mean(0)
        a = km.seed_centres_on_sample(x, mean, 12, seed=3)
        b = km.seed_centres_on_sample(x, mean, 12, seed=3)
        assert a.shape == (12, 8) and a.dtype == np.float64
        np.testing.assert_array_equal(a, b)
        nearest, _ = _brute_labels(x - mean, a)
        assert adjusted_rand_score(truth, nearest) >= 0.99

    def test_sample_size(self):
        from distdataeval.kmeans import sample_size

        assert sample_size(5_000, 70) == 5_000
        assert sample_size(1_000_000, 50) == 10_000
        assert sample_size(1_000_000, 1_000) == 16_000
        assert sample_size(1_000_000, 10_000) == 50_000
