"""NumPy kernels of :func:`distdataeval.label_errors` (per row block; no Dask here)."""

from __future__ import annotations

import numpy as np

# a sample is flagged when its score reaches this (DataEval: >= 1.0, inclusive)
THRESHOLD = 1.0
# suggestion rule (spec section 6)
MIN_CONFIDENCE = 0.4
SECOND_WITHIN = 0.2


def _mean_distance(sqdist: np.ndarray) -> np.ndarray:
    """Mean Euclidean distance over the finite entries of each row (inf when none)."""
    finite = np.isfinite(sqdist)
    dist = np.sqrt(np.where(finite, sqdist, 0.0))
    count = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, dist.sum(axis=1) / np.maximum(count, 1), np.inf)


def ratio_scores(intra_sq: np.ndarray, extra_sq: np.ndarray) -> np.ndarray:
    """float32 (m,) intra / extra mean neighbour distance (see :func:`ratio_of_means`)."""
    return ratio_of_means(_mean_distance(intra_sq), _mean_distance(extra_sq))


def ratio_of_means(intra: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """float32 (m,) intra / extra, from the mean neighbour distances.

    Rules beyond DataEval's formula: no intra-class neighbour (a class of one sample) gives
    ``inf``; an extra-class mean of 0 gives ``inf`` (or 1.0 when the intra mean is 0 too: the
    sample sits exactly on samples of its own and of another class).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        score = intra / extra
    score = np.where((intra == 0) & (extra == 0), 1.0, score)
    score = np.where(np.isinf(intra), np.inf, score)
    return score.astype(np.float32)


def vote_weights(k: int) -> np.ndarray:
    """int64 (k,): weight ceil((k - r) / 3) of the extra-class neighbour at rank r."""
    r = np.arange(k)
    return -((r - k) // 3)


def suggest(neighbour_labels: np.ndarray) -> np.ndarray:
    """Suggested labels from the extra-class neighbours' rank-weighted vote.

    Parameters
    ----------
    neighbour_labels : ndarray of int64, shape (f, k)
        Class codes of each row's extra-class neighbours, nearest first (-1 = none).

    Returns
    -------
    ndarray of int64, shape (f, 2)
        ``[top1, top2]``, ``[top1, -1]`` or ``[-1, -1]``: conf = a class's share of the weights;
        nothing when the best share is below 0.4, both when the runner-up is within 0.2 of it.
        Equal shares are ordered by class code.
    """
    f, k = neighbour_labels.shape
    out = np.full((f, 2), -1, dtype=np.int64)
    if f == 0 or k == 0:
        return out
    w = np.broadcast_to(vote_weights(k), (f, k))
    valid = neighbour_labels >= 0
    rows = np.broadcast_to(np.arange(f)[:, None], (f, k))[valid]
    labs = neighbour_labels[valid]
    wts = w[valid].astype(np.float64)
    if rows.size == 0:
        return out
    total = np.bincount(rows, weights=wts, minlength=f)
    order = np.lexsort((labs, rows))
    rows, labs, wts = rows[order], labs[order], wts[order]
    start = np.flatnonzero(np.r_[True, (rows[1:] != rows[:-1]) | (labs[1:] != labs[:-1])])
    g_rows, g_labs = rows[start], labs[start]
    g_conf = np.add.reduceat(wts, start) / total[g_rows]
    # per row: classes by descending share, ties by code
    order = np.lexsort((g_labs, -g_conf, g_rows))
    g_rows, g_labs, g_conf = g_rows[order], g_labs[order], g_conf[order]
    first = np.flatnonzero(np.r_[True, g_rows[1:] != g_rows[:-1]])
    has_second = np.r_[first[1:], g_rows.size] - first > 1
    conf1 = g_conf[first]
    conf2 = np.where(has_second, g_conf[np.minimum(first + 1, g_rows.size - 1)], 0.0)
    r1 = g_rows[first]
    ok = conf1 >= MIN_CONFIDENCE
    out[r1[ok], 0] = g_labs[first][ok]
    two = ok & has_second & (conf1 - conf2 < SECOND_WITHIN)
    out[r1[two], 1] = g_labs[np.minimum(first + 1, g_rows.size - 1)][two]
    return out


def score_block(neighbours: tuple, k: int, offset: int):
    """Scores of one query block and the suggestions of its flagged rows.

    Parameters
    ----------
    neighbours : tuple of Neighbours
        (intra-class, extra-class) records of the block's rows.
    k : int
        Neighbours averaged per row.
    offset : int
        Global id of the block's first row.

    Returns
    -------
    scores : ndarray of float32, shape (m,)
    flagged : ndarray of int64, shape (f,)
        Global ids of rows with score >= 1.
    suggestions : ndarray of int64, shape (f, 2)
        Class codes (see :func:`suggest`).
    """
    same, other = neighbours
    scores = ratio_scores(same.sqdist[:, :k], other.sqdist[:, :k])
    local = np.flatnonzero(scores >= THRESHOLD)
    return scores, local + offset, suggest(other.labels[local, :k])


def score_rows(result: tuple, k: int, sample_ids: np.ndarray) -> tuple:
    """Scores of searched rows (any ids) and what the driver needs about them.

    Parameters
    ----------
    result : (ndarray, (Neighbours, Neighbours))
        Global ids of the rows and their (intra-class, extra-class) records.
    k : int
        Neighbours averaged per row.
    sample_ids : ndarray of int64, sorted
        Rows whose neighbour distances are returned (for the recall measurement).

    Returns
    -------
    ids : ndarray of int64, shape (m,)
    scores : ndarray of float32, shape (m,)
    found : ndarray of int32, shape (m, 2)
        Intra- and extra-class neighbours found per row (<= k).
    flagged : ndarray of int64, shape (f,)
        Global ids of rows with score >= 1.
    suggestions : ndarray of int64, shape (f, 2)
        Class codes (see :func:`suggest`).
    sampled : (ndarray, ndarray, ndarray)
        Ids of the rows of ``sample_ids`` present here and their intra / extra squared
        distances (s, k).
    means : ndarray of float64, shape (m, 2)
        Intra- and extra-class mean neighbour distance per row.
    open_rows : (ndarray, ndarray)
        Ids of the rows with fewer than k intra-class neighbours and their suggestions (u, 2),
        whatever their score: a later intra-class search may flag them.
    """
    ids, (same, other) = result
    means = np.stack([_mean_distance(same.sqdist[:, :k]), _mean_distance(other.sqdist[:, :k])], axis=1)
    scores = ratio_of_means(means[:, 0], means[:, 1])
    found = np.stack([np.isfinite(same.sqdist[:, :k]).sum(axis=1), np.isfinite(other.sqdist[:, :k]).sum(axis=1)], axis=1)
    local = np.flatnonzero(scores >= THRESHOLD)
    pick = np.flatnonzero(np.isin(ids, sample_ids))
    sampled = (ids[pick], same.sqdist[pick, :k], other.sqdist[pick, :k])
    open_ = np.flatnonzero(found[:, 0] < k)
    return (
        ids, scores, found.astype(np.int32), ids[local], suggest(other.labels[local, :k]), sampled, means,
        (ids[open_], suggest(other.labels[open_, :k])),
    )
