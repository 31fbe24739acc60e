"""The embedded local cluster: loopback only, capped threads in workers, driver untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_local_cluster_workers_and_environment():
    code = textwrap.dedent(
        """
        import os, json
        from distdataeval.runtime import local_client, close_local_cluster
        keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS")
        before = {k: os.environ.get(k) for k in keys}
        if __name__ == "__main__":
            c = local_client(n_workers=2)
            info = c.scheduler_info()
            workers = c.run(lambda: ({k: os.environ.get(k) for k in keys}, os.getpid()))
            after = {k: os.environ.get(k) for k in keys}
            print(json.dumps({
                "scheduler": info["address"],
                "workers": list(info["workers"]),
                "worker_env": [w[0] for w in workers.values()],
                "worker_pids": [w[1] for w in workers.values()],
                "driver_pid": os.getpid(),
                "before": before, "after": after,
                "same": local_client() is c,
            }))
            close_local_cluster()
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, check=True)
    import json

    rec = json.loads(out.stdout.strip().splitlines()[-1])
    assert rec["scheduler"].startswith("tcp://127.0.0.1:")
    assert len(rec["workers"]) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in rec["workers"])
    assert rec["driver_pid"] not in rec["worker_pids"] and len(set(rec["worker_pids"])) == 2  # processes
    for env_w in rec["worker_env"]:
        assert env_w == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert rec["after"] == rec["before"]  # the driver's environment is not changed
    assert rec["same"]  # one shared cluster per session


def test_limit_threads_restores():
    import numba
    from threadpoolctl import threadpool_info

    from distdataeval.runtime import limit_threads

    before_numba = numba.get_num_threads()
    before_blas = [p["num_threads"] for p in threadpool_info()]
    with limit_threads(1):
        assert numba.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert numba.get_num_threads() == before_numba
    assert [p["num_threads"] for p in threadpool_info()] == before_blas


def test_compute_in_order_keeps_the_argument_order_for_mixed_collections(dask_client):
    import dask
    import dask.array as da
    import numpy as np

    from distdataeval.runtime.compute import compute_in_order

    x = da.from_array(np.arange(10), chunks=5)
    a = dask.delayed(str)("A")
    b = dask.delayed(str)("B")
    assert compute_in_order(dask_client, a, x.sum(), b, x.max()) == ["A", 45, "B", 9]
    assert compute_in_order(dask_client, x.sum(), a, x.max()) == [45, "A", 9]


def test_scattered_rows_are_the_array_without_a_large_graph(dask_client):
    # from_array embeds a 16 MB label vector in the graph (distributed warns at 10 MiB);
    # scattered, the graph holds slices of one future
    import warnings

    import dask.array as da
    import numpy as np

    from distdataeval.runtime.compute import scattered_rows

    a = np.arange(2_000_000, dtype=np.int64) * 3 - 7
    chunks = (500_000, 700_000, 800_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dask_client.compute(da.from_array(a, chunks=(chunks,)).sum()).result()
    assert any("large graph" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = scattered_rows(dask_client, a, chunks)
        assert x.chunks == (chunks,)
        total = dask_client.compute(x.sum()).result()
        rows = dask_client.compute(x[499_990:500_010]).result()
    assert not any("large graph" in str(w.message) for w in caught)
    assert total == a.sum()
    np.testing.assert_array_equal(rows, a[499_990:500_010])
    two = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.testing.assert_array_equal(dask_client.compute(scattered_rows(dask_client, two, (3, 7))).result(), two)
