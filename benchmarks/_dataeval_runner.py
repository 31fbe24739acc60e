"""Times DataEval's ``cluster()`` for ``bench_cluster.py``; run with the interpreter of DataEval's venv.

    python _dataeval_runner.py probe
    python _dataeval_runner.py warm  --data-dir DIR --warmup-n 2000 --sizes 10000 20000
    python _dataeval_runner.py fresh --data-dir DIR --n 10000

``DIR`` holds ``X_<n>.npy`` written by ``bench_cluster.py``. Results go to stdout as JSON lines
(``bench_cluster.emit``); the warm mode also saves labels, k-distances and MST weights to
``DIR/dataeval_<n>.npz`` for the agreement figures. Imports only the standard library, numpy,
dataeval and psutil (for the memory sampler shared with ``bench_cluster.py``).
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.dont_write_bytecode = True  # no __pycache__ in benchmarks/ from the import below
from bench_cluster import TreeSampler, blas_info, emit, load_x  # noqa: E402  (stdlib-only module)


def _sampler():
    try:
        return TreeSampler()
    except ImportError:  # no psutil: fall back to the lifetime peak (ru_maxrss)
        return None


def _measure(cluster, x) -> tuple[dict, dict]:
    """Call ``cluster(x)``; return the result and the time/memory figures."""
    sampler = _sampler()
    if sampler is not None:
        sampler.start()
    t0 = time.perf_counter()
    res = cluster(x)
    wall = time.perf_counter() - t0
    if sampler is not None:
        mem = sampler.stop()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
        mem = {"peak_driver_mib": peak, "peak_total_mib": peak, "bg_cores": None, "lifetime_peak": True}
    mem["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return res, {"wall_s": wall, **mem}


def _n_clusters(labels) -> int:
    import numpy as np

    lab = np.asarray(labels)
    return int(np.unique(lab[lab >= 0]).size)


def probe(_args) -> int:
    import dataeval
    import numpy as np
    from dataeval.core import cluster  # noqa: F401

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("numba", "sklearn", "torch"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            pass
    emit({"kind": "dataeval-probe", "version": dataeval.__version__, "python": sys.executable, "versions": versions, "blas": blas_info()})
    return 0


def warm(args) -> int:
    import numpy as np
    from dataeval.core import cluster

    data = Path(args.data_dir)
    xw = load_x(data / f"X_{args.warmup_n}.npy")
    t0 = time.perf_counter()
    cluster(xw)
    emit({"kind": "dataeval-warmup", "n": len(xw), "wall_s": time.perf_counter() - t0})
    for n in args.sizes:
        x = load_x(data / f"X_{n}.npy")
        gc.collect()
        res, fig = _measure(cluster, x)
        np.savez(
            data / f"dataeval_{n}.npz",
            clusters=np.asarray(res["clusters"]).astype(np.int64),
            k_distances=np.asarray(res["k_distances"]),
            mst_weights=np.asarray(res["mst"])[:, 2],
        )
        emit({"kind": "dataeval-warm", "n": n, "n_clusters": _n_clusters(res["clusters"]), **fig})
        del res, x
        gc.collect()
    return 0


def fresh(args) -> int:
    t_start = time.perf_counter()
    import numpy as np  # noqa: F401
    from dataeval.core import cluster

    t_imported = time.perf_counter()
    x = load_x(Path(args.data_dir) / f"X_{args.n}.npy")
    t_loaded = time.perf_counter()
    res, fig = _measure(cluster, x)
    emit(
        {
            "kind": "dataeval-fresh",
            "n": args.n,
            "n_clusters": _n_clusters(res["clusters"]),
            "interpreter_to_main_s": t_start - _T0,
            "import_s": t_imported - t_start,
            "load_s": t_loaded - t_imported,
            "call_s": fig["wall_s"],
            "in_process_s": time.perf_counter() - _T0,
            **fig,
        }
    )
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="time DataEval's cluster() for bench_cluster.py")
    p.add_argument("mode", choices=("probe", "warm", "fresh"))
    p.add_argument("--data-dir")
    p.add_argument("--sizes", type=int, nargs="+", default=[])
    p.add_argument("--warmup-n", type=int, default=2000)
    p.add_argument("--n", type=int)
    args = p.parse_args(argv)
    return {"probe": probe, "warm": warm, "fresh": fresh}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
