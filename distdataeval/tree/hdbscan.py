"""HDBSCAN on a spanning tree: linkage -> condensed tree -> EOM selection -> labels, strengths.

This reproduces DataEval 1.1.4 (its vendored fast_hdbscan 0.2.2 ``cluster_trees``) with
``allow_single_cluster=True``, ``cluster_selection_method="eom"`` and no selection epsilon;
see ``DATAEVAL_BEHAVIOUR.md`` §1.4–§1.5. The functions here validate and convert; the work is
done by the numba kernels in :mod:`distdataeval.tree._kernels` (O(n) memory, no recursion).

Differences from DataEval that are deliberate:

* ids stay int64 and lambdas / stabilities float64. DataEval stores lambda as float32 and
  sums stabilities in float32, so its results can differ from ours only where two
  stabilities agree to within float32 rounding, or (root-only label rule) where a point's
  lambda and the root's largest lambda round to the same float32.
* stability is summed as non-negative excesses (lambda - lambda_birth) * child_size, which
  equals the spec's formula but keeps exact ties exact: a cluster whose points all leave at
  its birth lambda scores exactly 0, and a cluster born at lambda = inf (a split among
  duplicates) scores 0 instead of inf - inf = NaN. DataEval's float32 form leaves rounding
  residue (about 1e-7 relative) in such ties, so which side of an exact EOM tie it takes is
  decided by that noise; we take the spec's side (kids > own is false on a tie: the
  parent is selected).
* when exactly one non-root cluster is selected (possible only with a finite
  max_cluster_size) and some points reach the unselected root, DataEval (and fast_hdbscan
  0.3.4) look up a label for the root and raise ``KeyError``; here those points are noise,
  as §1.5 says (the root-only rule applies only when the root itself is selected).
"""

from __future__ import annotations

import numbers

import numpy as np

from distdataeval.errors import InvalidInputError, InvalidParameterError
from distdataeval.mst.records import SpanningTree
from distdataeval.tree import _kernels
from distdataeval.tree.records import CondensedTree, HdbscanTree, LinkageTree

__all__ = [
    "mst_to_linkage_tree",
    "linkage_to_condensed_tree",
    "condensed_tree_to_stability",
    "select_clusters_eom",
    "condensed_tree_to_labels",
    "condensed_tree_to_membership",
    "hdbscan_from_mst",
]

# Parameter limits, declared once; every check below reads from here.
PARAMETER_LIMITS = {
    "min_cluster_size": "an int >= 2",
    "max_cluster_size": "a number > 0 (inf or None for no limit)",
}


# --------------------------------------------------------------------------- validation


