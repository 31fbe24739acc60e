"""Label-masked exact k-NN over Dask row blocks (graph building only; kernels in
:mod:`distdataeval.evaluators._search_kernels`).

Used where the shared 25-NN graph of :func:`distdataeval.cluster` cannot answer: per-class
(intra / extra) neighbours for :func:`distdataeval.label_errors`, and k-th neighbour distances
against a reference set (or beyond the graph's width) for :class:`distdataeval.Prioritize`.

One task scans one query block against a group of reference blocks (at most ``GROUP_BYTES`` of
float64 rows); a query block's groups are merged by one more task. No task holds more than a
``QUERY_SLAB x REF_SLAB`` distance slab, so nothing n x n ever exists. Cost: O(n_q n_r d) work
spread over the workers, as for the exact search of ``cluster()``.
"""

from __future__ import annotations

import warnings

import dask
import dask.array as da
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
import numpy as np

from distdataeval.errors import InvalidParameterError
from distdataeval.evaluators import _search_kernels as K
from distdataeval.knn.exact import group_blocks
from distdataeval.runtime.threads import limit_threads

GROUP_BYTES = 256 << 20


def _offsets(chunks: tuple) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(chunks)[:-1]]).astype(np.int64)


def prepare_search_blocks(x: da.Array, centre: np.ndarray, labels: np.ndarray | None = None, client=None) -> list:
    """One Delayed :class:`~distdataeval.evaluators._search_kernels.SearchBlock` per row block.

    Parameters
    ----------
    x : dask array, shape (n, d), one chunk along d
    centre : ndarray of float64, shape (d,)
        Subtracted from every row (the same vector for queries and references).
    labels : ndarray of int64, shape (n,), optional
        Per-row labels (needed by the ``"same"`` / ``"other"`` modes).
    client : distributed.Client, optional
        When given, the labels are persisted on the cluster once, as a Dask array, and the
        tasks refer to its blocks; otherwise each block's labels are written into the graph,
        which every computation of the blocks sends again (8 bytes per row: a 16 MiB graph and
        Dask's "large graph" warning at 2M rows). Not scattered: scattered data is lost with
        the worker that holds it, a persisted block is recomputed elsewhere.
    """
    offsets = _offsets(x.chunks[0])
    prep = dask.delayed(K.prepare_search_block, pure=True)
    token = dask.base.tokenize(x.name, centre, labels)
    if client is not None and labels is not None:
        # sent once, in the narrowest integer type that holds them (blocks widen them to int64);
        # Dask's "large graph" warning for this one send is expected (the labels must get there)
        narrow = labels.astype(np.min_scalar_type(int(labels.max(initial=0))) if labels.min(initial=0) >= 0 else labels.dtype)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
            held = client.persist(da.from_array(narrow, chunks=(x.chunks[0],), name=f"msearch-labels-{token}"))
        parts = list(held.to_delayed(optimize_graph=False).ravel())
    else:
        parts = [None if labels is None else labels[o : o + m] for o, m in zip(offsets, x.chunks[0])]
    return [
        prep(b, int(o), centre, part, dask_key_name=f"msearch-prep-{token}-{i}")
        for i, (b, o, part) in enumerate(zip(x.to_delayed().ravel(), offsets, parts))
    ]


def _pick_rows(block, local: np.ndarray):
    return block.x[local], block.sqnorm[local]


def _query_block(ids: np.ndarray, labels: np.ndarray, *pieces) -> tuple:
    x = np.concatenate([p[0] for p in pieces])
    return ids, K.SearchBlock(0, x, np.concatenate([p[1] for p in pieces]), labels)


def _query_rows(blocks: list, chunks: tuple, ids: np.ndarray, labels: np.ndarray):
    """Lazy (ids, SearchBlock) of the rows ``ids`` (sorted), taken from the prepared ``blocks``
    (row blocks ``chunks``): one small task per block holding any of them. (Fancy-indexing the
    input array instead made a shuffle of ~6,000 tasks for label_errors' fallback at 1M rows:
    ~13 s of wall time for 1.7 core-s of search.)"""
    offs = _offsets(chunks)
    which = np.searchsorted(offs, ids, side="right") - 1
    pick = dask.delayed(_pick_rows, pure=True)
    pieces = [pick(blocks[b], ids[which == b] - offs[b]) for b in np.unique(which)]
    return dask.delayed(_query_block, pure=True)(ids, labels[ids], *pieces)


def _groups(row_chunks: tuple, d: int) -> list:
    return group_blocks(range(len(row_chunks)), row_chunks, 8 * d + 16, GROUP_BYTES)


