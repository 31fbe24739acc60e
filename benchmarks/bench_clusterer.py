#!/usr/bin/env python3
"""Time the legacy ``Clusterer`` (0.61.0 rules) on top of the ``cluster()`` run it builds on.

    python benchmarks/bench_clusterer.py --n 100000 [--d 8] [--knn auto] [--workers 2]
    python benchmarks/bench_clusterer.py --zarr /work/data/bench/emb_n1000000_d64_seed0.zarr --knn approx

Data: a seeded Gaussian mixture (5 centres, spread 6, unit noise; the test suite's ``mixture``
recipe) or a Zarr array (read lazily; ``--n`` then takes the first n rows). On a LocalCluster
of ``--workers`` single-threaded worker processes it runs ``cluster()`` and the Clusterer once on
``--warm-up-rows`` rows (numba compile), then ``cluster()`` on all rows, then
``Clusterer(x, cluster_result=...)`` part by part and prints per part: wall seconds, share of
the ``cluster()`` time, peak worker RSS (sampled) and the driver's peak RSS so far.

Parts: ``tree`` (the exact single-linkage tree: re-bridging the k-NN forest in exact mode),
``states`` (spec §8.2 bookkeeping), ``merge_levels`` (§8.3-8.5), ``outliers`` (§8.6),
``duplicates`` (§8.7).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

from _measure import PeakRSS


def make_data(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 6.0, (5, d))
    labels = rng.integers(0, 5, n)
    return (centers[labels] + rng.normal(0.0, 1.0, (n, d))).astype(np.float32)


def driver_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--d", type=int, default=8)
    p.add_argument("--zarr", default=None)
    p.add_argument("--array", default="embeddings")
    p.add_argument("--knn", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk-rows", type=int, default=None)
    p.add_argument("--warm-up-rows", type=int, default=20_000,
                   help="first run cluster() and the Clusterer on this many rows (numba compile in the workers "
                        "and the driver), so the timed calls are warm; 0: time the first call (default: 20000)")
    args = p.parse_args()

    import dask.array as da
    from distributed import Client, LocalCluster

    from distdataeval import Clusterer, cluster

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as lc, Client(lc) as client:
        if args.zarr:
            import zarr

            arr = zarr.open_group(args.zarr, mode="r")[args.array]
            x = da.from_zarr(arr)
            if args.n and args.n < x.shape[0]:
                x = x[: args.n]
        else:
            x = da.from_array(make_data(args.n, args.d), chunks=(max(1, args.n // 16), args.d))
        x = client.persist(x)
        if args.warm_up_rows and args.warm_up_rows < x.shape[0]:
            t0 = time.perf_counter()
            xw = x[: args.warm_up_rows]
            Clusterer(xw, client=client, cluster_result=cluster(xw, knn=args.knn, client=client)).evaluate()
            print(f"warm-up: cluster() + Clusterer.evaluate() on {args.warm_up_rows} rows {time.perf_counter() - t0:.2f} s",
                  flush=True)
        t0 = time.perf_counter()
        with PeakRSS(client) as wp:
            cr = cluster(x, knn=args.knn, client=client, chunk_rows=args.chunk_rows)
        base = time.perf_counter() - t0
        print(f"cluster(): n={x.shape[0]} d={x.shape[1]} knn={cr.knn_method} components={cr.n_knn_components} "
              f"{base:.2f} s, worker peak {wp.peak / 2**20:.0f} MiB, driver peak {driver_peak_mib():.0f} MiB",
              flush=True)

        c = Clusterer(x, client=client, chunk_rows=args.chunk_rows, cluster_result=cr)
        parts = [
            ("tree", lambda: c._single_linkage()),
            ("states", lambda: c._st),
            ("merge_levels", lambda: c.last_good_merge_levels),
            ("outliers", lambda: c.find_outliers(c.last_good_merge_levels)),
            ("duplicates", lambda: c.find_duplicates(c.last_good_merge_levels)),
        ]
        total = 0.0
        found = {}
        for name, fn in parts:
            t0 = time.perf_counter()
            with PeakRSS(client) as wp:
                found[name] = fn()
            wall = time.perf_counter() - t0
            total += wall
            print(f"  {name:13s} {wall:8.2f} s ({100 * wall / base:5.1f}% of cluster()), "
                  f"worker peak {wp.peak / 2**20:.0f} MiB, driver peak {driver_peak_mib():.0f} MiB", flush=True)
        outl, poss = found["outliers"]
        dup, near = found["duplicates"]
        print(f"evaluate total {total:.2f} s ({100 * total / base:.1f}% of cluster()); "
              f"{len(found['merge_levels'])} merge levels, {len(outl)} outliers, {len(poss)} potential, "
              f"{len(dup)} duplicate groups, {len(near)} near-duplicate groups")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
