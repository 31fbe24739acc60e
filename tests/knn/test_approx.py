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


def assert_best_k_of_pools(nbr, sqd, pools, k=25):
    """Row r of (nbr, sqd) is the best k of ``pools[r]`` ({id: squared distance}) by (distance, id)."""
    for r, pool in enumerate(pools):
        best = sorted(pool.items(), key=lambda t: (t[1], t[0]))[:k]
        assert nbr[r].tolist() == [a for a, _ in best]
        assert sqd[r].tolist() == [b for _, b in best]


@pytest.fixture(scope="module")
def data():
    x, labels = mixture(12000, d=16, n_centers=6, spread=4.0, seed=21)
    return x, labels, brute_knn(x, 25)


def run_approx(client, x, partition_rows, overlap=2, seed=0, chunk=3000, fold_bytes=None):
    xd = da.from_array(x, chunks=(chunk, x.shape[1]))
    mean = x.astype(np.float64).mean(axis=0)
    blocks = client.persist(prepare_blocks(xd, mean))
    approx.warm_workers(client)
    with config.use_seed(seed):
        sample = x.astype(np.float64)[::3] - mean
        plan = approx.plan_partitions(sample, len(x), partition_rows, overlap, config.seed_sequence("knn", 0))
        nbr, sqd = approx.approximate_knn(
            client, blocks, xd.chunks[0], 25, plan, config.seed_sequence("knn", 1), fold_bytes=fold_bytes
        )
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


def test_folding_after_every_partition_equals_one_final_merge(data, dask_client):
    """Partitions' lists folded into the running lists one by one (fold budget 0) or all at the
    end give the same graph, and both equal every partition built here in-process (brute-force
    partitions) with each row's candidates pooled in plain Python."""
    x = data[0][:6000]
    plan, na, sa = run_approx(dask_client, x, partition_rows=1000, chunk=1000, fold_bytes=0.0)
    plan_b, nb, sb = run_approx(dask_client, x, partition_rows=1000, chunk=1000, fold_bytes=np.inf)
    np.testing.assert_array_equal(plan.centroids, plan_b.centroids)
    np.testing.assert_array_equal(na, nb)
    np.testing.assert_array_equal(sa, sb)
    assert plan.n_partitions >= 6 and plan.expected_sizes.max() < approx.EXACT_PARTITION_ROWS
    mean = x.astype(np.float64).mean(axis=0)
    x32 = (x.astype(np.float64) - mean).astype(np.float32)
    dest = approx._destinations(x32.astype(np.float64), plan.centroids, plan.overlap, plan.border)
    with config.use_seed(0):
        seeds = [int(c.generate_state(1)[0]) for c in config.seed_sequence("knn", 1).spawn(plan.n_partitions)]
    pools = [dict() for _ in range(len(x))]
    for p in range(plan.n_partitions):
        rows = np.flatnonzero((dest == p).any(axis=1))
        ids, nbr, sqd = approx._build_partition([(rows, x32[rows])], 25, seeds[p])
        for r, ns, ds in zip(ids, nbr, sqd):
            pools[r].update((int(a), float(b)) for a, b in zip(ns, ds) if np.isfinite(b))
    assert_best_k_of_pools(na, sa, pools)


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


def test_border_routing_keeps_second_cells_only_near_the_border():
    rng = np.random.default_rng(5)
    centroids = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = rng.uniform(-5, 15, (2000, 2))
    full = approx._destinations(x, centroids, 2, None)
    near = approx._destinations(x, centroids, 2, 0.1)
    np.testing.assert_array_equal(full[:, 0], near[:, 0])  # every row keeps its own cell
    d2 = ((x[:, None, :] - centroids[None]) ** 2).sum(-1)
    own = d2[np.arange(len(x)), full[:, 0]]
    second = d2[np.arange(len(x)), full[:, 1]]
    kept = near[:, 1] >= 0
    np.testing.assert_array_equal(kept, second <= 1.1 * own)
    assert 0 < kept.sum() < len(x)
    np.testing.assert_array_equal(near[kept, 1], full[kept, 1])


def test_border_plan_indexes_fewer_rows_than_full_overlap(data, dask_client):
    x = data[0]
    sample = x.astype(np.float64)[::3] - x.astype(np.float64).mean(axis=0)
    full = approx.plan_partitions(sample, len(x), 3000, 2, config.seed_sequence("knn", 0))
    border = approx.plan_partitions(sample, len(x), 3000, 2, config.seed_sequence("knn", 0), border=0.1)
    assert border.expected_sizes.sum() < full.expected_sizes.sum()
    assert border.expected_sizes.sum() >= len(x) * 0.999