def _tile(q, refs, k, modes, exclude_self):
    with limit_threads(1):
        return K.search_tile(q, refs, k, modes, exclude_self)


def _merge(parts, k):
    return tuple(K.merge_neighbours([p[t] for p in parts], k) for t in range(len(parts[0])))


def masked_knn(
    queries: list,
    query_chunks: tuple,
    refs: list,
    ref_chunks: tuple,
    k: int,
    modes: tuple = ("all",),
    *,
    d: int,
    exclude_self: bool,
) -> list:
    """Lazy k nearest admissible references of every query row, per mode.

    Parameters
    ----------
    queries, refs : list of Delayed SearchBlock
        From :func:`prepare_search_blocks` (the same list twice for a self-search).
    query_chunks, ref_chunks : tuple of int
        Rows per block.
    k : int
        Neighbours per row and mode (rows with fewer admissible references are padded with
        id -1 and distance inf).
    modes : tuple of {"all", "same", "other"}
    d : int
        Dimension (sizes the groups of reference blocks one task scans).
    exclude_self : bool
        Queries and references are the same rows (a row never neighbours itself).

    Returns
    -------
    list of Delayed
        One per query block: a tuple of :class:`~distdataeval.evaluators._search_kernels.Neighbours`,
        one per mode.
    """
    for mode in modes:
        if mode not in K.MODES:
            raise InvalidParameterError(f"unknown search mode {mode!r}; known: {K.MODES}")
    token = dask.base.tokenize(queries, refs, k, modes, exclude_self)
    tile = dask.delayed(_tile, pure=True)
    merge = dask.delayed(_merge, pure=True)
    out = []
    for qi, q in enumerate(queries):
        parts = [
            tile(q, [refs[j] for j in group], k, modes, exclude_self, dask_key_name=f"msearch-tile-{token}-{qi}-{g}")
            for g, group in enumerate(_groups(ref_chunks, d))
        ]
        out.append(parts[0] if len(parts) == 1 else merge(parts, k, dask_key_name=f"msearch-merge-{token}-{qi}"))
    return out


def kth_distance(neighbours: list, query_chunks: tuple, column: int, mode: int = 0) -> da.Array:
    """float64 (n,) Euclidean distance of column ``column`` of mode ``mode`` of each query row."""
    pick = dask.delayed(_column, pure=True)
    return da.concatenate(
        [da.from_delayed(pick(nb, mode, column), shape=(m,), dtype=np.float64) for nb, m in zip(neighbours, query_chunks)]
    )


def _column(nb, mode: int, column: int) -> np.ndarray:
    return np.sqrt(nb[mode].sqdist[:, column])


# ---------------------------------------------------------------------------------------------
# Cell (IVF) search and exact search of selected rows: the approximate mode of label_errors.
# ---------------------------------------------------------------------------------------------


def route_to_cells(blocks: list, centroids: np.ndarray, nprobe: int, group_of=None, group_centroids=None) -> list:
    """Lazy :func:`~distdataeval.evaluators._search_kernels.route_block` of every SearchBlock
    (coarse-to-fine when the cells' groups are given)."""
    route = dask.delayed(K.route_block, pure=True)
    cent, groups, group_cent = _shared(centroids, group_of, group_centroids)
    return [route(b, cent, nprobe, groups, group_cent) for b in blocks]


def _shared(*arrays) -> list:
    """Arrays every task of a layer needs, each made one graph key (not a copy per task)."""
    return [None if a is None else dask.delayed(a, pure=True) for a in arrays]


def probe_pairs(routes: list, n_cells: int) -> list:
    """Lazy per-route (home cell, probed cell) pair codes (``home * n_cells + probed``)."""
    pairs = dask.delayed(K.probe_pairs, pure=True)
    return [pairs(r, n_cells) for r in routes]


def cell_label_counts(routes: list) -> list:
    """Lazy per-route (cells, label codes, row counts) of every (home cell, label) present."""
    count = dask.delayed(K.cell_label_counts, pure=True)
    return [count(r) for r in routes]


def _cell_search(home_ids, cell_ids, batches, picks, k, modes, other=None):
    cells = [batches[b][pos] for b, pos in picks]
    with limit_threads(1):
        return K.search_cells(home_ids, cell_ids, cells, k, modes, other)


