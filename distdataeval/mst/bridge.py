"""Joining the components of a k-NN forest into one spanning tree (DataEval's rule, spec 1.3).

Components are ordered, and the order matters (a point only searches components ordered after
its own). Exact mode reproduces DataEval's order — its union-find root ids, found by
replaying its Kruskal pass over the k-NN graph (:func:`dataeval_component_positions`; needs the
k-NN graph in memory, as exact mode has it). Otherwise components are ordered by their smallest
point id (the numbering of ``component_labels``), which needs no replay and suits graphs that
stay distributed. Every point of component p proposes
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


MAX_COMPONENTS_FOR_PRUNING = 4096


def _block_component_radii(block, positions: np.ndarray, centers: np.ndarray, n_components: int):
    dist = np.sqrt(((block.x64 - centers[positions]) ** 2).sum(axis=1))
    radii = np.zeros(n_components)
    np.maximum.at(radii, positions, dist)
    return radii


def _max_radii(parts):
    # widened slightly so that round-off cannot make a bound unsafe
    return np.max(parts, axis=0) * (1 + 1e-9) + 1e-12


def component_balls(blocks: list, block_positions: list, n_components: int):
    """Lazy centre (C, d) and radius (C,) of every component, in the blocks' centred coordinates
    (two passes over the prepared blocks, both on the workers)."""
    import dask

    from distdataeval.mst.component_pairs import block_component_sums, combine_centroids

    sums = [dask.delayed(block_component_sums, pure=True)(b, p) for b, p in zip(blocks, block_positions)]
    centers = dask.delayed(combine_centroids, pure=True)(sums, n_components)
    radii = [
        dask.delayed(_block_component_radii, pure=True)(b, p, centers, n_components)
        for b, p in zip(blocks, block_positions)
    ]
    return centers, dask.delayed(_max_radii, pure=True)(radii)


def useful_component_pairs(centers: np.ndarray, radii: np.ndarray) -> np.ndarray | None:
    """Pairs (P, Q) of components where a point of Q can be the nearest later point of one of P.

    For component P every point lies within ``UB_P = min_{Q > P} |c_P - c_Q| + r_P + r_Q`` of
    some later point, and no point of Q is closer than ``LB(P, Q) = |c_P - c_Q| - r_P - r_Q``;
    the pair is useful when Q > P and ``LB(P, Q) <= UB_P``. Returns None (no pruning) above
    ``MAX_COMPONENTS_FOR_PRUNING`` components, where the (C, C) matrix would be too large.
    """
    C = centers.shape[0]
    if C > MAX_COMPONENTS_FOR_PRUNING:
        return None
    sq = (centers**2).sum(axis=1)
    cc = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * centers @ centers.T, 0.0))
    later = np.triu(np.ones((C, C), dtype=bool), k=1)
    upper = np.where(later, cc + radii[:, None] + radii[None, :], np.inf).min(axis=1)
    lower = cc - radii[:, None] - radii[None, :]
    # |c_P - c_Q| from the expansion can be off by round-off: keep a margin
    slack = 1e-7 * (np.sqrt(sq)[:, None] + np.sqrt(sq)[None, :] + 1.0)
    return later & (lower - slack <= upper[:, None])


def ordered_tile_mask(block_positions: list) -> np.ndarray:
    """Tiles (query block i, ref block j) where some ref is in a later component than some query
    (rows sorted by component position: the others hold no candidate at all)."""
    lo = np.array([p.min() for p in block_positions])
    hi = np.array([p.max() for p in block_positions])
    return hi[None, :] > lo[:, None]