def test_second_pass_folds_into_the_first_graph_as_the_best_k_of_the_union(data, dask_client):
    """``init``: a pass's candidates folded into an existing graph give, per row, the best k of
    the union of both passes' lists (deduplicated by id, ordered by (distance, id))."""
    x = data[0]
    xd = da.from_array(x, chunks=(3000, x.shape[1]))
    mean = x.astype(np.float64).mean(axis=0)
    blocks = dask_client.persist(prepare_blocks(xd, mean))
    approx.warm_workers(dask_client)
    sample = x.astype(np.float64)[::3] - mean
    weak = (1.0, 8)  # a narrow pynndescent graph: the passes miss different neighbours
    with config.use_seed(0):
        plan_a = approx.plan_partitions(sample, len(x), 5000, 1, config.seed_sequence("knn", 0))
        plan_b = approx.plan_partitions(sample, len(x), 5000, 1, config.seed_sequence("knn", 2))
        first = dask_client.persist(list(approx.approximate_knn(dask_client, blocks, xd.chunks[0], 25, plan_a, config.seed_sequence("knn", 1), *weak)))
        second = approx.approximate_knn(dask_client, blocks, xd.chunks[0], 25, plan_b, config.seed_sequence("knn", 3), *weak)
        folded = approx.approximate_knn(dask_client, blocks, xd.chunks[0], 25, plan_b, config.seed_sequence("knn", 3), *weak, init=tuple(first))
    (na, sa), (nb, sb), (nf, sf) = (dask_client.gather(dask_client.compute(list(g))) for g in (first, second, folded))
    assert plan_a.overlap == 1 and plan_b.n_partitions >= 2
    assert (na != nb).any()  # the two passes found different lists
    pools = [dict(zip(na[r].tolist(), sa[r].tolist())) | dict(zip(nb[r].tolist(), sb[r].tolist())) for r in range(len(x))]
    assert_best_k_of_pools(nf, sf, pools)


def test_low_recall_triggers_the_wider_second_pass(dask_client, caplog):
    # isotropic clusters in 32-d with a deliberately weak first pass: the sampled recall is
    # below the target, the second pass runs and is merged in, and recall goes up
    from distdataeval.io.source import open_source
    from distdataeval.pipeline import ClusterPlan, run_cluster

    x, _ = mixture(12000, d=32, n_centers=3, spread=3.0, seed=9)
    src = open_source(x, None, chunk_rows=3000)
    weak = dict(border=0.0, neighbor_factor=1.0, max_candidates=8, partition_rows=3000)
    with config.use_seed(0):
        off = run_cluster(src, ClusterPlan("hdbscan", 100, None, "approx", True, escalate=False, recall_target=0.999, **weak), dask_client)
    with config.use_seed(0), caplog.at_level("INFO", logger="distdataeval"):
        on = run_cluster(src, ClusterPlan("hdbscan", 100, None, "approx", True, recall_target=0.999, **weak), dask_client)
    assert off.knn_recall < 0.999
    assert any("second pass" in m for m in caplog.messages)
    assert on.knn_recall > off.knn_recall
    # merged rows stay valid: sorted, no self, no repeats
    nbr, dist = np.asarray(on.k_neighbors), np.asarray(on.k_distances)
    assert (np.diff(dist, axis=1) >= 0).all()
    assert not (nbr == np.arange(len(x))[:, None]).any()
    assert all(len(set(row)) == row.size for row in nbr[:500])


def test_rows_of_a_partition_smaller_than_k_get_an_exact_search(dask_client):
    from distdataeval.pipeline import _complete_short_rows

    rng = np.random.default_rng(11)
    x = np.concatenate([rng.normal(0, 1, (3000, 8)), rng.normal(50, 1, (10, 8))]).astype(np.float32)
    xd = da.from_array(x, chunks=(1000, 8))
    mean = x.astype(np.float64).mean(axis=0)
    blocks = dask_client.persist(prepare_blocks(xd, mean))
    approx.warm_workers(dask_client)
    cells = np.stack([x[:3000].mean(0), x[3000:].mean(0)]).astype(np.float64) - mean
    plan = approx.PartitionPlan(cells, 1, np.array([3000.0, 10.0]))
    nbr, sqd = dask_client.persist(list(approx.approximate_knn(dask_client, blocks, xd.chunks[0], 25, plan, config.seed_sequence("knn", 1))))
    assert np.isinf(np.asarray(sqd)[3000:, -1]).all()  # the 10-row cell cannot give 25 neighbours
    nbr, sqd = _complete_short_rows(dask_client, blocks, nbr, sqd, 25)
    want_d = brute_knn(x, 25)[1][3000:]
    got = np.sqrt(np.asarray(sqd)[3000:])
    np.testing.assert_allclose(got, want_d, rtol=1e-5)
    assert np.isfinite(np.asarray(sqd)).all()


