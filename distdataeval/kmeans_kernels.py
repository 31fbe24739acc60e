"""Per-block kernels of the KMeans stage (NumPy + numba). They trust their inputs.

Every kernel works on one row block of the (already mean-centred, see :mod:`distdataeval.kmeans`)
data and returns small per-block results: nothing here is ever (rows x n_clusters) large. The
distance to the centres is computed in GEMM form over tiles of rows and of centres, so the scratch
memory of one call is bounded by ``TILE_ELEMENTS`` whatever the number of centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

# at most this many (row, centre) scores are held at once: 2**21 float64 = 16 MiB
TILE_ELEMENTS = 1 << 21
ROW_TILE = 2048


@dataclass(frozen=True)
class BlockStep:
    """One block's contribution to a Lloyd iteration (all sums over the block's rows).

    Attributes
    ----------
    sums : ndarray of float64, shape (K, d)
        Sum of the centred rows assigned to each centre.
    counts : ndarray of int64, shape (K,)
        Rows assigned to each centre.
    sse : float
        Sum of squared distances to the assigned centre (from the differences).
    far_sqdist : ndarray of float64, shape (m,)
        Squared distances of the block's farthest rows (m <= ``n_far``), descending; ties by row.
    far_index : ndarray of int64, shape (m,)
        Global row indices of those rows.
    far_rows : ndarray of float64, shape (m, d)
        Those rows (centred), candidates to re-seed empty clusters.
    """

    sums: np.ndarray
    counts: np.ndarray
    sse: float
    far_sqdist: np.ndarray
    far_index: np.ndarray
    far_rows: np.ndarray


def centre_block(block: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Subtract the data mean from one block, keeping float32 blocks in float32 (else float64)."""
    dtype = np.float32 if block.dtype == np.float32 else np.float64
    return np.ascontiguousarray(np.asarray(block, dtype=dtype) - mean.astype(dtype))


