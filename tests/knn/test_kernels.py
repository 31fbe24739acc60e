"""numba kernels of the k-NN stage against plain-Python references."""

from __future__ import annotations

import numpy as np

from distdataeval.knn import _kernels as K


def _reference_merge(rows, nbr, sqd, n_rows, k):
    out_i = np.full((n_rows, k), K.ID_SENTINEL, dtype=np.int64)
    out_d = np.full((n_rows, k), np.inf)
    for r in range(n_rows):
        best = {}
        for t in np.flatnonzero(rows == r):
            for i, d in zip(nbr[t], sqd[t]):
                if i != K.ID_SENTINEL:
                    best[int(i)] = min(best.get(int(i), np.inf), float(d))
        kept = sorted(best.items(), key=lambda e: (e[1], e[0]))[:k]
        for j, (i, d) in enumerate(kept):
            out_i[r, j], out_d[r, j] = i, d
    return out_i, out_d


def test_merge_row_candidates_single_and_pooled_lists():
    rng = np.random.default_rng(0)
    n_rows, c, k = 300, 9, 6
    lists = []
    for r in range(n_rows):
        for _ in range(1 + (r % 3 == 0) + (r % 7 == 0)):
            ids = rng.choice(40, c, replace=False).astype(np.int64)
            d = rng.integers(0, 6, c).astype(np.float64)  # many equal distances: ties by id
            if r % 2:  # sorted by (distance, id), as the partitions' lists are
                o = np.lexsort((ids, d))
                ids, d = ids[o], d[o]
            if r % 5 == 0:  # short list: sentinel tail
                ids[-3:], d[-3:] = K.ID_SENTINEL, np.inf
            lists.append((r, ids, d))
    # a repeated id with its (equal) distance inside one list must not survive twice
    lists.append((1, np.array([5, 5, 7, 8, 9, 10, 11, 12, 13]), np.array([1.0, 1.0, 2, 3, 4, 5, 6, 7, 8])))
    rows = np.array([t[0] for t in lists], dtype=np.int64)
    nbr = np.stack([t[1] for t in lists])
    sqd = np.stack([t[2] for t in lists])
    perm = rng.permutation(rows.shape[0])
    got = K.merge_row_candidates(rows[perm], nbr[perm], sqd[perm], n_rows, k)
    want = _reference_merge(rows, nbr, sqd, n_rows, k)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