def test_plan_merges_cells_expected_to_be_tiny():
    rng = np.random.default_rng(12)
    sample = np.concatenate([rng.normal(0, 1, (5000, 4)), rng.normal(100, 1, (3, 4))])
    plan = approx.plan_partitions(sample, 5003, 1000, 2, config.seed_sequence("knn", 0))
    assert plan.expected_sizes.min() >= approx.MIN_PARTITION_ROWS


def test_fold_groups_cover_the_blocks_in_contiguous_runs():
    chunks = (1000,) * 37 + (200,)
    starts = approx.fold_groups(chunks, n_workers=2, max_rows=5000)
    assert starts[0] == 0 and starts[-1] == len(chunks) and starts == sorted(set(starts))
    rows = [sum(chunks[a:b]) for a, b in zip(starts, starts[1:])]
    assert len(rows) >= 8  # at least four groups per worker
    assert max(rows) <= 5000 + 1000  # about max_rows (cut at a block boundary)
    assert approx.fold_groups((10,) * 3, n_workers=4) == [0, 1, 2, 3]  # never more groups than blocks


def test_min_partitions_and_cells_bounded_by_twice_the_mean():
    """A dominant component would be one oversized cell; cells are split until none is expected
    to exceed twice the mean cell of the first fit (the builds stay balanced over workers)."""
    rng = np.random.default_rng(3)
    big = rng.normal(size=(14000, 8))
    small = [rng.normal(size=(1000, 8)) * 0.3 + 12 * rng.normal(size=8) for _ in range(6)]
    sample = np.concatenate([big, *small])
    sample -= sample.mean(axis=0)
    n = 10 * len(sample)
    plan = approx.plan_partitions(sample, n, 10**9, 2, np.random.SeedSequence(0), border=0.1, min_partitions=8)
    assert plan.n_partitions >= 8
    first_mean = n * 1.0 / 8  # at least n rows spread over the first 8 cells
    assert plan.expected_sizes.max() <= 2.0 * first_mean * 1.2


def _slow_warm():
    """Make this worker's warm-up take 3 s (it loads cached kernels in ~1 s)."""
    import time

    real = approx._warm_pynndescent_locked

    def slow():
        time.sleep(3.0)
        real()

    approx._warm_pynndescent_locked = slow


def test_background_warm_holds_the_build_lock_until_warm():
    # fresh workers warm pynndescent in a thread: the call returns at once and builds wait on
    # the lock the warm-up holds
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(_slow_warm)
        assert approx.warm_workers(client, wait=False) == 1
        assert list(client.run(lambda: approx._BUILD_LOCK.locked()).values()) == [True]
        assert approx.warm_workers(client, wait=False) == 0  # once per worker
        x = np.random.default_rng(0).normal(size=(3000, 4)).astype(np.float32)
        ids, nbr, _ = client.submit(approx._build_partition, [(np.arange(3000), x)], 5, 0).result()
        assert nbr.shape == (3000, 5)  # the build waited for the warm-up and ran
        assert list(client.run(lambda: approx._BUILD_LOCK.locked()).values()) == [False]


def test_a_partition_graph_does_not_depend_on_how_its_rows_arrive():
    # rows come in one piece per worker, in any order of blocks: the build sorts them by id
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    ids = np.sort(rng.choice(10_000, 3000, replace=False))
    pieces = [(ids[i : i + 500], x[i : i + 500]) for i in range(0, 3000, 500)]
    shuffled = [pieces[j] for j in (3, 0, 5, 1, 4, 2)]
    a = approx._build_partition(pieces, 10, 7, 1.2, 40)
    b = approx._build_partition(shuffled, 10, 7, 1.2, 40)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(a[0], ids)


