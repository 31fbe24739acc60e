"""The orchestrator: the only module that computes, persists and gathers.

Stage modules build lazy Dask graphs (``io``, ``knn``, ``mst.reduce``, ``stats``) or run numba
kernels on arrays they are given (``mst``, ``tree``); this module decides what runs when.
"""

from __future__ import annotations

import logging
import operator
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import dask
import dask.array as da
import numpy as np

from distdataeval import config
from distdataeval.io.sink import ResultStore, temporary_store
from distdataeval.io.source import Source, check_scan, scan_source
from distdataeval.knn.approx import approximate_knn, plan_partitions, preload_planner, warm_workers
from distdataeval.knn import exact as knn_exact
from distdataeval.knn._kernels import ID_SENTINEL
from distdataeval.mst import _kernels as mst_kernels
from distdataeval.mst.bridge import (
    add_bridges,
    component_balls,
    dataeval_component_positions,
    forest_state,
    ordered_tile_mask,
    proposals_to_edges,
    useful_component_pairs,
)
from distdataeval.mst import component_pairs as cpairs
from distdataeval.mst.records import SpanningTree
from distdataeval.mst.reduce import EdgeList, knn_forest
from distdataeval.result import ClusterResult
from distdataeval.runtime.client import is_shared_local
from distdataeval.runtime.compute import scattered_rows
from distdataeval.stats import cluster_centers, reassign_noise_to_nearest_center
from distdataeval.tree import hdbscan_from_mst

log = logging.getLogger("distdataeval")

MAX_NEIGHBORS = 25


@dataclass(frozen=True)
class ClusterPlan:
    """Validated parameters of one ``cluster()`` run."""

    algorithm: str
    min_cluster_size: int
    max_cluster_size: int | None
    knn: str  # "exact" or "approx" (auto is resolved by the caller)
    reassign_noise: bool
    overlap: int = 2
    partition_rows: int = 100_000
    partition_sample: int = 50_000
    recall_target: float = 0.95
    # measured on the benchmark mixtures (benchmarks/README.md): a row goes to its 2nd partition
    # only within 10% (squared distance) of that cell's border; the pynndescent graph is 1.2x
    # wider than k + 1 with 40 candidates; below the recall target a wider pass is added
    border: float | None = 0.1
    neighbor_factor: float = 1.2
    max_candidates: int = 40
    escalate: bool = True
    n_clusters: int | None = None  # KMeans: the number of clusters (validated, < n)
    n_init: int | str = "auto"


class LowRecallWarning(UserWarning):
    """The approximate k-NN graph's measured recall is below the target."""


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def stage(self, name: str):
        t0 = self.started = time.perf_counter()
        log.info("stage %s: start", name)
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
            log.info("stage %s: %.2f s", name, self.timings[name])


def _patch_rows(block, ids, rows, values, block_info=None):
    lo, hi = block_info[0]["array-location"][0]
    sel = (rows >= lo) & (rows < hi)
    if not sel.any():
        return block
    out = block.copy()
    out[rows[sel] - lo] = values[sel]
    return out


def _exact_knn(
    client, blocks, row_chunks, d: int, k: int, timer: _Timer, positions=None, tile_mask=None, allowed_pairs=None
):
    """Run the exact search (persisted) and recompute uncertified rows in float64."""
    nbr, sqd, cert = knn_exact.exact_knn_candidates(
        blocks, row_chunks, k, positions, tile_mask, d=d, allowed_pairs=allowed_pairs
    )
    nbr, sqd, cert = client.persist([nbr, sqd, cert])
    uncertified = np.flatnonzero(~client.compute(cert).result())
    if uncertified.size:
        log.info("k-NN: %d rows not certified by the float32 pass; recomputing in float64", uncertified.size)
        offsets = np.concatenate([[0], np.cumsum(row_chunks)[:-1]]).astype(int)
        q_pos = r_pos = None
        if positions is not None:
            q_pos = positions[uncertified]
            r_pos = [positions[o : o + m] for o, m in zip(offsets, row_chunks)]
        nbr, sqd = _exact_search_rows(client, blocks, nbr, sqd, uncertified, k, q_pos, r_pos)
    return nbr, sqd, int(uncertified.size)


