"""Run the batch job: input store -> every stage -> output store, ``summary.json``, ``report.html``.

Rules of the output store (also in docs/batch_job.md):

* A stage is marked complete (``_job/stages/<stage>.json``, :mod:`distdataeval.job.state`) only
  after all its arrays were committed; its hash covers its parameters and the run ids of the
  stages it needs. A rerun skips the stages whose hash matches ("stage knn: complete, skipped")
  and recomputes the others; a recomputed stage invalidates every stage after it.
* Before a stage runs, its mark and its old arrays are removed; if it fails, the arrays it had
  already written are removed again, and a killed run's leftovers (hidden ``.*.partial-*``
  arrays, arrays of unmarked stages) are removed when the next run starts. An array counts only
  while its stage is marked complete.
* The output path must be new, an empty directory, or an output of a job. A rerun of the *same*
  job (same input identity, same pipeline and evaluator parameters) resumes without
  ``--overwrite``; a different job's output is replaced only with ``--overwrite`` (then the
  stages whose hashes still match are kept and the rest recomputed). A path that is not a job
  output is never written into, whatever the flags.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import shutil

import time
import traceback

from distdataeval.errors import DistDataEvalError, InvalidParameterError
from distdataeval.job.progress import EventLog, StageProgress, install_counter
from distdataeval.job.state import JOB_DIR, StageState, canonical_hash

HOLD_ENV = "DISTDATAEVAL_HOLD_AFTER_STAGE"  # fault injection for tests: "<stage>:<seconds>"
MAX_ATTEMPTS = 3  # a stage failing for an infrastructure reason (lost worker...) is retried


class OutputExistsError(DistDataEvalError, FileExistsError):
    """The output path holds data that this job may not replace."""


# ----------------------------------------------------------------------------- configuration

PIPELINE_DEFAULTS = {
    "algorithm": "hdbscan",
    "knn": "auto",
    "n_clusters": None,
    "max_cluster_size": None,
    "n_init": "auto",
    "reassign_noise": True,
    "chunk_rows": None,
    "seed": None,
}
DEFAULT_SEED = 0  # a batch job is reproducible by default: seed null in the profile means 0


class JobConfig:
    """Resolved job configuration: pipeline parameters, evaluator settings, how to get a client."""

    def __init__(self, pipeline: dict, evaluators: dict, client_factory, raw: dict) -> None:
        self.pipeline = pipeline
        self.evaluators = evaluators
        self.client_factory = client_factory
        self.raw = raw


def load_config(profile: str | None, overrides: list[str]) -> JobConfig:
    """The job configuration from a profile (file or packaged name; default ``local``) and
    ``--set key=value`` overrides (:func:`distdataeval.job.profiles.load_profile`)."""
    from distdataeval.job.profiles import load_profile

    prof = load_profile(profile or "local", list(overrides))
    pipeline_params = dict(PIPELINE_DEFAULTS)
    pipeline_params.update(prof.pipeline or {})
    return JobConfig(pipeline_params, dict(prof.evaluators or {}), prof.client, prof.raw)


# ----------------------------------------------------------------------------- input / output

def _is_zarr_group(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, meta)) for meta in ("zarr.json", ".zgroup"))


def split_input(spec: str) -> tuple[str, str | None]:
    """``store[/array]`` -> (store path, array name or None), deciding by what exists on disk."""
    from distdataeval.errors import StoreNotFoundError

    path = spec.rstrip("/")
    if os.path.exists(path) or "://" in path:
        return path, None
    parent, leaf = os.path.split(path)
    if parent and _is_zarr_group(parent):
        return parent, leaf
    raise StoreNotFoundError(f"input store {spec!r} does not exist")


def input_identity(source, path: str, array: str | None) -> dict:
    """What identifies the input: location, shape, dtype, chunking and the files' sizes/mtimes
    (a rewritten store is a different input; its content is not hashed, which would cost a read)."""
    location = os.path.abspath(os.path.join(path, array) if array else path)
    size, mtime, files = 0, 0.0, 0
    for folder, _, names in os.walk(location):
        for name in names:
            st = os.stat(os.path.join(folder, name))
            size += st.st_size
            mtime = max(mtime, st.st_mtime)
            files += 1
    return {"path": location, "shape": list(source.data.shape), "dtype": str(source.data.dtype),
            "chunks": int(max(source.data.chunks[0])), "files": files, "bytes": size, "mtime": mtime}


def _job_identity(identity: dict, params: dict, evaluators: dict) -> dict:
    return {"input": identity, "pipeline": params, "evaluators": evaluators}


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def check_output(output: str, job: dict, overwrite: bool) -> str:
    """Decide what to do with the output path: "new", "resume" or "replace" (see module doc)."""
    if "://" in output and not output.startswith("file://"):
        raise InvalidParameterError(f"--output must be a local directory, got {output!r}")
    path = output.removeprefix("file://")
    if not os.path.exists(path):
        return "new"
    if not os.path.isdir(path):
        raise OutputExistsError(f"output {output!r} exists and is a file, not a job output; choose another --output")
    state = StageState(path)
    manifest = state.manifest()
    if manifest is None:
        if not os.listdir(path):
            return "new"
        raise OutputExistsError(
            f"output {output!r} exists and was not written by 'distdataeval run'; it is never replaced "
            "(not even with --overwrite): choose another --output or remove it yourself"
        )
    changed = _differences(manifest.get("job", {}), job)
    if not changed:
        return "resume"
    if overwrite:
        return "replace"
    shown = ", ".join(changed[:4]) + (", ..." if len(changed) > 4 else "")
    raise OutputExistsError(
        f"output {output!r} already holds the results of a different job (changed: {shown}); "
        "pass --overwrite to replace them, or choose another --output"
    )


def _remove_partials(root: str) -> int:
    removed = 0
    for folder, dirs, _ in os.walk(root):
        for d in list(dirs):
            if d.startswith(".") and ".partial-" in d:
                shutil.rmtree(os.path.join(folder, d), ignore_errors=True)
                dirs.remove(d)
                removed += 1
    return removed


def _remove_arrays(store, names) -> None:
    root = store._local
    done = set(store.group.attrs.get("complete", []))
    for name in names:
        shutil.rmtree(os.path.join(root, *name.split("/")), ignore_errors=True)
        done.discard(name)
    store.group.attrs["complete"] = sorted(done)


def _array_sizes(root: str, names) -> dict:
    import zarr

    out = {}
    for name in names:
        try:
            z = zarr.open_array(root, path=name, mode="r")
        except Exception:  # noqa: BLE001 - not written
            continue
        stored = sum(os.path.getsize(os.path.join(f, x)) for f, _, xs in os.walk(os.path.join(root, name)) for x in xs)
        out[name] = {"shape": list(z.shape), "dtype": str(z.dtype), "chunks": list(z.chunks), "stored_bytes": stored}
    return out


# ----------------------------------------------------------------------------- the run

def _enabled(stage, config: JobConfig) -> bool:
    if not stage.optional:
        return True
    settings = config.evaluators.get(stage.name, {}) or {}
    return bool(settings.get("enabled", True))


def _hold_after(stage: str, log: EventLog) -> None:
    spec = os.environ.get(HOLD_ENV, "")
    name, _, seconds = spec.partition(":")
    if name == stage:
        log.emit("hold", f"stage {stage}: holding {seconds} s ({HOLD_ENV})", stage=stage)
        time.sleep(float(seconds or 30))


def _retryable(exc: BaseException) -> bool:
    return not isinstance(exc, (DistDataEvalError, ValueError, TypeError, KeyboardInterrupt, NotImplementedError))


def _run_stage(stage, ctx, state: StageState, stage_hash: str, log: EventLog, show_bar: bool) -> dict:
    writes = stage.writes(ctx)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        state.clear(stage.name)
        _remove_arrays(ctx.store, writes)
        log.emit("stage_start", f"stage {stage.name}: start", stage=stage.name, attempt=attempt)
        t0 = time.perf_counter()
        try:
            with StageProgress(ctx.client, log, stage.name, show_bar) as progress:
                product, info = stage.run(ctx)
        except BaseException as exc:
            _remove_arrays(ctx.store, writes)  # nothing of a failed stage may look complete
            if attempt < MAX_ATTEMPTS and _retryable(exc):
                log.emit("stage_retry", f"stage {stage.name}: attempt {attempt} failed "
                         f"({type(exc).__name__}: {exc}); retrying", stage=stage.name, attempt=attempt)
                ctx.products.pop(stage.name, None)
                continue
            log.emit("stage_failed", f"stage {stage.name}: failed ({type(exc).__name__}: {exc})",
                     stage=stage.name, error=type(exc).__name__)
            raise
        seconds = time.perf_counter() - t0
        ctx.products[stage.name] = product
        info = dict(info, seconds=round(seconds, 3), tasks=progress.tasks, attempts=attempt,
                    arrays=_array_sizes(ctx.store._local, writes))
        marker = state.mark_complete(stage.name, stage_hash, info)
        log.emit("stage_complete", f"stage {stage.name}: complete in {seconds:.2f} s ({progress.tasks} tasks)",
                 stage=stage.name, seconds=round(seconds, 3), tasks=progress.tasks)
        return marker
    raise AssertionError("unreachable")  # pragma: no cover


def _settle(client, timeout: float = 15.0) -> None:
    """After a failure, let the tasks still running finish before the cluster is closed (closing
    under busy workers makes them log heartbeat errors after the job's own error)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and any(client.processing().values()):
            time.sleep(0.2)
    except Exception:  # noqa: BLE001 - best effort only
        pass


def _remove_unmarked(state: StageState, store, ctx, registry) -> int:
    """Remove the arrays of every stage that is not marked complete (a killed run's leftovers)."""
    removed = 0
    for name, stage in registry.STAGES.items():
        if not (state.marker(name) or {}).get("hash"):
            present = [a for a in stage.writes(ctx) if os.path.exists(os.path.join(store._local, *a.split("/")))]
            _remove_arrays(store, present)
            removed += len(present)
    return removed


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("distdataeval", "numpy", "dask", "distributed", "zarr", "numba", "pynndescent", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def run_job(input: str, output: str, profile: str | None = None, overrides=(), overwrite: bool = False,
            quiet: bool = False, stream=None, client=None) -> dict:
    """Run the batch job; return the summary (also written to ``<output>/summary.json``).

    Parameters
    ----------
    input : str
        ``store`` or ``store/array`` of the embeddings (Zarr).
    output : str
        Output store directory (layout: ARCHITECTURE.md "Storage").
    profile : str, optional
        Profile YAML (``conf/<name>.yaml``).
    overrides : list of str
        ``key=value`` overrides of profile keys.
    overwrite : bool
        Allow replacing the output of a different job (see the module docstring).
    quiet : bool
        No progress bars (structured log lines only).
    stream : file, optional
        Where log lines and bars go (default stderr).
    client : distributed.Client, optional
        Run on this client instead of the cluster the profile describes.

    Returns
    -------
    dict
        The summary.

    Raises
    ------
    DistDataEvalError
        Bad input or parameters, or an output that may not be replaced (before any work starts);
        bad data found while running (e.g. NaN rows).
    """
    from distdataeval import config as seed_config
    from distdataeval.io.sink import ResultStore
    from distdataeval.io.source import open_source
    from distdataeval.job import stages as registry
    from distdataeval.job.summary import build_summary, write_summary

    started = time.time()
    log = EventLog(stream)
    cfg = load_config(profile, list(overrides))
    params = dict(cfg.pipeline)
    params["seed"] = DEFAULT_SEED if params.get("seed") is None else params["seed"]
    path, array = split_input(input)
    source = open_source(path, array, chunk_rows=params.get("chunk_rows"))
    identity = input_identity(source, path, array)
    evaluators = copy.deepcopy(cfg.evaluators)
    job = _job_identity(identity, params, evaluators)
    mode = check_output(output, job, overwrite)
    output = os.path.abspath(output.removeprefix("file://"))
    show_bar = not quiet and hasattr(log.stream, "isatty") and log.stream.isatty()

    factory = cfg.client_factory if client is None else (lambda: contextlib.nullcontext(client))
    with factory() as client, client.as_current(), seed_config.use_seed(params["seed"]):
        workers = client.scheduler_info().get("workers", {})
        pids = client.run(os.getpid)
        dashboard = getattr(client, "dashboard_link", None)
        log.emit("cluster", f"Dask cluster: {len(workers)} workers; dashboard: {dashboard or 'none'}",
                 scheduler=client.scheduler.address, dashboard=dashboard, worker_pids=sorted(pids.values()))
        install_counter(client)
        plan, source = registry.plan_for(source, params)
        store = ResultStore(output)
        state = StageState(output)
        state.write_manifest({"job": job, "created": state.manifest().get("created") if mode != "new"
                              and state.manifest() else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        ctx = registry.JobContext(source, plan, client, store, params, evaluators)
        removed = _remove_partials(output) + _remove_unmarked(state, store, ctx, registry)
        log.emit("job_start", f"job: {mode} output {output} from {identity['path']} "
                 f"({source.n} x {source.d} {source.data.dtype}); knn={plan.knn}, algorithm={plan.algorithm}, "
                 f"seed={params['seed']}", mode=mode, output=output, leftovers_removed=removed)
        run_ids: dict[str, str | None] = {}
        report_stages = {}
        for name, stage in registry.STAGES.items():
            if not stage.available() or not _enabled(stage, cfg):
                why = "not available in this installation" if not stage.available() else "disabled"
                if state.marker(name) is not None:
                    state.clear(name)
                    _remove_arrays(store, stage.writes(ctx))
                run_ids[name] = None
                report_stages[name] = {"status": why}
                log.emit("stage_skipped", f"stage {name}: {why}, skipped", stage=name, reason=why)
                continue
            if any(run_ids.get(dep) is None for dep in stage.needs):
                missing = [d for d in stage.needs if run_ids.get(d) is None]
                raise InvalidParameterError(f"stage {name} needs {missing}, which did not run")
            ctx.params["_input_identity"] = identity
            depends = stage.depends(ctx)
            stage_hash = canonical_hash({"stage": name, "depends": depends,
                                         "needs": {d: run_ids[d] for d in stage.needs}})
            if state.is_complete(name, stage_hash):
                marker = state.marker(name)
                ctx.markers[name] = marker
                log.emit("stage_skipped", f"stage {name}: complete, skipped", stage=name, reason="complete")
                report_stages[name] = {"status": "skipped (complete)", **_stage_report(marker)}
            else:
                try:
                    marker = _run_stage(stage, ctx, state, stage_hash, log, show_bar)
                except BaseException:
                    _settle(client)
                    raise
                ctx.markers[name] = marker
                report_stages[name] = {"status": "computed", **_stage_report(marker)}
                _hold_after(name, log)
            run_ids[name] = marker["run_id"]
        ctx.params.pop("_input_identity", None)
        summary = build_summary(ctx, identity, params, evaluators, report_stages, _versions(),
                                time.time() - started, dashboard)
        write_summary(output, summary)
    log.emit("summary", f"summary written to {os.path.join(output, 'summary.json')}")
    report = _write_report(output, path, array, log)
    summary["report"] = report
    log.emit("job_complete", f"job complete in {time.time() - started:.1f} s: {output}", output=output)
    return summary


def _stage_report(marker: dict) -> dict:
    keep = ("seconds", "tasks", "attempts", "arrays", "computed", "finished")
    return {k: marker[k] for k in keep if k in marker}


def _write_report(output: str, path: str, array: str | None, log: EventLog) -> str | None:
    try:
        from distdataeval.report import write_report
    except ImportError:
        log.emit("report_skipped", "report: the report module is not available in this installation")
        return None
    try:
        out = write_report(output, source=os.path.join(path, array) if array else path)
    except Exception as exc:  # the results are complete; a report failure must still be visible
        log.emit("report_failed", f"report: failed ({type(exc).__name__}: {exc})",
                 traceback=traceback.format_exc(limit=3))
        raise
    log.emit("report", f"report written to {out}", path=str(out))
    return str(out)


def main_error_line(exc: BaseException) -> str:
    """The one line printed on stderr for a failed job."""
    if isinstance(exc, DistDataEvalError):
        return f"distdataeval run: error: {exc}"
    return f"distdataeval run: error: {type(exc).__name__}: {exc}"


__all__ = ["run_job", "load_config", "check_output", "OutputExistsError", "JOB_DIR", "main_error_line"]
