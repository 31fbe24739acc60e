#!/usr/bin/env python3
"""How ``cluster()``'s time grows when n doubles, on one distribution: n rows vs 2n rows.

    python benchmarks/bench_doubling.py [--zarr /work/data/bench/emb_n2000000_d64_seed0.zarr]
        [--n 1000000] [--repeats 2] [--workers 2]

Issue 3's target is that doubling n from 1M to 2M costs at most 2.3x the time. ``bench_scale.py``
measures it between two stores generated separately, and ``make_embeddings.py``'s mixture changes
with n (47 clusters with components of ~21k rows at 1M, 56 and ~35k at 2M), so that ratio mixes
the algorithm's growth with a change of data. Here the n-row input is the first n rows of the
2n-row store (its rows are in random order, so a prefix is a sample of the same mixture).

One LocalCluster of ``--workers`` single-threaded worker processes, warmed on 20,000 rows; then
``--repeats`` pairs (n, 2n), alternating, one ``cluster(knn="approx")`` call each, read lazily
from Zarr. Prints each call's wall time and stages, each pair's ratio, and the median ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time


def run(dde, x, client) -> tuple[float, dict, float]:
    t = time.perf_counter()
    r = dde.cluster(x, knn="approx", client=client)
    wall = time.perf_counter() - t
    return wall, dict(r.timings), float(r.knn_recall)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zarr", default="/work/data/bench/emb_n2000000_d64_seed0.zarr")
    p.add_argument("--array", default="embeddings")
    p.add_argument("--n", type=int, default=1_000_000, help="the smaller size; the larger is 2n (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="pairs (n, 2n), alternating (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    import dask.array as da
    import zarr

    import distdataeval as dde
    from distdataeval.runtime import local_client

    client = local_client(n_workers=args.workers)
    full = da.from_zarr(zarr.open_group(args.zarr, mode="r")[args.array])
    if full.shape[0] < 2 * args.n:
        raise SystemExit(f"{args.zarr} has {full.shape[0]:,} rows; 2n = {2 * args.n:,} needed")
    dde.config.set_seed(0)
    run(dde, full[:20_000], client)  # warm-up: workers import pynndescent and load the kernels
    print(f"doubling on one distribution: the first {args.n:,} rows vs the first {2 * args.n:,} of {args.zarr}")
    print(f"{'pair':>4} {'n':>10} {'wall s':>8} {'knn s':>8} {'mst s':>7} {'tree s':>7} {'recall':>7}")
    ratios = []
    for i in range(args.repeats):
        walls = []
        for n in (args.n, 2 * args.n):
            wall, t, recall = run(dde, full[:n], client)
            walls.append(wall)
            print(f"{i:>4} {n:>10,} {wall:>8.2f} {t.get('knn', 0):>8.2f} {t.get('mst', 0):>7.2f} {t.get('tree', 0):>7.2f} {recall:>7.4f}",
                  flush=True)
        ratios.append(walls[1] / walls[0])
        print(f"     time(2n) / time(n) = {ratios[-1]:.3f}", flush=True)
    print(f"median ratio over {len(ratios)} pairs: {statistics.median(ratios):.3f} (target <= 2.3)")


if __name__ == "__main__":
    main()
