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
# = 2 MiB); the kept candidates are recomputed exactly in float64 as everywhere else
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


def _select(ids: np.ndarray, sq: np.ndarray, lab: np.ndarray, k: int) -> Neighbours:
    """The k smallest of each row of candidate arrays (m, c), ordered by (distance, id)."""
    if ids.shape[1] > k:
        part = np.argpartition(sq, k - 1, axis=1)[:, :k]
        ids = np.take_along_axis(ids, part, axis=1)
        sq = np.take_along_axis(sq, part, axis=1)
        lab = np.take_along_axis(lab, part, axis=1)
    # -1 ids sort after real ids at equal (inf) distance
    tie_key = np.where(ids < 0, np.iinfo(np.int64).max, ids)
    order = np.lexsort((tie_key, sq), axis=1)
    return Neighbours(
        np.take_along_axis(ids, order, axis=1),
        np.take_along_axis(sq, order, axis=1),
        np.take_along_axis(lab, order, axis=1),
    )


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


@numba.njit(cache=True, nogil=True)
def _sift_down(dist, ids, k):
    """Restore the max-heap (by distance) of one row after its root was replaced."""
    i = 0
    while True:
        left = 2 * i + 1
        if left >= k:
            return
        big = left
        right = left + 1
        if right < k and dist[right] > dist[left]:
            big = right
        if dist[big] <= dist[i]:
            return
        dist[i], dist[big] = dist[big], dist[i]
        ids[i], ids[big] = ids[big], ids[i]
        i = big


@numba.njit(cache=True, nogil=True)
def push_masked(gram, q_sq, r_sq, r_offset, q_ids, q_lab, r_lab, mode, exclude_self, heap_d, heap_i):
    """Offer every (query, ref) pair of a GEMM slab to the query rows' max-heaps.

    ``gram`` is q.r (float64); the squared distance is ``q_sq + r_sq - 2 gram``. Mode 0 admits
    every ref, 1 refs with the query's label, 2 refs with another label; ``exclude_self``
    skips the query's own id. Equal distances keep the ref seen first (the lower id).
    """
    m, c = gram.shape
    k = heap_d.shape[1]
    for i in range(m):
        root = heap_d[i, 0]
        qi = q_ids[i]
        ql = q_lab[i]
        for j in range(c):
            d = q_sq[i] + r_sq[j] - 2.0 * gram[i, j]
            if d < 0.0:
                d = 0.0
            if d >= root:
                continue
            rid = r_offset + j
            if exclude_self and rid == qi:
                continue
            if mode == 1 and r_lab[j] != ql:
                continue
            if mode == 2 and r_lab[j] == ql:
                continue
            heap_d[i, 0] = d
            heap_i[i, 0] = rid
            _sift_down(heap_d[i], heap_i[i], k)
            root = heap_d[i, 0]


@numba.njit(cache=True, nogil=True)
def push_same_other(gram, q_sq, r_sq, r_offset, q_ids, q_lab, r_lab, same_d, same_i, other_d, other_i):
    """:func:`push_masked` for modes "same" and "other" at once (self excluded): each pair's
    distance is computed once and offered to the heap its labels select."""
    m, c = gram.shape
    k = same_d.shape[1]
    for i in range(m):
        root_s = same_d[i, 0]
        root_o = other_d[i, 0]
        qi = q_ids[i]
        ql = q_lab[i]
        for j in range(c):
            d = q_sq[i] + r_sq[j] - 2.0 * gram[i, j]
            if d < 0.0:
                d = 0.0
            if r_lab[j] == ql:
                if d >= root_s:
                    continue
                rid = r_offset + j
                if rid == qi:
                    continue
                same_d[i, 0] = d
                same_i[i, 0] = rid
                _sift_down(same_d[i], same_i[i], k)
                root_s = same_d[i, 0]
            else:
                if d >= root_o:
                    continue
                other_d[i, 0] = d
                other_i[i, 0] = r_offset + j
                _sift_down(other_d[i], other_i[i], k)
                root_o = other_d[i, 0]


@numba.njit(cache=True, nogil=True)
def push_indexed(gram, q_sq, r_sq, r_pos, heap_d, heap_i):
    """Offer every (query, ref) pair of a GEMM slab to the query rows' max-heaps, the refs
    being any selection of rows (``r_pos``: their ids); every pair is admissible."""
    m, c = gram.shape
    k = heap_d.shape[1]
    for i in range(m):
        root = heap_d[i, 0]
        for j in range(c):
            d = q_sq[i] + r_sq[j] - 2.0 * gram[i, j]
            if d < 0.0:
                d = 0.0
            if d >= root:
                continue
            heap_d[i, 0] = d
            heap_i[i, 0] = r_pos[j]
            _sift_down(heap_d[i], heap_i[i], k)
            root = heap_d[i, 0]


