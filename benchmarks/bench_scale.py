#!/usr/bin/env python3
"""Scaling benchmark: ``distdataeval.cluster(knn="approx")`` on Zarr data vs fast_hdbscan (and DataEval).

For each n of ``--sizes`` (d = ``--d``), the data are generated once by ``make_embeddings.py``
(Gaussian mixture of 30-60 anisotropic components, 0.5% exact duplicates, 1% near duplicates,
0.5% far outliers, float32, Zarr chunks of 16,384 rows), then timed, one process at a time:

1. ours, warm: one process starts ``distdataeval.runtime.local_client(n_workers=2)``, calls
   ``cluster()`` once on ``--warmup-n`` rows (pynndescent / numba compile in the workers), then
   times ``cluster(path, array="embeddings", knn="approx", client=client)`` for each n. After each
   timed call, the k-NN graph is checked against brute force on ``--recall-rows`` random rows.
2. ours, fresh: a new process per n: imports, cluster start, the call, exit (timed from outside).
3. ours, exact (for n <= ``--exact-max``): one process, ``knn="exact"``: labels for the ARI only.
4. fast_hdbscan 0.3.4, warm (second fit in one process, after a warm-up fit) and fresh (a new
   process per n: import + JIT + loading the array + fit), with DataEval's HDBSCAN parameters:
   ``min_cluster_size`` by DataEval's rule, ``min_samples=1`` (raw single linkage),
   ``allow_single_cluster=True``, EOM, and a 25-NN graph (``knn_k=25``; fast_hdbscan builds it with
   pynndescent because d > 30).
5. optional (``--dataeval``): DataEval 1.1.4's ``cluster()`` in its own venv, warm and fresh, for
   n <= ``--dataeval-max`` (``benchmarks/_dataeval_runner.py``, as ``bench_cluster.py`` runs it).

Memory: a thread samples the RSS of every process of the measured tree every 100 ms (driver,
the LocalCluster's worker processes, anything else they spawn) and keeps each pid's peak and the
peak of the sum; the driver's and the workers' kernel peaks (VmHWM, reset before the call) are
read too. See ``benchmarks/README.md``.

    python benchmarks/bench_scale.py --sizes 100000 300000 1000000 [--d 64] [--data-dir DIR]
        [--skip-fresh] [--skip-warm] [--skip-fast-hdbscan] [--dataeval] [--exact-max N]
        [--json PATH] [--timeout S] [--keep-tmp]

This module's top level imports the standard library only (a fresh child times its imports).
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()  # as early as possible: the fresh child measures its time from here

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

MARK = "@@BENCH@@ "  # prefix of the result lines a child prints on stdout (as bench_cluster.py)
HERE = Path(__file__).resolve().parent
RUNNER = HERE / "_dataeval_runner.py"
DEFAULT_DATAEVAL_PYTHON = "/work/golden-venv/bin/python"
ARRAY = "embeddings"
K = 25  # DataEval's neighbours per row: min(25, n - 1)
N_WORKERS = 2
MIB = 1024.0 * 1024.0


# ---------------------------------------------------------------------------------------------
# shared by every process
# ---------------------------------------------------------------------------------------------


def emit(obj: dict) -> None:
    """Hand one result record to the parent (a JSON line on stdout)."""
    print(MARK + json.dumps(obj, default=_json_default), flush=True)


def _json_default(v):
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dataeval_min_cluster_size(n: int) -> int:
    """DataEval 1.1.4's rule without ``n_clusters``: min(max(5, floor(0.05 n)), 100)."""
    return int(min(max(5, int(n * 0.05)), 100))


def data_path(data_dir: Path, n: int, d: int, seed: int) -> Path:
    return Path(data_dir) / f"emb_n{n}_d{d}_seed{seed}.zarr"


def _read_vm_hwm_mib() -> float | None:
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


class ProcTreeSampler:
    """Per-process peak RSS over this process and all its descendants, and the peak of the sum.

    A thread samples every ``interval`` seconds; the process list is refreshed every ``refresh``
    samples and whenever a process disappears. Also measures the CPU cores kept busy by processes
    *outside* the tree during the window (``bg_cores``; the machine may be shared).
    """

    def __init__(self, interval: float = 0.1, refresh: int = 10) -> None:
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

    def _sample(self, procs: list) -> bool:
        total = 0
        lost = False
        for p in procs:
            try:
                r = p.memory_info().rss
            except self._psutil.Error:
                lost = True
                continue
            total += r
            pid = p.pid
            if r > self.peaks.get(pid, -1):
                self.peaks[pid] = r
            if pid not in self.names:
                try:
                    self.names[pid] = " ".join(p.cmdline()[:3])[:80] or p.name()
                except self._psutil.Error:
                    self.names[pid] = "?"
        self.peak_total = max(self.peak_total, total)
        self.n_procs = max(self.n_procs, len(procs))
        self.samples += 1
        return lost

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
        while not self._stop.wait(self.interval):
            i += 1
            if i % self.refresh == 0:
                procs = self._tree()
            if self._sample(procs):
                procs = self._tree()

    def start(self) -> ProcTreeSampler:
        self.peaks: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.peak_total = 0
        self.n_procs = 0
        self.samples = 0
        procs = self._tree()
        self.hwm_reset = _reset_vm_hwm()
        self._sample(procs)
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
        self._sample(procs)
        hwm = _read_vm_hwm_mib() if self.hwm_reset else None
        me = self.me.pid
        driver = self.peaks.get(me, 0) / MIB
        if hwm is not None:
            driver = max(driver, hwm)
        tree_cpu = cpu1 - self._cpu0
        return {
            "peak_driver_mib": driver,
            "driver_hwm_mib": hwm,
            "peak_total_mib": max(self.peak_total / MIB, driver),
            "pid_peaks_mib": {str(pid): v / MIB for pid, v in self.peaks.items() if pid != me},
            "pid_names": {str(pid): name for pid, name in self.names.items() if pid != me},
            "n_procs": self.n_procs,
            "rss_samples": self.samples,
            "tree_cpu_s": tree_cpu,
            "bg_cores": max(0.0, (sys1 - self._sys0) - tree_cpu) / wall if wall > 0 else 0.0,
        }


def _sampler():
    try:
        return ProcTreeSampler()
    except ImportError:
        return None


def _stop(sampler) -> dict:
    return sampler.stop() if sampler is not None else {}


def blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "num_threads", "threading_layer")
    return [{k: v for k, v in d.items() if k in keep} for d in threadpool_info()]


def _versions(mods) -> dict:
    out = {"python": platform.python_version()}
    for mod in mods:
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - reporting only
            pass
    return out