def test_a_first_graph_handed_over_in_a_list_is_released(data, dask_client):
    # the second pass's running lists copy the first graph: holding both cost 2 GB per worker
    # at 10M rows, so a first graph given as a list is dropped once the lists are built from it
    import time

    from distributed import futures_of, wait

    x = data[0]
    xd = da.from_array(x, chunks=(3000, x.shape[1]))
    blocks = dask_client.persist(prepare_blocks(xd, x.astype(np.float64).mean(axis=0)))
    sample = x.astype(np.float64)[::3] - x.astype(np.float64).mean(axis=0)
    with config.use_seed(0):
        plan = approx.plan_partitions(sample, len(x), 5000, 1, config.seed_sequence("knn", 0))
        handed = dask_client.persist(list(approx.approximate_knn(dask_client, blocks, xd.chunks[0], 25, plan, config.seed_sequence("knn", 1))))
        keys = [f.key for g in handed for f in futures_of(g)]
        out = dask_client.persist(list(approx.approximate_knn(dask_client, blocks, xd.chunks[0], 25, plan, config.seed_sequence("knn", 3), init=handed)))
    assert handed == []
    wait([f for g in out for f in futures_of(g)])

    def held(dask_scheduler, keys=keys):
        return sum(k in dask_scheduler.tasks for k in keys)

    deadline = time.time() + 10
    while dask_client.run_on_scheduler(held) and time.time() < deadline:
        time.sleep(0.1)
    assert dask_client.run_on_scheduler(held) == 0
    assert np.isfinite(np.asarray(out[1])).all()


def test_locality_order_is_a_seeded_permutation_that_keeps_neighbours_close():
    x, _ = mixture(20000, d=32, n_centers=8, spread=4.0, seed=3)
    x = x.astype(np.float32)
    a = approx.locality_order(x, 11, leaf=256)
    np.testing.assert_array_equal(np.sort(a), np.arange(len(x)))
    np.testing.assert_array_equal(a, approx.locality_order(x, 11, leaf=256))
    assert not np.array_equal(a, approx.locality_order(x, 12, leaf=256))

    def step(order):  # mean distance between rows next to each other in the order
        return float(np.linalg.norm(np.diff(x[order].astype(np.float64), axis=0), axis=1).mean())

    assert step(a) < 0.6 * step(np.arange(len(x)))
    # thousands of identical rows: still a permutation (split by position)
    same = np.ones((5000, 4), dtype=np.float32)
    np.testing.assert_array_equal(np.sort(approx.locality_order(same, 0, leaf=64)), np.arange(5000))


def test_a_partition_built_in_locality_order_reports_its_rows_in_id_order():
    # pynndescent sees the rows permuted; the lists must come back as the rows' own neighbours
    x, _ = mixture(6000, d=16, n_centers=4, spread=4.0, seed=9)
    x = x.astype(np.float32)
    ids = np.arange(6000, dtype=np.int64) * 3 + 7  # global ids, not positions
    got_ids, nbr, sqd = approx._build_partition([(ids, x)], 10, 5, 1.2, 40)
    np.testing.assert_array_equal(got_ids, ids)
    x64 = x.astype(np.float64)
    # every reported neighbour is a real row at the reported distance, never the row itself
    pos = (nbr - 7) // 3
    np.testing.assert_allclose(sqd, ((x64[:, None, :] - x64[pos]) ** 2).sum(axis=2), rtol=1e-12)
    assert not np.any(pos == np.arange(6000)[:, None])
    _, exact = brute_knn(x, 10)
    assert recall_at_k(sqd, exact) > 0.98


def test_short_rows_and_probe_lists_in_one_pass(dask_client):
    from distdataeval.pipeline import _short_rows_and_probe

    rng = np.random.default_rng(2)
    sq = rng.random((1000, 5))
    sq[[3, 250, 251, 999], -1] = np.inf
    probe = np.sort(rng.choice(1000, 40, replace=False))
    short, got = _short_rows_and_probe(dask_client, da.from_array(sq, chunks=(130, 5)), probe)
    np.testing.assert_array_equal(short, [3, 250, 251, 999])
    np.testing.assert_array_equal(got, sq[probe])
    shuffled = rng.permutation(probe)  # rows come back in the probe's own order
    np.testing.assert_array_equal(_short_rows_and_probe(dask_client, da.from_array(sq, chunks=(130, 5)), shuffled)[1],
                                  sq[shuffled])