@numba.njit(cache=True, nogil=True)
def exact_candidates(qx, rx, r_offset, r_lab, heap_i, out_sq, out_lab):
    """Exact squared distances (direct differences) and labels of the kept candidates that
    lie in one ref block."""
    m, k = heap_i.shape
    n_r, d = rx.shape
    for i in range(m):
        for t in range(k):
            local = heap_i[i, t] - r_offset
            if heap_i[i, t] < 0 or local < 0 or local >= n_r:
                continue
            acc = 0.0
            for f in range(d):
                diff = qx[i, f] - rx[local, f]
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
    for r in refs:
        r_lab = r.labels if r.labels is not None else np.full(r.n_rows, -1, np.int64)
        for qs in range(0, m, QUERY_SLAB):
            qe = min(m, qs + QUERY_SLAB)
            for rs in range(0, r.n_rows, REF_SLAB):
                re = min(r.n_rows, rs + REF_SLAB)
                gram = scratch[: (qe - qs) * (re - rs)].reshape(qe - qs, re - rs)
                np.matmul(q.x[qs:qe], r.x[rs:re].T, out=gram)
                for code, (hd, hi) in zip(codes, heaps):
                    push_masked(
                        gram, q.sqnorm[qs:qe], r.sqnorm[rs:re], r.offset + rs, q_ids[qs:qe], q_lab[qs:qe],
                        r_lab[rs:re], code, exclude_self, hd[qs:qe], hi[qs:qe],
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
    """The rows of one cell (those whose nearest centroid it is).

    Attributes
    ----------
    ids : ndarray of int64, shape (m,)
        Global row ids, ascending.
    x : ndarray of float64, shape (m, d)
        Centred rows.
    sqnorm : ndarray of float64, shape (m,)
    labels : ndarray of int64, shape (m,)
    probes : ndarray of int32, shape (m, p)
        Cells each row probes, nearest first (the first is this cell).
    """

    ids: np.ndarray
    x: np.ndarray
    sqnorm: np.ndarray
    labels: np.ndarray
    probes: np.ndarray


def nearest_cells(x: np.ndarray, centroids: np.ndarray, p: int) -> np.ndarray:
    """int32 (m, p): ids of the p nearest centroids of each row, nearest first (ties: lower id)."""
    d2 = (centroids**2).sum(axis=1)[None, :] - 2.0 * (x @ centroids.T)
    if p >= centroids.shape[0]:
        return np.argsort(d2, axis=1, kind="stable").astype(np.int32)
    part = np.argpartition(d2, p - 1, axis=1)[:, :p]
    order = np.lexsort((part, np.take_along_axis(d2, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int32)


def route_block(block: SearchBlock, centroids: np.ndarray, p: int):
    """Rows of one block sorted by home cell, with each row's ``p`` probed cells.

    Returns
    -------
    tuple
        (cells present, start of each in the sorted rows, ids, x, sqnorm, labels, probes).
    """
    probes = nearest_cells(block.x, centroids, p)
    order = np.argsort(probes[:, 0], kind="stable")
    home = probes[order, 0]
    cells, starts = np.unique(home, return_index=True)
    ids = np.arange(block.offset, block.offset + block.n_rows, dtype=np.int64)[order]
    return cells, starts, ids, block.x[order], block.sqnorm[order], block.labels[order], probes[order]


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
    return Cell(*(np.concatenate([p[t] for p in pieces]) for t in range(5)))


def search_cell(
    home_id: int, cell_ids: np.ndarray, cells: list, k: int, modes: tuple, rows=None, probes=None, other_ids=None,
) -> tuple:
    """k nearest admissible rows, per mode, of rows of cell ``home_id`` among the cells each probes.

    Parameters
    ----------
    home_id : int
        The query rows' cell (one of ``cell_ids``).
    cell_ids : ndarray of int, shape (c,)
        Ids of ``cells``: every cell any query row probes, ``home_id`` included.
    cells : list of Cell
    k : int
    modes : tuple of {"all", "same", "other"}
    rows : ndarray of int64, optional
        Positions in the home cell of the rows to search (default: all).
    probes : ndarray of int, shape (len(rows), p), optional
        Cells probed by those rows (default: the home cell's ``probes``).
    other_ids : ndarray of int, optional
        Cells (among ``cell_ids``) searched by every query row for mode ``"other"`` only, on
        top of its probes (a row skips those it probes anyway). Only their rows of another
        class than the query row's are compared, so a cell of the row's own class costs
        little.

    Returns
    -------
    ids : ndarray of int64, shape (m,)
        Global ids of the query rows.
    neighbours : tuple of Neighbours
        One per mode, ordered by (distance, id); a row is never its own neighbour.
    """
    cell_ids = np.asarray(cell_ids)
    home_pos = int(np.flatnonzero(cell_ids == home_id)[0])
    home = cells[home_pos]
    rows = np.arange(home.ids.size) if rows is None else np.asarray(rows, dtype=np.int64)
    probes = home.probes[rows] if probes is None else np.asarray(probes)
    qx, q_sq, q_lab = home.x[rows], home.sqnorm[rows], home.labels[rows]
    m = rows.size
    sizes = np.array([c.ids.size for c in cells], dtype=np.int64)
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    union_ids = np.concatenate([c.ids for c in cells])
    q_union = offs[home_pos] + rows  # the query rows' own positions in the union (self exclusion)
    codes = [MODE_CODES[mode] for mode in modes]
    fused = tuple(modes) == ("same", "other")
    heaps = [(np.full((m, k), np.inf), np.full((m, k), -1, np.int64)) for _ in modes]
    qx32 = qx.astype(np.float32)
    cells32 = [c.x.astype(np.float32) for c in cells]
    scratch = np.empty(CELL_QUERY_SLAB * CELL_REF_SLAB, np.float32)  # reused: no page faults per slab
    for ci, (cid, r) in enumerate(zip(cell_ids, cells)):
        sel = np.flatnonzero((probes == cid).any(axis=1))
        if sel.size == 0:
            continue
        subs = [(hd[sel], hi[sel]) for hd, hi in heaps]
        rx32 = cells32[ci]
        for qs in range(0, sel.size, CELL_QUERY_SLAB):
            qe = min(sel.size, qs + CELL_QUERY_SLAB)
            qsel = sel[qs:qe]
            qb, qsq, qid, qlab = qx32[qsel], q_sq[qsel], q_union[qsel], q_lab[qsel]
            for rs in range(0, r.ids.size, CELL_REF_SLAB):
                re = min(r.ids.size, rs + CELL_REF_SLAB)
                gram = np.matmul(qb, rx32[rs:re].T, out=scratch[: (qe - qs) * (re - rs)].reshape(qe - qs, re - rs))
                if fused:
                    push_same_other(
                        gram, qsq, r.sqnorm[rs:re], int(offs[ci] + rs), qid, qlab, r.labels[rs:re],
                        subs[0][0][qs:qe], subs[0][1][qs:qe], subs[1][0][qs:qe], subs[1][1][qs:qe],
                    )
                    continue
                for code, (hd, hi) in zip(codes, subs):
                    push_masked(
                        gram, qsq, r.sqnorm[rs:re], int(offs[ci] + rs), qid, qlab, r.labels[rs:re], code, True,
                        hd[qs:qe], hi[qs:qe],
                    )
        for (hd, hi), (sd, si) in zip(heaps, subs):
            hd[sel] = sd
            hi[sel] = si
    if other_ids is not None and "other" in modes:
        _search_other_cells(
            cell_ids, cells32, cells, offs, np.asarray(other_ids), probes, qx32, q_sq, q_lab, *heaps[modes.index("other")],
            scratch,
        )
    out = []
    for hd, hi in heaps:
        sq = np.full((m, k), np.inf)
        lab = np.full((m, k), -1, np.int64)
        for ci, r in enumerate(cells):
            exact_candidates(qx, r.x, int(offs[ci]), r.labels, hi, sq, lab)
        gids = np.where(hi >= 0, union_ids[np.maximum(hi, 0)], -1)
        out.append(_select(gids, sq, lab, k))
    return home.ids[rows], tuple(out)


def _search_other_cells(cell_ids, cells32, cells, offs, other_ids, probes, qx32, q_sq, q_lab, hd, hi, scratch) -> None:
    """Offer to the "other" heaps (hd, hi) the rows of another class of the cells ``other_ids``
    (positions in the union of ``cells`` as ids), query rows grouped by label; ``cells32`` and
    ``qx32`` are the float32 rows the candidate GEMM runs on (into ``scratch``)."""
    for cid in other_ids:
        ci = int(np.flatnonzero(cell_ids == cid)[0])
        r = cells[ci]
        sel = np.flatnonzero(~(probes == cid).any(axis=1))
        if sel.size == 0:
            continue
        for lab in np.unique(q_lab[sel]):
            qsel = sel[q_lab[sel] == lab]
            refs = np.flatnonzero(r.labels != lab)
            if refs.size == 0:
                continue
            sub_d, sub_i = hd[qsel], hi[qsel]
            qb, qsq = qx32[qsel], q_sq[qsel]
            for rs in range(0, refs.size, CELL_REF_SLAB):
                rr = refs[rs : rs + CELL_REF_SLAB]
                rx = cells32[ci][rr]
                r_sq, r_pos = r.sqnorm[rr], offs[ci] + rr
                for qs in range(0, qsel.size, CELL_QUERY_SLAB):
                    qe = min(qsel.size, qs + CELL_QUERY_SLAB)
                    gram = np.matmul(qb[qs:qe], rx.T, out=scratch[: (qe - qs) * rr.size].reshape(qe - qs, rr.size))
                    push_indexed(gram, qsq[qs:qe], r_sq, r_pos, sub_d[qs:qe], sub_i[qs:qe])
            hd[qsel] = sub_d
            hi[qsel] = sub_i


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


def probe_summary(route) -> tuple:
    """Per home cell present in a routed block: its row count and the cells its rows probe."""
    cells, starts, _ids, _x, _sq, _lab, probes = route
    ends = np.r_[starts[1:], probes.shape[0]]
    return cells, ends - starts, [np.unique(probes[s:e]) for s, e in zip(starts, ends)]


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
