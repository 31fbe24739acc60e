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
    x64 : ndarray of float64, shape (m, d)
    x32 : ndarray of float32, shape (m, d)
    sqnorm32 : ndarray of float32, shape (m,)
        Squared norms of the float32 rows (ranking term of the GEMM score).
    norm : ndarray of float64, shape (m,)
        Norms of the float32 rows (for the round-off bound).
    """

    offset: int
    x64: np.ndarray
    x32: np.ndarray
    sqnorm32: np.ndarray
    norm: np.ndarray

    @property
    def n_rows(self) -> int:
        return self.x64.shape[0]


def prepare_block(block: np.ndarray, offset: int, mean: np.ndarray) -> PreparedBlock:
    """Centre one row block and precompute what every tile needs."""
    x64 = np.ascontiguousarray(block, dtype=np.float64) - mean
    x32 = x64.astype(np.float32)
    sq = np.einsum("ij,ij->i", x32.astype(np.float64), x32.astype(np.float64))
    return PreparedBlock(
        offset=int(offset),
        x64=x64,
        x32=x32,
        sqnorm32=sq.astype(np.float32),
        norm=np.sqrt(sq),
    )


def roundoff_bound(d: int, query_norm: np.ndarray, ref_norm_max: float) -> np.ndarray:
    """Upper bound of |float32 score - exact score| for one query against any ref of a tile.

    The float32 score ``|r|^2 - 2 q.r`` differs from the exact one by the input roundings, the
    dot-product accumulation (gamma_d, any summation order) and two additions; all are below
    (2d + 10) u (|q| + |r|)^2 with u = 2^-24. A factor 2 of slack covers the norms themselves
    being computed from rounded values.
    """
    return 2.0 * (2 * d + 10) * UNIT_ROUNDOFF_F32 * (query_norm + ref_norm_max) ** 2
