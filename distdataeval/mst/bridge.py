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


MAX_COMPONENTS_FOR_PRUNING = 4096


def _block_component_sums(block, positions: np.ndarray, n_components: int):
    sums = np.zeros((n_components, block.x64.shape[1]))
    np.add.at(sums, positions, block.x64)
    return sums, np.bincount(positions, minlength=n_components)


def _block_component_radii(block, positions: np.ndarray, centers: np.ndarray, n_components: int):
    dist = np.sqrt(((block.x64 - centers[positions]) ** 2).sum(axis=1))
    radii = np.zeros(n_components)
    np.maximum.at(radii, positions, dist)
    return radii


def component_balls(client, blocks: list, block_positions: list, n_components: int):
    """Centre and radius of every component (two passes over the prepared blocks).

    Returns (centers (C, d) float64, radii (C,) float64), in the blocks' centred coordinates,
    radii widened slightly so that round-off cannot make a bound unsafe.
    """
    import dask

    parts = [
        dask.delayed(_block_component_sums, pure=True)(b, p, n_components) for b, p in zip(blocks, block_positions)
    ]
    parts = client.gather(client.compute(parts))
    sums = np.sum([p[0] for p in parts], axis=0)
    counts = np.sum([p[1] for p in parts], axis=0)
    centers = sums / np.maximum(counts, 1)[:, None]
    radii = client.gather(
        client.compute(
            [
                dask.delayed(_block_component_radii, pure=True)(b, p, centers, n_components)
                for b, p in zip(blocks, block_positions)
            ]
        )
    )
    radii = np.max(radii, axis=0)
    return centers, radii * (1 + 1e-9) + 1e-12


def bridging_tile_mask(centers: np.ndarray, radii: np.ndarray, block_positions: list) -> np.ndarray:
    """Which (query block, ref block) tiles can hold a point's nearest later-component point.

    Rows are sorted by component position, so each block spans a contiguous range of components.
    For component P, every point lies within ``UB_P = min_{Q > P} |c_P - c_Q| + r_P + r_Q`` of
    some later point, and no point of Q is closer than ``LB(P, Q) = |c_P - c_Q| - r_P - r_Q``;
    a tile is needed only if some pair (P in the query block, Q > P in the ref block) has
    ``LB(P, Q) <= UB_P``. With more than ``MAX_COMPONENTS_FOR_PRUNING`` components only the
    ordering is used (tiles whose refs all precede the query block are skipped).
    """
    n_blocks = len(block_positions)
    lo = np.array([p.min() for p in block_positions])
    hi = np.array([p.max() for p in block_positions])
    mask = hi[None, :] > lo[:, None]  # some ref of block j is later than some query of block i
    C = centers.shape[0]
    if C > MAX_COMPONENTS_FOR_PRUNING:
        return mask
    sq = (centers**2).sum(axis=1)
    cc = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * centers @ centers.T, 0.0))
    later = np.triu(np.ones((C, C), dtype=bool), k=1)
    upper = np.where(later, cc + radii[:, None] + radii[None, :], np.inf).min(axis=1)
    lower = cc - radii[:, None] - radii[None, :]
    # |c_P - c_Q| from the expansion can be off by round-off: keep a margin
    slack = 1e-7 * (np.sqrt(sq)[:, None] + np.sqrt(sq)[None, :] + 1.0)
    useful = later & (lower - slack <= upper[:, None])
    for i in range(n_blocks):
        for j in range(n_blocks):
            if mask[i, j]:
                mask[i, j] = bool(useful[lo[i] : hi[i] + 1, lo[j] : hi[j] + 1].any())
    return mask
