"""Approximate k-NN: pynndescent partitioned across workers.

1. Partition centroids are fitted (k-means) on a seeded sample of the data; a cell whose
   expected size exceeds the cap is split (k-means with 2 centres on its sample points) until
   none does, so one partition's index always fits a worker whatever n is.
2. Every row goes to its ``overlap`` nearest partitions (default 2: a row near a cell border is
   indexed on both sides).
3. One ``pynndescent.NNDescent`` per partition, built in a worker task (seeded per partition
   from the root seed, one numba thread); tiny partitions are searched exactly instead.
   Neighbour distances are recomputed exactly in float64 from the partition's rows.
4. Per row block, the candidate lists of a row's partitions are merged: deduplicated by id, the
   best k kept, ordered by (distance, id).

Everything is a lazy Dask graph; the orchestrator computes it. Self is excluded by index.
"""

from __future__ import annotations

import math
import operator
import threading
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from distdataeval.knn import _kernels as K
from distdataeval.knn.blocks import PreparedBlock
from distdataeval.runtime.threads import limit_threads

EXACT_PARTITION_ROWS = 2048  # below this a partition is searched by brute force
MIN_PARTITION_ROWS = 256  # cells expected to be smaller are merged into their neighbours
# pynndescent runs numba parallel kernels; numba's default threading layer must not be entered
# from several threads of one process at once (a worker with several threads could abort), and
# one index build already uses the memory a worker can spare: one build per process at a time.
_BUILD_LOCK = threading.Lock()


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


def _nearest_centroids(x: np.ndarray, centroids: np.ndarray, m: int) -> np.ndarray:
    """Ids of the m nearest centroids of each row, nearest first (ties to the lower id)."""
    d2 = (centroids**2).sum(axis=1)[None, :] - 2.0 * x @ centroids.T
    if m >= centroids.shape[0]:
        return np.argsort(d2, axis=1, kind="stable")
    part = np.argpartition(d2, m - 1, axis=1)[:, :m]
    sub = np.take_along_axis(d2, part, axis=1)
    order = np.lexsort((part, sub), axis=1)
    return np.take_along_axis(part, order, axis=1)