def _materialize(x, client=None):
    """NumPy from a Dask collection: on ``client`` when given (a result persisted on a client that
    is not the default one cannot be computed by the local scheduler), else ``.compute()``."""
    if hasattr(x, "dask") or hasattr(x, "__dask_graph__"):
        x = client.compute(x).result() if client is not None else x.compute()
    return x


def _full(a, client=None):
    """A whole result array as NumPy, whether it is NumPy, Zarr or Dask."""
    import numpy as np

    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "oindex"):  # zarr
        return np.asarray(a[...])
    return np.asarray(_materialize(a, client))


def _take_rows(a, rows, client=None):
    """``a[rows]`` (rows sorted) as NumPy, for NumPy, Zarr or Dask arrays."""
    import numpy as np

    if isinstance(a, np.ndarray):
        return a[rows]
    if hasattr(a, "oindex"):  # zarr
        return np.asarray(a.oindex[rows])
    return np.asarray(_materialize(a[rows], client))


# ---------------------------------------------------------------------------------------------
# independent k-NN check (brute force on a row sample)
# ---------------------------------------------------------------------------------------------


def sample_rows(n: int, n_rows: int, seed: int):
    """The sorted random rows of the independent k-NN check."""
    import numpy as np

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(77,)))
    return np.sort(rng.choice(n, size=min(n_rows, n), replace=False))


def graph_rows(r, n_rows: int, seed: int, client=None):
    """(rows, k_neighbors[rows], k_distances[rows]) of a result, as NumPy."""
    import numpy as np

    n = int(r.k_neighbors.shape[0])
    rows = sample_rows(n, n_rows, seed)
    ids = _take_rows(r.k_neighbors, rows, client).astype(np.int64)
    dist = _take_rows(r.k_distances, rows, client).astype(np.float64)
    return rows, ids, dist