def _exact_search_rows(client, blocks, nbr, sqd, rows, k: int, q_pos=None, r_pos=None):
    """Replace the neighbour lists of ``rows`` by an exact float64 search over all blocks (persisted)."""
    fix_i, fix_d = client.compute(knn_exact.exact_rows_search(blocks, rows, k, q_pos, r_pos)).result()
    nbr = da.map_blocks(_patch_rows, nbr, None, rows, fix_i, dtype=nbr.dtype)
    sqd = da.map_blocks(_patch_rows, sqd, None, rows, fix_d, dtype=sqd.dtype)
    return tuple(client.persist([nbr, sqd]))


def _nearest_later_points(client, blocks, d: int, positions: np.ndarray, row_chunks: tuple, timer: _Timer):
    """For every point, its exact nearest point in a later component (-1 if none).

    Rows are first sorted by component position, so that blocks are component-coherent: tiles
    whose refs all precede their queries are not scheduled, and inside a task a ref block is
    skipped when the component-ball bounds of ``mst.bridge`` rule it out.
    """
    n = positions.shape[0]
    t0 = time.perf_counter()
    order = np.argsort(positions, kind="stable")
    pos_sorted = positions[order]
    blocks = client.persist(knn_exact.permute_blocks(blocks, order, row_chunks))
    offsets = np.concatenate([[0], np.cumsum(row_chunks)[:-1]]).astype(int)
    block_pos = [pos_sorted[o : o + m] for o, m in zip(offsets, row_chunks)]
    n_components = int(pos_sorted[-1]) + 1
    centers, radii = component_balls(blocks, block_pos, n_components)
    allowed = dask.delayed(useful_component_pairs, pure=True)(centers, radii)
    mask = ordered_tile_mask(block_pos)
    nbr, sqd, _ = _exact_knn(
        client, blocks, row_chunks, d, 1, timer, positions=pos_sorted, tile_mask=mask, allowed_pairs=allowed
    )
    nearest_s, d2_s = client.gather(client.compute([nbr[:, 0], sqd[:, 0]]))
    del blocks
    log.info("MST bridging: nearest later points found in %.2f s", time.perf_counter() - t0)
    nearest = np.full(n, -1, dtype=np.int64)
    d2 = np.full(n, np.inf)
    found = nearest_s != ID_SENTINEL
    nearest[order[found]] = order[nearest_s[found]]
    d2[order[found]] = d2_s[found]
    return nearest, d2, int(mask.sum()), int(mask.size)


def _bridge(client, forest: EdgeList, blocks, d: int, row_chunks, n: int, timer: _Timer, knn_graph):
    """Join the components of the k-NN forest by DataEval's rule and component order (exact
    mode; ``knn_graph = (neighbors, distances)`` in memory, ``mst.bridge``)."""
    parent, size = forest_state(forest, n)
    labels = mst_kernels.component_labels(parent)
    n_components = int(labels.max()) + 1
    t0 = time.perf_counter()
    positions = dataeval_component_positions(*knn_graph)
    log.info("MST: component order found in %.2f s", time.perf_counter() - t0)
    added = []
    tiles = [0, 0]
    rounds = 0
    while labels.max() > 0:
        rounds += 1
        log.info("MST: k-NN graph has %d components; bridging round %d", int(labels.max()) + 1, rounds)
        nearest, d2, used, total = _nearest_later_points(client, blocks, d, positions, row_chunks, timer)
        tiles[0] += used
        tiles[1] += total
        proposals = proposals_to_edges(np.arange(n, dtype=np.int64), nearest, d2)
        added.append(add_bridges(proposals, parent, size))
        labels = mst_kernels.component_labels(parent)
        positions = labels
    edges = EdgeList.concat([forest, *added]) if added else forest
    return edges, n_components, tiles


