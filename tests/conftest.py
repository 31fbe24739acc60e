"""Shared fixtures: one real LocalCluster (2 worker processes, loopback) for the whole run."""

from __future__ import annotations

import logging

import numpy as np
import pytest


@pytest.fixture(scope="session")
def dask_client():
    """A Client on a LocalCluster of 2 single-threaded worker *processes* bound to 127.0.0.1.

    It is the default client of the session, so ``cluster()`` without ``client=`` runs on it.
    """
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    assert len(client.scheduler_info()["workers"]) == 2
    yield client
    client.close()
    cluster.close()


def mixture(n: int, d: int = 8, n_centers: int = 5, spread: float = 6.0, seed: int = 0, dtype=np.float32):
    """Gaussian mixture test data (continuous values, so no distance ties)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, spread, (n_centers, d))
    labels = rng.integers(0, n_centers, n)
    return (centers[labels] + rng.normal(0.0, 1.0, (n, d))).astype(dtype), labels
