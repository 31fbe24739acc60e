"""NumPy kernels of the label-masked brute-force k-NN (no Dask here).

A tile is one query block against a list of reference blocks. Squared distances come from a
float64 GEMM on centred rows (``|q|^2 + |r|^2 - 2 q.r``) in slabs of at most
``QUERY_SLAB x REF_SLAB`` entries; the candidates kept from a slab are then recomputed exactly
by direct differences, so the kept distances carry no cancellation error. Every selection is a
*mode*:

* ``"all"``: every reference row (the query row itself excluded when ``exclude_self``);
* ``"same"``: reference rows with the query row's label (self excluded);
* ``"other"``: reference rows with a different label.

Rows with fewer than k admissible references keep ``inf`` distances and id ``-1``. Results are
ordered by (distance, id), so ties are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUERY_SLAB = 1024
REF_SLAB = 4096
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


def _empty(m: int, k: int) -> Neighbours:
    return Neighbours(np.full((m, k), -1, np.int64), np.full((m, k), np.inf), np.full((m, k), -1, np.int64))


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


def _admissible(mode: str, q_ids, q_lab, r_ids, r_lab, exclude_self: bool) -> np.ndarray | None:
    """Bool (mq, mr) of admissible pairs, or None when every pair is admissible."""
    mask = None
    if mode in ("same", "other"):
        mask = (q_lab[:, None] == r_lab[None, :]) if mode == "same" else (q_lab[:, None] != r_lab[None, :])
    if exclude_self and mode != "other":
        not_self = q_ids[:, None] != r_ids[None, :]
        mask = not_self if mask is None else mask & not_self
    return mask


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
    best = [_empty(m, k) for _ in modes]
    q_ids_all = np.arange(q.offset, q.offset + m, dtype=np.int64)
    for r in refs:
        r_ids_all = np.arange(r.offset, r.offset + r.n_rows, dtype=np.int64)
        r_lab_all = r.labels if r.labels is not None else np.full(r.n_rows, -1, np.int64)
        for qs in range(0, m, QUERY_SLAB):
            qe = min(m, qs + QUERY_SLAB)
            qx = q.x[qs:qe]
            q_ids = q_ids_all[qs:qe]
            q_lab = None if q.labels is None else q.labels[qs:qe]
            for rs in range(0, r.n_rows, REF_SLAB):
                re = min(r.n_rows, rs + REF_SLAB)
                sq = q.sqnorm[qs:qe, None] + r.sqnorm[None, rs:re] - 2.0 * (qx @ r.x[rs:re].T)
                r_ids = r_ids_all[rs:re]
                r_lab = r_lab_all[rs:re]
                for t, mode in enumerate(modes):
                    mask = _admissible(mode, q_ids, q_lab, r_ids, r_lab, exclude_self)
                    scored = sq if mask is None else np.where(mask, sq, np.inf)
                    keep = min(k, re - rs)
                    cols = np.argpartition(scored, keep - 1, axis=1)[:, :keep] if re - rs > keep else np.broadcast_to(
                        np.arange(re - rs), (qe - qs, re - rs)
                    )
                    picked = np.take_along_axis(scored, cols, axis=1)
                    valid = np.isfinite(picked)
                    # exact squared distances of the kept candidates (direct differences)
                    diff = qx[:, None, :] - r.x[rs + cols]
                    exact = np.where(valid, np.einsum("ijk,ijk->ij", diff, diff), np.inf)
                    cand = Neighbours(
                        np.where(valid, r_ids[cols], -1), exact, np.where(valid, r_lab[cols], -1)
                    )
                    cur = best[t]
                    merged = merge_neighbours(
                        [Neighbours(cur.ids[qs:qe], cur.sqdist[qs:qe], cur.labels[qs:qe]), cand], k
                    )
                    cur.ids[qs:qe] = merged.ids
                    cur.sqdist[qs:qe] = merged.sqdist
                    cur.labels[qs:qe] = merged.labels
    return tuple(best)