def _bridge_nearby_pairs(client, forest: EdgeList, blocks, row_chunks, n: int):
    """Join the components of an approximate k-NN forest (approx mode, ``mst.component_pairs``):
    candidate pairs of nearby components, their closest pair found by seeded search and
    refinement passes over the blocks, Kruskal; repeated on the merged components if needed."""
    delayed = dask.delayed(pure=True)
    parent, size = forest_state(forest, n)
    labels = mst_kernels.component_labels(parent)
    n_components = int(labels.max()) + 1
    offsets = np.concatenate([[0], np.cumsum(row_chunks)[:-1]]).astype(int)
    added, rounds, pairs_total = [], 0, 0
    while labels.max() > 0:
        rounds += 1
        C = int(labels.max()) + 1
        t0 = time.perf_counter()
        labs = client.scatter([labels[o : o + m] for o, m in zip(offsets, row_chunks)])
        sums = [delayed(cpairs.block_component_sums)(b, lab) for b, lab in zip(blocks, labs)]
        centroids = client.compute(delayed(cpairs.combine_centroids)(sums, C)).result()
        pa, pb = cpairs.candidate_pairs(centroids)
        P = int(pa.shape[0])
        pairs_total += P
        cfut = client.scatter(centroids, broadcast=True)
        seeds = [delayed(cpairs.block_seeds)(b, lab, cfut, pa, pb, cpairs.SEED_ROWS) for b, lab in zip(blocks, labs)]
        slots, _, seed_ids = client.compute(delayed(cpairs.merge_seeds)(seeds, cpairs.SEED_ROWS)).result()
        uniq = np.unique(seed_ids)
        vectors = client.compute(knn_exact.gather_rows(blocks, uniq)).result()
        x, y, d2 = cpairs.closest_seed_pairs(slots, seed_ids, vectors, uniq, P)
        for _ in range(cpairs.REFINE_PASSES):
            ends = np.unique(np.concatenate([x, y]))
            vec = client.compute(knn_exact.gather_rows(blocks, ends)).result()
            queries = np.concatenate([vec[np.searchsorted(ends, y)], vec[np.searchsorted(ends, x)]])
            qfut = client.scatter(queries, broadcast=True)
            target = np.concatenate([pa, pb])
            parts = [delayed(cpairs.block_nearest_in_component)(b, lab, qfut, target) for b, lab in zip(blocks, labs)]
            near, near_d2 = client.compute(delayed(cpairs.merge_nearest)(parts)).result()
            nx, dx, ny, dy = near[:P], near_d2[:P], near[P:], near_d2[P:]
            better_x = dx < d2
            better_y = (dy < d2) & (dy < dx)
            changed = bool(better_x.any() or better_y.any())
            # keep the best of (x, y), (nx, y) and (x, ny)
            new_x = np.where(better_x & ~better_y, nx, x)
            new_y = np.where(better_y, ny, y)
            d2 = np.where(better_y, dy, np.where(better_x, dx, d2))
            x, y = new_x, new_y
            if not changed:
                break
        low, high = np.minimum(x, y), np.maximum(x, y)
        proposals = proposals_to_edges(low, high, d2)
        used = add_bridges(proposals, parent, size)
        if len(used) == 0:  # pragma: no cover - every component has a finite candidate edge
            raise RuntimeError("MST bridging made no progress")
        added.append(used)
        labels = mst_kernels.component_labels(parent)
        log.info(
            "MST bridging round %d: %d components, %d candidate pairs, %d edges added (%.2f s)",
            rounds, C, P, len(used), time.perf_counter() - t0,
        )
    edges = EdgeList.concat([forest, *added]) if added else forest
    return edges, n_components, rounds, pairs_total


RECALL_SAMPLE = 1000
# the probe's exact search in short tasks below the builds' priority: they fill the workers while
# the driver plans the partitions, then yield to the routing and the first builds (a tile running
# when a build arrives delays it by at most one tile: ~0.4 s at 1M rows)
PROBE_TILES = 16
PROBE_PRIORITY = -10
MIN_PARTITIONS = 8


def _block_checks(sq, local_probe):
    """One block's rows short of k neighbours (local positions) and its probe rows' lists."""
    return np.flatnonzero(np.isinf(sq[:, -1])), sq[local_probe]


