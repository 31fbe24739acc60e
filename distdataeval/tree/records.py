"""Records produced by the tree stage (linkage, condensed tree, HDBSCAN result)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distdataeval.errors import IndexOverflowError

FLOAT32_EXACT_IDS = 2**24

__all__ = ["LinkageTree", "CondensedTree", "HdbscanTree"]


def _check_shapes(record: object, names: tuple[str, ...], length: int) -> None:
    cls = type(record).__name__
    for name in names:
        arr = getattr(record, name)
        if arr.shape != (length,):
            raise ValueError(f"{cls}.{name} must have shape ({length},), got {arr.shape}")


@dataclass(frozen=True)
class LinkageTree:
    """Single-linkage tree of n points as n-1 merges, in merge order (ascending distance).

    Merge t creates node n + t; points are nodes 0..n-1 and the root is node 2n-2.

    Attributes
    ----------
    left : ndarray of int64, shape (n-1,)
        Larger id of the two merged nodes (DataEval's column 0).
    right : ndarray of int64, shape (n-1,)
        Smaller id of the two merged nodes (DataEval's column 1).
    distance : ndarray of float64, shape (n-1,)
        Merge distance (the MST edge weight), non-decreasing.
    size : ndarray of int64, shape (n-1,)
        Number of points under the new node.
    """

    left: np.ndarray
    right: np.ndarray
    distance: np.ndarray
    size: np.ndarray

    def __post_init__(self) -> None:
        _check_shapes(self, ("left", "right", "distance", "size"), self.left.shape[0])

    @property
    def n_points(self) -> int:
        """Number of points n (one more than the number of merges)."""
        return int(self.left.shape[0]) + 1

    def as_dataeval(self) -> np.ndarray:
        """DataEval's ``linkage_tree`` view: float32 (n-1, 4) rows [left, right, distance, size].

        Returns
        -------
        ndarray of float32, shape (n-1, 4)

        Raises
        ------
        IndexOverflowError
            When a node id (up to 2n-2) exceeds 2**24, i.e. n > 2**23 + 1: float32 cannot
            hold those ids exactly. Use the int64 attributes instead.
        """
        n = self.n_points
        if 2 * n - 2 > FLOAT32_EXACT_IDS:
            raise IndexOverflowError(
                f"n = {n} points: linkage node ids reach 2n-2 = {2 * n - 2} > 2**24, which a "
                "float32 linkage_tree would corrupt; use LinkageTree.left/right/size (int64) "
                "instead"
            )
        out = np.empty((n - 1, 4), dtype=np.float32)
        out[:, 0] = self.left
        out[:, 1] = self.right
        out[:, 2] = self.distance
        out[:, 3] = self.size
        return out


@dataclass(frozen=True)
class CondensedTree:
    """HDBSCAN condensed tree as rows (parent, child, lambda_val, child_size).

    Clusters are numbered n (the root), n+1, n+2, ... in breadth-first order of the linkage
    tree; a child id < n is a point that falls out of ``parent`` at ``lambda_val``. Each point
    appears exactly once as a child; rows with a cluster child record a split. Rows come in
    breadth-first order, so a cluster's birth row precedes the rows where it is the parent.

    Attributes
    ----------
    parent : ndarray of int64, shape (m,)
        Cluster id (>= n).
    child : ndarray of int64, shape (m,)
        Point id (< n) or cluster id (> n).
    lambda_val : ndarray of float64, shape (m,)
        1 / distance of the merge where the child leaves the parent (+inf for distance 0).
    child_size : ndarray of int64, shape (m,)
        1 for a point, the number of points for a cluster.
    n_points : int
        Number of points n.
    """

    parent: np.ndarray
    child: np.ndarray
    lambda_val: np.ndarray
    child_size: np.ndarray
    n_points: int

    def __post_init__(self) -> None:
        _check_shapes(self, ("parent", "child", "lambda_val", "child_size"), self.parent.shape[0])

    @property
    def n_clusters(self) -> int:
        """Number of clusters in the tree, the root included (ids n .. n + n_clusters - 1)."""
        return 1 + int(np.count_nonzero(self.child >= self.n_points))


@dataclass(frozen=True)
class HdbscanTree:
    """Everything the tree stage computes from one spanning tree.

    Attributes
    ----------
    linkage : LinkageTree
    condensed : CondensedTree
    selected_clusters : ndarray of int64, shape (K,)
        Condensed-tree ids of the clusters chosen by EOM, ascending; label j is the j-th.
    labels : ndarray of int64, shape (n,)
        Raw HDBSCAN labels 0..K-1, -1 for noise (before DataEval's all-noise post-fix).
    membership : ndarray of float32, shape (n,)
        Membership strength in [0, 1]; 0 for noise.
    min_cluster_size : int
    max_cluster_size : float
        ``inf`` when unbounded.
    """

    linkage: LinkageTree
    condensed: CondensedTree
    selected_clusters: np.ndarray
    labels: np.ndarray
    membership: np.ndarray
    min_cluster_size: int
    max_cluster_size: float

    def __post_init__(self) -> None:
        n = self.linkage.n_points
        _check_shapes(self, ("labels", "membership"), n)

    @property
    def n_points(self) -> int:
        """Number of points n."""
        return self.linkage.n_points
