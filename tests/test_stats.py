"""cluster_stats against a NumPy brute-force reference and DataEval's observed numbers (spec §9.3)."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from distdataeval import _stats_kernels as K
from distdataeval.errors import InvalidInputError, InvalidParameterError
from distdataeval.stats import cluster_centers, cluster_stats, reassign_noise_to_nearest_center
from tests.conftest import mixture

GOLDEN = Path(__file__).parent / "golden"


def reference_stats(x: np.ndarray, labels: np.ndarray, reassign: str):
    """Brute force: one cluster at a time, full (n x K) distance matrix (fine at test sizes)."""
    x = x.astype(np.float64)
    ids = np.unique(labels[labels >= 0])
    centers = np.stack([x[labels == c].mean(axis=0) for c in ids])
    dmat = np.sqrt(((x[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))
    nearest = ids[np.argmin(dmat, axis=1)]
    if reassign == "all":
        assigned = nearest if (labels < 0).any() else labels.copy()
    elif reassign == "noise":
        assigned = np.where(labels < 0, nearest, labels)
    else:
        assigned = labels.copy()
    dist = np.full(x.shape[0], np.inf)
    for j, c in enumerate(ids):
        dist[assigned == c] = dmat[assigned == c, j]
    counts = np.array([(assigned == c).sum() for c in ids])
    mean = np.array([dist[assigned == c].mean() if (assigned == c).any() else np.nan for c in ids])
    std = np.array([dist[assigned == c].std() if (assigned == c).any() else np.nan for c in ids])
    return ids, centers, counts, assigned, dist, mean, std


def _noisy_labels(n, true_labels, seed=0, noise_share=0.1):
    rng = np.random.default_rng(seed)
    lab = (true_labels * 3 + 2).astype(np.int64)  # non-contiguous ids 2, 5, 8, ...
    lab[rng.random(n) < noise_share] = -1
    return lab


@pytest.mark.parametrize("reassign", ["all", "noise", "none"])
def test_matches_bruteforce_over_many_blocks(dask_client, reassign):
    x, true = mixture(3000, d=6, n_centers=5, spread=2.0, seed=1)  # overlapping: reassignment matters
    lab = _noisy_labels(3000, true, seed=2)
    s = cluster_stats(da.from_array(x, chunks=(400, 6)), lab, reassign=reassign)
    ids, centers, counts, assigned, dist, mean, std = reference_stats(x, lab, reassign)
    np.testing.assert_array_equal(s.cluster_ids, ids)
    np.testing.assert_allclose(s.centers, centers, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(s.assigned, assigned)
    np.testing.assert_array_equal(s.counts, counts)
    np.testing.assert_allclose(s.distances, dist.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(s.dist_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(s.dist_std, std, rtol=1e-5)
    assert s.assigned.dtype == np.int64 and s.distances.dtype == np.float32
    assert s.centers.dtype == np.float64 and s.counts.dtype == np.int64
    if reassign == "none":
        assert np.isinf(s.distances[lab < 0]).all() and (s.assigned[lab < 0] == -1).all()
    if reassign == "all":  # overlapping clusters: some labelled points moved to another centre
        assert (s.assigned[lab >= 0] != lab[lab >= 0]).any()


def test_all_rule_keeps_labels_when_there_is_no_noise(dask_client):
    x, true = mixture(600, d=3, n_centers=3, spread=1.5, seed=3)
    s = cluster_stats(x, true, reassign="all")
    np.testing.assert_array_equal(s.assigned, true)
    ref = reference_stats(x, true, "all")
    np.testing.assert_allclose(s.dist_std, ref[6], rtol=1e-5)


def test_dask_labels_and_float32_input(dask_client):
    x, true = mixture(1500, d=4, seed=4)
    lab = _noisy_labels(1500, true, seed=5)
    s = cluster_stats(da.from_array(x, chunks=(256, 4)), da.from_array(lab, chunks=333), reassign="noise")
    ref = reference_stats(x, lab, "noise")
    np.testing.assert_array_equal(s.assigned, ref[3])
    np.testing.assert_allclose(s.dist_mean, ref[5], rtol=1e-6)


def test_thousands_of_clusters(dask_client):
    rng = np.random.default_rng(6)
    n, k = 6000, 2500
    x = rng.normal(size=(n, 3))
    lab = rng.integers(0, k, n)
    lab[rng.random(n) < 0.05] = -1
    s = cluster_stats(da.from_array(x, chunks=(1000, 3)), lab, reassign="all")
    ids, centers, counts, assigned, dist, mean, std = reference_stats(x, lab, "all")
    np.testing.assert_array_equal(s.assigned, assigned)
    np.testing.assert_array_equal(s.counts, counts)
    empty = counts == 0  # "all" can empty a cluster: its statistics are NaN
    assert np.isnan(s.dist_mean[empty]).all()
    np.testing.assert_allclose(s.dist_std[~empty], std[~empty], rtol=1e-5, atol=1e-7)


def test_no_cluster_gives_empty_stats(dask_client):
    x = np.arange(20.0).reshape(10, 2)
    s = cluster_stats(x, np.full(10, -1), reassign="all")
    assert s.cluster_ids.shape == (0,) and s.centers.shape == (0, 2) and s.dist_mean.shape == (0,)
    assert (s.assigned == -1).all() and np.isinf(s.distances).all()


def test_dataeval_observed_stats_on_blobs_plus_far(dask_client):
    """Spec §9.3: DataEval's compute_cluster_stats on blobs_plus_far(0) with C1's labels."""
    g = np.load(GOLDEN / "cluster_C1.npz")
    x, labels = g["X"], g["clusters"]
    s = cluster_stats(x, labels, reassign="all")
    np.testing.assert_array_equal(s.cluster_ids, [0, 1])
    np.testing.assert_allclose(s.dist_mean, [0.7749, 1.1288], atol=1e-4)
    np.testing.assert_allclose(s.dist_std, [2.8985, 3.8431], atol=1e-4)
    np.testing.assert_array_equal(s.assigned[100:], [0, 1, 1])
    np.testing.assert_allclose(s.distances[100:], [21.235, 17.995, 22.410], atol=1e-3)


def test_nearest_center_tiles_and_ties(monkeypatch):
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(50, 3))
    centers[40] = centers[7]  # exact tie: the lower position wins, even across tiles
    centers[45] = centers[44]
    rows = np.concatenate([rng.normal(size=(300, 3)), centers[[7, 44]] + 1e-9])
    import distdataeval.kmeans_kernels as KK

    monkeypatch.setattr(KK, "ROW_TILE", 256)  # 256 rows per tile
    monkeypatch.setattr(KK, "TILE_ELEMENTS", 256 * 6)  # 6 centres per tile
    got = K.nearest_center(rows, centers)
    d2 = ((rows[:, None, :] - centers[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(got, np.argmin(d2, axis=1))
    assert got[-2] == 7 and got[-1] == 44


def test_pipeline_helpers_match_bruteforce(dask_client):
    x, true = mixture(900, d=3, seed=8)
    lab = true.copy()
    lab[::7] = -1
    xd, ld = da.from_array(x, chunks=(200, 3)), da.from_array(lab, chunks=200)
    centers, counts = dask_client.compute(cluster_centers(xd, ld, 5), sync=True)
    ref = reference_stats(x, lab, "noise")
    np.testing.assert_allclose(centers, ref[1], rtol=1e-10)
    np.testing.assert_array_equal(counts, np.bincount(lab[lab >= 0]))
    out = dask_client.compute(reassign_noise_to_nearest_center(xd, ld, centers), sync=True)
    np.testing.assert_array_equal(out, ref[3])


class TestErrors:
    def test_wrong_label_length(self, dask_client):
        with pytest.raises(InvalidInputError, match=r"labels must have shape \(10,\)"):
            cluster_stats(np.zeros((10, 2)), np.zeros(9, dtype=int))

    def test_float_labels(self, dask_client):
        with pytest.raises(InvalidInputError, match="labels must be integers"):
            cluster_stats(np.zeros((4, 2)), np.zeros(4))

    def test_unknown_mode(self, dask_client):
        with pytest.raises(InvalidParameterError, match="reassign must be one of"):
            cluster_stats(np.zeros((4, 2)), np.zeros(4, dtype=int), reassign="some")

    def test_not_2d_dask(self, dask_client):
        with pytest.raises(InvalidInputError, match="2-D"):
            cluster_stats(da.zeros((4, 2, 2)), np.zeros(4, dtype=int))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8])
def test_block_center_sums_equal_row_order_float64_sums(dtype):
    from distdataeval._stats_kernels import block_center_sums

    rng = np.random.default_rng(4)
    x = (rng.normal(size=(3000, 7)) * 40).astype(dtype)
    pos = rng.integers(-1, 9, 3000)
    sums, counts = block_center_sums(x, pos, 9)
    ref = np.zeros((9, 7))
    np.add.at(ref, pos[pos >= 0], x[pos >= 0].astype(np.float64))  # adds in row order, as the kernel
    np.testing.assert_array_equal(sums, ref)
    np.testing.assert_array_equal(counts, np.bincount(pos[pos >= 0], minlength=9))
