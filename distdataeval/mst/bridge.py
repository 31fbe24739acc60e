"""Joining the components of a k-NN forest into one spanning tree (DataEval's rule, spec 1.3).

Components are ordered, and the order matters (a point only searches components ordered after
its own). ``order="dataeval"`` reproduces DataEval's order — its union-find root ids, found by
replaying its Kruskal pass over the k-NN graph (:func:`dataeval_component_positions`; needs the
k-NN graph in memory, as exact mode has it). ``order="min_id"`` orders components by their
smallest point id, which needs no replay and suits graphs that stay distributed. Every point of component p proposes
an edge to its exact nearest point among the components ordered after p; the proposals are
added by Kruskal in (weight, low, high) order. Each component but the last proposes an edge to a
later one, so one round always connects everything; the loop is kept as a guard.

The nearest-later-component search is the blocked brute force of :mod:`distdataeval.knn.exact`
with a position filter, so no dense (n x components) matrix is built.
"""

from __future__ import annotations

import numpy as np

from distdataeval.mst import _kernels as K
from distdataeval.mst.reduce import EdgeList


def dataeval_component_positions(neighbors: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Position of each point's component in DataEval's order (ascending union-find root id).

    Parameters
    ----------
    neighbors : ndarray of int64, shape (n, k)
    distances : ndarray of float32, shape (n, k)

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    roots = K.dataeval_union_roots(
        np.ascontiguousarray(neighbors, dtype=np.int64), np.ascontiguousarray(distances, dtype=np.float32)
    )
    return np.searchsorted(np.unique(roots), roots).astype(np.int64)


def min_id_component_positions(parent: np.ndarray) -> np.ndarray:
    """Position of each point's component when components are ordered by smallest member id."""
    return K.component_labels(parent)


def forest_state(forest: EdgeList, n: int):
    """Union-find state (parent, size) of a forest on n points."""
    parent = np.arange(n, dtype=np.int64)
    size = np.ones(n, dtype=np.int64)
    K.kruskal_select(forest.low, forest.high, parent, size)
    return parent, size


def proposals_to_edges(query_ids: np.ndarray, nearest: np.ndarray, sqdist: np.ndarray) -> EdgeList:
    """Bridging proposals (x -> nearest later point) as an edge list (float32 weights widened)."""
    ok = (nearest >= 0) & np.isfinite(sqdist)
    q, t = query_ids[ok].astype(np.int64), nearest[ok].astype(np.int64)
    w = np.sqrt(sqdist[ok]).astype(np.float32).astype(np.float64)
    return EdgeList(np.minimum(q, t), np.maximum(q, t), w)


def add_bridges(proposals: EdgeList, parent: np.ndarray, size: np.ndarray) -> EdgeList:
    """Kruskal-add proposals to the forest state (in place); return the edges that were used."""
    e = proposals.sorted()
    keep = K.kruskal_select(e.low, e.high, parent, size)
    return EdgeList(e.low[keep], e.high[keep], e.weight[keep])
