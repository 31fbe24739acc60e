"""Exact blocked k-NN against brute force (scipy cdist in float64)."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from distdataeval.knn import _kernels as K
from distdataeval.knn import exact
from distdataeval.knn.blocks import prepare_block, roundoff_bound
from tests.conftest import mixture


def brute_knn(x: np.ndarray, k: int):
    d = cdist(x.astype(np.float64), x.astype(np.float64))
    np.fill_diagonal(d, np.inf)
    ids = np.argsort(d, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(d, ids, axis=1)


def run_exact(x: np.ndarray, k: int, chunk: int, client):
    xd = da.from_array(x, chunks=(chunk, x.shape[1]))
    mean = x.astype(np.float64).mean(axis=0)
    blocks = exact.prepare_blocks(xd, mean)
    nbr, sqd, cert = exact.exact_knn_candidates(blocks, xd.chunks[0], k, d=x.shape[1])
    return client.gather(client.compute([nbr, sqd, cert]))


@pytest.mark.parametrize("chunk", [37, 100, 1000])
def test_matches_brute_force(chunk, dask_client):
    x, _ = mixture(400, d=12, seed=3)
    nbr, sqd, cert = run_exact(x, 25, chunk, dask_client)
    ids, dist = brute_knn(x, 25)
    np.testing.assert_array_equal(nbr, ids)
    np.testing.assert_allclose(np.sqrt(sqd), dist, rtol=1e-12, atol=1e-12)
    assert cert.all()


def test_self_excluded_by_index_with_duplicates(dask_client):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(50, 4))
    x = np.concatenate([base, base[:10], base[:10]])  # rows 50..69 copy rows 0..9
    nbr, sqd, _ = run_exact(x, 5, 16, dask_client)
    assert not (nbr == np.arange(len(x))[:, None]).any()
    # row 0 has two exact copies (50, 60): both at distance 0, first, by id
    np.testing.assert_array_equal(nbr[0, :2], [50, 60])
    np.testing.assert_array_equal(sqd[0, :2], [0.0, 0.0])
    np.testing.assert_array_equal(nbr[60, :2], [0, 50])


def test_many_identical_rows(dask_client):
    x = np.ones((120, 3))
    x[100:] = np.random.default_rng(0).normal(size=(20, 3)) + 10
    nbr, sqd, cert = run_exact(x, 25, 32, dask_client)
    # each identical row: 25 neighbours at distance 0, the smallest other ids
    assert (sqd[:100] == 0).all()
    assert cert[:100].all()  # distance 0 cannot be beaten
    # rows 100.. reach the block of copies, whose equal scores straddle the kept/dropped boundary:
    # they may be uncertified (the pipeline then recomputes them), but what was kept is right
    ids, dist = brute_knn(x, 25)
    np.testing.assert_allclose(np.sqrt(sqd[100:]), dist[100:], rtol=1e-9)
    assert not (nbr == np.arange(120)[:, None]).any()
    np.testing.assert_array_equal(nbr[0], np.arange(1, 26))
    np.testing.assert_array_equal(nbr[99], np.arange(0, 25))


def test_uncertified_rows_are_detected_and_refined(dask_client):
    # a far offset that centring does not remove (two distant groups) with sub-float32 spacing:
    # the float32 ranking cannot separate neighbours, so rows must fail the certificate
    rng = np.random.default_rng(5)
    a = 1e4 + rng.normal(0, 1e-3, (60, 6))
    b = -1e4 + rng.normal(0, 1e-3, (60, 6))
    x = np.concatenate([a, b])
    nbr, sqd, cert = run_exact(x, 5, 30, dask_client)
    assert (~cert).sum() > 0
    bad = np.flatnonzero(~cert)
    xd = da.from_array(x, chunks=(30, 6))
    blocks = dask_client.persist(exact.prepare_blocks(xd, x.mean(axis=0)))
    fix_i, fix_d = dask_client.compute(exact.exact_rows_search(blocks, bad, 5)).result()
    ids, dist = brute_knn(x, 5)
    np.testing.assert_array_equal(fix_i, ids[bad])
    np.testing.assert_allclose(np.sqrt(fix_d), dist[bad], rtol=1e-8)  # both sides round x at 1e4


def test_cluster_patches_uncertified_rows(dask_client):
    import distdataeval as dde

    rng = np.random.default_rng(5)
    x = np.concatenate([1e4 + rng.normal(0, 1e-3, (150, 6)), -1e4 + rng.normal(0, 1e-3, (150, 6))])
    r = dde.cluster(x, chunk_rows=100)
    assert r.timings["knn_uncertified_rows"] > 0
    ids, dist = brute_knn(x, 25)
    np.testing.assert_array_equal(r.k_neighbors, ids)
    np.testing.assert_allclose(r.k_distances, dist.astype(np.float32), rtol=1e-6)


def test_position_filter_searches_later_components_only(dask_client):
    x, _ = mixture(200, d=5, seed=2)
    pos = np.random.default_rng(0).integers(0, 4, 200)
    xd = da.from_array(x, chunks=(64, 5))
    blocks = exact.prepare_blocks(xd, x.mean(axis=0))
    nbr, sqd, cert = dask_client.gather(dask_client.compute(list(exact.exact_knn_candidates(blocks, xd.chunks[0], 1, pos, d=5))))
    d = cdist(x, x)
    for i in range(200):
        later = np.flatnonzero(pos > pos[i])
        if later.size == 0:
            assert nbr[i, 0] == K.ID_SENTINEL and np.isinf(sqd[i, 0])
        else:
            j = later[np.argmin(d[i, later])]
            assert nbr[i, 0] == j
            assert np.isclose(np.sqrt(sqd[i, 0]), d[i, j])


def test_roundoff_bound_holds():
    rng = np.random.default_rng(0)
    for d in (2, 64, 600):
        q = rng.normal(3, 2, (50, d))
        r = rng.normal(-1, 2, (80, d))
        mean = np.zeros(d)
        pq, pr = prepare_block(q, 0, mean), prepare_block(r, 0, mean)
        q_aug = np.hstack([pq.x32, np.ones((50, 1), np.float32)])
        r_aug = np.hstack([-2.0 * pr.x32, pr.sqnorm32[:, None]]).astype(np.float32)
        approx = (q_aug @ r_aug.T).astype(np.float64)  # the GEMM the k-NN tiles run
        exact_s = (pr.x64**2).sum(1)[None, :] - 2 * pq.x64 @ pr.x64.T
        bound = roundoff_bound(d, pq.norm, pr.norm.max())
        assert (np.abs(approx - exact_s) <= bound[:, None]).all()


def test_merge_candidates_orders_by_distance_then_id():
    ids = np.array([[5, 3, 9, 1, K.ID_SENTINEL]], dtype=np.int64)
    sq = np.array([[1.0, 1.0, 0.5, 2.0, np.inf]])
    out_i, out_d = K.merge_candidates(ids, sq, 3)
    np.testing.assert_array_equal(out_i[0], [9, 3, 5])
    np.testing.assert_array_equal(out_d[0], [0.5, 1.0, 1.0])


def test_graph_is_lazy():
    x, _ = mixture(100)
    xd = da.from_array(x, chunks=(25, 8))
    blocks = exact.prepare_blocks(xd, x.mean(axis=0))
    nbr, sqd, cert = exact.exact_knn_candidates(blocks, xd.chunks[0], 5, d=8)
    assert isinstance(nbr, da.Array) and isinstance(cert, da.Array)
    assert all(isinstance(b, dask.delayed(lambda: 0)().__class__) for b in blocks)
