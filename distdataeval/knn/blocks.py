"""Row blocks prepared once for blocked brute-force search.

A :class:`PreparedBlock` holds one row block of the (centred) data in float64 (for exact
refinement) and float32 (for the GEMM that ranks candidates), plus norms. Centring on the column
mean leaves distances unchanged and shrinks the norms that bound float32 round-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNIT_ROUNDOFF_F32 = 2.0**-24


@dataclass(frozen=True)
class PreparedBlock:
    """One row block, centred.

    Attributes
    ----------
    offset : int
        Global id of the block's first row.
    x64_data : ndarray of float64, shape (m, d), or None
        Stored float64 rows (None: ``x64`` widens ``x32``).
    x32 : ndarray of float32, shape (m, d)
    sqnorm32 : ndarray of float32, shape (m,)
        Squared norms of the float32 rows (ranking term of the GEMM score).
    norm : ndarray of float64, shape (m,)
        Norms of the float32 rows (for the round-off bound).
    row_ids : ndarray of int64, shape (m,), optional
        Global ids of the rows when they are not ``offset .. offset + m - 1`` (a block of
        sampled rows used as queries).
    """

    offset: int
    x64_data: np.ndarray | None
    x32: np.ndarray
    sqnorm32: np.ndarray
    norm: np.ndarray
    row_ids: np.ndarray | None = None

    @property
    def x64(self) -> np.ndarray:
        """The float64 rows: stored (exact mode), or widened from ``x32`` on demand (compact
        blocks of approx mode, which keep a third of the memory)."""
        if self.x64_data is not None:
            return self.x64_data
        return self.x32.astype(np.float64)

    def compact(self) -> "PreparedBlock":
        """The same block without the stored float64 copy."""
        return PreparedBlock(self.offset, None, self.x32, self.sqnorm32, self.norm, self.row_ids)

    @property
    def ids(self) -> np.ndarray:
        """Global id of every row."""
        if self.row_ids is not None:
            return self.row_ids
        return np.arange(self.offset, self.offset + self.n_rows, dtype=np.int64)

    @property
    def n_rows(self) -> int:
        return self.x64.shape[0]


def prepare_block(block: np.ndarray, offset: int, mean: np.ndarray, keep_x64: bool = True) -> PreparedBlock:
    """Centre one row block and precompute what every tile needs (``keep_x64=False``: a compact
    block whose float64 rows are the float32 ones widened)."""
    prepared = prepared_from_centred(np.ascontiguousarray(block, dtype=np.float64) - mean, offset)
    return prepared if keep_x64 else prepared.compact()


def prepared_from_centred(x64: np.ndarray, offset: int, row_ids: np.ndarray | None = None) -> PreparedBlock:
    """A prepared block from rows that are already centred (float64), e.g. rows selected from
    prepared blocks: the float32 copy and the norms come out bit-identical to theirs."""
    x32 = x64.astype(np.float32)
    sq = np.einsum("ij,ij->i", x32.astype(np.float64), x32.astype(np.float64))
    return PreparedBlock(
        offset=int(offset),
        x64_data=x64,
        x32=x32,
        sqnorm32=sq.astype(np.float32),
        norm=np.sqrt(sq),
        row_ids=None if row_ids is None else np.asarray(row_ids, dtype=np.int64),
    )


def roundoff_bound(d: int, query_norm: np.ndarray, ref_norm_max: float) -> np.ndarray:
    """Upper bound of |float32 score - exact score| for one query against any ref of a tile.

    The float32 score ``|r|^2 - 2 q.r`` is one dot product of augmented rows ([q, 1] and
    [-2 r, |r|^2], d + 1 terms). It differs from the exact score by the input roundings (q, r and
    |r|^2 to float32; -2 r is exact) and the accumulation (gamma_{d+1} times the sum of the
    terms' magnitudes, at most (|q| + |r|)^2, in any summation order); all are below
    (2d + 10) u (|q| + |r|)^2 with u = 2^-24. A factor 2 of slack covers the norms themselves
    being computed from rounded values.
    """
    return 2.0 * (2 * d + 10) * UNIT_ROUNDOFF_F32 * (query_norm + ref_norm_max) ** 2


def take_rows(blocks: list, row_ids: np.ndarray, offset: int, keep_ids: bool = False) -> PreparedBlock:
    """A new prepared block made of rows ``row_ids`` (global ids, any order) of ``blocks``.

    Its rows are numbered from ``offset`` in the order given, so a permutation of the data can
    be built from already prepared blocks without centring or converting anything again; with
    ``keep_ids`` they keep their global ids instead (a query block of sampled rows).
    """
    starts = np.array([b.offset for b in blocks])
    owner = np.searchsorted(starts, row_ids, side="right") - 1
    x64 = np.empty((row_ids.shape[0], blocks[0].x64.shape[1]))
    x32 = np.empty(x64.shape, dtype=np.float32)
    sq = np.empty(row_ids.shape[0], dtype=np.float32)
    norm = np.empty(row_ids.shape[0])
    for j, b in enumerate(blocks):
        sel = np.flatnonzero(owner == j)
        if sel.size == 0:
            continue
        local = row_ids[sel] - b.offset
        x64[sel] = b.x64[local]
        x32[sel] = b.x32[local]
        sq[sel] = b.sqnorm32[local]
        norm[sel] = b.norm[local]
    return PreparedBlock(
        offset=int(offset), x64_data=x64, x32=x32, sqnorm32=sq, norm=norm, row_ids=row_ids.astype(np.int64) if keep_ids else None
    )