def _short_rows_and_probe(client, sqd, probe: np.ndarray):
    """Rows that found fewer than k neighbours and the probe rows' squared distances, in one
    round trip: one small task per block (``sqd[probe]`` on the Dask array was a shuffle, and
    the two checks two round trips: ~0.3 s of the 300k-row call's tail)."""
    ends = np.cumsum(sqd.chunks[0])
    starts = ends - np.asarray(sqd.chunks[0])
    order = np.argsort(probe, kind="stable")  # blocks hand back their rows in id order
    ordered = probe[order]
    check = dask.delayed(_block_checks, pure=True)
    out = client.compute([check(b, ordered[(ordered >= lo) & (ordered < hi)] - lo)
                          for b, lo, hi in zip(sqd.to_delayed().ravel(), starts, ends)], sync=True)
    short = np.concatenate([o[0] + lo for o, lo in zip(out, starts)])
    rows = np.empty((probe.size, sqd.shape[1]), dtype=sqd.dtype)
    rows[order] = np.concatenate([o[1] for o in out])
    return short, rows


def _complete_short_rows(client, blocks, nbr, sqd, k: int, short: np.ndarray | None = None):
    """Rows that found fewer than k neighbours (a partition smaller than k + 1) get an exact
    search over all blocks instead (``short``: those rows, when already known)."""
    if short is None:
        short = _short_rows_and_probe(client, sqd, np.empty(0, np.int64))[0]
    if short.size == 0:
        return nbr, sqd
    log.info("k-NN approx: %d rows found fewer than %d neighbours; exact search for them", short.size, k)
    return _exact_search_rows(client, blocks, nbr, sqd, short, k)


def _sampled_recall(client, sqd, probe, exact_sq, certified, k: int, approx_sq=None) -> float:
    """Share of the true k nearest distances found for the probe rows (ties count as found)."""
    if approx_sq is None:
        approx_sq = _short_rows_and_probe(client, sqd, probe)[1]
    kth = exact_sq[:, k - 1 : k] * (1 + 1e-9) + 1e-12
    hits = (approx_sq <= kth).sum(axis=1)
    return float(np.mean(np.minimum(hits, k)[certified] / k)) if certified.any() else float("nan")


