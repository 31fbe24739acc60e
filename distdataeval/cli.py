"""Command line: ``distdataeval run`` (the batch job) and ``distdataeval demo``."""

from __future__ import annotations

import argparse
import logging
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    """Generate a demo dataset into Zarr and run the batch job on it (the README's quick start)."""
    import os

    import numpy as np
    import zarr
    from sklearn.metrics import adjusted_rand_score

    from distdataeval.demo import make_mixture

    root = os.path.abspath(args.dir)
    src = os.path.join(root, "input.zarr")
    out = os.path.join(root, "output.zarr")
    print(f"distdataeval demo: {args.n:,} generated embeddings of dimension {args.d} (seed {args.seed}) -> {src}")
    x, truth = make_mixture(args.n, args.d, seed=args.seed)
    if not os.path.exists(os.path.join(src, "embeddings")):
        group = zarr.open_group(src, mode="a")
        arr = group.create_array("embeddings", shape=x.shape, dtype=x.dtype, chunks=(max(1, args.n // 8), args.d))
        arr[...] = x
    argv = ["--input", f"{src}/embeddings", "--output", out, "--set", f"pipeline.seed={args.seed}"]
    if args.workers:
        argv += ["--set", f"cluster.local.n-workers={args.workers}"]
    if args.quiet:
        argv.append("--quiet")
    parser = argparse.ArgumentParser(prog="distdataeval demo")
    add_run_parser(parser.add_subparsers(dest="command"))
    status = _run(parser.parse_args(["run", *argv]))
    if status != 0:
        return status
    import json

    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        counts = json.load(fh)["counts"]
    print(f"clusters found: {counts.get('clusters')}; HDBSCAN noise reassigned: {counts.get('noise')}; "
          f"exact-duplicate groups: {(counts.get('exact_duplicates') or {}).get('groups')}; "
          f"near-duplicate groups: {(counts.get('near_duplicates') or {}).get('groups')}; "
          f"outliers: {counts.get('outliers')}")
    clusters = np.asarray(zarr.open_array(os.path.join(out, "clusters"), mode="r")[:])
    planted = truth >= 0
    print(f"agreement with the generating mixture (ARI, planted outliers excluded): "
          f"{adjusted_rand_score(truth[planted], clusters[planted]):.3f}")
    print(f"rerun the same command to resume (finished stages are skipped); open {out}/report.html")
    return 0


class _JsonLogHandler(logging.Handler):
    """distdataeval's own log records and warnings as structured event lines."""

    def __init__(self, events) -> None:
        super().__init__(logging.INFO)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "distdataeval" and record.getMessage().startswith("stage "):
            return  # the runner's own stage events say it already
        try:
            event = "warning" if record.levelno >= logging.WARNING else "log"
            self.events.emit(event, record.getMessage().strip(), logger=record.name)
        except Exception:  # noqa: BLE001 - logging never fails the job
            self.handleError(record)


def _run(args: argparse.Namespace) -> int:
    from distdataeval.job.progress import EventLog
    from distdataeval.job.runner import main_error_line, run_job

    events = EventLog(sys.stderr)
    handler = _JsonLogHandler(events)
    logging.captureWarnings(True)
    for name, level in (("distdataeval", logging.INFO), ("py.warnings", logging.WARNING),
                        ("distributed", logging.ERROR)):
        lg = logging.getLogger(name)
        lg.addHandler(handler)
        lg.setLevel(level)
        lg.propagate = False
    try:
        summary = run_job(args.input, args.output, profile=args.profile, overrides=args.set or [],
                          overwrite=args.overwrite, quiet=args.quiet, stream=sys.stderr)
    except KeyboardInterrupt:
        print("distdataeval run: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line, no traceback (the log has the stage)
        print(main_error_line(exc), file=sys.stderr)
        return 1
    if not args.quiet:
        counts = summary["counts"]
        extra = ""
        if isinstance(counts.get("exact_duplicates"), dict):
            extra += f", {counts['exact_duplicates']['groups']} exact-duplicate groups"
        if isinstance(counts.get("near_duplicates"), dict):
            extra += f", {counts['near_duplicates']['groups']} near-duplicate groups"
        if counts.get("outliers") is not None:
            extra += f", {counts['outliers']} outliers"
        print(f"distdataeval run: {counts['rows']:,} rows, {counts.get('clusters')} clusters, "
              f"{counts.get('noise')} HDBSCAN noise{extra}; k-NN {summary['knn']['method']}"
              + (f" (recall {summary['knn']['recall']:.3f})" if summary["knn"].get("recall") is not None else "")
              + f"; results in {summary['output']}" + (f"; report {summary['report']}" if summary.get("report") else ""))
    return 0


def add_run_parser(sub) -> None:
    """The ``run`` subcommand's arguments."""
    run = sub.add_parser("run", help="run the batch job: Zarr in, Zarr out, summary.json and report.html")
    run.add_argument("--profile", default=None, help="profile YAML (conf/<name>.yaml); default: local cluster")
    run.add_argument("--input", required=True, help="input Zarr store, or store/array")
    run.add_argument("--output", required=True, help="output Zarr store (a local directory)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a profile key (repeatable)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the output of a different job (a rerun of the same job resumes without it)")
    run.add_argument("--quiet", action="store_true", help="no progress bars: structured log lines only")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``distdataeval`` command."""
    from distdataeval import __version__

    parser = argparse.ArgumentParser(prog="distdataeval", description="DataEval's clustering on Dask.")
    parser.add_argument("--version", action="version", version=f"distdataeval {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the batch job on a generated dataset on the embedded local Dask cluster")
    demo.add_argument("--n", type=int, default=20_000, help="number of embeddings (default 20000)")
    demo.add_argument("--d", type=int, default=32, help="dimension (default 32)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    demo.add_argument("--dir", default="distdataeval-demo",
                      help="where input.zarr and output.zarr go (default ./distdataeval-demo)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars: structured log lines only")
    add_run_parser(sub)
    from distdataeval.job.render import add_parser as add_render_parser

    add_render_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "render":
        return args.handler(args)
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
