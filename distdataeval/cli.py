"""Command line: ``distdataeval demo`` (and, later, ``distdataeval run``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from distdataeval import cluster
    from distdataeval.demo import make_mixture
    from distdataeval.runtime import close_local_cluster, local_client

    print(f"distdataeval demo: {args.n:,} generated embeddings of dimension {args.d} (seed {args.seed})")
    x, truth = make_mixture(args.n, args.d, seed=args.seed)
    t0 = time.perf_counter()
    client = local_client(n_workers=args.workers)
    workers = len(client.scheduler_info()["workers"])
    print(f"local Dask cluster: {workers} worker processes on 127.0.0.1 ({time.perf_counter() - t0:.1f} s to start)")
    t1 = time.perf_counter()
    result = cluster(x, client=client)
    elapsed = time.perf_counter() - t1
    sizes = np.bincount(result.clusters)
    planted = truth >= 0
    print(f"clusters found: {result.n_clusters} (sizes: {', '.join(str(s) for s in sorted(sizes, reverse=True))})")
    print(f"HDBSCAN noise reassigned to the nearest cluster: {int(result.noise.sum())}")
    print(f"k-NN graph: exact, k = {result.k_neighbors.shape[1]}, components before bridging: {result.n_knn_components}")
    print(f"min_cluster_size: {result.min_cluster_size}")
    print(f"agreement with the generating mixture (ARI, planted outliers excluded): "
          f"{adjusted_rand_score(truth[planted], result.clusters[planted]):.3f}")
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items() if isinstance(v, float))
    print(f"cluster() wall time: {elapsed:.2f} s ({stages})")
    close_local_cluster()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``distdataeval`` command."""
    from distdataeval import __version__

    parser = argparse.ArgumentParser(prog="distdataeval", description="DataEval's clustering on Dask.")
    parser.add_argument("--version", action="version", version=f"distdataeval {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="cluster a generated dataset on the embedded local Dask cluster")
    demo.add_argument("--n", type=int, default=20_000, help="number of embeddings (default 20000)")
    demo.add_argument("--d", type=int, default=32, help="dimension (default 32)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if not args.verbose:
        for handler in logging.root.handlers:  # Dask's own INFO chatter is not for this screen
            handler.addFilter(lambda r: not (r.name.startswith("distributed") and r.levelno < logging.WARNING))
    if args.command == "demo":
        if args.n < 2 or args.d < 1:
            parser.error("--n must be >= 2 and --d >= 1")
        return _demo(args)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
