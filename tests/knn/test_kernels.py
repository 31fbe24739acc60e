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


def test_partition_lists_against_a_python_reference():
    # a graph in build order (with self entries, -1 gaps and distance ties) -> per row of id
    # order: the first k entries other than itself, exact float64 distances, by (distance, id)
    rng = np.random.default_rng(4)
    s, c, k, d = 400, 9, 5, 6
    xo = rng.integers(-3, 4, size=(s, d)).astype(np.float32)  # small integers: many equal distances
    graph = np.stack([rng.choice(s, c, replace=False) for _ in range(s)]).astype(np.int32)
    graph[::7, 0] = np.arange(0, s, 7)  # self first
    graph[::5, -3:] = -1
    graph[3, :] = -1  # a row with no neighbour at all
    perm = rng.permutation(s)
    gid_of = (np.arange(s, dtype=np.int64) * 11 + 3)[perm]
    out_i = np.full((s, k + 2), K.ID_SENTINEL, dtype=np.int64)
    out_d = np.full((s, k + 2), np.inf)
    K.partition_lists(xo, graph, gid_of, perm, out_i[:, :k], out_d[:, :k])
    x64 = xo.astype(np.float64)
    for r in range(s):
        kept = [v for v in graph[r] if v >= 0 and v != r][:k]
        ref = sorted(((float(((x64[r] - x64[v]) ** 2).sum()), int(gid_of[v])) for v in kept))
        row = perm[r]
        assert [int(i) for i in out_i[row, : len(ref)]] == [g for _, g in ref]
        assert out_d[row, : len(ref)].tolist() == [dd for dd, _ in ref]
        assert np.all(out_i[row, len(ref) :] == K.ID_SENTINEL) and np.all(np.isinf(out_d[row, len(ref) :]))