def plan_partitions(
    sample: np.ndarray, n: int, partition_rows: int, overlap: int, seed_seq, border: float | None = None,
    cap: float | None = None,
) -> PartitionPlan:
    """Fit partition centroids on a sample (float64, centred) of an n-row dataset.

    The number of partitions is ``ceil(n * overlap / partition_rows)``; cells expected to hold
    more than ``1.5 * partition_rows`` rows are split until none does (at most 8 rounds).
    """
    from sklearn.cluster import KMeans

    s = sample.shape[0]
    n_parts = max(1, math.ceil(n * overlap / partition_rows))
    n_parts = min(n_parts, max(1, s // 4))
    rng = np.random.default_rng(seed_seq)
    if n_parts <= overlap:  # every row would be in every partition: one index does the same work
        n_parts = 1
    if n_parts == 1:
        return PartitionPlan(sample.mean(axis=0, keepdims=True), 1, np.array([float(n)]))
    km = KMeans(n_clusters=n_parts, n_init=1, random_state=int(rng.integers(2**31 - 1)))
    centroids = km.fit(sample).cluster_centers_
    m = min(overlap, centroids.shape[0])
    cap = 1.5 * partition_rows if cap is None else cap
    for _ in range(8):
        assign = _destinations(sample, centroids, m, border)
        sizes = np.bincount(assign[assign >= 0], minlength=centroids.shape[0]) * (n / s)
        big = np.flatnonzero(sizes > cap)
        if big.size == 0:
            break
        new = [centroids[np.setdiff1d(np.arange(centroids.shape[0]), big)]]
        for p in big:
            members = sample[assign[:, 0] == p]
            if members.shape[0] < 4:
                new.append(centroids[p : p + 1])
                continue
            pieces = max(2, math.ceil(sizes[p] / partition_rows))
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
    dest = _nearest_centroids(x, centroids, m)
    if border is None or m == 1:
        return dest
    c2 = (centroids**2).sum(axis=1)
    d2 = c2[dest] - 2.0 * np.einsum("id,imd->im", x, centroids[dest]) + (x**2).sum(axis=1)[:, None]
    far = d2 > (1.0 + border) * np.maximum(d2[:, :1], 0.0)
    far[:, 0] = False
    return np.where(far, -1, dest)


def _route_block(block: PreparedBlock, centroids: np.ndarray, m: int, border: float | None = None) -> list:
    """Split one block's rows by destination partition: a list (per partition) of (ids, x32).

    The float32 rows travel (half the bytes); a partition widens them to float64 for its exact
    distances, so approx-mode distances are those of the float32 centred rows.
    """
    dest = _destinations(block.x64, centroids, m, border)
    ids = np.arange(block.offset, block.offset + block.n_rows, dtype=np.int64)
    out = []
    for p in range(centroids.shape[0]):
        rows = np.flatnonzero((dest == p).any(axis=1))
        out.append((ids[rows], block.x32[rows]))
    return out


def _brute_force_partition(x64: np.ndarray, k: int):
    d2 = ((x64[:, None, :] - x64[None, :, :]) ** 2).sum(axis=2) if x64.shape[0] <= 512 else _gram_sqdist(x64)
    np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d2, order, axis=1)


def _gram_sqdist(x64: np.ndarray) -> np.ndarray:
    sq = (x64**2).sum(axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * x64 @ x64.T, 0.0)


def _build_partition(pieces: list, k: int, seed: int, neighbor_factor: float = 1.6, max_candidates: int = 60):
    """k-NN inside one partition. Returns (ids (s,), neighbour ids (s, k), exact sqdist (s, k))."""
    ids = np.concatenate([p[0] for p in pieces])
    x32 = np.concatenate([p[1] for p in pieces])
    s = ids.shape[0]
    kk = min(k, s - 1)
    nbr_ids = np.full((s, k), K.ID_SENTINEL, dtype=np.int64)
    sqd = np.full((s, k), np.inf)
    if kk < 1:
        return ids, nbr_ids, sqd
    with _BUILD_LOCK, limit_threads(1):
        if s <= EXACT_PARTITION_ROWS:
            local, _ = _brute_force_partition(x32.astype(np.float64), kk)
        else:
            from pynndescent import NNDescent

            index = NNDescent(
                x32,
                # a wider graph than asked for, truncated after: measured on one 100k x 64
                # mixture index (spec recipe), recall@25 0.878 with pynndescent's defaults,
                # 0.949 with 60 candidates (1.4x the time), 0.984 with 60 candidates and
                # 40 neighbours (2.0x)
                n_neighbors=min(s - 1, max(kk + 1, round(neighbor_factor * (kk + 1)))),
                metric="euclidean",
                random_state=seed,
                n_jobs=1,
                low_memory=True,
                compressed=True,
                max_candidates=max_candidates,
            )
            graph = index.neighbor_graph[0].astype(np.int64)
            local = K.drop_self(graph, kk)
    d2 = np.full(local.shape, np.inf)
    K.exact_sqdist_of_candidates(x32, x32, 0, local, d2)  # widened exactly; local -1 entries skipped
    nbr = np.where(local >= 0, ids[np.maximum(local, 0)], K.ID_SENTINEL)
    d2 = np.where(local >= 0, d2, np.inf)
    nbr_ids[:, :kk], sqd[:, :kk] = K.merge_candidates(nbr, d2, kk)
    return ids, nbr_ids, sqd


def _rows_of_block(part, lo: int, hi: int):
    ids, nbr, sqd = part
    sel = (ids >= lo) & (ids < hi)
    return ids[sel], nbr[sel], sqd[sel]


def _merge_block(pieces: list, lo: int, hi: int, k: int):
    ids = np.concatenate([p[0] for p in pieces])
    nbr = np.concatenate([p[1] for p in pieces])
    sqd = np.concatenate([p[2] for p in pieces])
    return K.merge_row_candidates(ids - lo, nbr, sqd, hi - lo, k)


def approximate_knn(
    client, blocks: list, row_chunks: tuple, k: int, plan: PartitionPlan, seed_seq, neighbor_factor: float = 1.6,
    max_candidates: int = 60
):
    """Partitioned approximate k-NN over prepared blocks: routing and builds run now, the
    per-block merge is returned lazy.

    Builds are paced from the driver: at most one per worker is in flight, largest expected
    partition first, and each new one goes to the worker that just finished. Handing the scheduler
    all builds at once placed them by where their rows lay and never rebalanced them: measured at
    1M rows (20 builds, 2 workers), one worker sat idle for 32 s of a 86 s stage.

    Returns
    -------
    neighbors : dask array of int64, shape (n, k)
    sqdist : dask array of float64, shape (n, k)
        Exact squared distances of the neighbours found.
    """
    from distributed import as_completed

    offsets = np.concatenate([[0], np.cumsum(row_chunks)[:-1]]).astype(int)
    token = dask.base.tokenize(
        blocks, k, plan.centroids, plan.overlap, plan.border, seed_seq.entropy, seed_seq.spawn_key, neighbor_factor, max_candidates
    )
    # routing is one low-level layer: B blocks x P partitions pieces make an all-to-all exchange,
    # and building it from Delayed calls re-optimises the arguments' graphs at every call
    # (quadratic in B x P: minutes of driver time at 10M rows)
    main = f"knn-approx-{token}"
    route, piece, part, take, merge = (f"{main}-{s}" for s in ("route", "piece", "partition", "take", "merge"))
    seeds = [int(c.generate_state(1)[0]) for c in seed_seq.spawn(plan.n_partitions)]
    cent = f"{main}-centroids"
    dsk: dict = {cent: plan.centroids}
    P, B = plan.n_partitions, len(blocks)
    for i, b in enumerate(blocks):
        dsk[(route, i)] = (_route_block, b.key, cent, plan.overlap, plan.border)
        for p in range(P):
            dsk[(piece, i, p)] = (operator.getitem, (route, i), p)
    graph = HighLevelGraph.from_collections(main, dsk, dependencies=list(blocks))
    piece_keys = [(piece, i, p) for p in range(P) for i in range(B)]
    pieces = client.get(graph, piece_keys, sync=False)
    by_part = [pieces[p * B : (p + 1) * B] for p in range(P)]

    slots = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    queue = [int(p) for p in np.argsort(-plan.expected_sizes, kind="stable")]
    built: dict = {}

    def submit(p):
        return client.submit(_build_partition, by_part[p], k, seeds[p], neighbor_factor, max_candidates,
                             key=f"{part}-{p}", pure=False)

    running = as_completed([submit(p) for p in queue[:slots]])
    queue = queue[slots:]
    for fut in running:
        built[int(fut.key.rsplit("-", 1)[1])] = fut
        if fut.status == "error":
            fut.result()  # raise the build's error here
        if queue:
            running.add(submit(queue.pop(0)))
    del pieces, by_part

    dsk = {}
    for i, (o, m) in enumerate(zip(offsets, row_chunks)):
        for p in range(P):
            dsk[(take, i, p)] = (_rows_of_block, built[p], int(o), int(o + m))
        dsk[(merge, i)] = (_merge_block, [(take, i, p) for p in range(P)], int(o), int(o + m), k)
    graph = HighLevelGraph.from_collections(merge, dsk, dependencies=[])
    anchor = Delayed((merge, 0), graph, layer=merge)
    out = []
    for j, (name, dtype) in enumerate(((f"{main}-neighbors", np.int64), (f"{main}-sqdist", np.float64))):
        layer = {(name, i, 0): (operator.getitem, (merge, i), j) for i in range(B)}
        out.append(da.Array(HighLevelGraph.from_collections(name, layer, dependencies=[anchor]), name, (row_chunks, (k,)), dtype=dtype))
    return out[0], out[1]


def _warm_pynndescent() -> bool:
    """Compile pynndescent's kernels in this process (numba; ~25 s once per process)."""
    from pynndescent import NNDescent

    x = np.random.default_rng(0).normal(size=(EXACT_PARTITION_ROWS + 500, 4)).astype(np.float32)
    with _BUILD_LOCK, limit_threads(1):
        NNDescent(x, n_neighbors=6, random_state=0, n_jobs=1, low_memory=True, compressed=True, max_candidates=60).neighbor_graph
    return True


_warmed: set = set()


def warm_workers(client) -> int:
    """Compile pynndescent once in every worker of ``client`` not warmed yet (in parallel).

    Returns the number of workers warmed now. Workers are long-lived, so a session pays the JIT
    once, not once per call.
    """
    workers = [w for w in client.scheduler_info()["workers"] if (client.id, w) not in _warmed]
    if workers:
        client.run(_warm_pynndescent, workers=workers)
        _warmed.update((client.id, w) for w in workers)
    return len(workers)


def _merge_two_graphs(n1, d1, n2, d2, k: int):
    ids = np.concatenate([n1, n2], axis=1)
    sq = np.concatenate([d1, d2], axis=1)
    order = np.argsort(ids, axis=1, kind="stable")
    ids = np.take_along_axis(ids, order, axis=1)
    sq = np.take_along_axis(sq, order, axis=1)
    dup = np.zeros(ids.shape, dtype=bool)
    dup[:, 1:] = ids[:, 1:] == ids[:, :-1]
    sq = np.where(dup, np.inf, sq)
    out_i, out_d = K.merge_candidates(ids, sq, k)
    return np.where(np.isinf(out_d), K.ID_SENTINEL, out_i), out_d


def merge_graphs(first: tuple, second: tuple, k: int):
    """Per row, the best k of the union of two candidate graphs (deduplicated by id, ordered by
    (distance, id)). Lazy; both are (neighbors, sqdist) Dask arrays with the same row chunks."""
    (n1, d1), (n2, d2) = first, second
    merge = dask.delayed(_merge_two_graphs, pure=True, nout=2)
    parts = [
        merge(a, b, c, e, k)
        for a, b, c, e in zip(*(x.rechunk({1: -1}).to_delayed().ravel() for x in (n1, d1, n2, d2)))
    ]
    rows = n1.chunks[0]
    nbr = da.concatenate([da.from_delayed(p[0], shape=(m, k), dtype=np.int64) for p, m in zip(parts, rows)])
    sqd = da.concatenate([da.from_delayed(p[1], shape=(m, k), dtype=np.float64) for p, m in zip(parts, rows)])
    return nbr, sqd
