"""Public entry points (DataEval's names)."""

from __future__ import annotations

import difflib
import logging
import math
import warnings

import numpy as np

from distdataeval.errors import InvalidParameterError, UnknownParameterError
from distdataeval.io.sink import ResultStore
from distdataeval.io.source import open_source
from distdataeval.pipeline import ClusterPlan, min_cluster_size_for, run_cluster
from distdataeval.result import ClusterResult
from distdataeval.runtime.client import active_client

log = logging.getLogger("distdataeval")

_CLUSTER_PARAMS = (
    "embeddings",
    "algorithm",
    "n_clusters",
    "max_cluster_size",
    "n_init",
    "knn",
    "client",
    "array",
    "reassign_noise",
    "chunk_rows",
    "workdir",
)
ALGORITHMS = ("hdbscan", "kmeans")
# knn="auto" uses exact search up to this many rows. Measured (benchmarks/README.md, "Crossover",
# d = 64, 2 workers): warm, approx is faster from ~10,000 rows (20k: exact 1.86 s, approx
# 1.38 s; 50k: 9.92 vs 2.74 s); in a fresh process (a batch job), since pynndescent's core loads
# from numba's cache, from 20,000-35,000 (20k: 5.09 vs 5.37 s; 35k: 8.11 vs 5.97 s; 50k: 13.05
# vs 6.85 s). At 20,000 the worst case of either choice is ~1.35x warm (exact kept, 0.5 s) or
# ~1.05x fresh (approx taken, 0.3 s). (It was 50,000 while each fresh worker compiled
# pynndescent for ~20 s, and 100,000 before that.)
AUTO_EXACT_MAX_ROWS = 20_000
KNN_METHODS = ("auto", "exact", "approx")


def _reject_unknown(func: str, unknown: dict, known: tuple) -> None:
    if not unknown:
        return
    name = sorted(unknown)[0]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid parameters: {', '.join(known)}"
    raise UnknownParameterError(f"{func}() got an unknown parameter {name!r}{hint}")


# approx mode exchanges rows between every block and every partition (B x P pieces): with the
# input's own small chunks (16k rows of a Zarr store, say) B would reach thousands at 10M rows
MAX_APPROX_BLOCKS = 128


