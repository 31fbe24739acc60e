"""Parity with DataEval 1.1.4's ``cluster()`` on recorded outputs (tests/golden, made by
tools/make_golden.py in its own venv with dataeval==1.1.4)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

import distdataeval as dde

GOLDEN = Path(__file__).parent / "golden"
TIES = {"C3", "C3b", "C8", "G_dups"}  # distance ties: only partition, sorted MST weights, k_distances


@functools.cache
def _make_golden_module():
    spec = importlib.util.spec_from_file_location("make_golden", Path(__file__).parents[1] / "tools" / "make_golden.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_golden"] = mod
    spec.loader.exec_module(mod)
    return mod


def _cases():
    return sorted(p.stem.removeprefix("cluster_") for p in GOLDEN.glob("cluster_*.npz"))


def _load(case: str):
    g = dict(np.load(GOLDEN / f"cluster_{case}.npz", allow_pickle=False))
    if "X" not in g:
        x = _make_golden_module().build_X(case)
        assert _make_golden_module().x_sha256(x) == str(g["X_sha256"]), "rebuilt input differs from DataEval's"
        g["X"] = x
    return g


HDBSCAN_CASES = [c for c in _cases() if str(np.load(GOLDEN / f"cluster_{c}.npz")["algorithm"]) == "hdbscan"]


def test_golden_cases_present():
    required = {"C1", "C1b", "C1c", "C2_n2", "C2_n10", "C3", "C3b", "C5", "C6", "C7", "C8"}
    own = {"G_density", "G_uniform", "G_dups", "G_disconnected", "G_d600"}
    assert required | own <= set(HDBSCAN_CASES)


@pytest.mark.parametrize("case", HDBSCAN_CASES)
def test_cluster_matches_dataeval(case, dask_client):
    g = _load(case)
    nc = int(g["n_clusters_arg"])
    mx = int(g["max_cluster_size_arg"])
    high_dim = g["X"].reshape(len(g["X"]), -1).shape[1] > 500
    with pytest.warns(dde.HighDimensionWarning) if high_dim else contextlib.nullcontext():
        r = dde.cluster(
            g["X"],
            n_clusters=None if nc < 0 else nc,
            max_cluster_size=None if mx < 0 else mx,
            knn="exact",
            reassign_noise=False,
        )
    n = g["X"].shape[0]
    k = min(25, n - 1)
    # dtypes and shapes of DataEval's six fields
    assert r["clusters"].dtype == np.int64 and r["clusters"].shape == (n,)
    assert r["mst"].dtype == np.float32 and r["mst"].shape == (n - 1, 3)
    assert r["linkage_tree"].dtype == np.float32 and r["linkage_tree"].shape == (n - 1, 4)
    assert r["membership_strengths"].dtype == np.float32 and r["membership_strengths"].shape == (n,)
    assert r["k_neighbors"].dtype == np.int64 and r["k_neighbors"].shape == (n, k)
    assert r["k_distances"].dtype == np.float32 and r["k_distances"].shape == (n, k)

    rows = g["knn_rows"]
    np.testing.assert_allclose(r.k_distances[rows], g["k_distances"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sort(r.mst[:, 2]), np.sort(g["mst"][:, 2]), rtol=1e-5, atol=1e-6)
    assert r.min_cluster_size == int(g["min_cluster_size"])
    # identical partitions of the raw labels; same number of clusters
    assert adjusted_rand_score(g["clusters"], r.clusters) == 1.0
    assert len(set(r.clusters.tolist())) == len(set(g["clusters"].tolist()))
    assert (r.clusters < 0).sum() == (g["clusters"] < 0).sum()
    if case in TIES:
        return
    np.testing.assert_array_equal(r.clusters, g["clusters"])  # same ids, too
    np.testing.assert_allclose(r.membership_strengths, g["membership_strengths"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(r.k_neighbors[rows], g["k_neighbors"])
    # MST endpoints as unordered pairs (DataEval's direction depends on an unstable sort)
    ours = {(min(a, b), max(a, b)) for a, b in r.mst[:, :2].astype(np.int64).tolist()}
    theirs = {(min(a, b), max(a, b)) for a, b in g["mst"][:, :2].astype(np.int64).tolist()}
    assert ours == theirs
    np.testing.assert_allclose(r.linkage_tree, g["linkage_tree"], rtol=1e-5, atol=1e-6)
