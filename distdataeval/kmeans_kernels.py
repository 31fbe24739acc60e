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
        Sum of squared distances to the assigned centre (GEMM form, clipped at 0).
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
    m = xc.shape[0]
    k = centres.shape[0]
    c = centres.astype(xc.dtype)
    c_sq = np.einsum("ij,ij->i", centres, centres)
    row_tile = min(ROW_TILE, max(m, 1))
    centre_tile = max(1, min(k, TILE_ELEMENTS // row_tile))
    labels = np.zeros(m, dtype=np.int64)
    best = np.full(m, np.inf)
    for r0 in range(0, m, row_tile):
        xr = xc[r0 : r0 + row_tile]
        x_sq = np.einsum("ij,ij->i", xr, xr, dtype=np.float64)
        b_lab = labels[r0 : r0 + row_tile]
        b_val = best[r0 : r0 + row_tile]
        for c0 in range(0, k, centre_tile):
            _argmin_update(xr @ c[c0 : c0 + centre_tile].T, c_sq[c0 : c0 + centre_tile], c0, b_lab, b_val)
        b_val += x_sq
    np.maximum(best, 0.0, out=best)
    return labels, best


@njit(cache=True, nogil=True)
def _argmin_update(gram, c_sq, c0, b_lab, b_val):
    """Per row, the centre of this tile minimising ``c_sq[j] - 2 gram[i, j]`` (in float64; the
    first on ties), kept when strictly below the best so far (an earlier tile keeps ties)."""
    m, kt = gram.shape
    for i in range(m):
        best = np.inf
        arg = -1
        for j in range(kt):
            v = c_sq[j] + (-2.0 * np.float64(gram[i, j]))
            if v < best:
                best = v
                arg = j
        if best < b_val[i]:
            b_val[i] = best
            b_lab[i] = arg + c0


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


def lloyd_block(block: np.ndarray, mean: np.ndarray, centres: np.ndarray, offset: int, n_far: int) -> BlockStep:
    """One block's assignment step and partial sums for a Lloyd iteration.

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
    """
    xc = centre_block(block, mean)
    labels, sqdist = nearest_centres(xc, centres)
    sums, counts = _accumulate(xc, labels, centres.shape[0])
    far = _farthest(sqdist, n_far)
    return BlockStep(
        sums=sums,
        counts=counts,
        sse=float(sqdist.sum()),
        far_sqdist=sqdist[far],
        far_index=far.astype(np.int64) + offset,
        far_rows=xc[far].astype(np.float64),
    )


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
    dist = _exact_distance(np.asarray(block, dtype=np.float64), centres + mean, labels)
    out = np.empty((xc.shape[0], 2), dtype=np.float64)
    out[:, 0] = labels
    out[:, 1] = dist
    return out


@njit(cache=True, nogil=True)
def _exact_distance(x, centres, labels):
    m, d = x.shape
    out = np.empty(m, dtype=np.float64)
    for i in range(m):
        c = centres[labels[i]]
        s = 0.0
        for j in range(d):
            t = x[i, j] - c[j]
            s += t * t
        out[i] = np.sqrt(s)
    return out
