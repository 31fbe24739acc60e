#!/usr/bin/env python3
"""Benchmark :func:`distdataeval.kmeans.fit_kmeans` against scikit-learn and dask-ml.

    python benchmarks/bench_kmeans.py --n 100000 --d 64 --k 50 [--true-k 50] [--impl ours daskml-tuned ...]
    python benchmarks/bench_kmeans.py --zarr emb.zarr --k 316 [--impl ours]

Data: seeded ``sklearn.datasets.make_blobs`` (``--true-k`` centres, default ``--k``, in a box of
half-width ``--box`` with unit standard deviation), or the ``embeddings`` / ``true_labels`` arrays
of a store written by ``benchmarks/make_embeddings.py`` (``--zarr``).

For each implementation it prints the wall time of the fit (input already persisted on a
LocalCluster of ``--workers`` single-threaded worker processes; numba kernels warmed on a small
fit first), its inertia divided by the best inertia of scikit-learn ``KMeans(n_init=1)`` over
seeds 0, 1, 2 (run in this process, all cores), and the ARI against the true labels.

Implementations (``--impl``):

* ``ours``: ``fit_kmeans`` (k-means++ on a sample, Lloyd as Dask map-reduce);
* ``daskml-default``: ``dask_ml.cluster.KMeans(n_clusters=k)`` with its defaults (k-means||,
  ``oversampling_factor=2``);
* ``daskml-tuned``: the same with ``oversampling_factor=2 k`` so k-means|| yields >= k candidates;
* ``daskml-kpp``: dask-ml Lloyd started from our k-means++ sample centres passed as an array
  ``init``.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np


def load(args):
    if args.zarr:
        import zarr

        group = zarr.open_group(args.zarr, mode="r")
        x = np.asarray(group[args.array][:])
        truth = np.asarray(group["true_labels"][:]) if "true_labels" in group else None
        return x, truth
    from sklearn.datasets import make_blobs

    x, truth = make_blobs(n_samples=args.n, n_features=args.d, centers=args.true_k or args.k,
                          cluster_std=1.0, center_box=(-args.box, args.box), random_state=args.seed)
    return x.astype(np.float32 if args.float32 else np.float64), truth


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--true-k", type=int, default=None)
    p.add_argument("--box", type=float, default=10.0)
    p.add_argument("--float32", action="store_true")
    p.add_argument("--zarr", default=None)
    p.add_argument("--array", default="embeddings")
    p.add_argument("--chunk-rows", type=int, default=25_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--impl", nargs="+", default=["ours"],
                   choices=["ours", "daskml-default", "daskml-tuned", "daskml-kpp"])
    p.add_argument("--skip-sklearn", action="store_true")
    args = p.parse_args()

    import dask.array as da
    from distributed import Client, LocalCluster
    from sklearn.metrics import adjusted_rand_score

    from distdataeval import config
    from distdataeval.kmeans import fit_kmeans, sample_size

    x, truth = load(args)
    n, d = x.shape
    k = args.k
    print(f"data: n={n} d={d} dtype={x.dtype} k={k} true_k={len(np.unique(truth)) if truth is not None else '-'}")

    best_sk = None
    if not args.skip_sklearn:
        from sklearn.cluster import KMeans

        for s in range(3):
            t0 = time.perf_counter()
            km = KMeans(n_clusters=k, n_init=1, random_state=s).fit(x)
            dt = time.perf_counter() - t0
            ari = adjusted_rand_score(truth, km.labels_) if truth is not None else float("nan")
            print(f"sklearn seed={s}: {dt:7.2f} s  inertia={km.inertia_:.6g}  n_iter={km.n_iter_}  ARI={ari:.4f}")
            best_sk = km.inertia_ if best_sk is None else min(best_sk, km.inertia_)

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        xd = client.persist(da.from_array(x, chunks=(args.chunk_rows, d)))
        config.set_seed(args.seed)
        fit_kmeans(xd[:2000], 5, client=client)  # warm the numba kernels on every worker
        for impl in args.impl:
            t0 = time.perf_counter()
            if impl == "ours":
                fit = fit_kmeans(xd, k, client=client)
                labels, inertia, n_iter = fit.labels, fit.inertia, fit.n_iter
                extra = f"sample={sample_size(n, k)}"
            else:
                from dask_ml.cluster import KMeans as DKMeans

                kw = {}
                if impl == "daskml-tuned":
                    kw["oversampling_factor"] = 2 * k
                if impl == "daskml-kpp":
                    from sklearn.cluster import kmeans_plusplus

                    rng = np.random.default_rng(args.seed)
                    rows = np.sort(rng.choice(n, size=sample_size(n, k), replace=False))
                    kw["init"], _ = kmeans_plusplus(x[rows].astype(np.float64), k, random_state=args.seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    km = DKMeans(n_clusters=k, random_state=args.seed, **kw).fit(xd)
                labels = np.asarray(km.labels_.compute() if hasattr(km.labels_, "compute") else km.labels_)
                inertia, n_iter = float(km.inertia_), int(km.n_iter_)
                extra = ", ".join(f"{a}={b}" for a, b in kw.items() if a != "init")
            dt = time.perf_counter() - t0
            ratio = inertia / best_sk if best_sk else float("nan")
            ari = adjusted_rand_score(truth, labels) if truth is not None else float("nan")
            print(f"{impl:15s}: {dt:7.2f} s  inertia={inertia:.6g}  ratio_vs_sklearn_best3={ratio:.4f}  "
                  f"n_iter={n_iter}  ARI={ari:.4f}  clusters_used={len(np.unique(labels))}  {extra}")
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
