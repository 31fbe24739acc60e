#!/usr/bin/env python3
"""Time ``fit_kmeans`` on a Zarr store with K = floor(sqrt(n)) and save its labels.

    python benchmarks/bench_kmeans_fit.py /path/to/code emb.zarr labels.npy [--k K]

``/path/to/code`` goes first on ``sys.path`` in the driver and the workers, so two checkouts
(e.g. a ``git worktree`` of an older commit) can be timed one after the other on the same data,
seed (0) and cluster (2 single-threaded workers), and their labels compared.
"""

import argparse
import math
import sys
import time

import numpy as np

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("code")
    p.add_argument("zarr")
    p.add_argument("labels")
    p.add_argument("--array", default="embeddings")
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    sys.path.insert(0, args.code)
    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster

    import distdataeval
    from distdataeval import config
    from distdataeval.kmeans import fit_kmeans

    print("code", distdataeval.__file__)
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cl, \
            Client(cl) as c:
        c.run(lambda path: sys.path.insert(0, path), args.code)
        x = da.from_zarr(zarr.open_group(args.zarr, mode="r")[args.array])
        k = args.k or math.isqrt(x.shape[0])
        config.set_seed(0)
        t = time.perf_counter()
        fit = fit_kmeans(x, k)
        el = time.perf_counter() - t
        print(f"fit_kmeans n={x.shape[0]} K={k}: {el:.1f} s, {fit.n_iter} iterations, inertia {fit.inertia:.9e}")
        np.save(args.labels, fit.labels)
