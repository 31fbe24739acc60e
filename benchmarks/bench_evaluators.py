#!/usr/bin/env python3
"""Time the evaluators against the ``cluster()`` run they build on.

    python benchmarks/bench_evaluators.py --n 100000 --d 64 [--knn auto] [--workers 2]
    python benchmarks/bench_evaluators.py --zarr emb.zarr [--array embeddings]

Data: a seeded Gaussian mixture (50 centres, unit spread) with 1% of its rows copied (exact
duplicates) and 1% copied with 1e-4 noise (near duplicates), or a Zarr array (read lazily).
On a LocalCluster of ``--workers`` single-threaded worker processes it runs ``cluster()`` once,
then each evaluator section on that result, and prints for each: wall seconds, the ratio to the
``cluster()`` time, the peak RSS of the worker processes during the section (sampled) and what
it found.

Sections (add one function per evaluator; ``SECTIONS`` lists them):

* ``duplicates``: exact (hashing) + near by the seed rule; ``duplicates_mst``: DataEval's MST
  rule (s = 1); ``outliers``: the seed rule (mean + 3 std) with ``cluster_stats``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _measure import PeakRSS


def make_data(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 8.0, (50, d))
    x = (centres[rng.integers(0, 50, n)] + rng.normal(0.0, 1.0, (n, d))).astype(np.float32)
    m = max(1, n // 100)
    src = rng.choice(n, 2 * m, replace=False)
    dst = rng.choice(np.setdiff1d(np.arange(n), src), 2 * m, replace=False)
    x[dst[:m]] = x[src[:m]]
    x[dst[m:]] = x[src[m:]] + rng.normal(0.0, 1e-4, (m, d)).astype(np.float32)
    return x


def section_duplicates(x, cr, client):
    from distdataeval import Duplicates

    out = Duplicates().from_clusters(cr, x)
    return f"exact groups {len(out.exact_sizes)}, near groups {len(out.near_sizes)} (seed rule)"


def section_duplicates_mst(x, cr, client):
    from distdataeval import Duplicates

    out = Duplicates(exact=False, cluster_sensitivity=1.0).from_clusters(cr)
    return f"near groups {len(out.near_sizes)} (MST rule, s=1)"


def section_outliers(x, cr, client):
    from distdataeval import Outliers

    out = Outliers().from_clusters(x, cr)
    return f"outliers {out.indices.size} in {out.stats.cluster_ids.size} clusters"


def section_prioritize_knn(x, cr, client):
    from distdataeval import Prioritize

    out = Prioritize.knn().evaluate(x, cluster_result=cr)
    return f"ranked {out.indices.size} samples (k = {Prioritize.knn().k or 'default'})"


def section_prioritize_hdbscan_distance(x, cr, client):
    from distdataeval import Prioritize

    out = Prioritize.hdbscan_distance().evaluate(x, cluster_result=cr)
    return f"ranked {out.indices.size} samples"


def section_prioritize_hdbscan_complexity(x, cr, client):
    from distdataeval import Prioritize

    out = Prioritize.hdbscan_complexity().evaluate(x, cluster_result=cr)
    return f"ranked {out.indices.size} samples"


def section_kmeans(x, cr, client):
    """cluster(algorithm="kmeans") with floor(sqrt(n)) clusters: a whole cluster() run of its own
    (k-NN + MST + KMeans), shown against the HDBSCAN run."""
    from distdataeval import cluster

    t0 = time.perf_counter()
    km = cluster(x, algorithm="kmeans", client=client, knn="approx" if cr is None else cr.knn_method)
    _KMEANS.update(result=km, wall=time.perf_counter() - t0)
    return f"{km.n_clusters} clusters; timings {dict((k, round(v, 1)) for k, v in km.timings.items() if isinstance(v, float))}"


_KMEANS: dict = {}  # the "kmeans" section's result, reused by Prioritize's kmeans methods


def _prioritize_kmeans(x, client, method):
    from distdataeval import Prioritize

    if "result" not in _KMEANS:
        section_kmeans(x, None, client)
    t0 = time.perf_counter()
    out = Prioritize(method=method).evaluate(x, cluster_result=_KMEANS["result"])
    wall = time.perf_counter() - t0
    return (f"ranked {out.indices.size} samples reusing cluster(algorithm='kmeans') "
            f"({_KMEANS['wall']:.2f} s): {100 * wall / _KMEANS['wall']:.1f}% of that run")


def section_prioritize_kmeans_distance(x, cr, client):
    return _prioritize_kmeans(x, client, "kmeans_distance")


def section_prioritize_kmeans_complexity(x, cr, client):
    return _prioritize_kmeans(x, client, "kmeans_complexity")


def section_kmeans_fit(x, cr, client):
    """fit_kmeans alone (floor(sqrt(n)) clusters), what Prioritize's kmeans methods add."""
    import math

    from distdataeval.kmeans import fit_kmeans

    fit = fit_kmeans(x, math.isqrt(x.shape[0]), client=client)
    return f"k = {fit.centers.shape[0]}, {fit.n_iter} iterations, inertia {fit.inertia:.4g}"


