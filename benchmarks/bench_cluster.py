#!/usr/bin/env python3
"""Benchmark ``distdataeval.cluster(knn="exact")`` against DataEval 1.1.4's ``cluster()`` and faiss.

Prints, per n (d = 64), the wall time and peak memory of our exact mode and of DataEval's
``cluster()`` side by side, warm and fresh, the time of faiss ``IndexFlatL2`` on the same data next
to our exact k-NN stage, and the agreement between the two results. See ``benchmarks/README.md``.

    python benchmarks/bench_cluster.py --sizes 10000 20000 50000 100000 [--skip-fresh]
        [--skip-dataeval] [--skip-faiss] [--dataeval-python PATH] [--json PATH]

Every measurement runs in a subprocess, one at a time (never two heavy processes at once):

1. ours, warm: one process starts a LocalCluster of 2 single-threaded worker processes, calls
   ``cluster()`` once on 2,000 rows (numba compiles), then times ``cluster()`` for each n; faiss
   runs in the same process right after each of our calls, on the same array.
2. ours, fresh: one new process per n (import + start the cluster + JIT/cache load + call + exit),
   timed from outside; the in-process split is reported as well.
3. DataEval, warm and fresh, the same way, with the interpreter of a separate venv
   (``benchmarks/_dataeval_runner.py``).

This module's top level imports the standard library only: the DataEval runner imports
:class:`TreeSampler` from it under the other venv's interpreter, and a fresh run times its own
imports.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()  # as early as possible: the fresh child measures its time from here

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

MARK = "@@BENCH@@ "  # prefix of the result lines a child prints on stdout
HERE = Path(__file__).resolve().parent
RUNNER = HERE / "_dataeval_runner.py"
DEFAULT_DATAEVAL_PYTHON = "/work/golden-venv/bin/python"
D = 64
K = 25  # neighbours per row (min(25, n - 1)); faiss searches K + 1 (the row itself comes back too)
N_WORKERS = 2
STAGES = ("validate", "knn", "mst", "tree", "gather")  # the keys of result.timings that are seconds
MIB = 1024.0 * 1024.0
ENV_SHOWN = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


# ---------------------------------------------------------------------------------------------
# shared by every process (also imported by _dataeval_runner.py in DataEval's venv)
# ---------------------------------------------------------------------------------------------


def emit(obj: dict) -> None:
    """Hand one result record to the parent (a JSON line on stdout)."""
    print(MARK + json.dumps(obj), flush=True)


def progress(msg: str) -> None:
    print(msg, flush=True)


def make_data(n: int, d: int = D):
    """The spec's recipe: 10 Gaussian blobs (centres N(0, 5), unit spread), float32."""
    import numpy as np

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 5, (10, d))
    lab = rng.integers(0, 10, n)
    return (centers[lab] + rng.normal(0, 1, (n, d))).astype(np.float32)


def load_x(path):
    import numpy as np

    return np.load(path, allow_pickle=False)