def nearest_centres(xc: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and squared distance to the nearest centre, for each row.

    Parameters
    ----------
    xc : ndarray, shape (m, d)
        Centred rows (float32 or float64; the GEMM runs in this dtype).
    centres : ndarray of float64, shape (K, d)
        Centred centres.

    Returns
    -------
    labels : ndarray of int64, shape (m,)
        Nearest centre; ties go to the lowest centre index.
    sqdist : ndarray of float64, shape (m,)
        ``|x|^2 - 2 x.c + |c|^2`` for that centre, clipped at 0.
    """
    labels, best, _ = nearest_two(xc, centres)
    return labels, best


@njit(cache=True, nogil=True)
def _accumulate(xc, labels, k):
    m, d = xc.shape
    sums = np.zeros((k, d), dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    for i in range(m):
        lab = labels[i]
        counts[lab] += 1
        for j in range(d):
            sums[lab, j] += xc[i, j]
    return sums, counts


def _farthest(sqdist: np.ndarray, n_far: int) -> np.ndarray:
    """Positions of the ``n_far`` largest values, descending, ties by position."""
    m = sqdist.shape[0]
    if n_far >= m:
        cand = np.arange(m)
    else:
        cand = np.argpartition(-sqdist, n_far - 1)[:n_far]
        # include every row tied with the n_far-th value, so the choice below is by index
        cut = sqdist[cand].min()
        cand = np.flatnonzero(sqdist >= cut)
    order = np.lexsort((cand, -sqdist[cand]))
    return cand[order][:n_far]


# Pruned Lloyd steps (Hamerly's bound): a row keeps its centre without a search when its exact
# distance to it is below a lower bound on its distance to every other centre. The bound is the
# second-nearest distance of the row's last search, lowered by how far the other centres have
# moved since, or half the distance from its centre to the nearest other centre.

# relative margin on squared distances that covers the float32 GEMM's rounding (the worst case
# is ~4e-6 (|x|^2 + |c|^2) for d = 64): a second-nearest distance from the GEMM is lowered by it
GEMM_MARGIN = 1e-5


@dataclass(frozen=True)
class Bounds:
    """What a block's rows carry from one Lloyd iteration to the next (kept on the worker).

    Attributes
    ----------
    labels : ndarray of int64, shape (m,)
        Assigned centre.
    lower : ndarray of float64, shape (m,)
        A lower bound on the distance to every other centre.
    searched : int
        Rows searched against all centres in the iteration that made these bounds.
    """

    labels: np.ndarray
    lower: np.ndarray
    searched: int


@njit(cache=True, nogil=True)
def _argmin2_update(gram, c_sq, c0, b_lab, b_val, b_sec):
    """Per row, the centre of this tile minimising ``c_sq[j] - 2 gram[i, j]`` (in float64),
    kept when strictly below the best so far (the first centre on ties, across tiles too), and
    the second-smallest value over all tiles so far."""
    m, kt = gram.shape
    for i in range(m):
        best = b_val[i]
        sec = b_sec[i]
        lab = b_lab[i]
        for j in range(kt):
            v = c_sq[j] + (-2.0 * np.float64(gram[i, j]))
            if v < best:
                sec = best
                best = v
                lab = j + c0
            elif v < sec:
                sec = v
        b_val[i] = best
        b_sec[i] = sec
        b_lab[i] = lab


def nearest_two(xc: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`nearest_centres` with, per row, the squared distance to the second-nearest centre
    (``inf`` with a single centre)."""
    m = xc.shape[0]
    k = centres.shape[0]
    c = centres.astype(xc.dtype)
    c_sq = np.einsum("ij,ij->i", centres, centres)
    row_tile = min(ROW_TILE, max(m, 1))
    centre_tile = max(1, min(k, TILE_ELEMENTS // row_tile))
    labels = np.zeros(m, dtype=np.int64)
    best = np.full(m, np.inf)
    second = np.full(m, np.inf)
    for r0 in range(0, m, row_tile):
        xr = xc[r0 : r0 + row_tile]
        x_sq = np.einsum("ij,ij->i", xr, xr, dtype=np.float64)
        b_lab, b_val, b_sec = labels[r0 : r0 + row_tile], best[r0 : r0 + row_tile], second[r0 : r0 + row_tile]
        for c0 in range(0, k, centre_tile):
            _argmin2_update(xr @ c[c0 : c0 + centre_tile].T, c_sq[c0 : c0 + centre_tile], c0, b_lab, b_val, b_sec)
        b_val += x_sq
        b_sec += x_sq
    np.maximum(best, 0.0, out=best)
    np.maximum(second, 0.0, out=second)
    return labels, best, second


@njit(cache=True, nogil=True)
def _assigned_sqdist(xc, centres, labels):
    """Squared distance of each row to its assigned centre, from the differences (float64)."""
    m, d = xc.shape
    out = np.empty(m, dtype=np.float64)
    for i in range(m):
        c = centres[labels[i]]
        s = 0.0
        for j in range(d):
            t = np.float64(xc[i, j]) - c[j]
            s += t * t
        out[i] = s
    return out


def _lower_bounds(sq: np.ndarray, x_sq: np.ndarray, c_max_sq: float) -> np.ndarray:
    """Distances from GEMM-form squared distances, lowered by the float32 GEMM's rounding margin."""
    return np.sqrt(np.maximum(sq - GEMM_MARGIN * (x_sq + c_max_sq), 0.0))


def _distance_to_movers(xc, x_sq, centres, movers, labels, c_max_sq) -> np.ndarray:
    """Per row, a lower bound on its distance to the centres ``movers`` other than its own."""
    if movers.size == 0:
        return np.full(xc.shape[0], np.inf)
    c = centres[movers]
    sq = x_sq[:, None] + np.einsum("ij,ij->i", c, c)[None, :] - 2.0 * (xc @ c.T.astype(xc.dtype))
    sq[movers[None, :] == labels[:, None]] = np.inf
    return _lower_bounds(sq.min(axis=1), x_sq, c_max_sq)


def lloyd_block(
    block: np.ndarray, mean: np.ndarray, centres: np.ndarray, offset: int, n_far: int,
    prev: tuple | None = None, moved: tuple | None = None, half_gap: np.ndarray | None = None,
) -> tuple[BlockStep, Bounds]:
    """One block's assignment step and partial sums for a Lloyd iteration, skipping the search of
    rows whose centre cannot have changed since ``prev``.

    Parameters
    ----------
    block : ndarray, shape (m, d)
        Raw rows of one block.
    mean : ndarray of float64, shape (d,)
        Data mean (the kernels work on centred rows).
    centres : ndarray of float64, shape (K, d)
        Current centred centres.
    offset : int
        Global index of the block's first row.
    n_far : int
        How many farthest rows to report (for empty-cluster re-seeding).
    prev : (BlockStep, Bounds), optional
        This block's output of the previous iteration (None: every row is searched).
    moved : (ndarray of int, float), optional
        How far the centres moved since then: the centres that moved most (their distances are
        computed exactly) and an upper bound on the shift of every other centre.
    half_gap : ndarray of float64, shape (K,), optional
        Half the distance from each centre to its nearest other centre (a lower bound, rounded
        down).

    Returns
    -------
    (BlockStep, Bounds)
        The block's sums and counts per centre, its squared distances (``sse``, far rows) from
        the differences; the bounds for the next iteration.
    """
    xc = centre_block(block, mean)
    m = xc.shape[0]
    c_max_sq = float(np.max(np.einsum("ij,ij->i", centres, centres))) if centres.shape[0] else 0.0
    x_sq = np.einsum("ij,ij->i", xc, xc, dtype=np.float64)
    if prev is None:
        labels, _, second = nearest_two(xc, centres)
        lower = _lower_bounds(second, x_sq, c_max_sq)
        search = np.arange(m)
        sqdist = _assigned_sqdist(xc, centres, labels)
    else:
        old = prev[1]
        labels = old.labels.copy()
        movers, rest = moved
        # every other centre is at least (old bound - the shift of the others) away, except the
        # centres that moved most, whose distances are computed instead
        lower = np.minimum(old.lower - rest, _distance_to_movers(xc, x_sq, centres, movers, labels, c_max_sq))
        sqdist = _assigned_sqdist(xc, centres, labels)
        search = np.flatnonzero(~(np.sqrt(sqdist) < np.maximum(lower, half_gap[labels])))
        if search.size:
            rows = np.ascontiguousarray(xc[search])
            lab_s, _, sec_s = nearest_two(rows, centres)
            labels[search] = lab_s
            lower[search] = _lower_bounds(sec_s, x_sq[search], c_max_sq)
            sqdist[search] = _assigned_sqdist(rows, centres, lab_s)
    sums, counts = _accumulate(xc, labels, centres.shape[0])
    far = _farthest(sqdist, n_far)
    step = BlockStep(
        sums=sums, counts=counts, sse=float(sqdist.sum()), far_sqdist=sqdist[far],
        far_index=far.astype(np.int64) + offset, far_rows=xc[far].astype(np.float64),
    )
    return step, Bounds(labels, lower, int(search.size))


def step_of(out: tuple) -> BlockStep:
    """The BlockStep of a :func:`lloyd_block` output."""
    return out[0]


def combine_steps(parts: list[BlockStep], n_far: int) -> BlockStep:
    """Sum block contributions in the given order (a fixed order keeps results bit-identical)."""
    sums = parts[0].sums.copy()
    counts = parts[0].counts.copy()
    sse = parts[0].sse
    for p in parts[1:]:
        sums += p.sums
        counts += p.counts
        sse += p.sse
    far_sq = np.concatenate([p.far_sqdist for p in parts])
    far_ix = np.concatenate([p.far_index for p in parts])
    far_rows = np.concatenate([p.far_rows for p in parts])
    order = np.lexsort((far_ix, -far_sq))[:n_far]
    return BlockStep(sums, counts, sse, far_sq[order], far_ix[order], far_rows[order])


def assign_block(block: np.ndarray, mean: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Final assignment of one block: nearest centre and the exact distance to it.

    Returns
    -------
    ndarray of float64, shape (m, 2)
        Column 0 the label (as float64, exact below 2**53), column 1 ``|x - centre|`` computed from
        the difference (not the GEMM form), so a row equal to its centre gets exactly 0.
    """
    xc = centre_block(block, mean)
    labels, _ = nearest_centres(xc, centres)
    dist = np.sqrt(_assigned_sqdist(np.asarray(block, dtype=np.float64), centres + mean, labels))
    out = np.empty((xc.shape[0], 2), dtype=np.float64)
    out[:, 0] = labels
    out[:, 1] = dist
    return out


