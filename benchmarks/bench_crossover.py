#!/usr/bin/env python3
"""Where ``knn="approx"`` starts to beat our own exact mode: warm ``cluster()`` times side by side.

    python benchmarks/bench_crossover.py [--zarr /work/data/bench/emb_n200000_d64_seed0.zarr]
        [--sizes 10000 20000 50000 100000 200000] [--workers 2]

Data: the first n rows of a store written by ``benchmarks/make_embeddings.py`` (its rows are in
random order, so a prefix is a sample of the same mixture), read lazily from Zarr. One
LocalCluster of ``--workers`` single-threaded worker processes; both modes are warmed on 5,000
rows first (numba / pynndescent compile), then for each n, exact then approx, one call each.
Prints per n: both wall times, exact / approx, the approx recall@25 and the ARI of the two
label sets (raw labels, noise = -1), and at the end the smallest n at which approx was faster.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zarr", default="/work/data/bench/emb_n200000_d64_seed0.zarr")
    p.add_argument("--array", default="embeddings")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 50_000, 100_000, 200_000])
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    import dask.array as da
    import numpy as np
    import zarr
    from sklearn.metrics import adjusted_rand_score

    import distdataeval as dde
    from distdataeval.runtime import local_client

    client = local_client(n_workers=args.workers)
    x = da.from_zarr(zarr.open_group(args.zarr, mode="r")[args.array])
    sizes = [n for n in args.sizes if n <= x.shape[0]]
    t0 = time.perf_counter()
    for mode in ("exact", "approx"):
        dde.cluster(x[:5000], knn=mode, client=client)
    print(f"warm-up (both modes, 5,000 rows): {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"{'n':>9} {'exact s':>9} {'approx s':>9} {'exact/approx':>13} {'recall@25':>10} {'ARI':>7}")
    crossover = None
    for n in sizes:
        times, labels = {}, {}
        recall = float("nan")
        for mode in ("exact", "approx"):
            t = time.perf_counter()
            r = dde.cluster(x[:n], knn=mode, client=client)
            times[mode] = time.perf_counter() - t
            labels[mode] = np.asarray(r.raw_labels)
            if mode == "approx":
                recall = r.knn_recall
        ratio = times["exact"] / times["approx"]
        if crossover is None and ratio > 1:
            crossover = n
        ari = adjusted_rand_score(labels["exact"], labels["approx"])
        print(f"{n:>9,} {times['exact']:>9.2f} {times['approx']:>9.2f} {ratio:>13.2f} {recall:>10.4f} {ari:>7.4f}",
              flush=True)
    print(f"approx faster than exact from n = {crossover:,}" if crossover else "approx never faster in these sizes")


if __name__ == "__main__":
    main()
