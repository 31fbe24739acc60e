#!/usr/bin/env python3
"""Recall and agreement of approx mode on a real embedding set (see ``benchmarks/REAL_DATA.md``).

    python benchmarks/bench_real.py /work/data/real_words.zarr [--exact] [--recall-rows 2000]

Runs ``cluster(knn="approx")`` twice in one process on a LocalCluster of 2 single-threaded
workers (the first call compiles pynndescent on the workers; the second is timed), then:

- recall@25 of the returned graph on ``--recall-rows`` random rows against an independent exact
  search (NumPy float64, blocked, self excluded; ties count as found), next to the recall the
  pipeline measured itself (``result.knn_recall``);
- with ``--exact``, ``cluster(knn="exact")`` on the same data and the ARI between the two
  results' HDBSCAN labels (``raw_labels``) and final labels (``clusters``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def exact_knn_rows(x: np.ndarray, rows: np.ndarray, k: int, block: int = 65536):
    """Exact k nearest squared distances of ``rows`` against all of ``x`` (self excluded)."""
    q = x[rows].astype(np.float64)
    qq = (q**2).sum(1)
    best = np.full((len(rows), k), np.inf)
    for lo in range(0, x.shape[0], block):
        r = x[lo : lo + block].astype(np.float64)
        d2 = qq[:, None] + (r**2).sum(1)[None, :] - 2.0 * q @ r.T
        own = (rows >= lo) & (rows < lo + len(r))
        d2[np.flatnonzero(own), rows[own] - lo] = np.inf
        best = np.sort(np.concatenate([best, np.maximum(d2, 0.0)], axis=1), axis=1)[:, :k]
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store")
    p.add_argument("--array", default="embeddings")
    p.add_argument("--exact", action="store_true", help="also run exact mode and print the ARI")
    p.add_argument("--recall-rows", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()

    import zarr
    from sklearn.metrics import adjusted_rand_score

    import distdataeval as dde
    from distdataeval.runtime import local_client

    x = np.asarray(zarr.open_array(args.store, path=args.array, mode="r")[...])
    n, d = x.shape
    client = local_client(n_workers=2)
    dde.config.set_seed(args.seed)
    t0 = time.perf_counter()
    dde.cluster(args.store, array=args.array, knn="approx", client=client)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = dde.cluster(args.store, array=args.array, knn="approx", client=client)
    warm = time.perf_counter() - t0
    rows = np.sort(np.random.default_rng(args.seed).choice(n, size=min(n, args.recall_rows), replace=False))
    k = r.k_distances.shape[1]
    found = np.asarray(r.k_distances[rows]).astype(np.float64) ** 2
    truth = exact_knn_rows(x, rows, k)
    kth = truth[:, -1:] * (1 + 1e-6) + 1e-12
    recall = float(np.mean(np.minimum((found <= kth).sum(1), k) / k))
    out = dict(
        store=args.store, n=n, d=d, first_call_s=round(first, 2), warm_call_s=round(warm, 2),
        timings={key: round(v, 3) for key, v in r.timings.items()}, recall_pipeline=r.knn_recall,
        recall_independent=recall, recall_rows=len(rows), n_clusters=r.n_clusters, noise=int(r.noise.sum()),
        knn_components=r.n_knn_components,
    )
    if args.exact:
        t0 = time.perf_counter()
        e = dde.cluster(args.store, array=args.array, knn="exact", client=client)
        out["exact_s"] = round(time.perf_counter() - t0, 2)
        out["ari_raw_labels"] = adjusted_rand_score(e.raw_labels, r.raw_labels)
        out["ari_clusters"] = adjusted_rand_score(e.clusters, r.clusters)
        out["exact_n_clusters"] = e.n_clusters
        out["exact_noise"] = int(e.noise.sum())
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
