"""Approximate (partitioned pynndescent) k-NN against exact search."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

import distdataeval as dde
from distdataeval import config
from distdataeval.knn import approx
from distdataeval.knn.exact import prepare_blocks
from tests.conftest import mixture
from tests.knn.test_exact import brute_knn


def recall_at_k(found_sq: np.ndarray, exact_dist: np.ndarray) -> float:
    kth = exact_dist[:, -1:] ** 2 * (1 + 1e-9) + 1e-12
    return float(np.mean((found_sq <= kth).sum(axis=1) / exact_dist.shape[1]))


@pytest.fixture(scope="module")
def data():
    x, labels = mixture(12000, d=16, n_centers=6, spread=4.0, seed=21)
    return x, labels, brute_knn(x, 25)


def run_approx(client, x, partition_rows, overlap=2, seed=0, chunk=3000):
    xd = da.from_array(x, chunks=(chunk, x.shape[1]))
    mean = x.astype(np.float64).mean(axis=0)
    blocks = client.persist(prepare_blocks(xd, mean))
    approx.warm_workers(client)
    with config.use_seed(seed):
        sample = x.astype(np.float64)[::3] - mean
        plan = approx.plan_partitions(sample, len(x), partition_rows, overlap, config.seed_sequence("knn", 0))
        nbr, sqd = approx.approximate_knn(blocks, xd.chunks[0], 25, plan, config.seed_sequence("knn", 1))
    return plan, *client.gather(client.compute([nbr, sqd]))


def test_single_index_recall(data, dask_client):
    x, _, (ids, dist) = data
    plan, nbr, sqd = run_approx(dask_client, x, partition_rows=100_000)
    assert plan.n_partitions == 1
    assert recall_at_k(sqd, dist) >= 0.97


@pytest.mark.parametrize("overlap", [1, 2])
def test_partitioned_recall_and_overlap(overlap, data, dask_client):
    x, _, (ids, dist) = data
    plan, nbr, sqd = run_approx(dask_client, x, partition_rows=3000, overlap=overlap)
    assert plan.n_partitions >= 3
    # no partition far above the cap
    assert plan.expected_sizes.max() <= 1.5 * 3000 * 1.2
    r = recall_at_k(sqd, dist)
    assert r >= (0.9 if overlap == 2 else 0.75)
    # self excluded by index; lists ordered by (distance, id); distances exact
    assert not (nbr == np.arange(len(x))[:, None]).any()
    assert (np.diff(sqd, axis=1) >= 0).all()
    true_sq = ((x[:, None, :].astype(np.float64) - x[nbr].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_allclose(sqd, true_sq, rtol=1e-6, atol=1e-9)
    assert len(set(map(tuple, np.sort(nbr[:50], axis=1)))) == 50  # no duplicate ids per row (spot)
    for row in nbr[:200]:
        assert len(set(row.tolist())) == 25


def test_overlap_two_beats_one(data, dask_client):
    x, _, (ids, dist) = data
    _, _, sq1 = run_approx(dask_client, x, partition_rows=3000, overlap=1)
    _, _, sq2 = run_approx(dask_client, x, partition_rows=3000, overlap=2)
    assert recall_at_k(sq2, dist) > recall_at_k(sq1, dist)


def test_deterministic_for_a_seed(data, dask_client):
    x = data[0]
    _, a, _ = run_approx(dask_client, x, partition_rows=3000, seed=3)
    _, b, _ = run_approx(dask_client, x, partition_rows=3000, seed=3)
    np.testing.assert_array_equal(a, b)


def test_thousands_of_identical_vectors(dask_client):
    rng = np.random.default_rng(4)
    x = np.concatenate([np.ones((3000, 8)), rng.normal(5, 1, (3000, 8))]).astype(np.float32)
    x = x[rng.permutation(len(x))]
    _, nbr, sqd = run_approx(dask_client, x, partition_rows=4000)
    ones = np.flatnonzero((x == 1).all(axis=1))
    assert (sqd[ones] == 0).all()  # every copy finds 25 other copies at distance 0
    assert not (nbr == np.arange(len(x))[:, None]).any()


def test_cluster_approx_agrees_with_exact(dask_client):
    x, truth = mixture(6000, d=16, n_centers=5, spread=6.0, seed=8)
    with config.use_seed(0):
        a = dde.cluster(x, knn="approx", reassign_noise=False)
    e = dde.cluster(x, knn="exact", reassign_noise=False)
    assert a.knn_method == "approx" and e.knn_method == "exact"
    assert a.knn_recall is not None and a.knn_recall >= 0.95
    assert adjusted_rand_score(e.clusters, a.clusters) >= 0.98


def test_auto_is_exact_for_small_inputs(dask_client):
    x, _ = mixture(500, seed=1)
    assert dde.cluster(x).knn_method == "exact"