def _check_min_cluster_size(value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(
            f"min_cluster_size must be {PARAMETER_LIMITS['min_cluster_size']}, got {value!r} "
            f"of type {type(value).__name__}; pass a whole number such as 5"
        )
    if value < 2:
        raise InvalidParameterError(
            f"min_cluster_size must be {PARAMETER_LIMITS['min_cluster_size']}, got {value}; "
            "a cluster needs at least 2 points, so use 2 or more"
        )
    return int(value)


def _check_max_cluster_size(value: object) -> float:
    if value is None:
        return float(np.inf)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(
            f"max_cluster_size must be {PARAMETER_LIMITS['max_cluster_size']}, got {value!r} "
            f"of type {type(value).__name__}"
        )
    value = float(value)
    if not value > 0:  # also rejects NaN
        raise InvalidParameterError(
            f"max_cluster_size must be {PARAMETER_LIMITS['max_cluster_size']}, got {value}; "
            "pass a positive size, or None for no limit"
        )
    return value


def _check_spanning_tree(tree: SpanningTree) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    if not isinstance(tree, SpanningTree):
        raise InvalidInputError(f"expected a SpanningTree, got {type(tree).__name__}")
    n = int(tree.n_points)
    if n < 2:
        raise InvalidInputError(
            f"a spanning tree needs at least 2 points to build a linkage tree, got n_points = {n}"
        )
    for name in ("sources", "targets"):
        arr = getattr(tree, name)
        if not np.issubdtype(arr.dtype, np.integer):
            raise InvalidInputError(
                f"SpanningTree.{name} must hold integer ids, got dtype {arr.dtype}"
            )
    sources = np.ascontiguousarray(tree.sources, dtype=np.int64)
    targets = np.ascontiguousarray(tree.targets, dtype=np.int64)
    weights = np.ascontiguousarray(tree.weights, dtype=np.float64)
    for name, arr in (("sources", sources), ("targets", targets)):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= n:
            raise InvalidInputError(
                f"SpanningTree.{name} has ids in [{lo}, {hi}], outside [0, {n - 1}] for "
                f"n_points = {n}"
            )
    if not np.isfinite(weights).all():
        bad = int(np.flatnonzero(~np.isfinite(weights))[0])
        raise InvalidInputError(
            f"SpanningTree.weights must be finite, edge {bad} has weight {weights[bad]}"
        )
    if weights[0] < 0:
        raise InvalidInputError(f"SpanningTree.weights must be >= 0, got {weights[0]} first")
    if n > 2 and bool(np.any(weights[1:] < weights[:-1])):
        bad = int(np.flatnonzero(weights[1:] < weights[:-1])[0]) + 1
        raise InvalidInputError(
            "SpanningTree edges must be sorted by weight (ascending): edge "
            f"{bad} has weight {weights[bad]} < {weights[bad - 1]} of edge {bad - 1}"
        )
    return sources, targets, weights, n


def _check_linkage(linkage: LinkageTree) -> None:
    """Reject a LinkageTree that is not a binary merge tree (kernels index by its ids)."""
    if not isinstance(linkage, LinkageTree):
        raise InvalidInputError(f"expected a LinkageTree, got {type(linkage).__name__}")
    n = linkage.n_points
    if n < 2:
        raise InvalidInputError("a linkage tree needs at least 2 points (1 merge)")
    left = np.asarray(linkage.left)
    right = np.asarray(linkage.right)
    size = np.asarray(linkage.size)
    distance = np.asarray(linkage.distance, dtype=np.float64)
    row_node = n + np.arange(n - 1)
    if (right < 0).any() or (left <= right).any() or (left >= row_node).any():
        raise InvalidInputError(
            "LinkageTree rows must satisfy 0 <= right < left < n + t (row t merges two "
            "existing nodes, larger id first)"
        )
    if (np.bincount(np.concatenate([left, right]), minlength=2 * n - 2) != 1).any():
        raise InvalidInputError("LinkageTree must merge every node except the root exactly once")
    node_size = np.concatenate([np.ones(n, dtype=np.int64), size])
    if (size != node_size[left] + node_size[right]).any():
        raise InvalidInputError("LinkageTree.size must equal the sum of the merged nodes' sizes")
    if not np.isfinite(distance).all() or (distance < 0).any() or (np.diff(distance) < 0).any():
        raise InvalidInputError("LinkageTree.distance must be finite, >= 0 and non-decreasing")


def _condensed_arrays(condensed: CondensedTree, check: bool = True):
    """int64 / float64 contiguous columns; with ``check``, reject trees the kernels would
    index out of bounds (ids outside the tree, non-consecutive cluster ids, a point twice)."""
    if check:
        if not isinstance(condensed, CondensedTree):
            raise InvalidInputError(f"expected a CondensedTree, got {type(condensed).__name__}")
        n, k = condensed.n_points, condensed.n_clusters
        parent, child = np.asarray(condensed.parent), np.asarray(condensed.child)
        is_cluster = child >= n
        if n < 2 or parent.size == 0:
            raise InvalidInputError("a condensed tree needs at least 2 points")
        if parent.min() < n or parent.max() >= n + k or child.min() < 0 or child.max() >= n + k:
            raise InvalidInputError(
                f"CondensedTree ids must be points [0, {n - 1}] or clusters [{n}, {n + k - 1}]"
            )
        if (parent[is_cluster] >= child[is_cluster]).any():
            raise InvalidInputError(
                "CondensedTree clusters must have larger ids than their parents"
            )
        if (np.bincount(child[~is_cluster], minlength=n) != 1).any():
            raise InvalidInputError("CondensedTree must hold every point exactly once as a child")
        lam = np.asarray(condensed.lambda_val, dtype=np.float64)
        if np.isnan(lam).any() or (lam < 0).any():
            raise InvalidInputError("CondensedTree.lambda_val must be >= 0 (inf allowed)")
    return (
        np.ascontiguousarray(condensed.parent, dtype=np.int64),
        np.ascontiguousarray(condensed.child, dtype=np.int64),
        np.ascontiguousarray(condensed.lambda_val, dtype=np.float64),
        np.ascontiguousarray(condensed.child_size, dtype=np.int64),
    )


def _check_selected(selected: object, condensed: CondensedTree) -> np.ndarray:
    arr = np.asarray(selected)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(
            "selected clusters must be a 1-D integer array, got shape "
            f"{arr.shape} dtype {arr.dtype}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    n, k = condensed.n_points, condensed.n_clusters
    if arr.min() < n or arr.max() >= n + k:
        raise InvalidInputError(
            f"selected cluster ids must lie in [{n}, {n + k - 1}] (the condensed tree's "
            f"clusters), got ids in [{arr.min()}, {arr.max()}]"
        )
    if np.any(arr[1:] <= arr[:-1]):
        raise InvalidInputError("selected cluster ids must be sorted ascending without repeats")
    return arr


# --------------------------------------------------------------------------- unchecked stages
# The public functions validate and then call these; hdbscan_from_mst calls them directly on
# records it has just built.


def _condense(linkage: LinkageTree, mcs: int, maxcs: float) -> CondensedTree:
    parent, child, lam, child_size = _kernels.condense(
        np.ascontiguousarray(linkage.left, dtype=np.int64),
        np.ascontiguousarray(linkage.right, dtype=np.int64),
        np.ascontiguousarray(linkage.distance, dtype=np.float64),
        np.ascontiguousarray(linkage.size, dtype=np.int64),
        mcs,
        maxcs,
    )
    return CondensedTree(
        parent=parent, child=child, lambda_val=lam, child_size=child_size,
        n_points=linkage.n_points,
    )


def _select(condensed: CondensedTree, arrays, maxcs: float, allow_single: bool) -> np.ndarray:
    parent, child, lam, child_size = arrays
    n, k = condensed.n_points, condensed.n_clusters
    if k == 1:
        # No split: DataEval's cluster tree is empty and nothing is selected (§2.6).
        return np.zeros(0, dtype=np.int64)
    stab = _kernels.stability(parent, child, lam, child_size, n, k)
    cparent, csize = _kernels.cluster_parents_and_sizes(parent, child, child_size, n, k)
    chosen = _kernels.select_eom(stab, cparent, csize, maxcs, allow_single)
    return (np.flatnonzero(chosen) + n).astype(np.int64)


def _labels(condensed: CondensedTree, arrays, selected: np.ndarray) -> np.ndarray:
    parent, child, lam, _ = arrays
    n = condensed.n_points
    if selected.shape[0] == 0:
        return np.full(n, -1, dtype=np.int64)
    return _kernels.labels_from_selection(parent, child, lam, n, condensed.n_clusters, selected)


def _membership(condensed: CondensedTree, arrays, selected, labels) -> np.ndarray:
    parent, child, lam, child_size = arrays
    return _kernels.membership_strengths(
        parent, child, child_size, lam, condensed.n_points, selected, labels
    )


# --------------------------------------------------------------------------- stages


def mst_to_linkage_tree(tree: SpanningTree) -> LinkageTree:
    """Single-linkage tree from a weight-sorted spanning tree.

    The edges are walked in the given order with a union-find (path halving, union by size).
    Edge t joins the nodes ta, tb that currently hold its endpoints into node n + t and gives
    the row ``[max(ta, tb), min(ta, tb), w_t, |ta| + |tb|]`` (DataEval's column order).

    Parameters
    ----------
    tree : SpanningTree
        n - 1 edges sorted by weight ascending, n >= 2.

    Returns
    -------
    LinkageTree
        ``left``, ``right`` int64 (n-1,), ``distance`` float64 (n-1,), ``size`` int64 (n-1,).

    Raises
    ------
    InvalidInputError
        If n < 2, ids are out of range, weights are negative, non-finite or unsorted, or the
        edges contain a cycle.

    Examples
    --------
    >>> import numpy as np
    >>> from distdataeval.mst.records import SpanningTree
    >>> st = SpanningTree(np.array([0, 2, 1]), np.array([1, 3, 2]),
    ...                   np.array([1.0, 1.5, 4.0]), n_points=4)
    >>> lt = mst_to_linkage_tree(st)
    >>> lt.left.tolist(), lt.right.tolist(), lt.size.tolist()
    ([1, 3, 5], [0, 2, 4], [2, 2, 4])
    """
    sources, targets, weights, n = _check_spanning_tree(tree)
    left, right, distance, size, bad = _kernels.linkage_from_edges(sources, targets, weights, n)
    if bad >= 0:
        raise InvalidInputError(
            f"edge {bad} ({sources[bad]}, {targets[bad]}) joins points that earlier edges "
            "already connected: the edges do not form a spanning tree"
        )
    return LinkageTree(left=left, right=right, distance=distance, size=size)


def linkage_to_condensed_tree(
    linkage: LinkageTree, min_cluster_size: int, max_cluster_size: float = np.inf
) -> CondensedTree:
    """Condense a linkage tree: drop splits that shed fewer than ``min_cluster_size`` points.

    Breadth-first from the root 2n-2 (left child before right); the root cluster is n, new
    clusters n+1, n+2, ... in that order. Lambda = 1/distance (+inf at distance 0). Each
    merge is handled by the first matching case: (1) a single left point leaves and the
    right side (>= mcs) continues; (2) left < mcs <= right: left's points leave; (3) the
    mirror; (4) both < mcs: all points leave; (5) both > max_cluster_size: both continue,
    no split; (6) otherwise two clusters are born.

    Parameters
    ----------
    linkage : LinkageTree
    min_cluster_size : int
        At least 2.
    max_cluster_size : float, default inf
        Positive; finite values enable case 5.

    Returns
    -------
    CondensedTree
        ``parent``, ``child``, ``child_size`` int64 (m,), ``lambda_val`` float64 (m,), with
        m = n + 2 * (number of splits).

    Examples
    --------
    >>> import numpy as np
    >>> from distdataeval.mst.records import SpanningTree
    >>> st = SpanningTree(np.array([0, 2, 1]), np.array([1, 3, 2]),
    ...                   np.array([1.0, 1.5, 4.0]), n_points=4)
    >>> ct = linkage_to_condensed_tree(mst_to_linkage_tree(st), min_cluster_size=2)
    >>> ct.parent.tolist(), ct.child.tolist(), ct.child_size.tolist()
    ([4, 4, 5, 5, 6, 6], [5, 6, 3, 2, 1, 0], [2, 2, 1, 1, 1, 1])
    """
    mcs = _check_min_cluster_size(min_cluster_size)
    maxcs = _check_max_cluster_size(max_cluster_size)
    _check_linkage(linkage)
    return _condense(linkage, mcs, maxcs)


def condensed_tree_to_stability(condensed: CondensedTree) -> np.ndarray:
    """Stability of every cluster of a condensed tree.

    stab(c) = sum over rows with parent c of lambda * child_size, minus
    lambda_birth(c) * size(c) (no birth term for the root).

    Parameters
    ----------
    condensed : CondensedTree

    Returns
    -------
    ndarray of float64, shape (n_clusters,)
        Entry i is the stability of cluster ``n_points + i``; >= 0 (may be inf when points
        leave at lambda = inf, i.e. duplicates).
    """
    parent, child, lam, child_size = _condensed_arrays(condensed)
    return _kernels.stability(
        parent, child, lam, child_size, condensed.n_points, condensed.n_clusters
    )


def select_clusters_eom(
    condensed: CondensedTree,
    max_cluster_size: float = np.inf,
    allow_single_cluster: bool = True,
) -> np.ndarray:
    """Excess-of-mass cluster selection.

    For each cluster, children first: own = max(stability, 0); kids = sum of the children's
    results; if kids > own or size > max_cluster_size, the cluster passes kids up, else it
    is selected (deselecting its descendants) and passes own up. The root's size counts as
    n - 1 (DataEval's quirk), so a finite ``max_cluster_size`` < n - 1 excludes the root.

    Parameters
    ----------
    condensed : CondensedTree
    max_cluster_size : float, default inf
        Positive; None also means no limit.
    allow_single_cluster : bool, default True
        Whether the root may be selected (DataEval always uses True).

    Returns
    -------
    ndarray of int64, shape (K,)
        Selected cluster ids, ascending; empty when the tree has no split and the root is
        not eligible, or when it has no cluster rows at all.

    Examples
    --------
    >>> import numpy as np
    >>> from distdataeval.mst.records import SpanningTree
    >>> st = SpanningTree(np.array([0, 2, 1]), np.array([1, 3, 2]),
    ...                   np.array([1.0, 1.5, 4.0]), n_points=4)
    >>> ct = linkage_to_condensed_tree(mst_to_linkage_tree(st), min_cluster_size=2)
    >>> select_clusters_eom(ct).tolist()
    [5, 6]
    """
    maxcs = _check_max_cluster_size(max_cluster_size)
    arrays = _condensed_arrays(condensed)
    return _select(condensed, arrays, maxcs, bool(allow_single_cluster))


def condensed_tree_to_labels(condensed: CondensedTree, selected: np.ndarray) -> np.ndarray:
    """Raw HDBSCAN labels from the selected clusters.

    Selected ids map to 0..K-1 in ascending order. A point belongs to the selected cluster
    its chain of condensed rows reaches (a union-find over rows whose child is not selected).
    If the chain reaches the root and the root is the selected cluster, the point is labelled
    0 only if its fall-out lambda >= the largest lambda among the root's direct rows.
    Everything else is noise, -1. No all-noise post-fix is applied here.

    Parameters
    ----------
    condensed : CondensedTree
    selected : array_like of int, shape (K,)
        Selected cluster ids, ascending (from :func:`select_clusters_eom`).

    Returns
    -------
    ndarray of int64, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> from distdataeval.mst.records import SpanningTree
    >>> st = SpanningTree(np.array([0, 2, 1]), np.array([1, 3, 2]),
    ...                   np.array([1.0, 1.5, 4.0]), n_points=4)
    >>> ct = linkage_to_condensed_tree(mst_to_linkage_tree(st), min_cluster_size=2)
    >>> condensed_tree_to_labels(ct, select_clusters_eom(ct)).tolist()
    [1, 1, 0, 0]
    """
    arrays = _condensed_arrays(condensed)
    return _labels(condensed, arrays, _check_selected(selected, condensed))


def condensed_tree_to_membership(
    condensed: CondensedTree, selected: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Membership strengths of the points.

    Noise gets 0. A point with label j (selected cluster c = ``selected[j]``) and fall-out
    lambda lambda_p — taken from its own condensed row, which may belong to a descendant of
    c, as fast_hdbscan does — gets 1 if lambda_max(c) = 0 or lambda_p = inf, else
    min(lambda_p, lambda_max(c)) / lambda_max(c), where lambda_max(c) is the largest lambda
    among c's direct point rows.

    Parameters
    ----------
    condensed : CondensedTree
    selected : array_like of int, shape (K,)
        Selected cluster ids, ascending.
    labels : array_like of int, shape (n,)
        Labels from :func:`condensed_tree_to_labels` (-1 noise, else 0..K-1).

    Returns
    -------
    ndarray of float32, shape (n,)
        Values in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from distdataeval.mst.records import SpanningTree
    >>> st = SpanningTree(np.array([0, 2, 1]), np.array([1, 3, 2]),
    ...                   np.array([1.0, 1.5, 4.0]), n_points=4)
    >>> ct = linkage_to_condensed_tree(mst_to_linkage_tree(st), min_cluster_size=2)
    >>> sel = select_clusters_eom(ct)
    >>> condensed_tree_to_membership(ct, sel, condensed_tree_to_labels(ct, sel)).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    arrays = _condensed_arrays(condensed)
    sel = _check_selected(selected, condensed)
    n = condensed.n_points
    lab = np.asarray(labels)
    if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
        raise InvalidInputError(
            f"labels must be an integer array of shape ({n},), got shape {lab.shape} "
            f"dtype {lab.dtype}"
        )
    lab = np.ascontiguousarray(lab, dtype=np.int64)
    if n and (lab.min() < -1 or lab.max() >= sel.shape[0]):
        raise InvalidInputError(
            f"labels must lie in [-1, {sel.shape[0] - 1}] for {sel.shape[0]} selected "
            f"clusters, got values in [{lab.min()}, {lab.max()}]"
        )
    return _membership(condensed, arrays, sel, lab)


def hdbscan_from_mst(
    tree: SpanningTree, min_cluster_size: int, max_cluster_size: float | None = None
) -> HdbscanTree:
    """The whole tree stage: HDBSCAN (EOM, single cluster allowed) on a spanning tree.

    The caller applies DataEval's rules around it (max_cluster_size <= min_cluster_size →
    warn and use None; the all-noise post-fix on the labels).

    Parameters
    ----------
    tree : SpanningTree
        n >= 2 points, edges sorted by weight ascending.
    min_cluster_size : int
        At least 2.
    max_cluster_size : int, float or None, default None
        Positive; None means no limit.

    Returns
    -------
    HdbscanTree
        Linkage tree, condensed tree, selected cluster ids (int64, ascending), raw labels
        (int64 (n,), -1 noise) and membership strengths (float32 (n,)).

    Raises
    ------
    InvalidParameterError
        If min_cluster_size is not an int >= 2 or max_cluster_size is not > 0.
    InvalidInputError
        If the spanning tree is malformed (see :func:`mst_to_linkage_tree`).

    Examples
    --------
    >>> import numpy as np
    >>> from distdataeval.mst.records import SpanningTree
    >>> st = SpanningTree(np.array([0, 3, 1, 4, 2]), np.array([1, 4, 2, 5, 3]),
    ...                   np.array([1.0, 1.0, 1.5, 1.5, 9.0]), n_points=6)
    >>> result = hdbscan_from_mst(st, min_cluster_size=3)
    >>> result.labels.tolist(), result.selected_clusters.tolist()
    ([1, 1, 1, 0, 0, 0], [7, 8])
    """
    mcs = _check_min_cluster_size(min_cluster_size)
    maxcs = _check_max_cluster_size(max_cluster_size)
    linkage = mst_to_linkage_tree(tree)
    condensed = _condense(linkage, mcs, maxcs)
    arrays = _condensed_arrays(condensed, check=False)
    selected = _select(condensed, arrays, maxcs, allow_single=True)
    labels = _labels(condensed, arrays, selected)
    membership = _membership(condensed, arrays, selected, labels)
    return HdbscanTree(
        linkage=linkage,
        condensed=condensed,
        selected_clusters=selected,
        labels=labels,
        membership=membership,
        min_cluster_size=mcs,
        max_cluster_size=maxcs,
    )