def cell_knn(routes: list, groups: list, probed: dict, k: int, modes: tuple, other: dict | None = None,
             then: tuple | None = None) -> list:
    """Lazy k nearest admissible rows of each cell's rows among the cells they probe.

    Parameters
    ----------
    routes : list of Delayed
        :func:`route_to_cells` output (best persisted): every cell task reads its rows from all
        routed blocks; on a worker, a routed block is fetched once whatever the number of
        cells, so the data moves about once.
    groups : list of sequences of int
        Home cells searched together, one task per group (neighbouring cells, which probe
        mostly the same cells). Every non-empty cell is in exactly one group; a group's cells
        are also gathered together, in one task.
    probed : dict of int to ndarray
        Home cell -> every (non-empty) cell its rows probe, itself included.
    k : int
    modes : tuple of {"all", "same", "other"}
    other : dict of int to ndarray, optional
        Home cell -> cells its rows also search for mode ``"other"`` only (their rows of
        another class; see :func:`~distdataeval.evaluators._search_kernels.search_cells`).
    then : (callable, tuple), optional
        Applied to each group's result in the same task chain: ``f(result, *args)``.

    Returns
    -------
    list of Delayed
        Per group: (global ids of its rows, tuple of Neighbours per mode), or ``then``'s output.
        Work: sum over rows of (rows in the probed cells) x d; memory per task: the probed
        cells.

    Notes
    -----
    The graph is written as three task layers (cells gathered per group, groups searched,
    ``then``), not with one ``dask.delayed`` call per task: at 1M rows (1,700 cells, 430 groups
    needing ~150 cells each) the per-call bookkeeping of ``delayed`` took 18 s on the driver.
    """
    for mode in modes:
        if mode not in K.MODES:
            raise InvalidParameterError(f"unknown search mode {mode!r}; known: {K.MODES}")
    route_keys = [r.key for r in routes]
    groups = [[int(h) for h in group] for group in groups]
    # the groups' cells are gathered one batch per group: a search task reads the batches that
    # hold the cells it needs (far fewer keys and dependencies than one per cell)
    batch_of = {h: (b, pos) for b, group in enumerate(groups) for pos, h in enumerate(group)}
    extras, members = [], []
    for group in groups:
        extra = {} if other is None else {h: np.asarray(other.get(h, ()), dtype=np.int64) for h in group}
        ids = np.unique(np.concatenate([np.asarray(probed[h], dtype=np.int64) for h in group] + list(extra.values())))
        extras.append((group, extra or None))
        members.append(ids)
    token = dask.base.tokenize(route_keys, groups, [sorted(probed.items())], other, k, modes, then)
    gather, search, post = (f"{name}-{token}" for name in ("cells-gather", "cell-search", "cell-post"))
    layer = {(gather, b): (K.gather_cells, group, *route_keys) for b, group in enumerate(groups)}
    out = []
    for i, ((group, extra), ids) in enumerate(zip(extras, members)):
        where = np.array([batch_of[int(c)] for c in ids], dtype=np.int64).reshape(-1, 2)
        batches, slot = np.unique(where[:, 0], return_inverse=True)
        picks = np.stack([slot.ravel(), where[:, 1]], axis=1)
        layer[(search, i)] = (_cell_search, group, ids, [(gather, int(b)) for b in batches], picks, k, modes, extra)
        key = (search, i)
        if then is not None:
            layer[(post, i)] = (then[0], (search, i), *then[1])
            key = (post, i)
        out.append(key)
    name = f"cell-knn-{token}"
    graph = HighLevelGraph.from_collections(name, layer, dependencies=list(routes))
    return [Delayed(key, graph, layer=name) for key in out]


def _exact_rows(q, refs, k, modes):
    ids, block = q
    with limit_threads(1):
        return ids, K.search_tile(block, refs, k, modes, False)


def _merge_rows(parts, k, modes):
    ids = parts[0][0]
    merged = tuple(K.merge_neighbours([p[1][t] for p in parts], k + 1) for t in range(len(modes)))
    return ids, tuple(K.drop_self(nb, ids, k) if mode != "other" else _trim(nb, k) for nb, mode in zip(merged, modes))


def _trim(nb, k):
    return K.Neighbours(nb.ids[:, :k], nb.sqdist[:, :k], nb.labels[:, :k])


