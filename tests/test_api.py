"""cluster(): the public contract beyond DataEval parity (see test_golden.py for parity)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.metrics import adjusted_rand_score

import distdataeval as dde
from tests.conftest import mixture


def blobs_plus_far(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(loc=(0, 0), scale=0.3, size=(50, 2))
    b = rng.normal(loc=(5, 5), scale=0.3, size=(50, 2))
    return np.concatenate([a, b, [[20, 20], [-15, 10], [10, -20]]]).astype(np.float64)


def test_result_reads_like_dataeval(dask_client):
    r = dde.cluster(blobs_plus_far())
    assert set(r.keys()) == {"clusters", "mst", "linkage_tree", "membership_strengths", "k_neighbors", "k_distances"}
    for key in r:
        np.testing.assert_array_equal(r[key], getattr(r, key))
    assert dict(r)["mst"].shape == (102, 3)
    with pytest.raises(KeyError):
        r["noise"]


def test_noise_reassigned_to_nearest_center(dask_client):
    x = blobs_plus_far()
    raw = dde.cluster(x, reassign_noise=False)
    r = dde.cluster(x)
    assert (raw.clusters == -1).sum() == 3
    assert (r.clusters >= 0).all()
    np.testing.assert_array_equal(r.noise, raw.clusters == -1)
    np.testing.assert_array_equal(r.raw_labels, raw.clusters)
    # only the noise points change; each goes to the nearest member mean
    np.testing.assert_array_equal(r.clusters[~r.noise], raw.clusters[~r.noise])
    centers = np.stack([x[raw.clusters == c].mean(axis=0) for c in range(2)])
    expect = np.argmin(((x[r.noise, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(r.clusters[r.noise], expect)
    # membership strengths keep HDBSCAN's values (noise stays 0)
    np.testing.assert_array_equal(r.membership_strengths, raw.membership_strengths)
    assert (r.membership_strengths[r.noise] == 0).all()


def test_noise_reassigned_to_nearest_center_in_approx_mode(dask_client):
    # approx mode reassigns from the workers' centred float32 rows, not a new read of the input
    x, _ = mixture(4000, d=8, seed=3)
    x = np.concatenate([x, x[:5] * 0 + 40.0 + np.arange(5)[:, None]])  # five far points: noise
    raw = dde.cluster(x, knn="approx", reassign_noise=False, chunk_rows=900)
    r = dde.cluster(x, knn="approx", chunk_rows=900)
    np.testing.assert_array_equal(r.raw_labels, raw.clusters)
    noise = raw.clusters == -1
    assert noise.sum() >= 5 and (r.clusters >= 0).all()
    np.testing.assert_array_equal(r.clusters[~noise], raw.clusters[~noise])
    n_found = raw.clusters.max() + 1
    centers = np.stack([x[raw.clusters == c].mean(axis=0) for c in range(n_found)])
    d2 = ((x[noise, None, :] - centers[None]) ** 2).sum(-1)
    expect = np.argmin(d2, axis=1)
    # float32 rows may only flip near-ties
    best = np.take_along_axis(d2, expect[:, None], 1)[:, 0]
    got = np.take_along_axis(d2, r.clusters[noise][:, None], 1)[:, 0]
    assert np.all(got <= best * (1 + 1e-5) + 1e-9)
    assert (r.clusters[noise] == expect).mean() > 0.99


def test_all_noise_postfix(dask_client):
    x = np.random.default_rng(1).normal(size=(6, 3))
    for reassign in (True, False):
        r = dde.cluster(x, reassign_noise=reassign)
        assert (r.clusters == 0).all() and (r.membership_strengths == 0).all() and r.noise.all()


@pytest.mark.parametrize("chunk_rows", [None, 300, 150, 75])
def test_identical_for_1_2_4_partitions(chunk_rows, dask_client):
    x, _ = mixture(300, d=6, seed=11)
    base = dde.cluster(x, chunk_rows=300)
    r = dde.cluster(x, chunk_rows=chunk_rows)
    for key in ("clusters", "mst", "linkage_tree", "membership_strengths", "k_neighbors", "k_distances"):
        np.testing.assert_array_equal(r[key], base[key])


@pytest.mark.parametrize("spread", [2.0, 6.0])
def test_labels_invariant_under_row_permutation(spread, dask_client):
    x, _ = mixture(500, d=5, n_centers=4, spread=spread, seed=2)
    perm = np.random.default_rng(3).permutation(500)
    a = dde.cluster(x, reassign_noise=False)
    b = dde.cluster(x[perm], reassign_noise=False)
    assert adjusted_rand_score(a.clusters[perm], b.clusters) == 1.0
    np.testing.assert_allclose(a.membership_strengths[perm], b.membership_strengths, rtol=1e-6)
    if a.n_knn_components == 1:
        # without bridging the MST is order-free; DataEval's bridging rule depends on row order
        np.testing.assert_allclose(np.sort(a.mst[:, 2]), np.sort(b.mst[:, 2]))
    else:
        assert a.n_knn_components == b.n_knn_components > 1


def test_permutation_case_covers_connected_graph(dask_client):
    x, _ = mixture(500, d=5, n_centers=4, spread=2.0, seed=2)
    assert dde.cluster(x).n_knn_components == 1


def test_labels_equal_fast_hdbscan_on_separated_data(dask_client):
    fast_hdbscan = pytest.importorskip("fast_hdbscan")
    x, truth = mixture(1200, d=4, n_centers=5, spread=8.0, seed=7, dtype=np.float64)
    r = dde.cluster(x, reassign_noise=False)
    ref = fast_hdbscan.HDBSCAN(min_cluster_size=r.min_cluster_size, min_samples=1, allow_single_cluster=True).fit(x)
    assert adjusted_rand_score(ref.labels_, r.clusters) == 1.0
    assert adjusted_rand_score(truth, r.clusters) > 0.95


def test_same_answer_from_numpy_dask_and_zarr(tmp_path, dask_client):
    x, _ = mixture(400, d=8, seed=4)
    a = dde.cluster(x, chunk_rows=100)
    b = dde.cluster(da.from_array(x, chunks=(100, 8)))
    g = zarr.open_group(str(tmp_path / "in.zarr"), mode="w")
    g.create_array("emb", data=x, chunks=(100, 8))
    c = dde.cluster(str(tmp_path / "in.zarr"), array="emb")
    for r in (b, c):
        np.testing.assert_array_equal(r.clusters, a.clusters)
        np.testing.assert_array_equal(r.k_neighbors, a.k_neighbors)


def test_images_are_flattened(dask_client):
    x, _ = mixture(200, d=12, seed=8)
    a = dde.cluster(x)
    b = dde.cluster(x.reshape(200, 3, 2, 2))
    np.testing.assert_array_equal(a.clusters, b.clusters)


def test_max_cluster_size_not_above_mcs_is_ignored_with_warning(dask_client):
    x = blobs_plus_far()
    with pytest.warns(UserWarning, match="max_cluster_size=5 is not above min_cluster_size=5; ignoring it"):
        r = dde.cluster(x, max_cluster_size=5)
    np.testing.assert_array_equal(r.clusters, dde.cluster(x).clusters)


def test_min_cluster_size_rules(dask_client):
    from distdataeval.pipeline import min_cluster_size_for

    assert min_cluster_size_for(103, None) == 5
    assert min_cluster_size_for(1000, None) == 50
    assert min_cluster_size_for(10**6, None) == 100
    assert min_cluster_size_for(103, 2) == 17
    assert min_cluster_size_for(103, 10) == 5


def test_kmeans_n_clusters_must_be_below_n(dask_client):
    x = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.raises(dde.InvalidParameterError, match="n_clusters=6 must be smaller than the number of samples"):
        dde.cluster(x, algorithm="kmeans", n_clusters=6)


def test_runs_on_the_default_client(dask_client):
    x, _ = mixture(120, seed=9)
    def tile_seconds(dask_scheduler):
        return sum(tp.all_durations["compute"] for name, tp in dask_scheduler.task_prefixes.items() if name.startswith("knn-exact"))

    before = dask_client.run_on_scheduler(tile_seconds)
    dde.cluster(x)
    after = dask_client.run_on_scheduler(tile_seconds)
    assert after > before  # the k-NN tiles ran on the test cluster's workers


def test_deterministic(dask_client):
    x, _ = mixture(300, seed=12)
    a, b = dde.cluster(x), dde.cluster(x)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_approx_same_call_same_result_without_a_seed(dask_client):
    """The approximate search's own random choices (sample, partitions, pynndescent) take root
    seed 0 when none is set: the same call gives the same graph and labels, like DataEval's
    exact search; another seed gives another (approximate) graph."""
    from distdataeval import config

    x, _ = mixture(12_000, d=8, seed=5)  # one partition well above the brute-force size
    with config.use_seed(None):
        a = dde.cluster(x, knn="approx")
        b = dde.cluster(x, knn="approx")
    with config.use_seed(0):
        c = dde.cluster(x, knn="approx")
    with config.use_seed(1):
        other = dde.cluster(x, knn="approx")
    for r in (b, c):
        np.testing.assert_array_equal(r.k_neighbors, a.k_neighbors)
        np.testing.assert_array_equal(r.clusters, a.clusters)
        assert r.knn_recall == a.knn_recall
    assert not np.array_equal(other.k_neighbors, a.k_neighbors)


def test_auto_switches_to_approx_above_the_threshold(monkeypatch, dask_client):
    """knn="auto": exact (DataEval's search, no recall) up to AUTO_EXACT_MAX_ROWS rows inclusive,
    approx (recall measured) above; the threshold lies between the measured warm (~10k) and
    fresh (20k-35k) crossovers."""
    from distdataeval import api

    assert 10_000 <= api.AUTO_EXACT_MAX_ROWS <= 35_000
    x, _ = mixture(3_000, d=8, seed=2)
    monkeypatch.setattr(api, "AUTO_EXACT_MAX_ROWS", 3_000)
    at = dde.cluster(x, knn="auto")
    exact = dde.cluster(x, knn="exact")
    assert at.knn_method == "exact" and at.knn_recall is None
    np.testing.assert_array_equal(at.k_neighbors, exact.k_neighbors)
    monkeypatch.setattr(api, "AUTO_EXACT_MAX_ROWS", 2_999)
    above = dde.cluster(x, knn="auto")
    assert above.knn_method == "approx" and 0.9 <= above.knn_recall <= 1.0


def test_approx_mode_coarsens_many_small_chunks_to_whole_multiples():
    import dask.array as da

    from distdataeval import api
    from distdataeval.io.source import Source

    x = da.zeros((1000 * 300 + 7, 4), chunks=(1000, 4))
    out = api._coarsen_blocks(Source(x, "test"))
    chunks = out.data.chunks[0]
    assert len(chunks) <= api.MAX_APPROX_BLOCKS
    assert all(c % 1000 == 0 for c in chunks[:-1]) and sum(chunks) == x.shape[0]
    few = da.zeros((5000, 4), chunks=(1000, 4))
    assert api._coarsen_blocks(Source(few, "test")).data.chunks == few.chunks
