"""k-NN edges -> minimum spanning forest, reduced block by block (cycle property).

Each row block of the k-NN graph becomes a minimum spanning forest of its own edges (an edge
that closes a cycle of lighter edges inside any subset of the graph is in no MST of the graph),
forests are merged pairwise and reduced again, and the last forest (at most n - 1 edges) is what
the driver receives. Edges are totally ordered by (weight, low id, high id), so every reduction
order gives the same forest.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import numpy as np

from distdataeval.mst import _kernels as K


@dataclass(frozen=True)
class EdgeList:
    """Undirected weighted edges, low id first.

    Attributes
    ----------
    low, high : ndarray of int64, shape (m,)
        Endpoints with ``low < high``.
    weight : ndarray of float64, shape (m,)
        Edge length (a float32 value widened to float64).
    """

    low: np.ndarray
    high: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return int(self.low.shape[0])

    def sorted(self) -> "EdgeList":
        """The same edges ordered by (weight, low, high)."""
        order = K.canonical_order(self.weight, self.low, self.high)
        return EdgeList(self.low[order], self.high[order], self.weight[order])

    @staticmethod
    def concat(parts: list) -> "EdgeList":
        return EdgeList(
            np.concatenate([p.low for p in parts]),
            np.concatenate([p.high for p in parts]),
            np.concatenate([p.weight for p in parts]),
        )


def knn_block_to_edges(neighbors: np.ndarray, distances: np.ndarray, row_offset: int) -> EdgeList:
    """Edges (i, neighbors[i, j], distances[i, j]) of one row block of the k-NN graph."""
    m, k = neighbors.shape
    rows = np.repeat(np.arange(row_offset, row_offset + m, dtype=np.int64), k)
    cols = neighbors.reshape(-1).astype(np.int64, copy=False)
    w = distances.reshape(-1).astype(np.float32).astype(np.float64)
    valid = (cols >= 0) & (cols != np.iinfo(np.int64).max) & np.isfinite(w)  # no padding entries
    rows, cols, w = rows[valid], cols[valid], w[valid]
    return EdgeList(np.minimum(rows, cols), np.maximum(rows, cols), w)


def minimum_spanning_forest(edges: EdgeList) -> EdgeList:
    """Minimum spanning forest of an edge list, sorted by (weight, low, high).

    Vertex ids are compacted first, so memory is O(edges) whatever the ids are.
    """
    if len(edges) == 0:
        return edges
    e = edges.sorted()
    local_low, local_high, n_verts = K.compact_ids(e.low, e.high)
    parent = np.arange(n_verts, dtype=np.int64)
    size = np.ones(n_verts, dtype=np.int64)
    keep = K.kruskal_select(local_low, local_high, parent, size)
    return EdgeList(e.low[keep], e.high[keep], e.weight[keep])


def _knn_block_forest(neighbors, distances, row_offset):
    return minimum_spanning_forest(knn_block_to_edges(neighbors, distances, row_offset))


def _merge_forests(*forests):
    return minimum_spanning_forest(EdgeList.concat(list(forests)))


def knn_to_forest(neighbors, distances, fan_in: int = 4):
    """Lazy minimum spanning forest of a k-NN graph given as row-chunked Dask arrays.

    Returns a Delayed :class:`EdgeList` (sorted by (weight, low, high)).
    """
    if neighbors.chunks[0] != distances.chunks[0]:
        raise ValueError("neighbors and distances must share row chunks")
    offsets = np.concatenate([[0], np.cumsum(neighbors.chunks[0])[:-1]])
    nb = neighbors.rechunk({1: -1}).to_delayed().ravel()
    ds = distances.rechunk({1: -1}).to_delayed().ravel()
    forest = dask.delayed(_knn_block_forest, pure=True)
    level = [forest(a, b, int(o)) for a, b, o in zip(nb, ds, offsets)]
    merge = dask.delayed(_merge_forests, pure=True)
    while len(level) > 1:
        level = [merge(*level[i : i + fan_in]) if len(level[i : i + fan_in]) > 1 else level[i] for i in range(0, len(level), fan_in)]
    return level[0]
