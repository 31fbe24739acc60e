#!/usr/bin/env python3
"""Where ``knn="approx"`` starts to beat our own exact mode: ``cluster()`` times side by side.

    python benchmarks/bench_crossover.py [--zarr /work/data/bench/emb_n200000_d64_seed0.zarr]
        [--sizes 10000 20000 50000 100000 200000] [--workers 2] [--fresh]

Data: the first n rows of a store written by ``benchmarks/make_embeddings.py`` (its rows are in
random order, so a prefix is a sample of the same mixture), read lazily from Zarr. One
LocalCluster of ``--workers`` single-threaded worker processes; both modes are warmed on 5,000
rows first (numba / pynndescent compile), then for each n, exact then approx, one call each.
Prints per n: both wall times, exact / approx, the approx recall@25 and the ARI of the two
label sets (raw labels, noise = -1), and at the end the smallest n at which approx was faster.

``--fresh``: each (n, mode) runs in a new process instead (interpreter, imports, LocalCluster
start, the call, exit; timed from outside), as a batch job runs: both modes then load their
kernels from numba's disk cache in new worker processes (approx: pynndescent's import and its
NN-descent core; until 2026-11-27 that core compiled in every worker, ~20 s).
``knn="auto"``'s threshold must hold in both settings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

MARK = "@@CROSSOVER@@ "


def report_row(n: int, times: dict, labels: dict, recall: float, crossover):
    """Print one size's line; returns the crossover (the first n where approx was faster)."""
    from sklearn.metrics import adjusted_rand_score

    ratio = times["exact"] / times["approx"]
    if crossover is None and ratio > 1:
        crossover = n
    ari = adjusted_rand_score(labels["exact"], labels["approx"])
    print(f"{n:>9,} {times['exact']:>9.2f} {times['approx']:>9.2f} {ratio:>13.2f} {recall:>10.4f} {ari:>7.4f}", flush=True)
    return crossover


def child(args) -> None:
    """One fresh run: ``cluster(x[:n], knn=mode)``; prints its labels' file and recall."""
    import dask.array as da
    import numpy as np
    import zarr

    import distdataeval as dde
    from distdataeval.runtime import local_client

    client = local_client(n_workers=args.workers)
    x = da.from_zarr(zarr.open_group(args.zarr, mode="r")[args.array])
    r = dde.cluster(x[: args.child_n], knn=args.child_mode, client=client)
    np.save(args.child_out, np.asarray(r.raw_labels), allow_pickle=False)
    print(MARK + json.dumps({"recall": None if r.knn_recall is None else float(r.knn_recall)}), flush=True)


def fresh(args, sizes) -> None:
    import tempfile

    import numpy as np

    print(f"{'n':>9} {'exact s':>9} {'approx s':>9} {'exact/approx':>13} {'recall@25':>10} {'ARI':>7}  (fresh processes)")
    crossover = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            times, labels, recall = {}, {}, float("nan")
            for mode in ("exact", "approx"):
                out = f"{tmp}/{mode}_{n}.npy"
                cmd = [sys.executable, __file__, "--zarr", args.zarr, "--array", args.array, "--workers", str(args.workers),
                       "--child-n", str(n), "--child-mode", mode, "--child-out", out]
                t = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                times[mode] = time.perf_counter() - t
                if proc.returncode != 0:
                    raise SystemExit(f"fresh {mode} run at n={n} failed:\n{proc.stderr[-3000:]}")
                rec = [json.loads(line[len(MARK):]) for line in proc.stdout.splitlines() if line.startswith(MARK)]
                if mode == "approx" and rec and rec[0]["recall"] is not None:
                    recall = rec[0]["recall"]
                labels[mode] = np.load(out, allow_pickle=False)
            crossover = report_row(n, times, labels, recall, crossover)
    print(f"approx faster than exact (fresh) from n = {crossover:,}" if crossover else "approx never faster in these sizes")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zarr", default="/work/data/bench/emb_n200000_d64_seed0.zarr")
    p.add_argument("--array", default="embeddings")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 50_000, 100_000, 200_000])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--fresh", action="store_true", help="a new process per (n, mode), timed from outside")
    p.add_argument("--child-n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-mode", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_n is not None:
        child(args)
        return
    if args.fresh:
        import zarr

        n_rows = zarr.open_group(args.zarr, mode="r")[args.array].shape[0]
        fresh(args, [n for n in args.sizes if n <= n_rows])
        return

    import dask.array as da
    import numpy as np
    import zarr

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
        crossover = report_row(n, times, labels, recall, crossover)
    print(f"approx faster than exact from n = {crossover:,}" if crossover else "approx never faster in these sizes")


if __name__ == "__main__":
    main()