def _coarsen_blocks(source):
    """Merge adjacent input chunks so that approx mode works on at most MAX_APPROX_BLOCKS blocks
    (whole input chunks per block, so Zarr reads stay aligned)."""
    from distdataeval.io.source import Source

    chunks = source.data.chunks[0]
    if len(chunks) <= MAX_APPROX_BLOCKS:
        return source
    base = max(chunks)
    rows = base * -(-source.n // (MAX_APPROX_BLOCKS * base))
    return Source(source.data.rechunk({0: rows}), source.origin)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_cluster_params(algorithm, knn, reassign_noise, n_clusters, max_cluster_size, n_init, prefix: str = "") -> dict:
    """Validate ``cluster()``'s parameters (names in messages get ``prefix``, e.g. "pipeline.");
    returns them normalised as a dict."""
    if algorithm not in ALGORITHMS:
        raise InvalidParameterError(f"{prefix}algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if knn not in KNN_METHODS:
        raise InvalidParameterError(f"{prefix}knn must be one of {KNN_METHODS}, got {knn!r}")
    if not isinstance(reassign_noise, (bool, np.bool_)):
        raise InvalidParameterError(f"{prefix}reassign_noise must be True or False, got {reassign_noise!r}")
    if n_clusters is not None:
        n_clusters = _check_int(f"{prefix}n_clusters", n_clusters, 1)
    if max_cluster_size is not None:
        max_cluster_size = _check_int(f"{prefix}max_cluster_size", max_cluster_size, 1)
    if not (n_init == "auto" or (isinstance(n_init, (int, np.integer)) and not isinstance(n_init, bool) and n_init >= 1)):
        raise InvalidParameterError(f"{prefix}n_init must be 'auto' or an int >= 1, got {n_init!r}")
    return {"algorithm": algorithm, "knn": knn, "reassign_noise": bool(reassign_noise), "n_clusters": n_clusters,
            "max_cluster_size": max_cluster_size, "n_init": n_init, "prefix": prefix}


def plan_for(source, params: dict, coarsen: bool = True):
    """The :class:`~distdataeval.pipeline.ClusterPlan` of validated ``params`` (from
    :func:`check_cluster_params`) for ``source``, and the source to process (its blocks merged in
    approx mode when ``coarsen``). DataEval's rules: adaptive ``min_cluster_size``, a
    ``max_cluster_size`` not above it ignored with a warning, KMeans' ``n_clusters`` default
    ``floor(sqrt(n))`` and ``n_clusters >= n`` an error."""
    prefix = params.get("prefix", "")
    n_clusters, max_cs = params["n_clusters"], params["max_cluster_size"]
    mcs = min_cluster_size_for(source.n, n_clusters)
    if max_cs is not None and max_cs <= mcs:
        warnings.warn(
            f"max_cluster_size={max_cs} is not above min_cluster_size={mcs}; ignoring it (as DataEval does)",
            UserWarning,
            stacklevel=3,
        )
        max_cs = None
    knn = params["knn"]
    method = knn if knn != "auto" else ("exact" if source.n <= AUTO_EXACT_MAX_ROWS else "approx")
    if method == "approx" and coarsen:
        source = _coarsen_blocks(source)
    k_clusters = None
    if params["algorithm"] == "kmeans":
        k_clusters = n_clusters if n_clusters is not None else max(1, math.isqrt(source.n))
        if k_clusters >= source.n:
            raise InvalidParameterError(
                f"{prefix}n_clusters={k_clusters} must be smaller than the number of samples ({source.n}) for KMeans"
            )
    plan = ClusterPlan(params["algorithm"], mcs, max_cs, method, params["reassign_noise"], n_clusters=k_clusters,
                       n_init=params["n_init"])
    return plan, source


def cluster(
    embeddings,
    algorithm: str = "hdbscan",
    n_clusters: int | None = None,
    max_cluster_size: int | None = None,
    n_init: int | str = "auto",
    *,
    knn: str = "auto",
    client=None,
    array: str | None = None,
    reassign_noise: bool = True,
    chunk_rows: int | None = None,
    workdir=None,
    **unknown,
) -> ClusterResult:
    """Cluster embeddings on a Dask cluster, as DataEval's ``cluster()`` does on one machine.

    Parameters
    ----------
    embeddings : array-like, dask array, zarr array, str or os.PathLike
        (n, ...) samples; axes after the first are flattened. A string is a Zarr store path/URL.
    algorithm : {"hdbscan", "kmeans"}
        "hdbscan" (default) or "kmeans" (seeded from ``config.set_seed``). KMeans results still
        carry the k-NN graph, the MST and the linkage tree, as DataEval's do.
    n_clusters : int, optional
        HDBSCAN: sets ``min_cluster_size = max(5, n // (3 * n_clusters))``; otherwise
        ``min(max(5, 5% of n), 100)``. KMeans: the number of clusters, default ``floor(sqrt(n))``;
        it must be smaller than n.
    max_cluster_size : int, optional
        Largest cluster HDBSCAN may select; a value <= min_cluster_size is ignored with a warning
        (as DataEval does).
    n_init : int or "auto"
        KMeans initialisations (unused by HDBSCAN).
    knn : {"auto", "exact", "approx"}
        k-NN method. "exact" is blocked brute force (DataEval's behaviour, the parity mode).
        "approx" is pynndescent partitioned across workers (recall measured on a sample and
        reported as ``result.knn_recall``). "auto": exact up to 20,000 rows, approx above.
    client : distributed.Client, optional
        Cluster to run on; default: the current client, else a local cluster of worker processes
        bound to 127.0.0.1 (started once, reused).
    array : str, optional
        Array name inside a Zarr group given as ``embeddings``.
    reassign_noise : bool
        True (default, the documented behaviour): samples HDBSCAN left as noise get the id of the
        nearest cluster centre (mean of the members). False: DataEval 1.1.4's raw labels (with
        -1). ``result.noise`` always marks HDBSCAN's noise.
    chunk_rows : int, optional
        Rows per block (default: the input's own chunks, or an automatic size for NumPy input).
    workdir : str or os.PathLike, optional
        A Zarr group (path or URL, created if missing) where the k-NN graph (``k_neighbors``,
        ``k_distances``) and the MST (``mst/sources``, ``mst/targets``, ``mst/weights``) are
        written, chunk-aligned, each array committed only once complete. In approx mode the
        result's n x k fields are then lazy Zarr-backed Dask arrays.

    Returns
    -------
    ClusterResult
        ``clusters`` int64 (n,), ``mst`` float32 (n-1, 3), ``linkage_tree`` float32 (n-1, 4),
        ``membership_strengths`` float32 (n,), ``k_neighbors`` int64 (n, k), ``k_distances``
        float32 (n, k) with k = min(25, n-1); plus int64 records and diagnostics. In exact mode
        every field is a NumPy array. In approx mode (the large-n mode) the k-NN graph is never
        gathered on the driver: ``k_neighbors`` and ``k_distances`` are Dask arrays, held by the
        workers or, with ``workdir``, read from Zarr (``np.asarray(...)`` or ``.compute()``
        materialises them).

    Raises
    ------
    InvalidInputError
        Fewer than 2 samples, no features, a non-numeric dtype, or NaN/inf values (the message
        names how many rows and the first ones).
    InvalidParameterError, UnknownParameterError
        A parameter is out of range or not one of ``cluster``'s.
    StoreNotFoundError, CorruptStoreError
        A Zarr store or array is missing or unreadable.

    Examples
    --------
    >>> import numpy as np
    >>> from distdataeval import cluster
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 0.3, (50, 2)), rng.normal(5, 0.3, (50, 2))])
    >>> result = cluster(x)                                # doctest: +SKIP
    >>> sorted(set(result["clusters"].tolist()))           # doctest: +SKIP
    [0, 1]
    """
    _reject_unknown("cluster", unknown, _CLUSTER_PARAMS)
    params = check_cluster_params(algorithm, knn, reassign_noise, n_clusters, max_cluster_size, n_init)

    with active_client(client) as c:
        n_workers = max(1, len(c.scheduler_info().get("workers", {})))
        source = open_source(embeddings, array, chunk_rows=chunk_rows, n_workers=n_workers)
        plan, source = plan_for(source, params, coarsen=chunk_rows is None)
        sink = ResultStore(workdir) if workdir is not None else None
        return run_cluster(source, plan, c, sink)
