"""The cacheable NN-descent core against pynndescent's own, and its numba disk cache."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from distdataeval.knn import nndescent
from tests.conftest import mixture


def _graphs(x, n_neighbors, seed, max_candidates):
    before = dict(nndescent.calls)
    ours = nndescent.neighbor_graph(x, n_neighbors, seed, max_candidates, cached=True)
    theirs = nndescent.neighbor_graph(x, n_neighbors, seed, max_candidates, cached=False)
    assert nndescent.calls["cached"] == before["cached"] + 1  # our core ran, not a fallback
    return ours, theirs


def test_the_installed_pynndescent_gets_the_cached_core():
    # if this fails, a pynndescent release the core was not checked against is installed: every
    # worker compiles pynndescent's own core again in each new process (correct, ~20 s slower).
    # Check the new release with this module's tests and add it to CHECKED_RELEASES
    assert nndescent.cached_core_available()


def test_other_pynndescent_releases_run_pynndescents_own_core(monkeypatch):
    import pynndescent

    monkeypatch.setattr(pynndescent, "__version__", "0.7.1")
    assert not nndescent.cached_core_available()
    x, _ = mixture(3000, d=8, seed=3)
    before = dict(nndescent.calls)
    nndescent.neighbor_graph(x, 10, 0, 40)
    assert nndescent.calls == {"cached": before["cached"], "pynndescent": before["pynndescent"] + 1}


@pytest.mark.parametrize(
    ("n", "d", "n_neighbors", "max_candidates", "seed"),
    [
        (3000, 8, 10, 40, 0),
        (5000, 16, 41, 60, 7),  # the width and candidates cluster() asks for
        (20000, 16, 26, 60, 3),  # more than one 16,384-row update block
    ],
)
def test_same_graph_as_pynndescent(n, d, n_neighbors, max_candidates, seed):
    x, _ = mixture(n, d=d, n_centers=7, spread=3.0, seed=seed)
    ours, theirs = _graphs(x, n_neighbors, seed, max_candidates)
    assert ours.shape == (n, n_neighbors)
    np.testing.assert_array_equal(ours, theirs)


def test_same_graph_with_many_identical_rows():
    rng = np.random.default_rng(2)
    x = np.concatenate([np.repeat(rng.normal(size=(3, 12)), 1500, axis=0), rng.normal(size=(2500, 12))])
    x = x[rng.permutation(len(x))].astype(np.float32)
    ours, theirs = _graphs(x, 26, 11, 60)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread on this machine")
def test_same_graph_as_pynndescents_core_with_two_threads():
    # workers with several threads run the sorted (multi-thread) update path
    from pynndescent import distances, kernels, pynndescent_
    from pynndescent.hybrid_forest import make_hybrid_leaf_array

    from distdataeval.knn import _nndescent_kernels as NK

    x, _ = mixture(20000, d=16, n_centers=5, spread=3.0, seed=4)
    leaves = make_hybrid_leaf_array(x, 8, 130, 99, angular=False, max_depth=200)
    state = np.array([11, -5, 123456], dtype=np.int64)
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        theirs = pynndescent_.nn_descent(
            x, 26, state.copy(), 60, distances.squared_euclidean, 8, 0.001, leaf_array=leaves,
            kernel=kernels.KERNEL_SQEUCLIDEAN,
        )  # fmt: skip
        ours = NK.nn_descent_sqeuclidean(x, 26, state.copy(), 60, 8, 0.001, leaves, kernels.KERNEL_SQEUCLIDEAN, 2)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_a_new_process_loads_the_core_from_numbas_cache():
    # the point of the module: after one compile, a new process (a fresh Dask worker) compiles
    # nothing of it; numba refuses to cache pynndescent's own core ("dynamic globals")
    x, _ = mixture(3000, d=8, seed=1)
    nndescent.neighbor_graph(x, 10, 0, 40, cached=True)  # compiled (and cached) here at the latest
    script = textwrap.dedent(
        """
        import numpy as np
        from distdataeval.knn import _nndescent_kernels as NK, nndescent
        x = np.random.default_rng(0).normal(size=(3000, 8)).astype(np.float32)
        nndescent.neighbor_graph(x, 10, 0, 40, cached=True)
        s = NK.nn_descent_sqeuclidean.stats
        print(sum(s.cache_hits.values()), sum(s.cache_misses.values()))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "NumbaWarning" not in out.stderr
    hits, misses = map(int, out.stdout.split())
    assert (hits, misses) == (1, 0)