def knn_check(path: str, array: str, rows, a_ids, a_dist) -> dict:
    """recall@k of a k-NN graph's ``rows`` (ids ``a_ids``, distances ``a_dist``) against brute force.

    The exact neighbours (self excluded by index) come from a scan of the whole store in blocks:
    per block, candidates are ranked in float32 (faiss ``knn`` if importable, else a NumPy GEMM)
    on data centred on the queries' mean, the best ``k + 16`` of the block get exact float64
    distances by direct differences, and the running best ``k + 16`` are kept. A row's recall is
    ``min(k, #{approx distances <= exact k-th distance * (1 + 1e-6)}) / k`` (tie-tolerant: an
    exact duplicate found in place of another is a hit). The same scan collects the rows named in
    ``k_neighbors`` to recompute the reported distances (``kdist_max_rel_err`` where the true distance
    is positive, ``kdist_max_abs_err_at_zero`` for exact duplicates).
    """
    import numpy as np
    import zarr

    t0 = time.perf_counter()
    arr = zarr.open_group(str(path), mode="r")[array]
    n, d = int(arr.shape[0]), int(arr.shape[1])
    m = rows.size
    k = a_dist.shape[1]
    keep = min(k + 16, n - 1)
    q = np.asarray(arr.oindex[rows], dtype=np.float64)
    center = q.mean(axis=0)
    qc64 = q - center
    qc32 = np.ascontiguousarray(qc64, dtype=np.float32)
    try:
        import faiss

        engine = f"faiss {faiss.__version__} knn ({faiss.omp_get_max_threads()} threads)"
    except ImportError:
        faiss = None
        engine = "numpy float32 GEMM"
    chunk = int(arr.chunks[0])
    step = max(chunk, (65536 if faiss is not None else 8192) // chunk * chunk)
    best_d = np.full((m, keep), np.inf)
    best_i = np.full((m, keep), -1, dtype=np.int64)
    needed = np.unique(a_ids[a_ids >= 0])
    nbr_x = np.zeros((needed.size, d))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        block = np.asarray(arr[lo:hi])
        bc32 = np.ascontiguousarray(block - center.astype(np.float32), dtype=np.float32)
        take = min(keep + 1, hi - lo)
        if faiss is not None:
            _, cand = faiss.knn(qc32, bc32, take)
        else:
            score = (bc32**2).sum(axis=1)[None, :] - 2.0 * (qc32 @ bc32.T)  # + |q|^2: same rank
            cand = np.argpartition(score, take - 1, axis=1)[:, :take] if take < hi - lo else np.tile(np.arange(hi - lo), (m, 1))
            del score
        cand = cand.astype(np.int64)
        valid = cand >= 0
        cand_c = np.where(valid, cand, 0)
        diff = block[cand_c].astype(np.float64) - (q[:, None, :])
        dist = np.sqrt((diff**2).sum(axis=2))
        ids = cand_c + lo
        dist[~valid | (ids == rows[:, None])] = np.inf  # self excluded by index
        all_d = np.concatenate([best_d, dist], axis=1)
        all_i = np.concatenate([best_i, ids], axis=1)
        order = np.lexsort((all_i, all_d), axis=1)[:, :keep]  # by (distance, id)
        best_d = np.take_along_axis(all_d, order, axis=1)
        best_i = np.take_along_axis(all_i, order, axis=1)
        sel = np.flatnonzero((needed >= lo) & (needed < hi))
        if sel.size:
            nbr_x[sel] = block[needed[sel] - lo]
    kth = best_d[:, k - 1 : k]
    hits = np.minimum((a_dist <= kth * (1 + 1e-6) + 1e-12).sum(axis=1), k)
    row_recall = hits / k
    exact_ids = best_i[:, :k]
    id_hits = np.array([np.intersect1d(exact_ids[i], a_ids[i]).size for i in range(m)])
    # reported distances vs recomputed from the rows they name
    pos = np.searchsorted(needed, np.where(a_ids >= 0, a_ids, needed[0] if needed.size else 0))
    rec = np.sqrt(((nbr_x[pos] - q[:, None, :]) ** 2).sum(axis=2))
    err = np.abs(a_dist - rec)
    err[a_ids < 0] = 0.0
    pos_d = rec > 0
    rel = err[pos_d] / rec[pos_d]
    at_zero = err[~pos_d]
    return {
        "rows": int(m),
        "k": int(k),
        "engine": engine,
        "recall": float(row_recall.mean()),
        "recall_min_row": float(row_recall.min()),
        "rows_below_0.9": int((row_recall < 0.9).sum()),
        "id_recall": float(id_hits.mean() / k),
        "self_in_neighbors": int((a_ids == rows[:, None]).sum()),
        "missing_neighbors": int((a_ids < 0).sum()),
        "repeated_neighbors": int(sum(k - np.unique(r[r >= 0]).size - int((r < 0).sum()) for r in a_ids)),
        "unsorted_rows": int((np.diff(a_dist, axis=1) < 0).any(axis=1).sum()),
        "kdist_max_rel_err": float(rel.max()) if rel.size else 0.0,  # where the true distance > 0
        "kdist_max_abs_err_at_zero": float(at_zero.max()) if at_zero.size else 0.0,  # exact duplicates
        "seconds": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------------------------------------
# children: ours (warm / fresh / exact)
# ---------------------------------------------------------------------------------------------


def _worker_pids(client) -> dict:
    return {addr: int(pid) for addr, pid in client.run(os.getpid).items()}


def _worker_reset_hwm() -> bool:
    return _reset_vm_hwm()


def _worker_hwm() -> float | None:
    return _read_vm_hwm_mib()


def _split_memory(mem: dict, pids_before: dict, pids_after: dict, hwm: dict) -> dict:
    """Driver / worker / other split of a sampler record (workers: the pids the client reports)."""
    worker_pids = {str(p) for p in (*pids_before.values(), *pids_after.values())}
    peaks = mem.get("pid_peaks_mib", {})
    workers = {pid: v for pid, v in peaks.items() if pid in worker_pids}
    for addr, h in (hwm or {}).items():
        pid = str(pids_after.get(addr, ""))
        if h is not None and pid:
            workers[pid] = max(workers.get(pid, 0.0), float(h))
    others = {pid: v for pid, v in peaks.items() if pid not in worker_pids}
    return {
        **mem,
        "worker_peaks_mib": workers,
        "max_worker_mib": max(workers.values()) if workers else None,
        "other_peaks_mib": others,
        "worker_restarted": set(pids_before.values()) != set(pids_after.values()),
    }


def _timings(r) -> dict:
    import numpy as np

    out = {}
    for key, v in r.timings.items():
        if isinstance(v, (bool, np.bool_)):
            out[key] = bool(v)
        elif isinstance(v, (int, np.integer)):
            out[key] = int(v)
        elif isinstance(v, (float, np.floating)):
            out[key] = float(v)
    return out


def _save_labels(path: Path, r, client=None) -> None:
    import numpy as np

    np.savez(path, raw=_full(r.raw_labels, client).astype(np.int32), clusters=_full(r.clusters, client).astype(np.int32))


def _result_record(kind: str, n: int, r, wall: float, client=None) -> dict:
    import numpy as np

    raw = _full(r.raw_labels, client)
    return {
        "kind": kind,
        "n": n,
        "call_s": wall,
        "timings": _timings(r),
        "knn_method": r.knn_method,
        "knn_recall": None if r.knn_recall is None else float(r.knn_recall),
        "min_cluster_size": int(r.min_cluster_size),
        "n_clusters": int(np.unique(raw[raw >= 0]).size),
        "noise": int((raw < 0).sum()),
        "n_knn_components": int(r.n_knn_components),
        "k_neighbors_type": f"{type(r.k_neighbors).__module__}.{type(r.k_neighbors).__name__}",
        "k_distances_type": f"{type(r.k_distances).__module__}.{type(r.k_distances).__name__}",
    }


def _start_client(args):
    import distdataeval as dde
    from distdataeval.runtime import local_client

    if args.dde_seed >= 0:
        dde.config.set_seed(args.dde_seed)
    return dde, local_client(n_workers=N_WORKERS)


def _config_record(client) -> dict:
    info = client.scheduler_info().get("workers", {})
    return {
        "kind": "ours-config",
        "n_workers": len(info),
        "threads_per_worker": sorted({int(w.get("nthreads", 0)) for w in info.values()}),
        "memory_limit_mib": sorted({int(w.get("memory_limit", 0) or 0) / MIB for w in info.values()}),
        "versions": _versions(("distdataeval", "numpy", "dask", "distributed", "numba", "pynndescent", "zarr")),
        "blas": blas_info(),
    }


def _timed_call(dde, client, path: str, knn: str):
    gc.collect()
    pids0 = _worker_pids(client)
    client.run(_worker_reset_hwm)
    sampler = _sampler()
    if sampler is not None:
        sampler.start()
    t0 = time.perf_counter()
    r = dde.cluster(path, array=ARRAY, knn=knn, client=client)
    wall = time.perf_counter() - t0
    mem = _stop(sampler)
    hwm = client.run(_worker_hwm)
    pids1 = _worker_pids(client)
    return r, wall, _split_memory(mem, pids0, pids1, hwm)


def child_ours_warm(args) -> int:
    out = Path(args.out_dir)
    dde, client = _start_client(args)
    emit(_config_record(client))
    t0 = time.perf_counter()
    dde.cluster(args.warmup_path, array=ARRAY, knn="approx", client=client)
    emit({"kind": "ours-warmup", "n": args.warmup_n, "wall_s": time.perf_counter() - t0})
    for n, path in zip(args.sizes, args.paths):
        r, wall, mem = _timed_call(dde, client, path, "approx")
        _save_labels(out / f"labels_ours_approx_{n}.npz", r, client)
        emit({**_result_record("ours-warm", n, r, wall, client), **mem})
        if args.recall_rows > 0:
            rows, ids, dist = graph_rows(r, args.recall_rows, args.seed, client)
            del r
            emit({"kind": "knn-check", "n": n, **knn_check(path, ARRAY, rows, ids, dist)})
        else:
            del r
        gc.collect()
    return 0


def child_ours_fresh(args) -> int:
    t_start = time.perf_counter()
    import numpy as np  # noqa: F401  (part of what a job imports)

    import distdataeval  # noqa: F401

    t_imported = time.perf_counter()
    dde, client = _start_client(args)
    t_started = time.perf_counter()
    r, wall, mem = _timed_call(dde, client, args.paths[0], "approx")
    t_done = time.perf_counter()
    n = args.sizes[0]
    emit(
        {
            **_result_record("ours-fresh", n, r, wall, client),
            **mem,
            "interpreter_to_main_s": t_start - _T0,
            "import_s": t_imported - t_start,
            "start_cluster_s": t_started - t_imported,
            "in_process_s": t_done - _T0,
        }
    )
    if args.check:  # no warm run: this process also provides the labels and the k-NN check
        t_extra = time.perf_counter()
        _save_labels(Path(args.out_dir) / f"labels_ours_approx_{n}.npz", r, client)
        sample = graph_rows(r, args.recall_rows, args.seed, client) if args.recall_rows > 0 else None
        del r
        from distdataeval.runtime.client import close_local_cluster

        t_close = time.perf_counter()
        close_local_cluster()
        # the parent's outside time stops at this line, minus the extra work done before closing
        emit({"kind": "ours-fresh-closed", "n": n, "extra_s": t_close - t_extra, "close_s": time.perf_counter() - t_close})
        if sample is not None:
            emit({"kind": "knn-check", "n": n, **knn_check(args.paths[0], ARRAY, *sample)})
    return 0  # the LocalCluster closes at exit (atexit): counted in the outside wall time


def child_ours_exact(args) -> int:
    out = Path(args.out_dir)
    dde, client = _start_client(args)
    t0 = time.perf_counter()
    dde.cluster(args.warmup_path, array=ARRAY, knn="exact", client=client)
    emit({"kind": "ours-exact-warmup", "n": args.warmup_n, "wall_s": time.perf_counter() - t0})
    for n, path in zip(args.sizes, args.paths):
        r, wall, mem = _timed_call(dde, client, path, "exact")
        _save_labels(out / f"labels_ours_exact_{n}.npz", r, client)
        emit({**_result_record("ours-exact", n, r, wall, client), **mem})
        del r
        gc.collect()
    return 0


# ---------------------------------------------------------------------------------------------
# children: fast_hdbscan (warm / fresh)
# ---------------------------------------------------------------------------------------------


def _fast_model(fast_hdbscan, n: int, knn_k: int):
    return fast_hdbscan.HDBSCAN(
        min_cluster_size=dataeval_min_cluster_size(n),
        min_samples=1,  # fast_hdbscan: neighbours excluding the point; 1 = core distance 0
        allow_single_cluster=True,
        cluster_selection_method="eom",
        knn_k=knn_k,
    )


def _load_zarr(path: str):
    import numpy as np
    import zarr

    return np.asarray(zarr.open_group(str(path), mode="r")[ARRAY][...])


def _fast_fit(fast_hdbscan, x, knn_k: int):
    import numpy as np

    gc.collect()
    model = _fast_model(fast_hdbscan, x.shape[0], knn_k)
    sampler = _sampler()
    if sampler is not None:
        sampler.start()
    t0 = time.perf_counter()
    model.fit(x)
    wall = time.perf_counter() - t0
    mem = _stop(sampler)
    lab = np.asarray(model.labels_)
    return lab, {
        "call_s": wall,
        "min_cluster_size": int(model.min_cluster_size),
        "n_clusters": int(np.unique(lab[lab >= 0]).size),
        "noise": int((lab < 0).sum()),
        **mem,
    }


def child_fast_warm(args) -> int:
    import numba
    import numpy as np

    import fast_hdbscan

    emit(
        {
            "kind": "fast-config",
            "versions": _versions(("fast_hdbscan", "numba", "numpy", "pynndescent", "sklearn")),
            "numba_threads": numba.get_num_threads(),
            "blas": blas_info(),
        }
    )
    xw = _load_zarr(args.warmup_path)
    t0 = time.perf_counter()
    _fast_model(fast_hdbscan, xw.shape[0], args.fast_knn_k).fit(xw)
    emit({"kind": "fast-warmup", "n": xw.shape[0], "wall_s": time.perf_counter() - t0})
    del xw
    for n, path in zip(args.sizes, args.paths):
        t0 = time.perf_counter()
        x = _load_zarr(path)
        load_s = time.perf_counter() - t0
        lab, rec = _fast_fit(fast_hdbscan, x, args.fast_knn_k)
        np.savez(Path(args.out_dir) / f"labels_fast_{n}.npz", raw=lab.astype(np.int32))
        emit({"kind": "fast-warm", "n": n, "load_s": load_s, **rec})
        del x, lab
        gc.collect()
    return 0


def child_fast_fresh(args) -> int:
    t_start = time.perf_counter()
    import numpy as np
    import zarr  # noqa: F401

    import fast_hdbscan

    t_imported = time.perf_counter()
    import numba

    x = _load_zarr(args.paths[0])
    t_loaded = time.perf_counter()
    lab, rec = _fast_fit(fast_hdbscan, x, args.fast_knn_k)
    n = args.sizes[0]
    emit(
        {
            "kind": "fast-fresh",
            "n": n,
            "numba_threads": numba.get_num_threads(),
            **rec,
            "interpreter_to_main_s": t_start - _T0,
            "import_s": t_imported - t_start,
            "load_s": t_loaded - t_imported,
            "in_process_s": time.perf_counter() - _T0,
        }
    )
    if args.check:
        np.savez(Path(args.out_dir) / f"labels_fast_{n}.npz", raw=lab.astype(np.int32))
    return 0


# ---------------------------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------------------------


def run_child(cmd: list[str], label: str, log_dir: Path, timeout: float) -> tuple[list[dict], float, int]:
    """Run one child (its own process group) to completion; return its records, wall time, rc.

    Each record gets ``_t_recv``: seconds from the child's start to the line's arrival. On timeout
    the child's whole process group (it and its worker processes) is killed.
    """
    log_path = log_dir / f"{label.replace(' ', '_').replace('=', '').replace('/', '_')}.stderr.log"
    records: list[dict] = []
    with open(log_path, "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1, start_new_session=True)

        def kill() -> None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        killer = threading.Timer(timeout, kill)
        killer.start()
        try:
            for line in proc.stdout:
                line = line.rstrip("\n")
                if line.startswith(MARK):
                    rec = json.loads(line[len(MARK) :])
                    rec["_t_recv"] = time.perf_counter() - t0
                    records.append(rec)
                elif line.strip():
                    print(f"    [{label}] {line}", file=sys.stderr, flush=True)
            rc = proc.wait()
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
    if rc != 0:
        tail = log_path.read_text().splitlines()[-30:]
        print(f"  !! {label} exited with {rc}{' (killed: timeout?)' if rc < 0 else ''}; last stderr lines:", file=sys.stderr)
        for line in tail:
            print(f"     {line}", file=sys.stderr)
    return records, wall, rc


def machine_info() -> dict:
    info = {
        "cpu": platform.processor() or platform.machine(),
        "os_cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
    }
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

        info["ram_gib"] = psutil.virtual_memory().total / 1024**3
    except ImportError:
        pass
    return info


def prepare_data(data_dir: Path, sizes: list[int], d: int, seed: int, chunk_rows: int | None) -> dict:
    """Generate (or reuse) one Zarr store per n; return {n: metadata}."""
    sys.dont_write_bytecode = True  # no __pycache__ in benchmarks/
    sys.path.insert(0, str(HERE))
    from make_embeddings import GENERATOR_VERSION, make_embeddings, read_meta

    metas = {}
    for n in sizes:
        path = data_path(data_dir, n, d, seed)
        meta = read_meta(path)
        if (
            meta is not None
            and meta.get("n") == n
            and meta.get("d") == d
            and meta.get("seed") == seed
            and meta.get("generator_version") == GENERATOR_VERSION
            and (chunk_rows is None or meta.get("chunk_rows") == chunk_rows)
        ):
            note(f"    n={n}: reusing {path}")
        else:
            meta = make_embeddings(path, n, d, seed, chunk_rows=chunk_rows, array=ARRAY)
            note(f"    n={n}: generated {path} in {meta['seconds']:.1f} s")
        metas[n] = meta
    return metas


def _f(v, fmt: str = ".2f") -> str:
    if v is None:
        return "-"
    try:
        return format(v, fmt)
    except (TypeError, ValueError):
        return str(v)


def _ratio(a, b):
    return a / b if a is not None and b else None


def _ari(a, b):
    if a is None or b is None:
        return None
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def agreement(out_dir: Path, n: int, meta: dict, data_file: Path) -> dict:
    """ARIs between every pair of labelings available for n, and against the generator's truth."""
    import numpy as np
    import zarr

    def load(name, key="raw"):
        p = out_dir / name
        if not p.exists():
            return None
        with np.load(p) as z:
            return z[key] if key in z.files else None

    approx_raw, approx_cl = load(f"labels_ours_approx_{n}.npz"), load(f"labels_ours_approx_{n}.npz", "clusters")
    exact_raw, exact_cl = load(f"labels_ours_exact_{n}.npz"), load(f"labels_ours_exact_{n}.npz", "clusters")
    fast = load(f"labels_fast_{n}.npz")
    de = load(f"dataeval_{n}.npz", "clusters")  # written by _dataeval_runner.py into out_dir/dataeval
    if de is None:
        p = out_dir / "dataeval" / f"dataeval_{n}.npz"
        if p.exists():
            with np.load(p) as z:
                de = z["clusters"]
    truth = np.asarray(zarr.open_group(str(data_file), mode="r")["true_labels"][...])
    return {
        "ari_approx_exact_raw": _ari(approx_raw, exact_raw),
        "ari_approx_exact_clusters": _ari(approx_cl, exact_cl),
        "ari_ours_fast": _ari(approx_raw, fast),
        "ari_exact_fast": _ari(exact_raw, fast),
        "ari_ours_dataeval": _ari(approx_raw, de),
        "ari_exact_dataeval": _ari(exact_raw, de),
        "ari_truth_ours_raw": _ari(truth, approx_raw),
        "ari_truth_ours_clusters": _ari(truth, approx_cl),
        "ari_truth_exact_raw": _ari(truth, exact_raw),
        "ari_truth_fast": _ari(truth, fast),
        "ari_truth_dataeval": _ari(truth, de),
        "clusters_exact": None if exact_raw is None else int(np.unique(exact_raw[exact_raw >= 0]).size),
        "noise_exact": None if exact_raw is None else int((exact_raw < 0).sum()),
        "clusters_dataeval": None if de is None else int(np.unique(de[de >= 0]).size),
        "noise_dataeval": None if de is None else int((de < 0).sum()),
    }


def _stage_keys(recs: list[dict]) -> list[str]:
    keys: list[str] = []
    for rec in recs:
        for key, v in (rec or {}).get("timings", {}).items():
            if isinstance(v, float) and key not in keys:
                keys.append(key)
    return keys


def print_tables(rows: dict, sizes: list[int], metas: dict, ctx: dict) -> None:
    print()
    print(
        "Times in seconds, memory in MiB (peak RSS). total = the call (warm) or the whole process from outside\n"
        "(fresh: interpreter, imports, cluster start, load, call, exit). ours: LocalCluster of "
        f"{ctx.get('n_workers', N_WORKERS)} worker processes x {ctx.get('threads_per_worker', [1])} thread;\n"
        + (f"fast_hdbscan: one process, {ctx['fast_threads']} numba threads; " if "fast_threads" in ctx else "")
        + "DataEval: one process, default threads."
    )
    for n in sizes:
        r = rows[n]
        meta = metas.get(n, {})
        c = meta.get("counts", {})
        print()
        print(
            f"=== n = {n:,}  d = {meta.get('d')}  ({meta.get('n_clusters')} true clusters; normal {c.get('normal')}, "
            f"exact dup {c.get('exact_dup')}, near dup {c.get('near_dup')}, outliers {c.get('outlier')}; "
            f"min_cluster_size {dataeval_min_cluster_size(n)}) ==="
        )
        runs = [
            ("ours fresh (approx)", r.get("ours_fresh"), r.get("ours_fresh_total")),
            ("ours warm (approx)", r.get("ours_warm"), None),
            ("ours exact (warm)", r.get("ours_exact"), None),
            ("fast_hdbscan fresh", r.get("fast_fresh"), r.get("fast_fresh_total")),
            ("fast_hdbscan warm", r.get("fast_warm"), None),
            ("DataEval fresh", r.get("de_fresh"), r.get("de_fresh_total")),
            ("DataEval warm", r.get("de_warm"), None),
        ]
        stages = _stage_keys([rec for _, rec, _ in runs])
        cols = [("run", 20), ("total", 8), ("call", 8)] + [(s[:8], max(6, len(s[:8]))) for s in stages] + [
            ("rest", 6), ("drv MiB", 7), ("max wkr", 7), ("tot MiB", 7), ("clusters", 8), ("noise", 7), ("bg", 4),
        ]
        head = " ".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, (h, w) in enumerate(cols))
        print(head)
        print("-" * len(head))
        for name, rec, outside in runs:
            if rec is None:
                continue
            t = rec.get("timings", {})
            call = rec.get("call_s")
            staged = [t[s] for s in stages if isinstance(t.get(s), float)]
            rest = call - sum(staged) if staged and call is not None else None
            total = outside if outside is not None else call
            vals = [name, _f(total), _f(call)] + [_f(t.get(s)) for s in stages] + [
                _f(rest), _f(rec.get("peak_driver_mib"), ".0f"), _f(rec.get("max_worker_mib"), ".0f"),
                _f(rec.get("peak_total_mib"), ".0f"), _f(rec.get("n_clusters"), "d"), _f(rec.get("noise"), "d"),
                _f(rec.get("bg_cores"), ".1f"),
            ]
            print(" ".join(f"{v:>{w}}" if i else f"{v:<{w}}" for i, (v, (_, w)) in enumerate(zip(vals, cols))))
        ow, of = (r.get("ours_warm") or {}).get("call_s"), r.get("ours_fresh_total")
        fw, ff = (r.get("fast_warm") or {}).get("call_s"), r.get("fast_fresh_total")
        dw, df = (r.get("de_warm") or {}).get("call_s"), r.get("de_fresh_total")
        print(
            f"ratios (> 1: ours faster): fast_hdbscan/ours warm {_f(_ratio(fw, ow))}, fresh {_f(_ratio(ff, of))}; "
            f"DataEval/ours warm {_f(_ratio(dw, ow))}, fresh {_f(_ratio(df, of))}"
        )
        fr = r.get("ours_fresh") or {}
        if fr:
            print(
                f"ours fresh split: interpreter+imports {_f(fr.get('interpreter_to_main_s', 0) + fr.get('import_s', 0))}, "
                f"cluster start {_f(fr.get('start_cluster_s'))}, call {_f(fr.get('call_s'))}, outside {_f(of)}; "
                f"fast_hdbscan fresh: import {_f((r.get('fast_fresh') or {}).get('import_s'))}, "
                f"load {_f((r.get('fast_fresh') or {}).get('load_s'))}, fit {_f((r.get('fast_fresh') or {}).get('call_s'))}"
            )
        chk = r.get("knn_check") or {}
        src = r.get("ours_warm") or r.get("ours_fresh") or {}
        print(
            f"recall@{K}: result.knn_recall {_f(src.get('knn_recall'), '.4f')}; independent ({chk.get('rows', '-')} rows, "
            f"{chk.get('engine', '-')}): {_f(chk.get('recall'), '.4f')} (min row {_f(chk.get('recall_min_row'), '.2f')}, "
            f"rows < 0.9: {chk.get('rows_below_0.9', '-')}, id recall {_f(chk.get('id_recall'), '.4f')}); "
            f"k_distances vs recomputed: max rel err {_f(chk.get('kdist_max_rel_err'), '.1e')}, "
            f"max abs err at distance 0 {_f(chk.get('kdist_max_abs_err_at_zero'), '.1e')}"
            + (
                f"; self {chk['self_in_neighbors']}, repeated {chk['repeated_neighbors']}, missing {chk['missing_neighbors']}, "
                f"unsorted rows {chk['unsorted_rows']}"
                if chk
                else ""
            )
        )
        print(
            f"ARI (raw labels, -1 = noise): approx/exact {_f(r.get('ari_approx_exact_raw'), '.4f')} "
            f"(clusters, noise reassigned: {_f(r.get('ari_approx_exact_clusters'), '.4f')}); ours/fast_hdbscan "
            f"{_f(r.get('ari_ours_fast'), '.4f')}; exact/fast_hdbscan {_f(r.get('ari_exact_fast'), '.4f')}; "
            f"ours/DataEval {_f(r.get('ari_ours_dataeval'), '.4f')}; exact/DataEval {_f(r.get('ari_exact_dataeval'), '.4f')}"
        )
        print(
            f"ARI vs generator truth: ours {_f(r.get('ari_truth_ours_raw'), '.4f')} (clusters {_f(r.get('ari_truth_ours_clusters'), '.4f')}), "
            f"exact {_f(r.get('ari_truth_exact_raw'), '.4f')}, fast_hdbscan {_f(r.get('ari_truth_fast'), '.4f')}, "
            f"DataEval {_f(r.get('ari_truth_dataeval'), '.4f')}"
        )
        counts = {}
        for tag, rec in (("warm", r.get("ours_warm")), ("fresh", r.get("ours_fresh")), ("exact", r.get("ours_exact"))):
            for key, v in ((rec or {}).get("timings") or {}).items():
                if not isinstance(v, float):
                    counts.setdefault(key, []).append(f"{v} ({tag})")
        if counts:
            print("ours counters: " + "; ".join(f"{key} {', '.join(v)}" for key, v in counts.items()))
        wk = (r.get("ours_warm") or r.get("ours_fresh") or {}).get("worker_peaks_mib") or {}
        if wk:
            print("ours worker peaks MiB (pid: peak): " + ", ".join(f"{pid}: {v:.0f}" for pid, v in wk.items()))
        for tag in ("ours_warm", "ours_fresh", "ours_exact"):
            if (r.get(tag) or {}).get("worker_restarted"):
                print(f"WARNING: a worker process was replaced during {tag.replace('_', ' ')} (killed / restarted?)")
        if (src.get("min_cluster_size") is not None) and src.get("min_cluster_size") != dataeval_min_cluster_size(n):
            print(f"WARNING: ours used min_cluster_size {src.get('min_cluster_size')}, the rule gives {dataeval_min_cluster_size(n)}")


def scaling_lines(rows: dict, sizes: list[int]) -> list[str]:
    series = {
        "ours warm": lambda r: (r.get("ours_warm") or {}).get("call_s"),
        "ours fresh": lambda r: r.get("ours_fresh_total"),
        "fast_hdbscan warm": lambda r: (r.get("fast_warm") or {}).get("call_s"),
        "fast_hdbscan fresh": lambda r: r.get("fast_fresh_total"),
    }
    out = []
    s = sorted(sizes)
    pairs = [(a, 2 * a) for a in s if 2 * a in s]
    if pairs:
        for a, b in pairs:
            parts = [f"{name} {_f(_ratio(get(rows[b]), get(rows[a])))}" for name, get in series.items()]
            out.append(f"doubling n={a:,} -> {b:,}: time(2n)/time(n): " + ", ".join(parts))
    else:
        out.append("doubling: no n and 2n both in --sizes")
    for a, b in zip(s, s[1:]):
        parts = []
        for name, get in series.items():
            ta, tb = get(rows[a]), get(rows[b])
            parts.append(f"{name} {_f(math.log(tb / ta) / math.log(b / a)) if ta and tb else '-'}")
        out.append(f"exponent log(t2/t1)/log(n2/n1), n={a:,} -> {b:,}: " + ", ".join(parts))
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100000, 300000, 1000000], help="values of n (default: %(default)s)")
    p.add_argument("--d", type=int, default=64, help="dimension (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data and of the recall sample (default: %(default)s)")
    p.add_argument("--dde-seed", type=int, default=0, help="distdataeval.config.set_seed in our processes; -1: leave unset (default: %(default)s)")
    p.add_argument("--data-dir", help="where the Zarr stores are made or reused (kept); default: the temporary directory")
    p.add_argument("--chunk-rows", type=int, default=None, help="Zarr chunk rows of generated data (default: make_embeddings' 16384)")
    p.add_argument("--warmup-n", type=int, default=20000, help="rows of the warm-up call (default: %(default)s)")
    p.add_argument("--skip-fresh", action="store_true", help="no fresh-process runs")
    p.add_argument("--skip-warm", action="store_true", help="no warm runs")
    p.add_argument("--skip-fast-hdbscan", action="store_true", help="do not run fast_hdbscan")
    p.add_argument("--skip-ours", action="store_true", help="do not run distdataeval (only the other engines)")
    p.add_argument("--fast-knn-k", type=int, default=K, help="fast_hdbscan knn_k (its k-NN graph for d > 30; default: %(default)s)")
    p.add_argument("--dataeval", action="store_true", help="also run DataEval 1.1.4's cluster() (n <= --dataeval-max)")
    p.add_argument("--dataeval-max", type=int, default=300000, help="largest n for DataEval (default: %(default)s)")
    p.add_argument("--dataeval-python", default=DEFAULT_DATAEVAL_PYTHON, help="interpreter of DataEval's venv (default: %(default)s)")
    p.add_argument("--exact-max", type=int, default=200000, help="largest n for the exact-mode ARI run; 0: none (default: %(default)s)")
    p.add_argument("--recall-rows", type=int, default=2000, help="rows of the independent k-NN check; 0: none (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also save all figures and records as JSON")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds allowed per child process (default: %(default)s)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (data unless --data-dir, labels, logs)")
    # internal: run as a child
    p.add_argument(
        "--_child", choices=("ours-warm", "ours-fresh", "ours-exact", "fast-warm", "fast-fresh"), help=argparse.SUPPRESS
    )
    p.add_argument("--out-dir", help=argparse.SUPPRESS)
    p.add_argument("--paths", nargs="+", default=[], help=argparse.SUPPRESS)
    p.add_argument("--warmup-path", help=argparse.SUPPRESS)
    p.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if any(n < 2 for n in args.sizes) or args.warmup_n < 2 or args.d < 1:
        p.error("sizes and --warmup-n must be >= 2, --d >= 1")
    return args


