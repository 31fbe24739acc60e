"""NumPy kernels of the label-masked brute-force k-NN (no Dask here).

A tile is one query block against a list of reference blocks. Candidates are ranked by a
float64 GEMM on centred rows (``|q|^2 + |r|^2 - 2 q.r``) in slabs of at most
``QUERY_SLAB x REF_SLAB`` entries, offered to one bounded max-heap per row and mode (numba);
the kept candidates are then recomputed exactly by direct differences, so the reported
distances carry no cancellation error. Every selection is a *mode*:

* ``"all"``: every reference row (the query row itself excluded when ``exclude_self``);
* ``"same"``: reference rows with the query row's label (self excluded);
* ``"other"``: reference rows with a different label.

Rows with fewer than k admissible references keep ``inf`` distances and id ``-1``. Results are
ordered by (distance, id), so ties are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

QUERY_SLAB = 1024
REF_SLAB = 4096
# the cell search's candidate GEMM runs in float32 on slabs that stay in cache (512 x 1024 x 4 B
# = 2 MiB); the kept candidates' distances are recomputed from float64 differences of the
# cells' float32 rows
CELL_QUERY_SLAB = 512
CELL_REF_SLAB = 1024
MODES = ("all", "same", "other")


@dataclass(frozen=True)
class SearchBlock:
    """One row block prepared for the search.

    Attributes
    ----------
    offset : int
        Global id of the first row.
    x : ndarray of float64, shape (m, d)
        Rows minus the shared centring vector.
    sqnorm : ndarray of float64, shape (m,)
    labels : ndarray of int64, shape (m,), or None
    """

    offset: int
    x: np.ndarray
    sqnorm: np.ndarray
    labels: np.ndarray | None

    @property
    def n_rows(self) -> int:
        return self.x.shape[0]


@dataclass(frozen=True)
class Neighbours:
    """k nearest admissible references of each query row of a block, one record per mode.

    Attributes
    ----------
    ids : ndarray of int64, shape (m, k)
        Global reference ids, -1 where fewer than k references were admissible.
    sqdist : ndarray of float64, shape (m, k)
        Exact squared distances, ascending (ties by id); inf where ``ids`` is -1.
    labels : ndarray of int64, shape (m, k)
        Labels of those references (-1 where none, or when the references have no labels).
    """

    ids: np.ndarray
    sqdist: np.ndarray
    labels: np.ndarray


def prepare_search_block(block: np.ndarray, offset: int, centre: np.ndarray, labels: np.ndarray | None) -> SearchBlock:
    """Centre one row block (float64) and precompute its squared norms."""
    x = np.ascontiguousarray(block, dtype=np.float64).reshape(block.shape[0], -1) - centre
    lab = None if labels is None else np.ascontiguousarray(labels, dtype=np.int64)
    return SearchBlock(int(offset), x, np.einsum("ij,ij->i", x, x), lab)


@numba.njit(cache=True, nogil=True)
def sort_rows(sq, ids, lab):
    """Order each row's entries by (distance, id) in place, id -1 last among equal distances
    (insertion sort: rows are short, k entries)."""
    m, k = sq.shape
    big = np.iinfo(np.int64).max
    for i in range(m):
        for t in range(1, k):
            d = sq[i, t]
            g = ids[i, t]
            lb = lab[i, t]
            key = big if g < 0 else g
            u = t - 1
            while u >= 0:
                ku = big if ids[i, u] < 0 else ids[i, u]
                if sq[i, u] > d or (sq[i, u] == d and ku > key):
                    sq[i, u + 1] = sq[i, u]
                    ids[i, u + 1] = ids[i, u]
                    lab[i, u + 1] = lab[i, u]
                    u -= 1
                else:
                    break
            sq[i, u + 1] = d
            ids[i, u + 1] = g
            lab[i, u + 1] = lb


def _select(ids: np.ndarray, sq: np.ndarray, lab: np.ndarray, k: int) -> Neighbours:
    """The k smallest of each row of candidate arrays (m, c), ordered by (distance, id)."""
    if ids.shape[1] > k:
        part = np.argpartition(sq, k - 1, axis=1)[:, :k]
        ids = np.take_along_axis(ids, part, axis=1)
        sq = np.take_along_axis(sq, part, axis=1)
        lab = np.take_along_axis(lab, part, axis=1)
    ids, sq, lab = (np.array(a, copy=True, order="C") for a in (ids, sq, lab))
    sort_rows(sq, ids, lab)
    return Neighbours(ids, sq, lab)


def merge_neighbours(parts: list, k: int) -> Neighbours:
    """Merge candidate records of the same query rows (e.g. from groups of reference blocks)."""
    if len(parts) == 1:
        return parts[0]
    return _select(
        np.concatenate([p.ids for p in parts], axis=1),
        np.concatenate([p.sqdist for p in parts], axis=1),
        np.concatenate([p.labels for p in parts], axis=1),
        k,
    )


MODE_CODES = {"all": 0, "same": 1, "other": 2}


@numba.njit(cache=True, nogil=True, inline="always")
def _replace_root(dist, ids, d, g):
    """Put (d, g) in place of the root of a max-heap (by distance) of one row and restore the
    heap (the new entry moves down a hole: each level moves one child up instead of swapping);
    returns the new root distance."""
    k = dist.shape[0]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= k:
            break
        big = left
        right = left + 1
        if right < k and dist[right] > dist[left]:
            big = right
        if dist[big] <= d:
            break
        dist[i] = dist[big]
        ids[i] = ids[big]
        i = big
    dist[i] = d
    ids[i] = g
    return dist[0]


@numba.njit(cache=True, nogil=True, inline="always")
def _candidate_sq(q_sq, r_sq, gram):
    """Squared distance from the norms and the dot product, clamped at 0 (rounding)."""
    d = q_sq + r_sq - 2.0 * gram
    return 0.0 if d < 0.0 else d


@numba.njit(cache=True, nogil=True)
def push_indexed(gram, q_sq, r_sq, r_pos, heap_d, heap_i):
    """Offer every (query, ref) pair of a GEMM slab to the query rows' max-heaps, the refs
    being any selection of rows (``r_pos``: their ids); every pair is admissible."""
    m, c = gram.shape
    for i in range(m):
        root = heap_d[i, 0]
        for j in range(c):
            d = _candidate_sq(q_sq[i], r_sq[j], gram[i, j])
            if d < root:
                root = _replace_root(heap_d[i], heap_i[i], d, r_pos[j])


@numba.njit(cache=True, nogil=True)
def exact_candidates(qx, rx, r_offset, r_lab, heap_i, out_sq, out_lab):
    """Exact squared distances (direct differences, in float64 whatever the rows' dtype) and
    labels of the kept candidates that lie in one ref block."""
    m, k = heap_i.shape
    n_r, d = rx.shape
    for i in range(m):
        for t in range(k):
            local = heap_i[i, t] - r_offset
            if heap_i[i, t] < 0 or local < 0 or local >= n_r:
                continue
            acc = 0.0
            for f in range(d):
                diff = np.float64(qx[i, f]) - np.float64(rx[local, f])
                acc += diff * diff
            out_sq[i, t] = acc
            out_lab[i, t] = r_lab[local]


def search_tile(q: SearchBlock, refs: list, k: int, modes: tuple, exclude_self: bool) -> tuple:
    """k nearest admissible references of every row of ``q`` among ``refs``, per mode.

    Parameters
    ----------
    q : SearchBlock
        Query rows.
    refs : list of SearchBlock
        Reference blocks (centred with the same vector as ``q``).
    k : int
        Neighbours kept per row and mode.
    modes : tuple of str
        Any of ``"all"``, ``"same"``, ``"other"`` (the last two need labels on both sides).
    exclude_self : bool
        Queries and references are the same rows: a row is never its own neighbour (by id).

    Returns
    -------
    tuple of Neighbours
        One per mode, in the order of ``modes``.
    """
    m = q.n_rows
    heaps = [(np.full((m, k), np.inf), np.full((m, k), -1, np.int64)) for _ in modes]
    codes = [MODE_CODES[mode] for mode in modes]
    q_ids = np.arange(q.offset, q.offset + m, dtype=np.int64)
    q_lab = q.labels if q.labels is not None else np.full(m, -1, np.int64)
    widest = max((r.n_rows for r in refs), default=0)
    scratch = np.empty(min(m, QUERY_SLAB) * min(widest, REF_SLAB))
    slab_rows = np.arange(min(m, QUERY_SLAB), dtype=np.int64)  # heap rows of a slab, relative to it
    for r in refs:
        r_lab = r.labels if r.labels is not None else np.full(r.n_rows, -1, np.int64)
        for qs in range(0, m, QUERY_SLAB):
            qe = min(m, qs + QUERY_SLAB)
            for rs in range(0, r.n_rows, REF_SLAB):
                re = min(r.n_rows, rs + REF_SLAB)
                gram = scratch[: (qe - qs) * (re - rs)].reshape(qe - qs, re - rs)
                np.matmul(q.x[qs:qe], r.x[rs:re].T, out=gram)
                for code, (hd, hi) in zip(codes, heaps):
                    push_rows(
                        gram, slab_rows[: qe - qs], q.sqnorm[qs:qe], r.sqnorm[rs:re], r.offset + rs, q_ids[qs:qe],
                        q_lab[qs:qe], r_lab[rs:re], code, exclude_self, hd[qs:qe], hi[qs:qe],
                    )
    out = []
    for hd, hi in heaps:
        sq = np.full((m, k), np.inf)
        lab = np.full((m, k), -1, np.int64)
        for r in refs:
            r_lab = r.labels if r.labels is not None else np.full(r.n_rows, -1, np.int64)
            exact_candidates(q.x, r.x, r.offset, r_lab, hi, sq, lab)
        out.append(_select(hi, sq, lab, k))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Cell (IVF) search: rows grouped by their nearest cell centroid; a row is searched against the
# rows of the cells it probes. Used by the approximate mode of ``label_errors``.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """The rows of one cell (those whose nearest centroid it is), ordered by (label, id).

    Attributes
    ----------
    ids : ndarray of int64, shape (m,)
        Global row ids (ascending within a label).
    sqnorm : ndarray of float64, shape (m,)
        Squared norms of the centred rows (float64).
    labels : ndarray of int64, shape (m,)
        Ascending, so the rows of one label are one contiguous range.
    probes : ndarray of uint16 (up to ``PROBE_UINT16_CELLS`` cells) or int32, shape (m, p)
        Cells each row probes, nearest first (the first is this cell).
    x32 : ndarray of float32, shape (m, d)
        Centred rows in float32: the candidate GEMM's input, and the exact recomputation's
        (differences taken in float64). Rows are held once, in 4 bytes per value: routed
        blocks, cells and a search task's union of cells are the approximate search's memory.
    """

    ids: np.ndarray
    sqnorm: np.ndarray
    labels: np.ndarray
    probes: np.ndarray
    x32: np.ndarray

    def label_range(self, label: int) -> tuple[int, int]:
        """[start, end) of the rows with ``label`` (empty when absent)."""
        return int(np.searchsorted(self.labels, label, "left")), int(np.searchsorted(self.labels, label, "right"))


@numba.njit(cache=True, nogil=True, inline="always")
def _keep_p(best_d, best_i, filled, d, j):
    """Offer centroid j at distance d to a list of the best p = len(best_d), kept sorted by
    (distance, id); ``filled`` entries are valid. Returns the new count."""
    p = best_d.shape[0]
    if filled == p and (d > best_d[p - 1] or (d == best_d[p - 1] and j > best_i[p - 1])):
        return filled
    u = filled - 1 if filled < p else p - 2
    while u >= 0 and (best_d[u] > d or (best_d[u] == d and best_i[u] > j)):
        best_d[u + 1] = best_d[u]
        best_i[u + 1] = best_i[u]
        u -= 1
    best_d[u + 1] = d
    best_i[u + 1] = j
    return filled + 1 if filled < p else p


@numba.njit(cache=True, nogil=True)
def _nearest_p(gram, c_sq, out, start):
    """Rows ``start:`` of ``out`` (m, p): per row of ``gram`` (x . c), the p centroids with the
    smallest c_sq - 2 gram, ordered by (distance, id)."""
    m, n_c = gram.shape
    p = out.shape[1]
    best_d = np.empty(p, np.float32)
    best_i = np.empty(p, np.int32)
    for a in range(m):
        filled = 0
        for j in range(n_c):
            filled = _keep_p(best_d, best_i, filled, np.float32(c_sq[j] - 2.0 * gram[a, j]), j)
        for t in range(p):
            out[start + a, t] = best_i[t]


def _centroids32(centroids: np.ndarray) -> tuple:
    """Centroids in float32 and their squared norms (summed in float64), for ranking by
    ``c_sq - 2 x.c``."""
    c32 = np.ascontiguousarray(centroids, dtype=np.float32)
    return c32, (c32.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)


def nearest_cells(x: np.ndarray, centroids: np.ndarray, p: int, rows: int = 2048) -> np.ndarray:
    """int32 (m, p): ids of the p nearest centroids of each row, nearest first (ties: lower id).

    Distances are ranked in float32 (a GEMM on ``rows`` rows at a time, then one pass per row
    keeping the p best); the ranking only chooses cells, every distance reported later is
    recomputed in float64.
    """
    c32, c_sq = _centroids32(centroids)
    p = min(p, centroids.shape[0])
    out = np.empty((x.shape[0], p), np.int32)
    for s in range(0, x.shape[0], rows):
        gram = x[s : s + rows].astype(np.float32) @ c32.T
        _nearest_p(gram, c_sq, out, s)
    return out


# coarse-to-fine routing: the groups (of neighbouring cells) nearest to a row whose cells are
# ranked for its probes
GROUP_PROBES = 8


@numba.njit(cache=True, nogil=True, fastmath=True)
def _route_fine(x32, top, members, starts, c32, c_sq, out):
    """Per row, the p = out.shape[1] cells with the smallest c_sq - 2 x.c among the cells of
    its groups ``top[a]`` (``members[starts[g]:starts[g + 1]]``), by (distance, id); rows with
    fewer candidate cells get -1 entries."""
    m, d = x32.shape
    p = out.shape[1]
    best_d = np.empty(p, np.float32)
    best_i = np.empty(p, np.int32)
    for a in range(m):
        filled = 0
        for t in range(top.shape[1]):
            g = top[a, t]
            for s in range(starts[g], starts[g + 1]):
                j = members[s]
                dot = np.float32(0.0)
                for f in range(d):
                    dot += x32[a, f] * c32[j, f]
                filled = _keep_p(best_d, best_i, filled, c_sq[j] - np.float32(2.0) * dot, j)
        for t in range(p):
            out[a, t] = best_i[t] if t < filled else -1


def coarse_to_fine_cells(x: np.ndarray, centroids: np.ndarray, p: int, group_of: np.ndarray,
                         group_centroids: np.ndarray, groups: int = GROUP_PROBES) -> np.ndarray:
    """int32 (m, p): the p nearest centroids of each row among the cells of its ``groups``
    nearest groups, nearest first (ties: lower id; distances ranked in float32).

    Work per row: one distance per group and per cell of its nearest groups instead of one per
    cell, so routing no longer grows as n x n_cells. A row whose nearest groups hold fewer than
    p cells is ranked against every cell.
    """
    p = min(p, centroids.shape[0])
    if x.shape[0] == 0:
        return np.empty((0, p), np.int32)
    c32, c_sq = _centroids32(centroids)
    top = nearest_cells(x, group_centroids, groups)
    members = np.argsort(group_of, kind="stable").astype(np.int32)
    starts = np.searchsorted(group_of[members], np.arange(group_centroids.shape[0] + 1)).astype(np.int64)
    out = np.empty((x.shape[0], p), np.int32)
    _route_fine(np.ascontiguousarray(x, dtype=np.float32), top, members, starts, c32, c_sq, out)
    few = np.flatnonzero(out[:, -1] < 0)
    if few.size:
        out[few] = nearest_cells(x[few], centroids, p)
    return out


# routed rows keep their probed cells as uint16 up to this many cells (else int32): at nprobe 64
# the probes are 128 instead of 256 bytes per row, in the routed blocks and again in the cells
PROBE_UINT16_CELLS = int(np.iinfo(np.uint16).max)


def rank_cells(x: np.ndarray, centroids: np.ndarray, p: int, group_of=None, group_centroids=None) -> np.ndarray:
    """int32 (m, p): the cells rows ``x`` probe, nearest first (the first is the row's home), as
    routing ranks them: coarse-to-fine when the cells' groups are given and there are more than
    ``GROUP_PROBES`` of them, else among all cells. The first q of a ranking to p > q are the
    ranking to q."""
    if group_of is not None and group_centroids.shape[0] > GROUP_PROBES:
        return coarse_to_fine_cells(x, centroids, p, group_of, group_centroids)
    return nearest_cells(x, centroids, p)


def route_block(block: SearchBlock, centroids: np.ndarray, p: int, group_of=None, group_centroids=None):
    """Rows of one block sorted by home cell, with each row's ``p`` probed cells (coarse-to-fine
    when the cells' groups are given and there are more than ``GROUP_PROBES`` of them).

    Returns
    -------
    tuple
        (cells present, start of each in the sorted rows, ids, x (float32), sqnorm, labels,
        probes).
    """
    probes = rank_cells(block.x, centroids, p, group_of, group_centroids)
    if centroids.shape[0] <= PROBE_UINT16_CELLS:
        probes = probes.astype(np.uint16)  # held by every routed row and cell: half the bytes
    order = np.argsort(probes[:, 0], kind="stable")
    home = probes[order, 0]
    cells, starts = np.unique(home, return_index=True)
    ids = np.arange(block.offset, block.offset + block.n_rows, dtype=np.int64)[order]
    return cells, starts, ids, block.x[order].astype(np.float32), block.sqnorm[order], block.labels[order], probes[order]


def gather_cell(cell: int, *routes) -> Cell:
    """The rows of one cell collected from every block's :func:`route_block` output."""
    pieces = []
    for cells, starts, ids, x, sq, lab, probes in routes:
        pos = np.searchsorted(cells, cell)
        if pos < cells.size and cells[pos] == cell:
            end = starts[pos + 1] if pos + 1 < cells.size else ids.size
            s = slice(starts[pos], end)
            pieces.append((ids[s], x[s], sq[s], lab[s], probes[s]))
    if not pieces:
        raise ValueError(f"cell {cell} has no rows")  # the graph only asks for non-empty cells
    ids, x, sq, lab, probes = (np.concatenate([p[t] for p in pieces]) for t in range(5))
    order = np.lexsort((ids, lab))
    return Cell(ids[order], sq[order], lab[order], probes[order], np.ascontiguousarray(x[order]))


def gather_cells(cells, *routes) -> list:
    """:func:`gather_cell` of each of ``cells`` (a batch: one task and one key for a group of
    cells instead of one per cell)."""
    return [gather_cell(int(c), *routes) for c in cells]


@numba.njit(cache=True, nogil=True)
def push_rows_same_other(gram, rows, q_sq, r_sq, r_offset, q_ids, q_lab, r_lab, same_d, same_i, other_d, other_i):
    """Offer a GEMM slab (query rows ``rows`` of the heaps x contiguous refs from ``r_offset``)
    to the "same" (self excluded) and "other" heaps at once, by each pair's labels."""
    m, c = gram.shape
    for a in range(m):
        i = rows[a]
        root_s = same_d[i, 0]
        root_o = other_d[i, 0]
        qi = q_ids[i]
        ql = q_lab[i]
        qs = q_sq[i]
        for j in range(c):
            d = _candidate_sq(qs, r_sq[j], gram[a, j])
            if r_lab[j] == ql:
                if d < root_s and r_offset + j != qi:
                    root_s = _replace_root(same_d[i], same_i[i], d, r_offset + j)
            elif d < root_o:
                root_o = _replace_root(other_d[i], other_i[i], d, r_offset + j)


@numba.njit(cache=True, nogil=True)
def push_rows(gram, rows, q_sq, r_sq, r_offset, q_ids, q_lab, r_lab, mode, exclude_self, heap_d, heap_i):
    """Offer a GEMM slab (``gram`` row a is query row ``rows[a]`` of the q arrays and heaps; refs
    contiguous from id ``r_offset``) to one max-heap per query row. The squared distance is
    ``q_sq + r_sq - 2 gram``. Mode 0 admits every ref, 1 refs with the query's label, 2 refs with
    another label; ``exclude_self`` skips the query's own id. Equal distances keep the ref seen
    first (the lower id)."""
    m, c = gram.shape
    for a in range(m):
        i = rows[a]
        root = heap_d[i, 0]
        qi = q_ids[i]
        ql = q_lab[i]
        qs = q_sq[i]
        for j in range(c):
            d = _candidate_sq(qs, r_sq[j], gram[a, j])
            if d >= root:
                continue
            rid = r_offset + j
            if exclude_self and rid == qi:
                continue
            if mode == 1 and r_lab[j] != ql:
                continue
            if mode == 2 and r_lab[j] == ql:
                continue
            root = _replace_root(heap_d[i], heap_i[i], d, rid)


# query rows of one label that search another cell's rows of other labels as one GEMM; smaller
# groups search the whole cell together, masked by label
OTHER_GROUP_MIN = 32


def _gemm_push(qx32, rows, cell, r_start, r_end, offset, q_sq, q_ids, q_lab, heaps, codes, scratch) -> None:
    """Query rows ``rows`` against the cell rows [r_start, r_end), offered to ``heaps``."""
    fused = codes == (1, 2)
    for qs in range(0, rows.size, CELL_QUERY_SLAB):
        sub = rows[qs : qs + CELL_QUERY_SLAB]
        qb = qx32[sub]
        for rs in range(r_start, r_end, CELL_REF_SLAB):
            re = min(r_end, rs + CELL_REF_SLAB)
            gram = np.matmul(qb, cell.x32[rs:re].T, out=scratch[: sub.size * (re - rs)].reshape(sub.size, re - rs))
            if fused:
                push_rows_same_other(
                    gram, sub, q_sq, cell.sqnorm[rs:re], offset + rs, q_ids, q_lab, cell.labels[rs:re], *heaps[0], *heaps[1]
                )
                continue
            for code, (hd, hi) in zip(codes, heaps):
                push_rows(gram, sub, q_sq, cell.sqnorm[rs:re], offset + rs, q_ids, q_lab, cell.labels[rs:re], code, True, hd, hi)


def _probe_lists(probes: np.ndarray) -> tuple:
    """Cells probed by any row, ordered by their mean probe rank (a row's home cell first), and
    for each the query rows that probe it."""
    m, p = probes.shape
    flat = probes.ravel()
    order = np.argsort(flat, kind="stable")
    cids, starts, counts = np.unique(flat[order], return_index=True, return_counts=True)
    rank = np.add.reduceat(order % p, starts) / counts
    rows = np.split(order // p, starts[1:])
    first = np.lexsort((cids, rank))
    return cids[first], [rows[i] for i in first]


def search_cells(home_ids, cell_ids: np.ndarray, cells: list, k: int, modes: tuple, other: dict | None = None) -> tuple:
    """k nearest admissible rows, per mode, of the rows of cells ``home_ids`` among the cells each
    row probes.

    Parameters
    ----------
    home_ids : sequence of int
        The query cells (a group of neighbouring cells searched together, so every probed cell
        is compared with all the query rows that probe it in one GEMM).
    cell_ids : ndarray of int, shape (c,)
        Ids of ``cells``: every cell any query row probes, the home cells and ``other`` cells
        included.
    cells : list of Cell
    k : int
    modes : tuple of {"all", "same", "other"}
    other : dict of int to ndarray, optional
        Home cell -> cells (among ``cell_ids``) its rows also search for mode ``"other"`` only,
        on top of their probes (a row skips those it probes anyway). Only their rows of another
        class than the query row's are compared (a cell's rows are grouped by label, so they
        are two contiguous ranges), so a cell of the row's own class costs little. The group's
        rows asking for one other cell are taken together; a label with fewer than
        ``OTHER_GROUP_MIN`` of them joins the others of that size in one GEMM against the whole
        cell, masked by label.

    Returns
    -------
    ids : ndarray of int64, shape (m,)
        Global ids of the query rows (the home cells' rows, in ``home_ids`` order).
    neighbours : tuple of Neighbours
        One per mode, ordered by (distance, id); a row is never its own neighbour.

    Notes
    -----
    Candidates are ranked by a float32 GEMM on slabs that stay in cache; the kept ones'
    distances are recomputed by direct differences, in float64, of the cells' float32 rows
    (within ~1e-7 relative of the float64 rows' distances).
    """
    cell_ids = np.asarray(cell_ids)
    where = {int(c): i for i, c in enumerate(cell_ids)}
    homes = [cells[where[int(h)]] for h in home_ids]
    sizes = np.array([c.ids.size for c in cells], dtype=np.int64)
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    union_x = np.concatenate([c.x32 for c in cells])
    union_lab = np.concatenate([c.labels for c in cells])
    union_ids = np.concatenate([c.ids for c in cells])
    # query rows: the home cells' rows; q_union = their positions in the union (self exclusion)
    q_union = np.concatenate([offs[where[int(h)]] + np.arange(c.ids.size) for h, c in zip(home_ids, homes)])
    q_sq = np.concatenate([c.sqnorm for c in homes])
    q_lab = np.concatenate([c.labels for c in homes])
    qx32 = np.concatenate([c.x32 for c in homes])
    probes = np.concatenate([c.probes for c in homes])
    m = q_union.size
    codes = tuple(MODE_CODES[mode] for mode in modes)
    heaps = [(np.full((m, k), np.inf), np.full((m, k), -1, np.int64)) for _ in modes]
    scratch = np.empty(CELL_QUERY_SLAB * CELL_REF_SLAB, np.float32)  # reused: no page faults per slab
    for cid, sel in zip(*_probe_lists(probes)):
        ci = where[int(cid)]
        _gemm_push(qx32, sel, cells[ci], 0, int(sizes[ci]), int(offs[ci]), q_sq, q_union, q_lab, heaps, codes, scratch)
    if other and "other" in modes:
        heap = [heaps[modes.index("other")]]
        # query rows per other cell, over all home cells of the group (fewer, larger GEMMs)
        asked: dict = {}
        start = 0
        for h, c in zip(home_ids, homes):
            span = np.arange(start, start + c.ids.size)
            start += c.ids.size
            for cid in np.asarray(other.get(int(h), ()), dtype=np.int64).tolist():
                sel = span[~(probes[span] == cid).any(axis=1)]
                if sel.size:
                    asked.setdefault(cid, []).append(sel)
        for cid in sorted(asked):
            ci = where[cid]
            r, off = cells[ci], int(offs[ci])
            sel = np.concatenate(asked[cid])
            sel = sel[np.argsort(q_lab[sel], kind="stable")]
            labs, first, counts = np.unique(q_lab[sel], return_index=True, return_counts=True)
            mixed = []
            for lab, f, cnt in zip(labs.tolist(), first.tolist(), counts.tolist()):
                group = sel[f : f + cnt]
                if cnt < OTHER_GROUP_MIN:
                    mixed.append(group)
                    continue
                a, b = r.label_range(lab)  # rows of other labels: [0, a) and [b, size)
                for s, e in ((0, a), (b, r.ids.size)):
                    if e > s:
                        _gemm_push(qx32, group, r, s, e, off, q_sq, q_union, q_lab, heap, (0,), scratch)
            if mixed:
                _gemm_push(qx32, np.concatenate(mixed), r, 0, r.ids.size, off, q_sq, q_union, q_lab, heap, (2,), scratch)
    qx = union_x[q_union]
    out = []
    for _hd, hi in heaps:
        sq = np.full((m, k), np.inf)
        lab = np.full((m, k), -1, np.int64)
        exact_candidates(qx, union_x, 0, union_lab, hi, sq, lab)
        gids = np.where(hi >= 0, union_ids[np.maximum(hi, 0)], -1)
        sort_rows(sq, gids, lab)
        out.append(Neighbours(gids, sq, lab))
    return union_ids[q_union], tuple(out)


def drop_self(nb: Neighbours, q_ids: np.ndarray, k: int) -> Neighbours:
    """Remove each row's own id from a (k + 1)-wide record (or its last entry when absent)."""
    m, width = nb.ids.shape
    is_self = nb.ids == q_ids[:, None]
    # keep the first k entries that are not the row itself
    keep = ~is_self & (np.cumsum(~is_self, axis=1) <= k)
    cols = np.sort(np.where(keep, np.arange(width)[None, :], width), axis=1)[:, :k]
    return Neighbours(
        np.take_along_axis(nb.ids, cols, axis=1),
        np.take_along_axis(nb.sqdist, cols, axis=1),
        np.take_along_axis(nb.labels, cols, axis=1),
    )


def probe_pairs(route, n_cells: int) -> np.ndarray:
    """The (home cell, probed cell) pairs of a routed block's rows, as unique int64 codes
    ``home * n_cells + probed`` (one compact array, cheap to send to the driver)."""
    _cells, _starts, _ids, _x, _sq, _lab, probes = route
    home = probes[:, :1].astype(np.int64)
    return np.unique(home * n_cells + probes)


def cell_label_counts(route) -> tuple:
    """Per home cell present in a routed block: its rows per label code, as (cells, labels,
    counts) with one (label, count) entry per (cell, label) present."""
    cells, starts, _ids, _x, _sq, lab, _probes = route
    home = np.repeat(cells, np.diff(np.r_[starts, lab.size]))
    pairs, counts = np.unique(np.stack([home.astype(np.int64), lab]), axis=1, return_counts=True)
    return pairs[0], pairs[1], counts


# ---------------------------------------------------------------------------------------------
# Exact same-class search of selected rows: the intra-class fallback of label_errors' approx
# mode. A row's intra-class neighbours lie in its own class, so only that class's rows are read.
# ---------------------------------------------------------------------------------------------


def split_by_label(block: SearchBlock, wanted: np.ndarray) -> tuple:
    """The rows of one block whose label is in ``wanted`` (sorted codes), grouped by label.

    Returns
    -------
    tuple
        (labels present, start of each, ids, x, sqnorm); ids ascend within a label.
    """
    keep = np.flatnonzero(np.isin(block.labels, wanted))
    order = keep[np.argsort(block.labels[keep], kind="stable")]
    present, starts = np.unique(block.labels[order], return_index=True)
    return present, starts, (block.offset + order).astype(np.int64), block.x[order], block.sqnorm[order]


def pick_label_rows(ids: np.ndarray, code: int, splits: list) -> tuple:
    """(ids, SearchBlock) of the rows ``ids`` (sorted, all of label ``code``), taken from
    :func:`split_by_label` outputs that hold them."""
    pieces = [p for p in (_label_piece(s, code) for s in splits) if p is not None]
    all_ids = np.concatenate([p[0] for p in pieces])
    order = np.argsort(all_ids, kind="stable")
    pos = order[np.searchsorted(all_ids, ids, sorter=order)]
    if not np.array_equal(all_ids[pos], ids):
        raise ValueError("pick_label_rows: some rows are not in the splits given")
    x = np.concatenate([p[1] for p in pieces])[pos]
    sq = np.concatenate([p[2] for p in pieces])[pos]
    return ids, SearchBlock(0, x, sq, np.full(ids.size, code, np.int64))


def _label_piece(split: tuple, code: int):
    present, starts, ids, x, sq = split
    pos = int(np.searchsorted(present, code))
    if pos == present.size or present[pos] != code:
        return None
    s = slice(starts[pos], starts[pos + 1] if pos + 1 < present.size else ids.size)
    return ids[s], x[s], sq[s]


def search_label_rows(q: tuple, code: int, splits: list, k: int) -> Neighbours:
    """Exact ``k`` nearest rows of label ``code`` of every query row, among that label's rows in
    ``splits`` (from :func:`split_by_label`); a query row may find itself (callers ask for one
    more and drop it).

    Parameters
    ----------
    q : (ndarray of int64, SearchBlock)
        Query ids and rows (centred like the splits).
    code : int
    splits : list of tuple
    k : int

    Returns
    -------
    Neighbours
        Global ids, exact squared distances ordered by (distance, id), labels ``code``.
    """
    _ids, qb = q
    m = qb.n_rows
    pieces = [p for p in (_label_piece(s, code) for s in splits) if p is not None]
    heap_d = np.full((m, k), np.inf)
    heap_i = np.full((m, k), -1, np.int64)
    if not pieces:
        return Neighbours(heap_i, heap_d, np.full((m, k), -1, np.int64))
    r_ids = np.concatenate([p[0] for p in pieces])
    rx = np.concatenate([p[1] for p in pieces])
    r_sq = np.concatenate([p[2] for p in pieces])
    positions = np.arange(r_ids.size, dtype=np.int64)
    for qs in range(0, m, QUERY_SLAB):
        qe = min(m, qs + QUERY_SLAB)
        for rs in range(0, r_ids.size, REF_SLAB):
            re = min(r_ids.size, rs + REF_SLAB)
            push_indexed(qb.x[qs:qe] @ rx[rs:re].T, qb.sqnorm[qs:qe], r_sq[rs:re], positions[rs:re], heap_d[qs:qe], heap_i[qs:qe])
    sq = np.full((m, k), np.inf)
    lab = np.full((m, k), -1, np.int64)
    exact_candidates(qb.x, rx, 0, np.full(r_ids.size, code, np.int64), heap_i, sq, lab)
    gids = np.where(heap_i >= 0, r_ids[np.maximum(heap_i, 0)], -1)
    return _select(gids, sq, lab, k)
