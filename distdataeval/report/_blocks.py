"""NumPy functions applied to one row block of a stored array (no Dask here).

They trust their inputs: the graph builders in :mod:`distdataeval.report.data` pass them
1-D blocks of the store's arrays and combine their small outputs.
"""

from __future__ import annotations

import numpy as np

FINITE_RANGE_FIELDS = 4  # min, max, finite count, non-finite count


def finite_range(block: np.ndarray) -> np.ndarray:
    """(1, 4) float64: min and max of the finite values (nan when none), their count, the rest."""
    values = np.asarray(block, dtype=np.float64)
    finite = values[np.isfinite(values)]
    out = np.empty((1, FINITE_RANGE_FIELDS), dtype=np.float64)
    out[0, 0] = finite.min() if finite.size else np.nan
    out[0, 1] = finite.max() if finite.size else np.nan
    out[0, 2] = finite.size
    out[0, 3] = values.size - finite.size
    return out


def combine_finite_ranges(parts: np.ndarray) -> tuple[float, float, int, int]:
    """Fold the (blocks, 4) rows of :func:`finite_range` into (min, max, finite, non-finite)."""
    parts = np.asarray(parts, dtype=np.float64).reshape(-1, FINITE_RANGE_FIELDS)
    has = parts[:, 2] > 0
    lo = float(parts[has, 0].min()) if has.any() else float("nan")
    hi = float(parts[has, 1].max()) if has.any() else float("nan")
    return lo, hi, int(parts[:, 2].sum()), int(parts[:, 3].sum())


def histogram(block: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(1, bins) int64 counts of the block's finite values in ``edges`` (last bin closed)."""
    values = np.asarray(block, dtype=np.float64)
    counts, _ = np.histogram(values[np.isfinite(values)], bins=edges)
    return counts.astype(np.int64)[None, :]


def value_counts(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct non-negative ids of an integer block and how often each occurs."""
    ids = np.asarray(block)
    ids = ids[ids >= 0]
    values, counts = np.unique(ids, return_counts=True)
    return values.astype(np.int64), counts.astype(np.int64)


def merge_value_counts(parts) -> tuple[np.ndarray, np.ndarray]:
    """Merge the ``(values, counts)`` pairs of :func:`value_counts` (ids ascending)."""
    parts = list(parts)
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    values = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    merged, inverse = np.unique(values, return_inverse=True)
    totals = np.zeros(merged.shape[0], dtype=np.int64)
    np.add.at(totals, inverse, counts)
    return merged.astype(np.int64), totals


def members_of(block: np.ndarray, offset: int, wanted: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the block whose id is in ``wanted`` (sorted), at most ``cap`` per id.

    Returns (ids, global row numbers), ordered by row.
    """
    ids = np.asarray(block)
    hit = np.flatnonzero(np.isin(ids, wanted))
    hit_ids = ids[hit]
    order = np.argsort(hit_ids, kind="stable")
    sorted_ids = hit_ids[order]
    starts = np.searchsorted(sorted_ids, sorted_ids, side="left")
    rank = np.arange(sorted_ids.shape[0]) - starts
    keep = np.sort(order[rank < cap])
    return hit_ids[keep].astype(np.int64), (hit[keep] + offset).astype(np.int64)


def first_members(parts, wanted: np.ndarray, cap: int) -> dict[int, np.ndarray]:
    """The first ``cap`` rows of each wanted id, from the per-block results of :func:`members_of`."""
    parts = list(parts)
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    rows = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    order = np.lexsort((rows, ids))
    ids, rows = ids[order], rows[order]
    out = {}
    for gid in np.asarray(wanted, dtype=np.int64).tolist():
        lo, hi = np.searchsorted(ids, [gid, gid + 1])
        out[int(gid)] = rows[lo : min(hi, lo + cap)]
    return out