CHILDREN = {
    "ours-warm": child_ours_warm,
    "ours-fresh": child_ours_fresh,
    "ours-exact": child_ours_exact,
    "fast-warm": child_fast_warm,
    "fast-fresh": child_fast_fresh,
}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._child:
        return CHILDREN[args._child](args)

    try:
        import psutil  # noqa: F401
    except ImportError:
        print("psutil is needed for the memory figures: pip install psutil (or pip install -e '.[bench]')", file=sys.stderr)
        return 2

    sizes = list(dict.fromkeys(args.sizes))
    m = machine_info()
    print(
        f"bench_scale: {m['cpu']}, {m['os_cpu_count']} cores, {m.get('ram_gib', 0):.1f} GiB RAM, Python {m['python']}; "
        f"load average {' '.join(f'{v:.2f}' for v in m['loadavg_start'])}"
    )
    print(f"sizes {sizes}, d = {args.d}, data seed {args.seed}, distdataeval seed {args.dde_seed}, warm-up {args.warmup_n} rows")
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    data_dir = Path(args.data_dir) if args.data_dir else tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    rows: dict[int, dict] = {n: {"n": n} for n in sizes}
    ctx: dict = {}
    report: dict = {"machine": m, "args": {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("out_dir", "paths", "warmup_path", "check")}}
    records: list[dict] = []
    try:
        note(f"[0] data ({data_dir}) ...")
        metas = prepare_data(data_dir, list(dict.fromkeys([args.warmup_n, *sizes])), args.d, args.seed, args.chunk_rows)
        report["data"] = {str(n): {k: v for k, v in meta.items() if k not in ("weights", "scales", "alphas", "cluster_sizes")} for n, meta in metas.items()}
        path_of = {n: str(data_path(data_dir, n, args.d, args.seed)) for n in metas}
        me = [sys.executable, str(Path(__file__).resolve())]
        common = ["--out-dir", str(tmp), "--warmup-path", path_of[args.warmup_n], "--warmup-n", str(args.warmup_n),
                  "--seed", str(args.seed), "--dde-seed", str(args.dde_seed), "--recall-rows", str(args.recall_rows),
                  "--fast-knn-k", str(args.fast_knn_k)]

        def child(kind: str, ns: list[int], label: str, check: bool = False):
            cmd = [*me, "--_child", kind, *common, "--sizes", *map(str, ns), "--paths", *(path_of[n] for n in ns)]
            if check:
                cmd.append("--check")
            recs, wall, rc = run_child(cmd, label, tmp, args.timeout)
            records.extend({**rec, "_child": label} for rec in recs)
            return recs, wall, rc

        # 1. ours, warm
        if not args.skip_warm and not args.skip_ours:
            note("[1] ours warm (approx) ...")
            recs, _, _ = child("ours-warm", sizes, "ours warm")
            for rec in recs:
                kind = rec["kind"]
                if kind == "ours-config":
                    ctx.update(n_workers=rec["n_workers"], threads_per_worker=rec["threads_per_worker"])
                    report["ours_config"] = rec
                elif kind == "ours-warmup":
                    note(f"    warm-up call on {rec['n']} rows (JIT / compile in the workers): {rec['wall_s']:.2f} s")
                elif kind == "ours-warm":
                    rows[rec["n"]]["ours_warm"] = rec
                    note(f"    n={rec['n']}: {rec['call_s']:.2f} s, {rec['n_clusters']} clusters, {rec['noise']} noise, "
                         f"recall {_f(rec.get('knn_recall'), '.4f')}, peak total {_f(rec.get('peak_total_mib'), '.0f')} MiB")
                elif kind == "knn-check":
                    rows[rec["n"]]["knn_check"] = rec
                    note(f"    n={rec['n']}: independent recall@{rec['k']} {rec['recall']:.4f} on {rec['rows']} rows ({rec['seconds']:.1f} s)")

        # 2. ours, fresh
        if not args.skip_fresh and not args.skip_ours:
            note("[2] ours fresh (approx, one new process per n) ...")
            for n in sizes:
                recs, wall, rc = child("ours-fresh", [n], f"ours fresh n={n}", check=args.skip_warm)
                closed = next((rec["_t_recv"] - rec["extra_s"] for rec in recs if rec["kind"] == "ours-fresh-closed"), None)
                for rec in recs:
                    if rec["kind"] == "ours-fresh" and (rc == 0 or closed is not None):
                        rec["outside_s"] = closed if closed is not None else wall
                        rows[n].update(ours_fresh=rec, ours_fresh_total=rec["outside_s"])
                        note(f"    n={n}: {rec['outside_s']:.2f} s from outside (call {rec['call_s']:.2f} s)")
                    elif rec["kind"] == "knn-check":
                        rows[n]["knn_check"] = rec

        # 3. ours, exact (labels for the ARI)
        exact_sizes = [] if args.skip_ours else [n for n in sizes if n <= args.exact_max]
        if exact_sizes:
            note(f"[3] ours exact (n <= {args.exact_max}, labels for the ARI) ...")
            recs, _, _ = child("ours-exact", exact_sizes, "ours exact")
            for rec in recs:
                if rec["kind"] == "ours-exact":
                    rows[rec["n"]]["ours_exact"] = rec
                    note(f"    n={rec['n']}: {rec['call_s']:.2f} s, {rec['n_clusters']} clusters, {rec['noise']} noise")

        # 4. fast_hdbscan
        if not args.skip_fast_hdbscan:
            if not args.skip_warm:
                note("[4] fast_hdbscan warm ...")
                recs, _, _ = child("fast-warm", sizes, "fast_hdbscan warm")
                for rec in recs:
                    if rec["kind"] == "fast-config":
                        ctx["fast_threads"] = rec["numba_threads"]
                        report["fast_config"] = rec
                    elif rec["kind"] == "fast-warmup":
                        note(f"    warm-up fit on {rec['n']} rows: {rec['wall_s']:.2f} s")
                    elif rec["kind"] == "fast-warm":
                        rows[rec["n"]]["fast_warm"] = rec
                        note(f"    n={rec['n']}: {rec['call_s']:.2f} s, {rec['n_clusters']} clusters, {rec['noise']} noise")
            if not args.skip_fresh:
                note("[5] fast_hdbscan fresh (one new process per n) ...")
                for n in sizes:
                    recs, wall, rc = child("fast-fresh", [n], f"fast_hdbscan fresh n={n}", check=args.skip_warm)
                    for rec in recs:
                        if rec["kind"] == "fast-fresh" and rc == 0:
                            ctx.setdefault("fast_threads", rec["numba_threads"])
                            rec["outside_s"] = wall
                            rows[n].update(fast_fresh=rec, fast_fresh_total=wall)
                            note(f"    n={n}: {wall:.2f} s from outside (fit {rec['call_s']:.2f} s)")

        # 5. DataEval
        de_sizes = [n for n in sizes if n <= args.dataeval_max]
        if args.dataeval and de_sizes:
            py = Path(args.dataeval_python)
            probe = None
            if py.exists() and RUNNER.exists():
                recs, _, rc = run_child([str(py), str(RUNNER), "probe"], "dataeval probe", tmp, 600)
                probe = next((r for r in recs if r.get("kind") == "dataeval-probe"), None) if rc == 0 else None
            if probe is None:
                print(f"DataEval not installed: skipped (no working dataeval under {py})", flush=True)
            else:
                import numpy as np
                import zarr

                report["dataeval"] = probe
                de_dir = tmp / "dataeval"
                de_dir.mkdir(exist_ok=True)
                for n in dict.fromkeys([args.warmup_n, *de_sizes]):  # the runner reads X_<n>.npy
                    np.save(de_dir / f"X_{n}.npy", np.asarray(zarr.open_group(path_of[n], mode="r")[ARRAY][...]), allow_pickle=False)
                size_args = ["--sizes", *map(str, de_sizes)]
                if not args.skip_warm:
                    note(f"[6] DataEval {probe['version']} warm ...")
                    cmd = [str(py), str(RUNNER), "warm", "--data-dir", str(de_dir), "--warmup-n", str(args.warmup_n), *size_args]
                    recs, _, _ = run_child(cmd, "dataeval warm", tmp, args.timeout)
                    records.extend(recs)
                    for rec in recs:
                        if rec["kind"] == "dataeval-warm":
                            rec["call_s"] = rec["wall_s"]
                            rec["n_clusters"] = rec.get("n_clusters")
                            rows[rec["n"]]["de_warm"] = rec
                            note(f"    n={rec['n']}: {rec['wall_s']:.2f} s")
                if not args.skip_fresh:
                    note("[7] DataEval fresh ...")
                    for n in de_sizes:
                        cmd = [str(py), str(RUNNER), "fresh", "--data-dir", str(de_dir), "--n", str(n)]
                        recs, wall, rc = run_child(cmd, f"dataeval fresh n={n}", tmp, args.timeout)
                        records.extend(recs)
                        for rec in recs:
                            if rec["kind"] == "dataeval-fresh" and rc == 0:
                                rec["outside_s"] = wall
                                rows[n].update(de_fresh=rec, de_fresh_total=wall)
                                note(f"    n={n}: {wall:.2f} s from outside (call {rec['call_s']:.2f} s)")
                for n in dict.fromkeys([args.warmup_n, *de_sizes]):
                    (de_dir / f"X_{n}.npy").unlink(missing_ok=True)

        note("[8] agreement (ARI) ...")
        for n in sizes:
            rows[n].update(agreement(tmp, n, metas[n], Path(path_of[n])))
            if (rows[n].get("de_warm") or {}) and rows[n].get("clusters_dataeval") is not None:
                rows[n]["de_warm"]["n_clusters"] = rows[n]["clusters_dataeval"]
                rows[n]["de_warm"]["noise"] = rows[n]["noise_dataeval"]

        print_tables(rows, sizes, metas, ctx)
        print()
        lines = scaling_lines(rows, sizes)
        for line in lines:
            print(line)
        busy = [
            (rec or {}).get("bg_cores") or 0.0
            for r in rows.values()
            for rec in (r.get("ours_warm"), r.get("ours_fresh"), r.get("fast_warm"), r.get("fast_fresh"), r.get("de_warm"), r.get("de_fresh"))
        ]
        worst = max(busy, default=0.0)
        if worst > 0.2:
            print(
                f"\nWARNING: other processes kept up to {worst:.1f} of {os.cpu_count()} cores busy during the measurements "
                "(column bg): those timings are not clean; rerun on an idle machine."
            )
        la = os.getloadavg()
        print(f"\nload average at end: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; total benchmark time {time.perf_counter() - t_all:.0f} s")
        if args.keep_tmp:
            print(f"temporary files kept in {tmp}")
        if args.json:
            report.update(rows=[rows[n] for n in sizes], scaling=lines, records=records, context=ctx, loadavg_end=list(la))
            Path(args.json).write_text(json.dumps(report, indent=2, default=_json_default))
            print(f"figures saved to {args.json}")
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