def exact_rows_knn(
    ids: np.ndarray, labels: np.ndarray, refs: list, ref_chunks: tuple, k: int, modes: tuple, *, d: int,
    query_rows: int = 2048,
) -> list:
    """Lazy exact k nearest admissible rows of the rows ``ids`` (any order) among all rows.

    Parameters
    ----------
    ids : ndarray of int64
        Rows to search (taken from ``refs``).
    labels : ndarray of int64, shape (n,)
        Label codes of all rows.
    refs : list of Delayed SearchBlock
        All rows (from :func:`prepare_search_blocks` with the same centre and labels).
    ref_chunks : tuple of int
    k : int
    modes : tuple of {"all", "same", "other"}
    d : int
    query_rows : int
        Query rows per task group.

    Returns
    -------
    list of Delayed
        Per group of query rows: (their ids, tuple of Neighbours per mode); a row is never its
        own neighbour. Work: len(ids) x n x d.
    """
    ids = np.asarray(ids, dtype=np.int64)
    tile = dask.delayed(_exact_rows, pure=True)
    merge = dask.delayed(_merge_rows, pure=True)
    out = []
    for s in range(0, ids.size, query_rows):
        part = np.sort(ids[s : s + query_rows])
        q = _query_rows(refs, ref_chunks, part, labels)
        tiles = [tile(q, [refs[j] for j in group], k + 1, modes) for group in _groups(ref_chunks, d)]
        out.append(merge(tiles, k, modes))
    return out


def _class_tile(q, code, splits, k):
    with limit_threads(1):
        return K.search_label_rows(q, code, splits, k)


def _merge_class(q, parts, k):
    ids = q[0]
    return ids, K.drop_self(K.merge_neighbours(list(parts), k + 1), ids, k)


def same_class_knn(
    x: da.Array, ids: np.ndarray, centre: np.ndarray, labels: np.ndarray, blocks: list, k: int, *, d: int,
    query_rows: int = 2048,
) -> list:
    """Lazy exact k nearest rows *of their own class* of the rows ``ids`` (any order).

    Each class's query rows are compared only with the rows of that class: one pass over the
    row blocks splits them by label (only the classes asked for), and a task compares a group
    of query rows of one class with that class's rows of a group of blocks (at most
    ``GROUP_BYTES`` of rows). The query rows themselves are taken from the same splits (one
    task per query group). Work: sum over classes of (query rows x class rows) x d.

    Parameters
    ----------
    x : dask array, shape (n, d)
    ids : ndarray of int64
        Rows to search.
    centre : ndarray of float64, shape (d,)
    labels : ndarray of int64, shape (n,)
        Label codes of all rows (the same as in ``blocks``).
    blocks : list of Delayed SearchBlock
        All rows (from :func:`prepare_search_blocks` with the same centre and labels).
    k : int
    d : int
    query_rows : int
        Query rows per task group.

    Returns
    -------
    list of Delayed
        Per group of query rows: (their ids, Neighbours); a row is never its own neighbour.

    Notes
    -----
    The graph is written as one task layer (not a ``dask.delayed`` call per task): at 1M rows
    the fallback's 11,000 rows made ~3,000 small query-row tasks and 2 s of driver bookkeeping.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0:
        return []
    chunks = x.chunks[0]
    wanted = np.unique(labels[ids])
    token = dask.base.tokenize(x.name, ids, centre, k, [b.key for b in blocks])
    split, pick, tile, merge = (f"{name}-{token}" for name in ("lsplit", "class-query", "class-tile", "class-merge"))
    layer = {(split, j): (K.split_by_label, b.key, wanted) for j, b in enumerate(blocks)}
    # rows of each wanted class per block (from the labels on the driver)
    block_of = np.repeat(np.arange(len(chunks)), chunks)
    pairs, counts = np.unique(np.stack([labels, block_of]), axis=1, return_counts=True)
    out = []
    for code in wanted:
        here = pairs[0] == code
        class_blocks, class_counts = pairs[1][here], counts[here]
        sizes = np.zeros(len(chunks), np.int64)
        sizes[class_blocks] = class_counts
        groups = group_blocks(class_blocks.tolist(), tuple(sizes.tolist()), 8 * d + 16, GROUP_BYTES)
        rows = np.sort(ids[labels[ids] == code])
        for s in range(0, rows.size, query_rows):
            part = rows[s : s + query_rows]
            g = len(out)
            holding = np.unique(block_of[part])
            layer[(pick, g)] = (K.pick_label_rows, part, int(code), [(split, int(j)) for j in holding])
            for t, grp in enumerate(groups):
                layer[(tile, g, t)] = (_class_tile, (pick, g), int(code), [(split, int(j)) for j in grp], k + 1)
            layer[(merge, g)] = (_merge_class, (pick, g), [(tile, g, t) for t in range(len(groups))], k)
            out.append((merge, g))
    name = f"same-class-knn-{token}"
    graph = HighLevelGraph.from_collections(name, layer, dependencies=list(blocks))
    return [Delayed(key, graph, layer=name) for key in out]
