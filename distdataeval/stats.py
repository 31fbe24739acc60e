"""Per-cluster statistics as Dask reductions over row blocks (no loop over clusters).

* :func:`cluster_centers` / :func:`reassign_noise_to_nearest_center`: what ``cluster()`` needs to
  reassign HDBSCAN noise (lazy graphs).
* :func:`cluster_stats`: DataEval's ``compute_cluster_stats`` (spec §3) — centres, nearest-centre
  assignment, distance to the assigned centre and per-cluster mean/std of those distances —
  as one Dask computation: per block sums (count, sum of rows) are tree-reduced into the centres,
  then per block the assignment, the distances and per-cluster (count, mean, M2) partial moments,
  tree-reduced again. No (n x K) matrix exists at once: the nearest-centre search works in
  bounded tiles of (rows x centres).

The block kernels are in :mod:`distdataeval._stats_kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np

from distdataeval.runtime.compute import compute_in_order
from distdataeval import _stats_kernels as K
from distdataeval.errors import InvalidInputError, InvalidParameterError

REASSIGN_MODES = ("all", "noise", "none")


def _tree_reduce(parts: list, combine, fan_in: int = 8):
    add = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [add(*parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)]
    return parts[0]


def cluster_centers(x: da.Array, labels: da.Array, n_clusters: int, fan_in: int = 8):
    """Lazy (centres (K, d) float64, counts (K,) int64) of labels 0..K-1; label -1 is ignored."""
    if labels.chunks[0] != x.chunks[0]:
        labels = labels.rechunk({0: x.chunks[0]})
    part = dask.delayed(K.block_center_sums, pure=True)
    level = [part(b, lab, n_clusters) for b, lab in zip(x.to_delayed().ravel(), labels.to_delayed().ravel())]
    acc = _tree_reduce(level, K.add_center_sums, fan_in)

    def _finish(acc):
        sums, counts = acc
        return sums / np.maximum(counts, 1)[:, None], counts

    return dask.delayed(_finish, pure=True)(acc)


def _nearest_center_for_noise(block: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return K.assign_block(block, np.asarray(labels, dtype=np.int64), centers, "noise")


def reassign_noise_to_nearest_center(x: da.Array, labels: da.Array, centers: np.ndarray) -> da.Array:
    """Labels where every -1 is replaced by the id of the nearest centre (other labels kept).

    ``centers`` is a computed (K, d) float64 array; ties go to the lowest cluster id.
    """
    if labels.chunks[0] != x.chunks[0]:
        labels = labels.rechunk({0: x.chunks[0]})
    # blockwise with explicit indices: x rows ("ij") meet the labels of the same rows ("i")
    return da.blockwise(
        _nearest_center_for_noise, "i", x, "ij", labels, "i", dask.delayed(centers), None, dtype=np.int64,
        concatenate=True,
    )


@dataclass(frozen=True)
class ClusterStats:
    """Per-cluster statistics of embeddings under a labelling (DataEval's ``compute_cluster_stats``).

    Attributes
    ----------
    cluster_ids : ndarray of int64, shape (K,)
        Sorted unique non-negative labels of the input labelling.
    centers : ndarray of float64, shape (K, d)
        Mean of each cluster's members under the *original* labels (row ``j`` is cluster
        ``cluster_ids[j]``).
    counts : ndarray of int64, shape (K,)
        Members per cluster after the assignment (may be 0 when ``reassign="all"`` moves every
        member of a cluster to another centre).
    assigned : ndarray of int64, shape (n,)
        Cluster id (a value of ``cluster_ids``) of each row after the assignment; -1 only where a
        row stays unassigned (``reassign="none"``, or no cluster at all).
    distances : ndarray of float32, shape (n,)
        ``||x_i - centre of assigned_i||``; +inf where ``assigned_i`` is -1.
    dist_mean : ndarray of float64, shape (K,)
        Mean of ``distances`` over each cluster's assigned rows (NaN for an empty cluster).
    dist_std : ndarray of float64, shape (K,)
        Population standard deviation of the same (NaN for an empty cluster).
    """

    cluster_ids: np.ndarray
    centers: np.ndarray
    counts: np.ndarray
    assigned: np.ndarray
    distances: np.ndarray
    dist_mean: np.ndarray
    dist_std: np.ndarray

    @property
    def positions(self) -> np.ndarray:
        """int64 (n,): row index into ``cluster_ids``/``centers`` of each assigned row (-1 if none)."""
        return K.labels_to_positions(self.assigned, self.cluster_ids)


def _as_row_array(x) -> da.Array:
    if isinstance(x, da.Array):
        if x.ndim != 2:
            raise InvalidInputError(f"embeddings must be a 2-D (n, d) array, got shape {x.shape}")
        return x.rechunk({1: -1}) if len(x.chunks[1]) > 1 else x
    from distdataeval.io.source import open_source

    return open_source(x).data


def _as_labels(labels, n: int, chunks) -> da.Array:
    if isinstance(labels, da.Array):
        lab = labels
    else:
        lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise InvalidInputError(f"labels must have shape ({n},) to match the embeddings, got {tuple(lab.shape)}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise InvalidInputError(f"labels must be integers, got dtype {lab.dtype}")
    if isinstance(lab, np.ndarray):
        return da.from_array(lab.astype(np.int64, copy=False), chunks=(chunks,))
    lab = lab.astype(np.int64)
    return lab if lab.chunks[0] == chunks else lab.rechunk({0: chunks})


def _ids_from_positions(pos: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.where(pos >= 0, ids[np.maximum(pos, 0)] if ids.size else -1, -1).astype(np.int64)


def cluster_stats(x, labels, *, reassign: str = "all", client=None) -> ClusterStats:
    """Centres, nearest-centre assignment and distance statistics per cluster, on Dask.

    Parameters
    ----------
    x : dask array or array-like, shape (n, d)
        Embeddings (row-chunked Dask array; anything else goes through ``open_source``).
    labels : array-like or dask array of int, shape (n,)
        Cluster labels; negative values (HDBSCAN's -1) belong to no cluster.
    reassign : {"all", "noise", "none"}
        ``"all"``: DataEval's rule (spec §2.5) — if any label is negative, *every* row goes to its
        nearest centre (ties to the lowest id); otherwise labels are kept. ``"noise"``: only the
        negative rows go to their nearest centre (``cluster()``'s default, DECISIONS #1).
        ``"none"``: labels kept; negative rows get distance +inf and stay -1.
    client : distributed.Client, optional
        Cluster to run on (default: the current client, else the shared local cluster).

    Returns
    -------
    ClusterStats
        With no non-negative label: empty per-cluster arrays, ``assigned`` all -1 and
        ``distances`` all +inf (spec §3).

    Raises
    ------
    InvalidInputError
        Labels of the wrong length, shape or dtype; embeddings that are not 2-D.
    InvalidParameterError
        Unknown ``reassign`` mode.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [0.0, 2.0], [10.0, 0.0], [10.0, 2.0], [4.0, 1.0]])
    >>> s = cluster_stats(x, np.array([0, 0, 1, 1, -1]))     # doctest: +SKIP
    >>> s.assigned.tolist(), s.counts.tolist()               # doctest: +SKIP
    ([0, 0, 1, 1, 0], [3, 2])
    """
    if reassign not in REASSIGN_MODES:
        raise InvalidParameterError(f"reassign must be one of {REASSIGN_MODES}, got {reassign!r}")
    from distdataeval.runtime.client import active_client

    xd = _as_row_array(x)
    n, d = int(xd.shape[0]), int(xd.shape[1])
    lab = _as_labels(labels, n, xd.chunks[0])
    with active_client(client) as c:
        nonneg = lab[lab >= 0]
        ids, any_neg = c.compute([da.unique(nonneg), (lab < 0).any()], sync=True)
        ids = np.asarray(ids, dtype=np.int64)
        k = int(ids.size)
        if k == 0:
            return ClusterStats(
                cluster_ids=np.empty(0, np.int64),
                centers=np.empty((0, d), np.float64),
                counts=np.empty(0, np.int64),
                assigned=np.full(n, -1, np.int64),
                distances=np.full(n, np.inf, np.float32),
                dist_mean=np.empty(0, np.float64),
                dist_std=np.empty(0, np.float64),
            )
        pos = lab.map_blocks(K.labels_to_positions, ids, dtype=np.int64)
        centers, _ = c.compute(cluster_centers(xd, pos, k), sync=True)
        mode = reassign if (reassign != "all" or bool(any_neg)) else "none"
        centers_node = dask.delayed(centers)  # one graph node, not a copy inside every task
        assigned = da.blockwise(K.assign_block, "i", xd, "ij", pos, "i", centers_node, None, mode, None,
                                dtype=np.int64, concatenate=True)
        dist = da.blockwise(K.center_distances, "i", xd, "ij", assigned, "i", centers_node, None,
                            dtype=np.float32, concatenate=True)
        part = dask.delayed(K.block_moments, pure=True)
        moments = _tree_reduce(
            [part(dv, av, k) for dv, av in zip(dist.to_delayed().ravel(), assigned.to_delayed().ravel())],
            K.combine_moments,
        )
        assigned_pos, distances, (cnt, mean, m2) = compute_in_order(c, assigned, dist, moments)
    cnt = np.asarray(cnt)
    empty = cnt == 0
    mean = np.where(empty, np.nan, mean)
    std = np.where(empty, np.nan, np.sqrt(np.maximum(m2, 0.0) / np.maximum(cnt, 1.0)))
    return ClusterStats(
        cluster_ids=ids,
        centers=np.asarray(centers, dtype=np.float64),
        counts=cnt.astype(np.int64),
        assigned=_ids_from_positions(np.asarray(assigned_pos, dtype=np.int64), ids),
        distances=np.asarray(distances, dtype=np.float32),
        dist_mean=mean.astype(np.float64),
        dist_std=std.astype(np.float64),
    )
