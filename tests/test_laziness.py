"""Stage functions only build graphs: nothing computes until the orchestrator asks
(a scheduler that raises proves it, like xarray's raise_if_dask_computes)."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from distdataeval.io.source import open_source, scan_source
from distdataeval.knn import exact
from distdataeval.stats import cluster_centers, reassign_noise_to_nearest_center
from tests.conftest import mixture


def _refuse(*args, **kwargs):
    raise AssertionError("a stage function computed")


def test_stage_functions_do_not_compute():
    x, _ = mixture(300)
    with dask.config.set(scheduler=_refuse):
        src = open_source(da.from_array(x, chunks=(64, 8)))
        scan_source(src)
        blocks = exact.prepare_blocks(src.data, np.zeros(8))
        nbr, sqd, cert = exact.exact_knn_candidates(blocks, src.data.chunks[0], 5, d=8)
        exact.exact_rows_search(blocks, np.array([1, 2]), 5)
        exact.knn_to_distances(sqd)
        labels = da.zeros(300, chunks=(64,), dtype=np.int64)
        cluster_centers(src.data, labels, 2)
        reassign_noise_to_nearest_center(src.data, labels, np.zeros((2, 8)))


def test_refusing_scheduler_does_refuse():
    with dask.config.set(scheduler=_refuse), pytest.raises(AssertionError, match="computed"):
        da.ones(4).sum().compute()
