"""Approximate k-NN: pynndescent partitioned across workers.

1. Partition centroids are fitted (k-means) on a seeded sample of the data; a cell whose
   expected size exceeds the cap is split (k-means with 2 centres on its sample points) until
   none does, so one partition's index always fits a worker whatever n is.
2. Every row goes to its ``overlap`` nearest partitions (default 2: a row near a cell border is
   indexed on both sides).
3. One ``pynndescent.NNDescent`` per partition, built in a worker task (seeded per partition
   from the root seed, one numba thread; its NN-descent core loaded from numba's cache, see
   :mod:`distdataeval.knn.nndescent`) on the partition's rows in a locality order (the
   leaves of a seeded random projection tree: the descent then reads rows that are close in
   memory; 10-20% faster per build at the same recall); tiny partitions are searched exactly
   instead. Neighbour distances are recomputed exactly in float64 from the partition's rows.
4. Per group of row blocks, the candidate lists of a row's partitions are folded into running
   lists as partitions finish: deduplicated by id, the best k kept, ordered by (distance, id).

The builds run on the workers as the orchestrator submits them (paced, see
:func:`approximate_knn`); the result is returned as Dask arrays backed by the workers' futures.
Self is excluded by index.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import uuid
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from distdataeval.knn import _kernels as K
from distdataeval.knn.blocks import PreparedBlock
from distdataeval.knn.nndescent import neighbor_graph
from distdataeval.runtime.compute import holders
from distdataeval.runtime.threads import limit_threads

EXACT_PARTITION_ROWS = 2048  # below this a partition is searched by brute force
MIN_PARTITION_ROWS = 256  # cells expected to be smaller are merged into their neighbours
GATHER_PRIORITY = 10  # Dask task priority of row gathering (builds: 0, higher runs first)
# pynndescent runs numba parallel kernels; numba's default threading layer must not be entered
# from several threads of one process at once (a worker with several threads could abort), and
# one index build already uses the memory a worker can spare: one build per process at a time.
_BUILD_LOCK = threading.Lock()
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionPlan:
    """Where rows go.

    Attributes
    ----------
    centroids : ndarray of float64, shape (P, d)
        In the prepared blocks' (centred) coordinates.
    overlap : int
        Partitions per row.
    expected_sizes : ndarray of float64, shape (P,)
        Rows per partition estimated from the sample.
    """

    centroids: np.ndarray
    overlap: int
    expected_sizes: np.ndarray
    border: float | None = None

    @property
    def n_partitions(self) -> int:
        return int(self.centroids.shape[0])


def _nearest_centroids(x: np.ndarray, centroids: np.ndarray, m: int, with_sqdist: bool = False):
    """Ids of the m nearest centroids of each row, nearest first (ties to the lower id); with
    ``with_sqdist`` also their squared distances ``|c|^2 - 2 x.c + |x|^2`` (one GEMM)."""
    d2 = (centroids**2).sum(axis=1)[None, :] - 2.0 * x @ centroids.T
    if m >= centroids.shape[0]:
        order = np.argsort(d2, axis=1, kind="stable")
    else:
        part = np.argpartition(d2, m - 1, axis=1)[:, :m]
        sub = np.take_along_axis(d2, part, axis=1)
        order = np.take_along_axis(part, np.lexsort((part, sub), axis=1), axis=1)
    if not with_sqdist:
        return order
    return order, np.take_along_axis(d2, order, axis=1) + (x**2).sum(axis=1)[:, None]


_PLANNER_IMPORT: list = []


def preload_planner() -> None:
    """Import scikit-learn's KMeans in a background thread (once per process): ~1 s of imports
    that would otherwise sit between the validation and the first build. ``plan_partitions``'
    own import waits for it (Python's module lock)."""
    if not _PLANNER_IMPORT:
        t = threading.Thread(target=importlib.import_module, args=("sklearn.cluster",), daemon=True,
                             name="distdataeval-import-sklearn")
        _PLANNER_IMPORT.append(t)
        t.start()


def plan_partitions(
    sample: np.ndarray, n: int, partition_rows: int, overlap: int, seed_seq, border: float | None = None,
    cap: float | None = None, min_partitions: int = 1,
) -> PartitionPlan:
    """Fit partition centroids on a sample (float64, centred) of an n-row dataset.

    The number of partitions is ``max(ceil(n * overlap / partition_rows), min_partitions)``;
    cells expected to hold more than ``cap`` rows (default: ``1.5 * partition_rows``, or twice
    the mean expected cell if that is smaller) are split until none does (at most 8 rounds).
    Bounding cells by the mean keeps the builds balanced across workers: measured at 300k rows,
    one cell of 114k rows (mean 52k) held a worker 10.6 s while the other ran four builds.
    """
    from sklearn.cluster import KMeans

    s = sample.shape[0]
    n_parts = max(1, math.ceil(n * overlap / partition_rows), min_partitions)
    n_parts = min(n_parts, max(1, s // 4))
    rng = np.random.default_rng(seed_seq)
    if n_parts <= overlap:  # every row would be in every partition: one index does the same work
        n_parts = 1
    if n_parts == 1:
        return PartitionPlan(sample.mean(axis=0, keepdims=True), 1, np.array([float(n)]))
    km = KMeans(n_clusters=n_parts, n_init=1, random_state=int(rng.integers(2**31 - 1)))
    centroids = km.fit(sample).cluster_centers_
    m = min(overlap, centroids.shape[0])
    for _ in range(8):
        assign = _destinations(sample, centroids, m, border)
        sizes = np.bincount(assign[assign >= 0], minlength=centroids.shape[0]) * (n / s)
        if cap is None:
            cap = min(1.5 * partition_rows, 2.0 * sizes.mean())
        big = np.flatnonzero(sizes > cap)
        if big.size == 0:
            break
        new = [centroids[np.setdiff1d(np.arange(centroids.shape[0]), big)]]
        for p in big:
            members = sample[assign[:, 0] == p]
            if members.shape[0] < 4:
                new.append(centroids[p : p + 1])
                continue
            pieces = max(2, math.ceil(sizes[p] / cap))
            sub = KMeans(n_clusters=min(pieces, members.shape[0]), n_init=1, random_state=int(rng.integers(2**31 - 1)))
            new.append(sub.fit(members).cluster_centers_)
        centroids = np.concatenate(new)
    # cells expected to hold only a handful of rows (a group of far outliers, say) are dropped:
    # their rows go to the nearest remaining cells, where they find k neighbours
    for _ in range(4):
        assign = _destinations(sample, centroids, m, border)
        sizes = np.bincount(assign[assign >= 0], minlength=centroids.shape[0]) * (n / s)
        keep = sizes >= min(MIN_PARTITION_ROWS, n / centroids.shape[0])
        if keep.all() or keep.sum() <= m:
            break
        centroids = centroids[keep]
    keep = sizes > 0
    return PartitionPlan(centroids[keep], m, sizes[keep], border)


def _destinations(x: np.ndarray, centroids: np.ndarray, m: int, border: float | None) -> np.ndarray:
    """The partitions of each row: its m nearest centroids, nearest first; with ``border``, the
    2nd..m-th only when the row is near that cell (``|x - c_j|^2 <= (1 + border) |x - c_1|^2``),
    else -1."""
    if border is None or m == 1:
        return _nearest_centroids(x, centroids, m)
    dest, d2 = _nearest_centroids(x, centroids, m, with_sqdist=True)
    far = d2 > (1.0 + border) * np.maximum(d2[:, :1], 0.0)
    far[:, 0] = False
    return np.where(far, -1, dest)


def _block_destinations(block: PreparedBlock, centroids: np.ndarray, m: int, border: float | None = None) -> np.ndarray:
    """The partitions of each row of one block (int32, (rows, m), -1 = none): see ``_destinations``."""
    return _destinations(block.x64, centroids, m, border).astype(np.int32)


def _partition_rows(block: PreparedBlock, dest: np.ndarray, p: int):
    """The rows of one block routed to partition ``p``: (global ids, float32 rows).

    The float32 rows travel (half the bytes); the partition widens them element by element for
    its exact distances, so approx-mode distances are those of the float32 centred rows.
    """
    rows = np.flatnonzero((dest == p).any(axis=1))
    return rows.astype(np.int64) + block.offset, block.x32[rows]


def _partition_rows_of_blocks(blocks: list, dests: list, p: int):
    """The rows of several blocks (those held by one worker) routed to partition ``p``, as one
    piece: one task per worker and partition instead of one per block and partition."""
    pieces = [_partition_rows(b, dst, p) for b, dst in zip(blocks, dests)]
    return np.concatenate([q[0] for q in pieces]), np.concatenate([q[1] for q in pieces])


def _brute_force_partition(x64: np.ndarray, k: int):
    d2 = ((x64[:, None, :] - x64[None, :, :]) ** 2).sum(axis=2) if x64.shape[0] <= 512 else _gram_sqdist(x64)
    np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d2, order, axis=1)


def _gram_sqdist(x64: np.ndarray) -> np.ndarray:
    sq = (x64**2).sum(axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * x64 @ x64.T, 0.0)


def locality_order(x: np.ndarray, seed: int, leaf: int = 1024) -> np.ndarray:
    """A row order that keeps rows near in space near in the order: the leaves, left to right,
    of a random projection tree (each node split at the median of the rows' projections on the
    line through two of its rows, chosen from ``seed``; leaves of at most ``leaf`` rows).

    Deterministic for given rows and seed; identical rows (a zero direction) are split by
    position, so thousands of copies cost nothing special.
    """
    rng = np.random.default_rng(seed)
    out = []
    stack = [np.arange(x.shape[0])]
    while stack:
        idx = stack.pop()
        if idx.size <= leaf:
            out.append(idx)
            continue
        a, b = rng.choice(idx.size, 2, replace=False)
        proj = x[idx] @ (x[idx[a]] - x[idx[b]])
        half = np.argsort(proj, kind="stable")
        h = idx.size // 2
        stack.append(idx[half[h:]])
        stack.append(idx[half[:h]])
    return np.concatenate(out)


def _build_partition(pieces: list, k: int, seed: int, neighbor_factor: float = 1.6, max_candidates: int = 60):
    """k-NN inside one partition. Returns (ids (s,), neighbour ids (s, k), exact sqdist (s, k))."""
    ids = np.concatenate([p[0] for p in pieces])
    x32 = np.concatenate([p[1] for p in pieces])
    if ids.size > 1 and np.any(ids[1:] < ids[:-1]):
        # rows in id order whatever pieces they came in (the graph depends on the row order)
        order = np.argsort(ids, kind="stable")
        ids, x32 = ids[order], x32[order]
    s = ids.shape[0]
    kk = min(k, s - 1)
    nbr_ids = np.full((s, k), K.ID_SENTINEL, dtype=np.int64)
    sqd = np.full((s, k), np.inf)
    if kk < 1:
        return ids, nbr_ids, sqd
    with _BUILD_LOCK, limit_threads(1):
        if s <= EXACT_PARTITION_ROWS:
            perm = np.arange(s)
            xo = x32
            graph, _ = _brute_force_partition(x32.astype(np.float64), kk)
        else:
            # rows near each other in space handed to pynndescent next to each other: its
            # descent then reuses cached rows (measured on 54k- and 78k-row cells of the 1M
            # data, one thread: 13% and 20% faster than in id order, same recall)
            perm = locality_order(x32, seed)
            xo = x32[perm]
            # a wider graph than asked for, truncated after: measured on one 100k x 64 mixture
            # index (spec recipe), recall@25 0.878 with pynndescent's defaults, 0.949 with 60
            # candidates (1.4x the time), 0.984 with 60 candidates and 40 neighbours (2.0x)
            width = min(s - 1, max(kk + 1, round(neighbor_factor * (kk + 1))))
            graph = neighbor_graph(xo, width, seed, max_candidates)
    # exact distances in build order (neighbours close in memory), rows written back in id order
    K.partition_lists(xo, graph, ids[perm], perm, nbr_ids[:, :kk], sqd[:, :kk])
    return ids, nbr_ids, sqd


def _rows_in_range(part, lo: int, hi: int):
    """The candidate lists of one partition's rows with global ids ``lo .. hi - 1``."""
    ids, nbr, sqd = part
    sel = (ids >= lo) & (ids < hi)
    return ids[sel], nbr[sel], sqd[sel]


def _fold_rows(acc, pieces: list, lo: int, hi: int, k: int):
    """Fold partitions' candidate lists of rows ``lo .. hi - 1`` into their running best-k lists.

    Per row the pooled lists are deduplicated by id and the k best kept by (squared distance,
    id); equal ids carry equal distances, so the result does not depend on the order in which
    partitions are folded.
    """
    if acc is not None:
        pieces = [(np.arange(lo, hi, dtype=np.int64), acc[0], acc[1]), *pieces]
    ids = np.concatenate([p[0] for p in pieces])
    nbr = np.concatenate([p[1] for p in pieces])
    sqd = np.concatenate([p[2] for p in pieces])
    return K.merge_row_candidates(ids - lo, nbr, sqd, hi - lo, k)


def _init_group(neighbors: list, sqdist: list):
    """A fold group's running lists from the (neighbours, sqdist) blocks of its rows."""
    return np.concatenate(neighbors), np.concatenate(sqdist)


def _rows_of_group(acc, j: int, lo: int, hi: int):
    """Rows ``lo .. hi - 1`` (relative to the group) of a fold group's lists ``acc[j]``."""
    return acc[j][lo:hi]


def fold_groups(row_chunks: tuple, n_workers: int, max_rows: int = 500_000) -> list:
    """Contiguous runs of blocks whose candidate lists are folded together: at least four per
    worker (the folds spread over the workers), at most ``max_rows`` rows each (one group's
    running lists, ``max_rows * k * 16`` bytes, stay small), never more than the blocks.
    Returns the index of each group's first block, then the number of blocks."""
    B = len(row_chunks)
    n = int(sum(row_chunks))
    g = min(B, max(4 * max(1, n_workers), math.ceil(n / max_rows)))
    ends = np.cumsum(row_chunks)
    # split at the block boundaries nearest to equal row counts
    cuts = np.searchsorted(ends, np.arange(1, g) * (n / g), side="left") + 1
    return sorted(set([0, *[int(c) for c in cuts if 0 < c < B], B]))


def _fold_budget(client) -> float:
    """Bytes of built partitions' lists held before they are folded into the running lists:
    15% of the workers' summed memory limit (2 GiB where no limit is set)."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info(n_workers=-1)["workers"].values()]
    total = float(sum(limits))
    return 0.15 * total if total > 0 else 2.0 * 2**30


def approximate_knn(
    client, blocks: list, row_chunks: tuple, k: int, plan: PartitionPlan, seed_seq, neighbor_factor: float = 1.6,
    max_candidates: int = 60, fold_bytes: float | None = None, init: tuple | None = None,
):
    """Partitioned approximate k-NN over persisted prepared blocks, run on ``client``.

    1. Each block's row destinations (its ``overlap`` nearest partitions) are computed once and
       kept on the workers (a few bytes per row).
    2. Builds are paced from the driver: at most one per worker in flight, largest expected
       partition first, each new one pinned to the worker that just finished. The rows of the
       next ``2 x workers`` partitions are gathered from the blocks ahead of time, at a higher
       task priority than the builds (a worker serves them before its next build), so only
       the partitions in flight or next hold a copy of their rows. Handing the scheduler all
       builds at once placed them by where their rows lay and never rebalanced them (measured
       at 1M rows, 20 builds, 2 workers: one worker idle 32 s of a 86 s stage); so did leaving
       each paced build's placement to it (40 of 82 s); rows gathered only when their build
       was handed out waited for the other worker's running build (5 s gaps); routing every
       row up front held a second copy of the data (``overlap`` x the float32 rows: 5 GB at
       10M x 64) for the whole stage.
    3. A finished partition's lists are split by fold group (contiguous runs of blocks, see
       :func:`fold_groups`) at once; the pieces are folded into running best-k lists whenever
       those held exceed ``fold_bytes`` (default: 15% of the workers' memory limit) and at the
       end, then released: the stage never holds all partitions' lists (``overlap`` x the
       graph) at once. Folding is order-independent, so the output does not depend on build
       timing. (Per-block folds were 1,364 tiny tasks at 1M rows; 8 groups fold in 1.3 s.)

    ``init``, a (neighbors, sqdist) pair of persisted Dask arrays with the same row chunks, seeds
    the running lists: a second search pass folds its candidates straight into the first pass's
    graph (the best k of the union, deduplicated by id) instead of building a second graph and
    merging the two, which held three graphs at once. Given as a list, it is emptied once the
    running lists are submitted, so (with no other reference left) the first graph is freed.

    Returns
    -------
    neighbors : dask array of int64, shape (n, k)
    sqdist : dask array of float64, shape (n, k)
        Exact squared distances of the neighbours found. Both arrays are backed by the
        fold-group futures already submitted (nothing is recomputed when they are persisted).
    """
    from distributed import as_completed, futures_of

    offsets = [int(o) for o in np.concatenate([[0], np.cumsum(row_chunks)[:-1]])]
    ends = [o + int(m) for o, m in zip(offsets, row_chunks)]
    # keys unique to the call: the same input run twice in a row would otherwise submit keys the
    # scheduler is still releasing from the first run (measured: the second run's builds never
    # started); the output does not depend on the keys
    main = f"knn-approx-{uuid.uuid4().hex}"
    seeds = [int(c.generate_state(1)[0]) for c in seed_seq.spawn(plan.n_partitions)]
    B = len(blocks)
    block_futs = [futures_of(b)[0] for b in client.persist(list(blocks))]
    [cent] = client.scatter([plan.centroids], broadcast=True, hash=False)
    dest = client.map(_block_destinations, block_futs, centroids=cent, m=plan.overlap, border=plan.border,
                      key=[f"{main}-dest-{i}" for i in range(B)])
    if fold_bytes is None:
        fold_bytes = _fold_budget(client)
    row_bytes = 8 + 16 * k  # id, int64 neighbour ids and float64 squared distances

    # the blocks each worker holds: a partition's rows are gathered by one task per worker
    # (pinned there), not one per block (measured at 2M rows: 5,535 tiny tasks for 45 partitions)
    by_worker: dict = {}
    for i, w in enumerate(holders(client, block_futs)):  # waits for them (the routing needs them all anyway)
        by_worker.setdefault(w, []).append(i)
    holder_groups = sorted(by_worker.items(), key=lambda kv: kv[1][0])

    def gather(p):
        # ahead of the builds: a worker runs these before the build queued behind them
        return [
            client.submit(_partition_rows_of_blocks, [block_futs[i] for i in idx], [dest[i] for i in idx], p,
                          key=f"{main}-rows-{p}-{g}", priority=GATHER_PRIORITY,
                          workers=[w] if w else None, allow_other_workers=bool(w))
            for g, (w, idx) in enumerate(holder_groups)
        ]

    def submit(p, rows, worker):
        # pinned (loosely: elsewhere if that worker is gone) to the worker that just finished a
        # build: left to the scheduler, a build went where most of its rows lay, behind the busy
        # worker's build, while the other worker sat idle (measured at 1M rows: 40 of 82 s)
        return client.submit(_build_partition, rows, k, seeds[p], neighbor_factor, max_candidates,
                             key=f"{main}-partition-{p}", pure=False, workers=[worker], allow_other_workers=True)

    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    slots = max(1, len(workers))
    queue = [int(p) for p in np.argsort(-plan.expected_sizes, kind="stable")]
    gathered: dict = {}

    def gather_ahead():
        # rows of the partitions that follow, submitted before the next build: a worker busy
        # with a build cannot serve its blocks' rows until it finishes, so rows gathered only
        # when a build is handed out kept the other worker idle (measured at 1M rows: 5 s gaps)
        for q in queue[: 2 * slots]:
            if q not in gathered:
                gathered[q] = gather(q)

    first, queue = queue[:slots], queue[slots:]
    for p in first:
        gathered[p] = gather(p)
    gather_ahead()
    running = as_completed([submit(p, gathered.pop(p), w) for p, w in zip(first, workers)])
    starts = fold_groups(tuple(row_chunks), slots)
    G = len(starts) - 1
    g_lo = [offsets[starts[g]] for g in range(G)]
    g_hi = [ends[starts[g + 1] - 1] for g in range(G)]
    if init is None:
        acc: list = [None] * G
    else:
        nb, sq = init[0].to_delayed().ravel(), init[1].to_delayed().ravel()
        init_group = dask.delayed(_init_group, pure=True)
        acc = client.compute([init_group(list(nb[starts[g] : starts[g + 1]]), list(sq[starts[g] : starts[g + 1]]))
                              for g in range(G)])
        # the running lists are a copy: drop our references to the first graph so the scheduler
        # frees it once they are built (measured at 10M rows: both held, 2 GB more per worker)
        del nb, sq
        if isinstance(init, list):
            init.clear()
    pending: list = []
    held = 0.0
    n_folds = 0

    def fold(batch):
        nonlocal acc, n_folds
        per_group = [[t[g] for _, t in batch] for g in range(G)]
        acc = client.map(_fold_rows, acc, per_group, g_lo, g_hi, k=k,
                         key=[f"{main}-fold{n_folds}-{g}" for g in range(G)])
        n_folds += 1

    for fut in running:
        if fut.status == "error":
            fut.result()  # raise the build's error here
        p = int(fut.key.rsplit("-", 1)[1])
        # split by fold group at once (ahead of the next build on that worker): the pieces are
        # ready when the fold comes, which then runs alone (one task per group, not per block)
        takes = client.map(_rows_in_range, [fut] * G, g_lo, g_hi, key=[f"{main}-take-{p}-{g}" for g in range(G)],
                           priority=GATHER_PRIORITY)
        pending.append((p, takes))
        held += plan.expected_sizes[p] * row_bytes
        if queue:
            nxt = queue.pop(0)
            rows = gathered.pop(nxt) if nxt in gathered else gather(nxt)
            gather_ahead()
            done_on = client.who_has([fut]).get(fut.key) or workers
            running.add(submit(nxt, rows, sorted(done_on)[0]))
        if held >= fold_bytes:
            fold(pending)
            pending, held = [], 0.0
    if pending:
        fold(pending)
    del pending, running

    group_of = np.repeat(np.arange(G), np.diff(starts))
    out = []
    for j, (name, dtype) in enumerate(((f"{main}-neighbors", np.int64), (f"{main}-sqdist", np.float64))):
        layer = {
            (name, i, 0): (_rows_of_group, acc[group_of[i]], j, offsets[i] - g_lo[group_of[i]], ends[i] - g_lo[group_of[i]])
            for i in range(B)
        }
        out.append(da.Array(HighLevelGraph.from_collections(name, layer, dependencies=[]), name, (tuple(row_chunks), (k,)), dtype=dtype))
    return out[0], out[1]


def _warm_pynndescent() -> bool:
    """Import pynndescent and load its kernels and our NN-descent core in this process (from
    numba's cache: ~1 s; the first run after installing compiles them, ~20 s)."""
    with _BUILD_LOCK:
        _warm_pynndescent_locked()
    return True


def _load_search_kernels() -> None:
    """Load this package's cached kernels of the exact probe search (a tiny search) first:
    numba's compiler lock is held while the NN-descent core compiles (first run after
    installing), so kernels first called during it would wait for it."""
    from distdataeval.knn.exact import _merge_tiles, _scan_group
    from distdataeval.knn.blocks import prepare_block

    x = np.arange(48, dtype=np.float64).reshape(12, 4)
    blocks = [prepare_block(x[:6], 0, x.mean(axis=0), keep_x64=False), prepare_block(x[6:], 6, x.mean(axis=0), keep_x64=False)]
    _merge_tiles([_scan_group(blocks[0], blocks, 3)], 2)


def _warm_in_background() -> bool:
    """Start the warm-up in a thread of this worker and return at once: the worker serves
    validation, routing and probe tasks meanwhile; its first build waits on ``_BUILD_LOCK``."""
    started = threading.Event()

    def run():
        with _BUILD_LOCK:
            started.set()
            try:
                _load_search_kernels()
                _warm_pynndescent_locked()
            except Exception:  # noqa: BLE001 - a build compiles on its own if this failed
                log.warning("background pynndescent warm-up failed", exc_info=True)

    threading.Thread(target=run, daemon=True, name="distdataeval-warm-pynndescent").start()
    started.wait()  # the lock is taken before any build can run
    return True


def _warm_pynndescent_locked() -> None:
    x = np.random.default_rng(0).normal(size=(EXACT_PARTITION_ROWS + 500, 4)).astype(np.float32)
    with limit_threads(1):
        neighbor_graph(x, 6, 0, 60)


_warmed: set = set()


def warm_workers(client, wait: bool = True) -> int:
    """Warm pynndescent once in every worker of ``client`` not warmed yet (in parallel).

    Returns the number of workers warmed now. Warming imports pynndescent and loads the
    NN-descent kernels from numba's cache (~1 s; the first run after installing compiles them,
    ~20 s, see :mod:`distdataeval.knn.nndescent`). With ``wait=False`` each worker warms in a
    background thread while it runs other tasks (its builds wait for it): a fresh process's
    validation, sample, partition plan and routing overlap it.
    """
    workers = [w for w in client.scheduler_info()["workers"] if (client.id, w) not in _warmed]
    if workers:
        client.run(_warm_pynndescent if wait else _warm_in_background, workers=workers)
        _warmed.update((client.id, w) for w in workers)
    return len(workers)
