"""The Dask client a computation runs on.

Precedence: an explicit ``client`` argument, else the current default client (one the user
created), else one in-process :class:`distributed.LocalCluster` of worker *processes* bound to
loopback, created on first use and reused by every later call of the session (workers keep their
compiled numba kernels warm), closed at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_local: dict = {}


def _worker_environ(threads: int) -> dict:
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "NUMBA_NUM_THREADS": n,
        "MALLOC_TRIM_THRESHOLD_": "65536",
    }


@contextlib.contextmanager
def _restored_environ(saved: dict) -> Iterator[None]:
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def local_client(n_workers: int | None = None, threads_per_worker: int = 1, memory_limit: str | int = "auto"):
    """The shared in-process LocalCluster client (created on first call).

    Workers are separate processes listening on 127.0.0.1 only, each with ``threads_per_worker``
    threads and BLAS/numba pools capped to the same number.
    """
    import dask
    from distributed import Client, LocalCluster

    with _lock:
        client = _local.get("client")
        if client is not None and client.status == "running":
            return client
        workers = n_workers or max(1, os.cpu_count() or 1)
        environ = _worker_environ(threads_per_worker)
        saved = {key: os.environ.get(key) for key in environ}
        # the nanny writes the workers' variables into this process's os.environ before spawning;
        # put ours back afterwards so that libraries the user loads later keep their threads
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), _restored_environ(saved):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                memory_limit=memory_limit,
                silence_logs=logging.ERROR,
            )
        client = Client(cluster, set_as_default=False)
        _local["cluster"] = cluster
        _local["client"] = client
        return client


def is_shared_local(client) -> bool:
    """True for the shared LocalCluster's client (not the default client: Dask collections that
    reference its memory cannot be computed without passing it explicitly)."""
    return client is not None and _local.get("client") is client


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def _quiet_distributed() -> Iterator[None]:
    # a filter, not a level: LocalCluster.close() restores the levels it silenced at start
    names = [n for n in logging.root.manager.loggerDict if n == "distributed" or n.startswith("distributed.")]
    loggers = [logging.getLogger(n) for n in names]
    quiet = _BelowError()
    try:
        for lg in loggers:
            lg.addFilter(quiet)
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(quiet)


def close_local_cluster() -> None:
    """Close the shared LocalCluster, if one was started (quietly: shutdown chatter is not news)."""
    with _lock:
        client = _local.pop("client", None)
        cluster = _local.pop("cluster", None)
    with _quiet_distributed():
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


atexit.register(close_local_cluster)


@contextlib.contextmanager
def active_client(client=None) -> Iterator:
    """Yield the client to use (see module docstring) and make it the scheduler inside the block."""
    if client is None:
        try:
            from distributed import default_client

            client = default_client()
        except ValueError:
            client = local_client()
    with client.as_current():
        yield client