def _min_partitions(n: int) -> int:
    """At least 8 partitions (of at least 25,000 rows): enough builds to keep the workers evenly
    busy at a few hundred thousand rows (not tied to the worker count: the output must not
    depend on the cluster's size)."""
    return max(1, min(MIN_PARTITIONS, n // 25_000))


def _approx_knn(client, blocks, row_chunks, d: int, k: int, plan: ClusterPlan):
    """Partitioned pynndescent k-NN, plus its recall@k measured on a sample against exact search."""
    n = int(sum(row_chunks))
    t0 = time.perf_counter()
    if warm_workers(client):
        log.info("k-NN approx: pynndescent warmed on the workers in %.1f s", time.perf_counter() - t0)
    seed = config.search_seed()  # the same call gives the same graph, seed set or not
    rng = config.rng_for("sampling", seed=seed)
    sample_ids = np.sort(rng.choice(n, size=min(n, plan.partition_sample), replace=False))
    sample = client.compute(knn_exact.gather_rows(blocks, sample_ids)).result()
    partition_seed = config.seed_sequence("knn", 0, seed=seed)
    # the recall probe's exact search does not depend on the graph: submitted before the
    # partitions are planned, it runs while the driver fits the centroids (the workers would
    # wait); measured at 1M rows: ~1 s less than searching after the graph. In 4 large tiles
    # at the builds' priority it held one worker 1.5 s past the plan and the routing waited;
    # short low-priority tiles (PROBE_TILES) yield to the routing and the builds instead
    probe = np.sort(rng.choice(n, size=min(n, RECALL_SAMPLE), replace=False))
    exact_probe = client.compute(knn_exact.exact_knn_of_rows(blocks, probe, row_chunks, k, d, tiles=PROBE_TILES),
                                 priority=PROBE_PRIORITY)
    parts = plan_partitions(
        sample, n, plan.partition_rows, plan.overlap, partition_seed, plan.border, min_partitions=_min_partitions(n)
    )
    log.info(
        "k-NN approx: %d partitions (overlap %d, %.2f partitions per row), expected rows per partition %d..%d",
        parts.n_partitions, parts.overlap, parts.expected_sizes.sum() / n,
        int(parts.expected_sizes.min()), int(parts.expected_sizes.max()),
    )
    nbr, sqd = approximate_knn(
        client, blocks, row_chunks, k, parts, config.seed_sequence("knn", 1, seed=seed), plan.neighbor_factor, plan.max_candidates
    )
    nbr, sqd = client.persist([nbr, sqd])
    short, probe_sq = _short_rows_and_probe(client, sqd, probe)
    if short.size:
        nbr, sqd = _complete_short_rows(client, blocks, nbr, sqd, k, short)
        probe_sq = None  # some probe rows may have changed
    # recall@k on a sample: the share of true k nearest distances matched (tie-tolerant)
    _, exact_sq, certified = exact_probe.result()
    recall = _sampled_recall(client, sqd, probe, exact_sq, certified, k, probe_sq)
    log.info("k-NN approx: recall@%d = %.4f on %d sampled rows", k, recall, int(certified.sum()))
    if recall < plan.recall_target and plan.escalate:
        # hard data (e.g. isotropic clusters in 64-d): a second, wider search on partitions drawn
        # afresh (other cell borders), its candidates merged with the first graph's
        t1 = time.perf_counter()
        strong = plan_partitions(
            sample, n, plan.partition_rows, max(2, plan.overlap), config.seed_sequence("knn", 2, seed=seed), plan.border,
            min_partitions=_min_partitions(n),
        )
        # its candidates fold straight into the first graph (no second graph held beside it);
        # handed over in a list that approximate_knn empties, so the first graph is freed as
        # soon as the running lists are built from it
        first_graph = [nbr, sqd]
        del nbr, sqd
        more = approximate_knn(client, blocks, row_chunks, k, strong, config.seed_sequence("knn", 3, seed=seed), 1.6, 60,
                               init=first_graph)
        nbr, sqd = client.persist(list(more))
        del more
        first = recall
        recall = _sampled_recall(client, sqd, probe, exact_sq, certified, k)
        log.info(
            "k-NN approx: recall@%d %.4f below %.2f; wider second pass (%d partitions): %.4f (%.1f s)",
            k, first, plan.recall_target, strong.n_partitions, recall, time.perf_counter() - t1,
        )
    if recall < plan.recall_target:
        warnings.warn(
            f"approximate k-NN recall@{k} = {recall:.3f} is below the target {plan.recall_target}; "
            "results may differ from exact mode (knn='exact' is exact but O(n^2))",
            LowRecallWarning,
            stacklevel=4,
        )
    return nbr, sqd, recall


def min_cluster_size_for(n: int, n_clusters: int | None) -> int:
    """DataEval's adaptive HDBSCAN ``min_cluster_size`` (spec 2.2)."""
    if n_clusters is not None:
        return max(5, n // (3 * n_clusters))
    return int(min(max(5, int(n * 0.05)), 100))


@dataclass(frozen=True)
class Prepared:
    """Validated input: the source and its persisted, centred row blocks (``knn.blocks``)."""

    source: Source
    blocks: list
    row_chunks: tuple

    @property
    def n(self) -> int:
        return self.source.n

    @property
    def d(self) -> int:
        return self.source.d


@dataclass(frozen=True, eq=False)
class KnnGraph:
    """Record of the k-NN stage: the graph (NumPy in exact mode, Dask otherwise) and diagnostics."""

    k_neighbors: object
    k_distances: object
    method: str
    recall: float | None = None
    uncertified: int = 0
    # [neighbors, distances] persisted on the workers (set by knn_stage); the MST stage reads it
    # for its Boruvka rounds and empties it, which releases the workers' copy
    held: list = field(default_factory=list)
    # background writes of the graph to a temporary store (knn_stage(defer_write=True)): the
    # functions that wait for them and commit; see finish_knn_writes
    deferred: tuple = ()

    @classmethod
    def from_store(cls, store: ResultStore, method: str, recall: float | None = None) -> "KnnGraph":
        """Lazy arrays of a finished graph in ``store`` (a resumed run)."""
        return cls(store.read_dask("k_neighbors"), store.read_dask("k_distances"), method, recall)


@dataclass(frozen=True, eq=False)
class Labels:
    """Record of the labels stage (HDBSCAN tree or KMeans)."""

    clusters: np.ndarray
    membership: np.ndarray
    noise: np.ndarray
    raw_labels: np.ndarray
    linkage: object
    centers: np.ndarray | None = None  # KMeans' centres (None for HDBSCAN)


def prepare(source: Source, plan: ClusterPlan, client, timer: _Timer | None = None) -> Prepared:
    """Validate the input (one read: finiteness scan and column mean) and persist its row blocks."""
    timer = timer or _Timer()
    x = source.data
    if plan.knn == "approx":
        preload_planner()  # imported while the workers read the data
        # fresh workers import pynndescent and load its kernels in the background while they
        # validate, sample and route the data (their first builds wait for it)
        warm_workers(client, wait=False)
    with timer.stage("validate"):
        # one read of the data: the finiteness scan, the column mean and the prepared (centred)
        # blocks are persisted together; nothing is used before the scan has passed
        scan = scan_source(source)
        mean = dask.delayed(operator.getitem, pure=True)(scan, 2)
        # approx mode keeps compact blocks (float32 only: 256 instead of 768 bytes per row at d=64)
        persisted = client.persist([scan, *knn_exact.prepare_blocks(x, mean, keep_x64=plan.knn == "exact")])
        scan, blocks = persisted[0], persisted[1:]
        check_scan(source, client.compute(scan).result())
    return Prepared(source, list(blocks), tuple(int(c) for c in x.chunks[0]))


def knn_stage(prepared: Prepared, plan: ClusterPlan, client, sink: ResultStore | None = None,
              timer: _Timer | None = None, defer_write: bool = False) -> KnnGraph:
    """k = min(25, n - 1) nearest neighbours of every row (exact or approximate, ``plan.knn``).

    With ``sink`` the graph is written to ``k_neighbors``/``k_distances`` (chunk-aligned, atomic).
    With ``defer_write`` (and no sink), a graph spilled to a temporary store is written in the
    background while the next stages run; :func:`finish_knn_writes` completes it.
    """
    timer = timer or _Timer()
    n, k = prepared.n, min(MAX_NEIGHBORS, prepared.n - 1)
    with timer.stage("knn"):
        recall = None
        if plan.knn == "approx":
            nbr, sqd, recall = _approx_knn(client, prepared.blocks, prepared.row_chunks, prepared.d, k, plan)
            n_uncert = 0
        else:
            nbr, sqd, n_uncert = _exact_knn(client, prepared.blocks, prepared.row_chunks, prepared.d, k, timer)
        dist = knn_exact.knn_to_distances(sqd)
        nbr, dist = client.persist([nbr, dist])
        del sqd  # the float64 squared distances are not needed any more (n x k x 8 bytes)
        if plan.knn == "exact":
            # exact mode returns NumPy arrays, as DataEval does; its bridging order needs them too
            k_neighbors, k_distances = client.gather(client.compute([nbr, dist]))
        else:
            # approx mode never gathers the graph: it stays on the workers, or goes to Zarr
            k_neighbors, k_distances = nbr, dist
        graph_store = sink
        if graph_store is None and plan.knn != "exact" and is_shared_local(client):
            # the shared cluster's client is not Dask's default, so arrays held in its memory
            # could not be computed by the caller: spill the graph to local disk instead
            graph_store = temporary_store()
        deferred: tuple = ()
        if graph_store is not None and sink is None and defer_write:  # the temporary store: approx mode only
            # measured at 1M rows: the write took 1.7 s between the k-NN and MST stages; in the
            # background it fills the workers' idle time of the driver-side MST and tree work
            deferred = (graph_store, graph_store.write_dask("k_neighbors", nbr, client, wait=False),
                        graph_store.write_dask("k_distances", dist, client, wait=False))
        elif graph_store is not None:
            graph_store.write_dask("k_neighbors", nbr, client)
            graph_store.write_dask("k_distances", dist, client)
            if plan.knn != "exact":
                k_neighbors, k_distances = graph_store.read_dask("k_neighbors"), graph_store.read_dask("k_distances")
    log.debug("k-NN graph of %d rows, k = %d", n, k)
    # the worker-held copy serves the MST stage's Boruvka rounds (one pass each), then is released
    return KnnGraph(k_neighbors, k_distances, plan.knn, recall, n_uncert, [nbr, dist], deferred)


def finish_knn_writes(graph: KnnGraph) -> KnnGraph:
    """Wait for a graph's background writes (``knn_stage(defer_write=True)``); the returned
    record's arrays read the committed store."""
    if not graph.deferred:
        return graph
    store, *finishers = graph.deferred
    for finish in finishers:
        finish()
    return replace(graph, k_neighbors=store.read_dask("k_neighbors"), k_distances=store.read_dask("k_distances"),
                   deferred=())


def mst_stage(prepared: Prepared, graph: KnnGraph, plan: ClusterPlan, client, sink: ResultStore | None = None,
              timer: _Timer | None = None) -> SpanningTree:
    """Minimum spanning tree of the k-NN graph, its components bridged (exact: DataEval's rule and
    order; approx: nearby-pair search). With ``sink`` it is written to ``mst/*``."""
    timer = timer or _Timer()
    n = prepared.n
    with timer.stage("mst"):
        nbr, dist = graph.held if graph.held else (graph.k_neighbors, graph.k_distances)
        graph.held.clear()
        if not isinstance(nbr, da.Array):
            nbr = scattered_rows(client, np.asarray(nbr), prepared.row_chunks)
            dist = scattered_rows(client, np.asarray(dist), prepared.row_chunks)
        forest = knn_forest(client, nbr, dist)
        del nbr, dist
        log.info("MST: k-NN forest of %d edges (%.2f s)", len(forest), time.perf_counter() - timer.started)
        n_components = 1
        if len(forest) < n - 1 and plan.knn == "exact":
            knn_pair = (np.asarray(graph.k_neighbors), np.asarray(graph.k_distances))
            # DataEval's rule and component order (all-pairs search, as DataEval does)
            forest, n_components, tiles = _bridge(
                client, forest, prepared.blocks, prepared.d, prepared.row_chunks, n, timer, knn_pair
            )
            timer.timings["bridging_tiles"] = tiles[0]
            timer.timings["bridging_tiles_total"] = tiles[1]
        elif len(forest) < n - 1:
            forest, n_components, rounds, pairs = _bridge_nearby_pairs(
                client, forest, prepared.blocks, prepared.row_chunks, n
            )
            timer.timings["bridging_rounds"] = rounds
            timer.timings["bridging_pairs"] = pairs
        edges = forest.sorted()
        if len(edges) != n - 1:  # pragma: no cover - guarded by construction
            raise RuntimeError(f"MST has {len(edges)} edges for {n} points; expected {n - 1}")
        spanning = SpanningTree(edges.low, edges.high, edges.weight, n, n_components)
        if sink is not None:
            chunk = max(prepared.row_chunks)
            sink.write_numpy("mst/sources", spanning.sources, chunk)
            sink.write_numpy("mst/targets", spanning.targets, chunk)
            sink.write_numpy("mst/weights", spanning.weights, chunk)
    return spanning


def spanning_tree_from_store(store: ResultStore, n: int, n_knn_components: int = 1) -> SpanningTree:
    """The MST written by :func:`mst_stage` to ``store`` (a resumed run)."""
    get = lambda name: np.asarray(store.read_dask(name).compute())  # noqa: E731 - O(n) arrays
    return SpanningTree(get("mst/sources"), get("mst/targets"), get("mst/weights"), n, n_knn_components)


def labels_stage(prepared: Prepared, spanning: SpanningTree, plan: ClusterPlan, client,
                 timer: _Timer | None = None) -> Labels:
    """Cluster labels and membership strengths: the HDBSCAN tree (then the seeds' noise
    reassignment) or KMeans; the single-linkage tree is computed in both cases, as DataEval does."""
    timer = timer or _Timer()
    x = prepared.source.data
    with timer.stage("tree"):
        if plan.algorithm == "kmeans":
            from distdataeval.kmeans import fit_kmeans
            from distdataeval.tree import mst_to_linkage_tree

            linkage = mst_to_linkage_tree(spanning)
            fit = fit_kmeans(x, plan.n_clusters, n_init=plan.n_init, client=client)
            labels = np.asarray(fit.labels, dtype=np.int64)
            return Labels(labels, np.asarray(fit.membership, dtype=np.float32), np.zeros(prepared.n, dtype=bool),
                          labels.copy(), linkage, np.asarray(fit.centers))
        tree = hdbscan_from_mst(spanning, plan.min_cluster_size, plan.max_cluster_size)
        raw = tree.labels
        noise = raw < 0
        labels = raw.copy()
        if noise.all():
            labels[:] = 0  # DataEval's post-fix: all noise -> one cluster 0
        elif noise.any() and plan.reassign_noise:
            n_found = int(raw.max()) + 1
            if plan.knn != "exact":
                # the centred float32 rows already on the workers (the nearest centre does not
                # change with the centring; float32 rows are what approx mode measures): measured
                # at 1M rows, re-reading the input twice from Zarr took ~2.6 core-s
                x = _centred_rows(prepared)
            lab = scattered_rows(client, raw, prepared.row_chunks)
            centers, _ = client.compute(cluster_centers(x, lab, n_found)).result()
            labels = client.compute(reassign_noise_to_nearest_center(x, lab, centers)).result()
    return Labels(np.asarray(labels, dtype=np.int64), np.asarray(tree.membership, dtype=np.float32), noise, raw,
                  tree.linkage)


def _block_x32(block):
    return block.x32


def _centred_rows(prepared: Prepared) -> da.Array:
    """The prepared blocks' centred float32 rows as a Dask array (no new read of the input)."""
    take = dask.delayed(_block_x32, pure=True)
    return da.concatenate([
        da.from_delayed(take(b), shape=(m, prepared.d), dtype=np.float32)
        for b, m in zip(prepared.blocks, prepared.row_chunks)
    ])


def run_cluster(source: Source, plan: ClusterPlan, client, sink: ResultStore | None = None) -> ClusterResult:
    """Run validate -> k-NN -> MST -> labels (HDBSCAN tree or KMeans) on ``client``.

    With ``sink`` the k-NN graph and the MST are also written to that Zarr group.
    """
    timer = _Timer()
    prepared = prepare(source, plan, client, timer)
    graph = knn_stage(prepared, plan, client, sink, timer, defer_write=True)
    spanning = mst_stage(prepared, graph, plan, client, sink, timer)
    lab = labels_stage(prepared, spanning, plan, client, timer)
    graph = finish_knn_writes(graph)
    n = source.n
    log.info("cluster(): %d points, %d clusters, %d noise; %s", n, int(lab.clusters.max()) + 1,
             int(lab.noise.sum()), timer.timings)
    return ClusterResult(
        clusters=lab.clusters,
        membership_strengths=lab.membership,
        k_neighbors=graph.k_neighbors,
        k_distances=graph.k_distances,
        spanning_tree=spanning,
        linkage=lab.linkage,
        noise=lab.noise,
        raw_labels=lab.raw_labels,
        min_cluster_size=plan.min_cluster_size,
        knn_method=plan.knn,
        knn_recall=graph.recall,
        n_knn_components=spanning.n_knn_components,
        timings=dict(timer.timings, knn_uncertified_rows=graph.uncertified),
        algorithm=plan.algorithm,
    )
