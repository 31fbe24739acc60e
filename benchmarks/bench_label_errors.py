#!/usr/bin/env python3
"""Time ``label_errors`` (approximate cell search by default) on synthetic embeddings from Zarr.

    python benchmarks/bench_label_errors.py --zarr /work/data/bench/emb_n1000000_d64_seed0.zarr
    python benchmarks/bench_label_errors.py --n 100000 --d 64      # generated into --cache first

Data: a store written by ``benchmarks/make_embeddings.py`` (array ``embeddings``; labels = its
``true_labels``, outliers' -1 included as a class) with a seeded 1% of the labels changed to
another of the labels present. The embeddings are read lazily from the Zarr store by
``label_errors`` itself.

On a LocalCluster of ``--workers`` single-threaded worker processes it prints: wall seconds;
peak RSS of the driver process and of the worker processes (summed; sampled every 0.2 s); the
quality the approximate run measured against exact search on a seeded sample (``result.recall``:
intra / extra neighbour recall, flag agreement, flagged rows confirmed, suggestion agreement,
rows searched exactly as a fallback); and how many of the changed labels were flagged.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from _measure import PeakRSS


def flipped_labels(true_labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with a seeded ``share`` of rows changed to another present label; and those rows."""
    rng = np.random.default_rng(seed)
    classes = np.unique(true_labels)
    n = true_labels.size
    rows = np.sort(rng.choice(n, int(round(share * n)), replace=False))
    pos = np.searchsorted(classes, true_labels[rows])
    shift = rng.integers(1, classes.size, rows.size)
    noisy = true_labels.astype(np.int64)
    noisy[rows] = classes[(pos + shift) % classes.size]
    return noisy, rows


def print_task_stream(records: list) -> None:
    """Per task kind (the key's name without its tokens): tasks, compute seconds summed over
    workers, and the first start / last stop in seconds from the first task."""
    import re

    spans: dict = {}
    for rec in records:
        key = rec["key"][0] if isinstance(rec["key"], tuple) else str(rec["key"])
        kind = re.sub(r"-[0-9a-f]{8,}.*$", "", key)
        for ss in rec["startstops"]:
            if ss["action"] != "compute":
                continue
            s = spans.setdefault(kind, [0, 0.0, ss["start"], ss["stop"]])
            s[0] += 1
            s[1] += ss["stop"] - ss["start"]
            s[2], s[3] = min(s[2], ss["start"]), max(s[3], ss["stop"])
    if not spans:
        return
    origin = min(s[2] for s in spans.values())
    print(f"{'task kind':28s} {'tasks':>6s} {'compute s':>10s} {'from s':>8s} {'to s':>8s}")
    for kind, (count, busy, first, last) in sorted(spans.items(), key=lambda kv: kv[1][2]):
        print(f"{kind[:28]:28s} {count:6d} {busy:10.1f} {first - origin:8.1f} {last - origin:8.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zarr", default=None, help="store made by make_embeddings.py")
    p.add_argument("--n", type=int, default=100_000, help="rows to generate when --zarr is not given")
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--cache", default="/tmp/distdataeval_bench", help="where generated stores go")
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--search", default="approx", choices=["auto", "exact", "approx"])
    p.add_argument("--n-cells", type=int, default=None)
    p.add_argument("--nprobe", type=int, default=None)
    p.add_argument("--nprobe-other", type=int, default=None, help="approx: extra-class cells (0: off)")
    p.add_argument("--flip", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--task-stream", action="store_true",
                   help="also print, per kind of task, its compute seconds and first start / last stop")
    args = p.parse_args()

    import contextlib
    import logging

    import zarr
    from distributed import Client, LocalCluster, get_task_stream

    from distdataeval import config, label_errors

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("distdataeval.evaluators.label_errors").setLevel(logging.DEBUG)
    path = args.zarr
    if path is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from make_embeddings import make_embeddings

        path = os.path.join(args.cache, f"emb_n{args.n}_d{args.d}_seed{args.seed}.zarr")
        if not os.path.exists(path):
            make_embeddings(path, n=args.n, d=args.d, seed=args.seed)
    group = zarr.open_group(path, mode="r")
    noisy, rows = flipped_labels(np.asarray(group["true_labels"][:]), args.flip, args.seed)
    n, d = group["embeddings"].shape
    config.set_seed(args.seed)
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as lc, Client(lc) as client:
        t0 = time.perf_counter()
        # the task stream is recorded only when asked (it adds work on every task)
        recorder = get_task_stream(client=client) if args.task_stream else contextlib.nullcontext()
        with PeakRSS(client) as peak, recorder as stream:
            out = label_errors(path, noisy, k=args.k, search=args.search, n_cells=args.n_cells,
                               nprobe=args.nprobe, nprobe_other=args.nprobe_other, array="embeddings", client=client)
        wall = time.perf_counter() - t0
    if args.task_stream:
        print_task_stream(stream.data)
    flagged = np.fromiter(out.errors, dtype=np.int64, count=len(out.errors))
    found = np.isin(rows, flagged).mean() if rows.size else float("nan")
    precision = np.isin(flagged, rows).mean() if flagged.size else float("nan")
    print(f"label_errors: n={n} d={d} k_eff={out.k} search={out.search} {wall:.1f} s; peak RSS driver "
          f"{peak.driver / 2**20:.0f} MiB, workers {peak.workers / 2**20:.0f} MiB ({args.workers} workers)")
    print(f"flagged {flagged.size} rows; {found:.3f} of the {rows.size} changed labels flagged; "
          f"{precision:.3f} of the flagged rows are changed labels")
    if out.recall is not None:
        r = out.recall
        print(f"vs exact on {r.rows} sampled rows: recall intra {r.intra:.4f} extra {r.extra:.4f}, max score rel. "
              f"error {r.score_error:.4f} (median {r.score_error_median:.5f}), flag agreement {r.flag_agreement:.4f}; {r.flagged_checked} flagged rows "
              f"re-checked: {r.flagged_confirmed:.4f} confirmed, suggestions agree {r.suggestion_agreement:.4f}; "
              f"{r.short_rows} short rows ({r.fallback_rows} searched exactly); {r.n_cells} cells, nprobe {r.nprobe}, "
              f"nprobe_other {r.nprobe_other}, predicted intra {r.predicted_intra}")


if __name__ == "__main__":
    main()