def section_clusterer(x, cr, client):
    from distdataeval import Clusterer

    out = Clusterer(x, cluster_result=cr, client=client).evaluate()
    return ", ".join(f"{k} {len(v)}" for k, v in out.items())


def section_label_errors(x, cr, client):
    """label_errors with the clusters as labels, 1% of them flipped (seeded)."""
    from distdataeval import label_errors

    labels = np.asarray(cr.clusters).copy()
    rng = np.random.default_rng(0)
    flip = rng.choice(labels.size, labels.size // 100, replace=False)
    labels[flip] = (labels[flip] + 1 + rng.integers(0, max(1, labels.max()), flip.size)) % (labels.max() + 1)
    out = label_errors(x, labels, client=client)
    found = np.asarray(sorted(out.errors))
    hit = np.isin(flip, found).mean() if found.size else 0.0
    return f"{found.size} reported, {100 * hit:.1f}% of the flipped labels among them"


SECTIONS = {
    "duplicates": section_duplicates,
    "duplicates_mst": section_duplicates_mst,
    "outliers": section_outliers,
    "prioritize_knn": section_prioritize_knn,
    "prioritize_hdbscan_distance": section_prioritize_hdbscan_distance,
    "prioritize_hdbscan_complexity": section_prioritize_hdbscan_complexity,
    "kmeans_fit": section_kmeans_fit,
    "kmeans": section_kmeans,
    "prioritize_kmeans_distance": section_prioritize_kmeans_distance,
    "prioritize_kmeans_complexity": section_prioritize_kmeans_complexity,
    "clusterer": section_clusterer,
    "label_errors": section_label_errors,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--zarr", default=None)
    p.add_argument("--array", default="embeddings")
    p.add_argument("--knn", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS))
    p.add_argument("--warm", action="store_true",
                   help="run a 30k-row approx cluster() first so the workers' numba kernels are compiled")
    args = p.parse_args()

    import dask.array as da
    from distributed import Client, LocalCluster

    from distdataeval import cluster

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as lc, Client(lc) as client:
        if args.zarr:
            import zarr

            arr = zarr.open_group(args.zarr, mode="r")[args.array]
            x = da.from_zarr(arr)
        else:
            x = da.from_array(make_data(args.n, args.d), chunks=(max(1, args.n // 16), args.d))
        x = client.persist(x)
        if args.warm:
            from distdataeval.config import use_seed

            with use_seed(0):
                cluster(x[:30_000], knn="approx", client=client)
        t0 = time.perf_counter()
        with PeakRSS(client) as wp:
            cr = cluster(x, knn=args.knn, client=client)
        base = time.perf_counter() - t0
        print(f"cluster(): n={x.shape[0]} d={x.shape[1]} knn={cr.knn_method} {base:.2f} s, "
              f"worker peak RSS {wp.peak / 2**20:.0f} MiB, driver peak {wp.driver / 2**20:.0f} MiB, "
              f"{cr.n_clusters} clusters", flush=True)
        for name in args.sections:
            t0 = time.perf_counter()
            with PeakRSS(client) as wp:
                found = SECTIONS[name](x, cr, client)
            wall = time.perf_counter() - t0
            print(f"{name}: {wall:.2f} s ({100 * wall / base:.1f}% of cluster()), "
                  f"worker peak RSS {wp.peak / 2**20:.0f} MiB, driver peak {wp.driver / 2**20:.0f} MiB; "
                  f"{found}", flush=True)


if __name__ == "__main__":
    main()