def _vm_hwm_mib() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_vm_hwm() -> bool:
    """Reset this process's kernel peak-RSS counter (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class TreeSampler:
    """Peak RSS of this process and of the sum over it and all its descendants.

    A thread samples every ``interval`` seconds (the list of descendants is refreshed every
    ``refresh`` samples; the worker processes live for the whole run). The process's own peak is
    also read from the kernel (VmHWM, reset at :meth:`start`), so a spike shorter than the interval
    is not lost there; the tree total is sampled only. Also measures how busy the CPUs were with
    processes *outside* the tree during the window (``bg_cores``: the machine is shared).
    """

    def __init__(self, interval: float = 0.05, refresh: int = 10) -> None:
        import psutil

        self._psutil = psutil
        self.interval = interval
        self.refresh = refresh
        self.me = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _tree(self) -> list:
        try:
            return [self.me, *self.me.children(recursive=True)]
        except self._psutil.Error:
            return [self.me]

    def _rss(self, procs: list) -> tuple[int, int, bool]:
        own = total = 0
        lost = False
        for p in procs:
            try:
                r = p.memory_info().rss
            except self._psutil.Error:
                lost = True
                continue
            total += r
            if p.pid == self.me.pid:
                own = r
        return own, total, lost

    def _cpu(self, procs: list) -> float:
        s = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                s += t.user + t.system
            except self._psutil.Error:
                pass
        return s

    @staticmethod
    def _busy(t) -> float:
        return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))

    def _run(self) -> None:
        procs = self._tree()
        i = 0
        while True:
            own, total, lost = self._rss(procs)
            self.peak_own = max(self.peak_own, own)
            self.peak_total = max(self.peak_total, total)
            self.n_procs = max(self.n_procs, len(procs))
            self.samples += 1
            i += 1
            if self._stop.wait(self.interval):
                return
            if lost or i % self.refresh == 0:
                procs = self._tree()

    def start(self) -> TreeSampler:
        procs = self._tree()
        self.hwm_reset = _reset_vm_hwm()
        own, total, _ = self._rss(procs)
        self.base_own, self.base_total = own, total
        self.peak_own, self.peak_total, self.n_procs, self.samples = own, total, len(procs), 0
        self._cpu0 = self._cpu(procs)
        self._sys0 = self._busy(self._psutil.cpu_times())
        self._t0 = time.perf_counter()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict:
        wall = time.perf_counter() - self._t0
        sys1 = self._busy(self._psutil.cpu_times())
        procs = self._tree()
        cpu1 = self._cpu(procs)
        self._stop.set()
        self._thread.join()
        own, total, _ = self._rss(procs)
        self.peak_own = max(self.peak_own, own)
        self.peak_total = max(self.peak_total, total)
        hwm = _vm_hwm_mib() if self.hwm_reset else None
        peak_own = self.peak_own / MIB if hwm is None else max(hwm, self.peak_own / MIB)
        tree_cpu = cpu1 - self._cpu0
        bg = max(0.0, (sys1 - self._sys0) - tree_cpu) / wall if wall > 0 else 0.0
        return {
            "peak_driver_mib": peak_own,
            "peak_total_mib": max(self.peak_total / MIB, peak_own),
            "base_driver_mib": self.base_own / MIB,
            "base_total_mib": self.base_total / MIB,
            "n_procs": self.n_procs,
            "rss_samples": self.samples,
            "kernel_hwm": hwm is not None,
            "tree_cpu_s": tree_cpu,
            "bg_cores": bg,
        }


def blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "num_threads", "architecture", "threading_layer", "filepath")
    return [{k: v for k, v in d.items() if k in keep} for d in threadpool_info()]


# ---------------------------------------------------------------------------------------------
# children: ours (warm / fresh)
# ---------------------------------------------------------------------------------------------


def _our_call(dde, x, client):
    return dde.cluster(x, knn="exact", reassign_noise=False, client=client)


def _save_ours(path: Path, r) -> None:
    import numpy as np

    np.savez(
        path,
        clusters=np.asarray(r.clusters),
        raw_labels=np.asarray(r.raw_labels),
        k_distances=np.asarray(r.k_distances),
        mst_weights=np.asarray(r.mst[:, 2]),
    )


def _ours_record(kind: str, n: int, wall: float, r, mem: dict) -> dict:
    timings = {k: float(v) for k, v in r.timings.items()}
    return {
        "kind": kind,
        "n": n,
        "wall_s": wall,
        "timings": timings,
        "n_clusters": r.n_clusters,
        "noise": int(r.noise.sum()),
        "n_knn_components": int(r.n_knn_components),
        **mem,
    }


def child_ours_warm(args) -> int:
    import distdataeval as dde
    from distdataeval.runtime import local_client

    data = Path(args.data_dir)
    # faiss first: distributed's nanny writes its worker environment (OMP_NUM_THREADS=1,
    # OPENBLAS_NUM_THREADS=1, ...) into this process's os.environ when the cluster starts, and
    # OpenMP / OpenBLAS read those when loaded; imported later, faiss would run single-threaded.
    faiss = None
    if not args.skip_faiss:
        try:
            import faiss
        except ImportError:
            emit({"kind": "faiss-missing"})
    client = local_client(n_workers=N_WORKERS)
    info = client.scheduler_info().get("workers", {})
    versions = {"python": platform.python_version()}
    for mod in ("distdataeval", "numpy", "dask", "distributed", "numba"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - reporting only
            pass
    emit(
        {
            "kind": "ours-config",
            "n_workers": len(info),
            "threads_per_worker": sorted({int(w.get("nthreads", 0)) for w in info.values()}),
            "versions": versions,
            "blas": blas_info(),
        }
    )

    xw = load_x(data / f"X_{args.warmup_n}.npy")
    t0 = time.perf_counter()
    _our_call(dde, xw, client)
    emit({"kind": "ours-warmup", "n": len(xw), "wall_s": time.perf_counter() - t0})

    if faiss is not None:
        index = faiss.IndexFlatL2(xw.shape[1])
        index.add(xw)
        index.search(xw, min(K + 1, len(xw)))
        del index
        faiss_blas = [b for b in blas_info() if "faiss" in str(b.get("filepath", ""))]
        emit(
            {
                "kind": "faiss-config",
                "version": faiss.__version__,
                "threads": faiss.omp_get_max_threads(),
                "blas": faiss_blas,
                "driver_env_after_cluster_start": {k: os.environ.get(k) for k in ENV_SHOWN},
            }
        )

    sampler = TreeSampler()
    for n in args.sizes:
        x = load_x(data / f"X_{n}.npy")
        gc.collect()
        sampler.start()
        t0 = time.perf_counter()
        r = _our_call(dde, x, client)
        wall = time.perf_counter() - t0
        mem = sampler.stop()
        _save_ours(data / f"ours_{n}.npz", r)
        emit(_ours_record("ours-warm", n, wall, r, mem))
        del r
        gc.collect()
        if faiss is not None:
            t0 = time.perf_counter()
            index = faiss.IndexFlatL2(x.shape[1])
            index.add(x)
            dist, ids = index.search(x, min(K + 1, n))
            t_faiss = time.perf_counter() - t0
            emit({"kind": "faiss", "n": n, "faiss_s": t_faiss, "threads": faiss.omp_get_max_threads()})
            del index, dist, ids
        del x
        gc.collect()
    return 0


def child_ours_fresh(args) -> int:
    t_start = time.perf_counter()
    import numpy as np  # noqa: F401  (part of what a job imports)

    import distdataeval as dde
    from distdataeval.runtime import local_client

    t_imported = time.perf_counter()
    client = local_client(n_workers=N_WORKERS)
    t_started = time.perf_counter()
    x = load_x(Path(args.data_dir) / f"X_{args.n}.npy")
    t_loaded = time.perf_counter()
    sampler = TreeSampler().start()
    t0 = time.perf_counter()
    r = _our_call(dde, x, client)
    t1 = time.perf_counter()
    mem = sampler.stop()
    rec = _ours_record("ours-fresh", args.n, t1 - t0, r, mem)
    rec.update(
        {
            "interpreter_to_main_s": t_start - _T0,
            "import_s": t_imported - t_start,
            "start_cluster_s": t_started - t_imported,
            "load_s": t_loaded - t_started,
            "call_s": t1 - t0,
            "in_process_s": t1 - _T0,
        }
    )
    emit(rec)
    return 0  # the LocalCluster closes at exit (atexit): counted in the outside wall time


# ---------------------------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------------------------


def run_child(cmd: list[str], label: str, log_dir: Path, timeout: float) -> tuple[list[dict], float, int]:
    """Run one child to completion; return its records, its wall time (start to exit), its rc."""
    log_path = log_dir / f"{label.replace(' ', '_').replace('=', '')}.stderr.log"
    records: list[dict] = []
    with open(log_path, "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            for line in proc.stdout:
                line = line.rstrip("\n")
                if line.startswith(MARK):
                    records.append(json.loads(line[len(MARK):]))
                elif line.strip():
                    print(f"    [{label}] {line}", file=sys.stderr, flush=True)
            rc = proc.wait()
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
    if rc != 0:
        tail = log_path.read_text().splitlines()[-25:]
        print(f"  !! {label} exited with {rc}{' (timeout?)' if rc < 0 else ''}; last stderr lines:", file=sys.stderr)
        for line in tail:
            print(f"     {line}", file=sys.stderr)
    return records, wall, rc


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine_info() -> dict:
    import numpy as np

    info = {
        "cpu": platform.processor() or platform.machine(),
        "os_cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "env": {k: os.environ.get(k) for k in ENV_SHOWN},
        "loadavg_start": list(os.getloadavg()),
    }
    try:
        info["affinity_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gib"] = psutil.virtual_memory().total / 1024**3
    except ImportError:
        pass
    return info


def _blas_line(blas: list[dict]) -> str:
    if not blas:
        return "unknown (threadpoolctl missing)"
    parts = []
    for b in blas:
        s = f"{b.get('internal_api')} {b.get('version')} ({b.get('user_api')}, {b.get('num_threads')} threads"
        if b.get("architecture"):
            s += f", {b['architecture']}"
        if b.get("threading_layer"):
            s += f", {b['threading_layer']}"
        parts.append(s + ")")
    return "; ".join(parts)


def print_header(m: dict, args) -> None:
    print("=" * 100)
    print("bench_cluster: distdataeval.cluster(knn='exact', reassign_noise=False) vs DataEval cluster() vs faiss")
    print(f"data: spec recipe, 10 blobs, d={D}, float32; sizes {args.sizes}; warm-up on {args.warmup_n} rows")
    print(
        f"machine: {m['cpu']}; os.cpu_count={m['os_cpu_count']}, usable={m.get('affinity_cores', '?')}, "
        f"physical={m.get('physical_cores', '?')}; memory {m.get('memory_gib', 0):.1f} GiB"
    )
    print(f"python {m['python']}, numpy {m['numpy']}; numpy BLAS: {_blas_line(m['blas'])}")
    env = ", ".join(f"{k}={v if v is not None else '<unset>'}" for k, v in m["env"].items())
    print(f"env: {env}")
    la = m["loadavg_start"]
    print(f"load average at start: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} (the machine may be shared: see 'bg' below)")
    print("=" * 100, flush=True)


def _f(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def _ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def agreement(data: Path, n: int) -> dict | None:
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    po, pd = data / f"ours_{n}.npz", data / f"dataeval_{n}.npz"
    if not (po.exists() and pd.exists()):
        return None
    a, b = np.load(po, allow_pickle=False), np.load(pd, allow_pickle=False)
    ca, cb = a["clusters"], b["clusters"]

    def rel(x, y):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-12))) if x.size else 0.0

    out = {
        "ari": float(adjusted_rand_score(cb, ca)),
        "labels_identical": bool(np.array_equal(ca, cb)),
        "n_clusters_ours": int(np.unique(ca[ca >= 0]).size),
        "n_clusters_dataeval": int(np.unique(cb[cb >= 0]).size),
        "noise_ours": int((ca < 0).sum()),
        "noise_dataeval": int((cb < 0).sum()),
    }
    ka, kb = a["k_distances"], b["k_distances"]
    out["kdist_max_rel_diff"] = rel(np.sort(ka, axis=1), np.sort(kb, axis=1)) if ka.shape == kb.shape else None
    wa, wb = np.sort(a["mst_weights"]), np.sort(b["mst_weights"])
    if wa.shape == wb.shape:
        out["mst_max_rel_diff"] = rel(wa, wb)
        tb = float(wb.astype(np.float64).sum())
        out["mst_total_rel_diff"] = abs(float(wa.astype(np.float64).sum()) - tb) / max(abs(tb), 1e-12)
    else:
        out["mst_max_rel_diff"] = out["mst_total_rel_diff"] = None
    return out


def print_tables(rows: dict, sizes: list[int], ctx: dict) -> None:
    print()
    print("Times in seconds, memory in MiB. warm = the call in a process that already ran it once (numba")
    print("compiled); fresh = a new process from start to exit, timed from outside. DE/ours > 1: ours faster.")
    print(
        f"ours: LocalCluster of {ctx.get('n_workers', N_WORKERS)} worker processes x "
        f"{ctx.get('threads_per_worker', [1])} thread; DataEval: one process, default threads "
        f"(BLAS {ctx.get('dataeval_blas_threads', '-')});\nfaiss IndexFlatL2 (add + search k+1={K + 1} on X itself), "
        f"its default threads: {ctx.get('faiss_threads', '-')}."
    )
    cols = [
        ("n", 7), ("ours warm", 9), ("ours fresh", 10), ("DE warm", 8), ("DE fresh", 8), ("DE/ours w", 9),
        ("DE/ours f", 9), ("faiss", 6), ("our knn", 7), ("knn/faiss", 9), ("drv MiB", 7), ("tot MiB", 7),
        ("DE MiB", 7), ("ARI", 6), ("clusters o/DE", 13),
    ]
    head = " ".join(f"{c:>{w}}" for c, w in cols)
    print(head)
    print("-" * len(head))
    for n in sizes:
        r = rows[n]
        vals = [
            str(n), _f(r.get("ours_warm_s")), _f(r.get("ours_fresh_s")), _f(r.get("de_warm_s")),
            _f(r.get("de_fresh_s")), _f(r.get("ratio_warm")), _f(r.get("ratio_fresh")), _f(r.get("faiss_s")),
            _f(r.get("ours_knn_s")), _f(r.get("knn_over_faiss")), _f(r.get("peak_driver_mib"), ".0f"),
            _f(r.get("peak_total_mib"), ".0f"), _f(r.get("de_peak_mib"), ".0f"), _f(r.get("ari"), ".4f"),
            f"{_f(r.get('n_clusters_ours'), 'd')}/{_f(r.get('n_clusters_dataeval'), 'd')}",
        ]
        print(" ".join(f"{v:>{w}}" for v, (_, w) in zip(vals, cols)))

    print()
    print("Where the time goes (ours warm, per stage of result.timings, rest = call minus stages, uncert =")
    print("k-NN rows recomputed in float64; fresh split: import / start cluster / call / outside),")
    print("memory of the fresh runs, agreement details, and bg = CPU cores busy with OTHER processes meanwhile:")
    cols2 = [
        ("n", 7), ("validate", 8), ("knn", 6), ("mst", 6), ("tree", 6), ("gather", 6), ("rest", 5), ("uncert", 6),
        ("ours fresh: imp/start/call/out", 30), ("DE fresh: imp/call/out", 22), ("fresh tot MiB o/DE", 18),
        ("kdist rel", 9), ("mst rel", 8), ("bg o/DE", 9),
    ]
    head = " ".join(f"{c:>{w}}" for c, w in cols2)
    print(head)
    print("-" * len(head))
    for n in sizes:
        r = rows[n]
        t = r.get("ours_timings") or {}
        fr = r.get("ours_fresh_rec") or {}
        dfr = r.get("de_fresh_rec") or {}
        fresh = (
            f"{_f(fr.get('import_s'))}/{_f(fr.get('start_cluster_s'))}/{_f(fr.get('call_s'))}/{_f(r.get('ours_fresh_s'))}"
            if fr else "-"
        )
        dfresh = f"{_f(dfr.get('import_s'))}/{_f(dfr.get('call_s'))}/{_f(r.get('de_fresh_s'))}" if dfr else "-"
        fmem = f"{_f(fr.get('peak_total_mib'), '.0f')}/{_f(dfr.get('peak_driver_mib'), '.0f')}"
        unc = t.get("knn_uncertified_rows")
        staged = [t[k] for k in STAGES if k in t]
        rest = r["ours_warm_s"] - sum(staged) if staged and r.get("ours_warm_s") is not None else None
        vals = [
            str(n), _f(t.get("validate")), _f(t.get("knn")), _f(t.get("mst")), _f(t.get("tree")), _f(t.get("gather")),
            _f(rest), "-" if unc is None else str(int(unc)), fresh, dfresh, fmem, _f(r.get("kdist_max_rel_diff"), ".1e"),
            _f(r.get("mst_max_rel_diff"), ".1e"), f"{_f(r.get('bg_ours'), '.1f')}/{_f(r.get('bg_de'), '.1f')}",
        ]
        print(" ".join(f"{v:>{w}}" for v, (_, w) in zip(vals, cols2)))


def targets(rows: dict) -> list[tuple[str, str]]:
    out = []

    def verdict(v, ok) -> str:
        return "n/a (not measured)" if v is None else (f"{v:.2f} -> {'PASS' if ok(v) else 'FAIL'}")

    for mode in ("warm", "fresh"):
        r20 = rows.get(20000, {}).get(f"ratio_{mode}")
        out.append((f"exact no slower than DataEval at 20k ({mode}), DE/ours >= 1", verdict(r20, lambda v: v >= 1.0)))
        r100 = rows.get(100000, {}).get(f"ratio_{mode}")
        out.append((f"exact faster than DataEval at 100k ({mode}), DE/ours > 1", verdict(r100, lambda v: v > 1.0)))
    for n, r in rows.items():
        out.append((f"exact k-NN stage within 1.5x faiss at n={n}, knn/faiss <= 1.5", verdict(r.get("knn_over_faiss"), lambda v: v <= 1.5)))
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000, 50000, 100000], help="values of n (d=64)")
    p.add_argument("--skip-fresh", action="store_true", help="no fresh-process runs (ours and DataEval)")
    p.add_argument("--skip-dataeval", action="store_true", help="do not run DataEval")
    p.add_argument("--skip-faiss", action="store_true", help="do not run faiss")
    p.add_argument("--dataeval-python", default=DEFAULT_DATAEVAL_PYTHON, help="interpreter of the venv with dataeval (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also save all figures as JSON")
    p.add_argument("--warmup-n", type=int, default=2000, help="rows of the warm-up call (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds allowed per child process (default: %(default)s)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (data, results, child logs)")
    # internal: run as a child
    p.add_argument("--_child", choices=("ours-warm", "ours-fresh"), help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if any(n < 2 for n in args.sizes) or args.warmup_n < 2:
        p.error("sizes and --warmup-n must be >= 2")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._child == "ours-warm":
        return child_ours_warm(args)
    if args._child == "ours-fresh":
        return child_ours_fresh(args)

    try:
        import psutil  # noqa: F401
    except ImportError:
        print("psutil is needed for the memory figures: pip install psutil (or pip install -e '.[bench]')", file=sys.stderr)
        return 2
    import numpy as np

    sizes = list(dict.fromkeys(args.sizes))
    m = machine_info()
    print_header(m, args)
    tmp = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    t_all = time.perf_counter()
    rows: dict[int, dict] = {n: {"n": n} for n in sizes}
    ctx: dict = {}
    report: dict = {"machine": m, "args": {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("data_dir", "n")}}
    records: list[dict] = []
    try:
        for n in dict.fromkeys([args.warmup_n, *sizes]):
            np.save(tmp / f"X_{n}.npy", make_data(n), allow_pickle=False)
        note(f"data written to {tmp}")
        me = [sys.executable, str(Path(__file__).resolve())]
        size_args = ["--sizes", *map(str, sizes)]

        # 1. ours, warm (+ faiss in the same process)
        note(f"[1] ours warm (+ faiss){' (faiss skipped)' if args.skip_faiss else ''} ...")
        cmd = [*me, "--_child", "ours-warm", "--data-dir", str(tmp), "--warmup-n", str(args.warmup_n), *size_args]
        if args.skip_faiss:
            cmd.append("--skip-faiss")
        recs, wall, rc = run_child(cmd, "ours warm", tmp, args.timeout)
        records += recs
        for rec in recs:
            kind = rec["kind"]
            if kind == "ours-config":
                ctx.update(n_workers=rec["n_workers"], threads_per_worker=rec["threads_per_worker"])
                report["ours_config"] = rec
            elif kind == "ours-warmup":
                note(f"    warm-up call on {rec['n']} rows (JIT/cache load): {rec['wall_s']:.2f} s")
            elif kind == "faiss-missing":
                note("    faiss not installed: skipped (pip install faiss-cpu)")
            elif kind == "faiss-config":
                blas_t = "/".join(str(b.get("num_threads")) for b in rec.get("blas", [])) or "?"
                ctx["faiss_threads"] = f"{rec['threads']} OpenMP + {blas_t} BLAS"
                report["faiss_config"] = rec
            elif kind == "ours-warm":
                r = rows[rec["n"]]
                r.update(
                    ours_warm_s=rec["wall_s"], ours_knn_s=rec["timings"].get("knn"), ours_timings=rec["timings"],
                    peak_driver_mib=rec["peak_driver_mib"], peak_total_mib=rec["peak_total_mib"], bg_ours=rec["bg_cores"],
                    ours_warm_rec=rec,
                )
                note(f"    n={rec['n']}: {rec['wall_s']:.2f} s (knn {rec['timings'].get('knn', 0):.2f} s), "
                     f"{rec['n_clusters']} clusters, peak total {rec['peak_total_mib']:.0f} MiB")
            elif kind == "faiss":
                r = rows[rec["n"]]
                r["faiss_s"] = rec["faiss_s"]
                r["knn_over_faiss"] = _ratio(r.get("ours_knn_s"), rec["faiss_s"])
                note(f"    n={rec['n']}: faiss {rec['faiss_s']:.2f} s")

        # 2. ours, fresh
        if not args.skip_fresh:
            note("[2] ours fresh (one new process per n) ...")
            for n in sizes:
                cmd = [*me, "--_child", "ours-fresh", "--data-dir", str(tmp), "--n", str(n)]
                recs, wall, rc = run_child(cmd, f"ours fresh n={n}", tmp, args.timeout)
                records += recs
                for rec in recs:
                    if rec["kind"] == "ours-fresh" and rc == 0:
                        rec["outside_s"] = wall
                        rows[n].update(ours_fresh_s=wall, ours_fresh_rec=rec)
                        note(f"    n={n}: {wall:.2f} s from outside (call {rec['call_s']:.2f} s)")

        # 3. DataEval, warm then fresh
        if not args.skip_dataeval:
            py = Path(args.dataeval_python)
            probe = None
            if py.exists() and RUNNER.exists():
                recs, _, rc = run_child([str(py), str(RUNNER), "probe"], "dataeval probe", tmp, 600)
                probe = next((r for r in recs if r.get("kind") == "dataeval-probe"), None) if rc == 0 else None
            if probe is None:
                print(f"DataEval not installed: skipped (no working dataeval under {py})", flush=True)
                report["dataeval"] = None
            else:
                report["dataeval"] = probe
                threads = {b.get("num_threads") for b in probe.get("blas", [])}
                ctx["dataeval_blas_threads"] = "/".join(str(t) for t in sorted(threads, key=str)) or "?"
                note(f"[3] DataEval {probe['version']} warm ({py}) ...")
                cmd = [str(py), str(RUNNER), "warm", "--data-dir", str(tmp), "--warmup-n", str(args.warmup_n), *size_args]
                recs, wall, rc = run_child(cmd, "dataeval warm", tmp, args.timeout)
                records += recs
                for rec in recs:
                    if rec["kind"] == "dataeval-warmup":
                        note(f"    warm-up call on {rec['n']} rows: {rec['wall_s']:.2f} s")
                    elif rec["kind"] == "dataeval-warm":
                        rows[rec["n"]].update(de_warm_s=rec["wall_s"], de_peak_mib=rec["peak_driver_mib"], bg_de=rec["bg_cores"], de_warm_rec=rec)
                        note(f"    n={rec['n']}: {rec['wall_s']:.2f} s, peak {rec['peak_driver_mib']:.0f} MiB")
                if not args.skip_fresh:
                    note("[4] DataEval fresh (one new process per n) ...")
                    for n in sizes:
                        cmd = [str(py), str(RUNNER), "fresh", "--data-dir", str(tmp), "--n", str(n)]
                        recs, wall, rc = run_child(cmd, f"dataeval fresh n={n}", tmp, args.timeout)
                        records += recs
                        for rec in recs:
                            if rec["kind"] == "dataeval-fresh" and rc == 0:
                                rec["outside_s"] = wall
                                rows[n].update(de_fresh_s=wall, de_fresh_rec=rec)
                                note(f"    n={n}: {wall:.2f} s from outside (call {rec['call_s']:.2f} s)")

        for n in sizes:
            r = rows[n]
            r["ratio_warm"] = _ratio(r.get("de_warm_s"), r.get("ours_warm_s"))
            r["ratio_fresh"] = _ratio(r.get("de_fresh_s"), r.get("ours_fresh_s"))
            ag = agreement(tmp, n)
            if ag:
                r.update(ag)

        print_tables(rows, sizes, ctx)
        print()
        print("Targets:")
        tg = targets(rows)
        for name, v in tg:
            print(f"  {name:62s} {v}")
        busy = {n: max((r.get("bg_ours") or 0.0), (r.get("bg_de") or 0.0)) for n, r in rows.items()}
        worst = max(busy.values(), default=0.0)
        if worst > 0.2:
            print(
                f"\nWARNING: other processes kept up to {worst:.1f} of {os.cpu_count()} cores busy during the warm "
                "measurements (column bg): those timings are not clean; rerun on an idle machine."
            )
        la = os.getloadavg()
        print(f"\nload average at end: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; total benchmark time {time.perf_counter() - t_all:.0f} s")
        if args.keep_tmp:
            print(f"temporary files kept in {tmp}")

        if args.json:
            report.update(rows=[rows[n] for n in sizes], targets=dict(tg), records=records, loadavg_end=list(la), context=ctx)
            Path(args.json).write_text(json.dumps(report, indent=2, default=float))
            print(f"figures saved to {args.json}")
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
