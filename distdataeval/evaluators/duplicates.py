"""``Duplicates``: exact copies by row hashing, near copies from the clustering.

* **Exact** (DECISIONS #4): every row's bytes are hashed with XXH3-64 (``xxhash``) on the workers,
  block by block; (hash, row) pairs are shuffled to buckets by hash; rows whose hash repeats are
  candidates, re-read and grouped by (hash, raw bytes) — a hash collision never merges rows that
  differ. Rows are compared in the dtype the embeddings are read as (float32 stays float32; ints
  and float64 as float64), so byte-equal input rows are always grouped.
* **Near, seed rule** (default, DECISIONS #2): per cluster, mean and population std of each
  sample's nearest-neighbour distance (``k_distances[:, 0]``); a sample with
  ``d < mean - std`` is flagged and linked to its nearest neighbour when that neighbour is in
  the same cluster; groups are the connected components of those links (sorted index lists).
  Clusters here are DataEval's: HDBSCAN noise (``ClusterResult.noise``) is in no cluster, even
  when ``cluster()`` reassigned it (reassigned far points would inflate the std).
* **Near, DataEval's rule** (``cluster_sensitivity=s``, spec §4.3): intra-cluster MST edges with
  weight < s · (population std of the cluster's intra-cluster MST weights, float32), HDBSCAN noise
  excluded; groups are the connected components of the flagged edges.

Per-row work (hashing, flags, per-cluster moments) runs as Dask tasks over row blocks; the driver
only sees candidate rows and flagged edges. In approx mode the k-NN graph stays a Dask array and
only its first column is read, block by block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np

from distdataeval import _stats_kernels as SK
from distdataeval.errors import InvalidInputError, InvalidParameterError
from distdataeval.evaluators import _hashing as H
from distdataeval.evaluators.outliers import check_cluster_options, dataeval_labels

NEAR_METHODS = ("nn", "mst")
_FAN_IN = 8
_COLUMN_CHUNK_ROWS = 1 << 18


def _offsets(chunks) -> np.ndarray:
    return np.r_[0, np.cumsum(chunks)].astype(np.int64)


def _tree(parts, combine):
    add = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [add(*parts[i : i + _FAN_IN]) for i in range(0, len(parts), _FAN_IN)]
    return parts[0]


def _concat_groups(*parts):
    members = [p[0] for p in parts if p[0].size]
    sizes = [p[1] for p in parts if p[1].size]
    if not members:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(members), np.concatenate(sizes)


def _order_groups(members: np.ndarray, sizes: np.ndarray):
    """Disjoint sorted groups reordered by their first member."""
    if sizes.size == 0:
        return members, sizes
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    order = np.argsort(members[starts], kind="stable")
    starts, sizes = starts[order], sizes[order]
    take = np.repeat(starts - np.r_[0, np.cumsum(sizes)[:-1]], sizes) + np.arange(sizes.sum())
    return members[take], sizes


def exact_duplicate_groups(x: da.Array, client) -> tuple[np.ndarray, np.ndarray]:
    """Groups of byte-identical rows of ``x`` as (members int64, sizes int64), groups ordered by
    their smallest member, members ascending."""
    blocks = x.to_delayed().ravel()
    offsets = _offsets(x.chunks[0])
    nb = max(1, min(len(blocks), 64))
    hashes = x.map_blocks(H.row_hashes, drop_axis=1, dtype=np.uint64)
    split = dask.delayed(H.split_by_bucket, pure=True, nout=nb)
    pieces = [split(hb, int(off), nb) for hb, off in zip(hashes.to_delayed().ravel(), offsets[:-1])]
    rep = dask.delayed(H.repeated_hashes, pure=True)
    buckets = [rep(*[p[b] for p in pieces]) for b in range(nb)]
    found = client.compute(buckets, sync=True)
    cand_h = np.concatenate([f[0] for f in found]) if found else np.empty(0, np.uint64)
    cand_i = np.concatenate([f[1] for f in found]) if found else np.empty(0, np.int64)
    if cand_i.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(cand_i)
    cand_h, cand_i = cand_h[order], cand_i[order]
    cuts = np.searchsorted(cand_i, offsets)
    take = dask.delayed(H.candidate_rows_by_bucket, pure=True, nout=nb)
    rows = []
    for bi, blk in enumerate(blocks):
        a, b = cuts[bi], cuts[bi + 1]
        if a == b:
            continue
        r = take(blk, int(offsets[bi]), cand_i[a:b] - offsets[bi], cand_h[a:b], nb)
        rows.append(r)
    verify = dask.delayed(H.byte_equal_groups, pure=True)
    groups = [verify(*[r[b] for r in rows]) for b in range(nb)]
    members, sizes = client.compute(_tree(groups, _concat_groups), sync=True)
    return _order_groups(members, sizes)


def _components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the edges (a, b) as (members, sizes) of groups with >= 2 nodes."""
    if a.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    m = nodes.size
    graph = coo_matrix((np.ones(a.size, np.int8), (inv[: a.size], inv[a.size :])), shape=(m, m))
    _, comp = connected_components(graph, directed=False)
    return H.members_from_components(nodes, comp)


def _first_column(arr, chunks):
    """Column 0 of an (n, k) NumPy or Dask array as a row-chunked Dask array (never gathers n x k)."""
    if isinstance(arr, da.Array):
        col = arr[:, 0]
        return col if chunks is None else col.rechunk({0: chunks})
    col = np.ascontiguousarray(np.asarray(arr[:, 0]))
    return da.from_array(col, chunks=(chunks or _COLUMN_CHUNK_ROWS,))


def nn_rule_groups(result, client) -> tuple[np.ndarray, np.ndarray]:
    """Seed rule (DECISIONS #2) on a ClusterResult: (members, sizes).

    Clusters are DataEval's (HDBSCAN noise excluded, see :func:`dataeval_labels`): noise that
    ``cluster()`` reassigned would inflate a cluster's std until nothing is below mean - std.
    """
    labels = dataeval_labels(result)
    n = labels.size
    kd, kn = result.k_distances, result.k_neighbors
    chunks = kd.chunks[0] if isinstance(kd, da.Array) else None
    dist = _first_column(kd, chunks)
    nbr = _first_column(kn, dist.chunks[0])
    lab = da.from_array(labels, chunks=(dist.chunks[0],))
    ids = np.asarray(client.compute(da.unique(lab[lab >= 0]), sync=True), dtype=np.int64)
    k = ids.size
    if k == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pos = lab.map_blocks(SK.labels_to_positions, ids, dtype=np.int64)
    part = dask.delayed(SK.block_moments, pure=True)
    d_blocks, p_blocks, n_blocks = (a.to_delayed().ravel() for a in (dist, pos, nbr))
    moments = _tree([part(d, p, k) for d, p in zip(d_blocks, p_blocks)], SK.combine_moments)
    cnt, mean, m2 = client.compute(moments, sync=True)
    std = np.sqrt(np.maximum(m2, 0.0) / np.maximum(cnt, 1.0))
    offsets = _offsets(dist.chunks[0])
    edge = dask.delayed(H.flagged_edges, pure=True)
    parts = [edge(d, nb, p, int(o), mean, std) for d, nb, p, o in zip(d_blocks, n_blocks, p_blocks, offsets[:-1])]
    found = client.compute(parts, sync=True)
    a = np.concatenate([f[0] for f in found]) if found else np.empty(0, np.int64)
    b = np.concatenate([f[1] for f in found]) if found else np.empty(0, np.int64)
    valid = (b >= 0) & (b < n)
    a, b = a[valid], b[valid]
    same = labels[a] == labels[b]
    return _components(a[same], b[same])


def mst_rule_groups(result, sensitivity: float) -> tuple[np.ndarray, np.ndarray]:
    """DataEval 1.1.4's rule (spec §4.3): intra-cluster MST edges shorter than s·σ_c."""
    labels = dataeval_labels(result)
    tree = result.spanning_tree
    src, tgt = np.asarray(tree.sources, np.int64), np.asarray(tree.targets, np.int64)
    w = np.asarray(tree.weights).astype(np.float32)
    la, lb = labels[src], labels[tgt]
    intra = (la == lb) & (la >= 0)
    if not intra.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    src, tgt, w, la = src[intra], tgt[intra], w[intra], la[intra]
    _, c = np.unique(la, return_inverse=True)
    cnt = np.bincount(c).astype(np.float64)
    mean = np.bincount(c, weights=w.astype(np.float64)) / cnt
    var = np.bincount(c, weights=(w.astype(np.float64) - mean[c]) ** 2) / cnt
    sigma = np.sqrt(var).astype(np.float32)
    flag = w < np.float32(sensitivity) * sigma[c]
    return _components(src[flag], tgt[flag])


def _group_ids(n: int, members: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    gid = np.full(n, -1, dtype=np.int64)
    gid[members] = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
    return gid


def _as_lists(members: np.ndarray, sizes: np.ndarray) -> list[list[int]]:
    return [g.tolist() for g in np.split(members, np.cumsum(sizes)[:-1])] if sizes.size else []


@dataclass(frozen=True, eq=False)
class DuplicatesOutput:
    """Result of :class:`Duplicates` (DataEval's ``DuplicatesOutput`` without polars).

    Attributes
    ----------
    n : int
        Number of samples.
    exact_group : ndarray of int64, shape (n,)
        Index into :attr:`exact` of each sample's exact group; -1 = none.
    near_group : ndarray of int64, shape (n,)
        Index into :attr:`near` of each sample's near group; -1 = none.
    exact_members, exact_sizes, near_members, near_sizes : ndarray of int64
        The groups, flattened: members of group g are the next ``sizes[g]`` entries.
    near_method : str or None
        "nn" (seed rule), "mst" (DataEval's rule) or None (near duplicates not computed).
    cluster_sensitivity : float or None
        s of the "mst" rule.
    """

    n: int
    exact_members: np.ndarray
    exact_sizes: np.ndarray
    near_members: np.ndarray
    near_sizes: np.ndarray
    near_method: str | None = None
    cluster_sensitivity: float | None = None
    cluster_result: object = field(default=None, repr=False)

    @property
    def exact_group(self) -> np.ndarray:
        return _group_ids(self.n, self.exact_members, self.exact_sizes)

    @property
    def near_group(self) -> np.ndarray:
        return _group_ids(self.n, self.near_members, self.near_sizes)

    @property
    def is_exact_duplicate(self) -> np.ndarray:
        """bool (n,): the sample has a byte-identical copy."""
        return self.exact_group >= 0

    @property
    def is_near_duplicate(self) -> np.ndarray:
        """bool (n,): the sample is in a near-duplicate group."""
        return self.near_group >= 0

    @property
    def exact(self) -> list[list[int]]:
        """Exact groups, each sorted, in lexicographic order (DataEval's ``.exact``)."""
        return _as_lists(self.exact_members, self.exact_sizes)

    @property
    def near(self) -> list[tuple[list[int], list[str]]]:
        """Near groups with their methods (always ``["cluster"]``), DataEval's ``.near``."""
        return [(g, ["cluster"]) for g in _as_lists(self.near_members, self.near_sizes)]

    @property
    def groups(self) -> list[dict]:
        """One row per group as DataEval's DataFrame: group_id, level, dup_type, item_indices,
        methods (exact groups first, then near groups)."""
        rows = [("exact", g, ["xxhash"]) for g in self.exact] + [("near", g, m) for g, m in self.near]
        return [
            {"group_id": i, "level": "item", "dup_type": t, "item_indices": g, "methods": m}
            for i, (t, g, m) in enumerate(rows)
        ]

    def with_sensitivity(self, cluster_sensitivity: float, client=None) -> DuplicatesOutput:
        """Re-run DataEval's MST rule with another s from the stored ClusterResult (no re-clustering)."""
        if self.cluster_result is None:
            raise InvalidParameterError("with_sensitivity needs near duplicates computed from a ClusterResult")
        s = _check_sensitivity(cluster_sensitivity)
        members, sizes = mst_rule_groups(self.cluster_result, s)
        return DuplicatesOutput(self.n, self.exact_members, self.exact_sizes, members, sizes, "mst", s,
                                self.cluster_result)


def _check_sensitivity(s):
    if s is None:
        return None
    if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)) or not np.isfinite(s) or s <= 0:
        raise InvalidParameterError(f"cluster_sensitivity must be a finite number > 0 (or None), got {s!r}")
    return float(s)


class Duplicates:
    """Exact and near duplicates of embeddings.

    Parameters
    ----------
    exact : bool, default True
        Find byte-identical rows by hashing (needs the embeddings).
    near : bool, default True
        Find near duplicates from the clustering.
    cluster_sensitivity : float, optional
        None (default): the seed rule (nearest-neighbour distance < mean - std of its cluster).
        A number s: DataEval 1.1.4's rule, intra-cluster MST edges < s·σ (DataEval's
        ``from_clusters`` uses s = 1.0 when unset; pass 1.0 to reproduce it).
    cluster_algorithm : {"hdbscan", "kmeans"}
        Passed to :func:`distdataeval.cluster` by :meth:`evaluate`.
    n_clusters : int, optional
        Passed to :func:`distdataeval.cluster`.
    knn : {"auto", "exact", "approx"}
        Passed to :func:`distdataeval.cluster`.
    client : distributed.Client, optional

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 4))
    >>> x[10] = x[3]
    >>> Duplicates().evaluate(x).exact                   # doctest: +SKIP
    [[3, 10]]
    """

    def __init__(self, exact: bool = True, near: bool = True, cluster_sensitivity: float | None = None,
                 cluster_algorithm: str = "hdbscan", n_clusters: int | None = None, knn: str = "auto",
                 client=None):
        for name, v in (("exact", exact), ("near", near)):
            if not isinstance(v, (bool, np.bool_)):
                raise InvalidParameterError(f"{name} must be True or False, got {v!r}")
        if not (exact or near):
            raise InvalidParameterError("nothing to do: set exact=True and/or near=True")
        self.exact = bool(exact)
        self.near = bool(near)
        self.cluster_sensitivity = _check_sensitivity(cluster_sensitivity)
        check_cluster_options(cluster_algorithm, n_clusters, knn)
        self.cluster_algorithm = cluster_algorithm
        self.n_clusters = n_clusters
        self.knn = knn
        self.client = client

    def _near(self, result, client):
        if self.cluster_sensitivity is None:
            return (*nn_rule_groups(result, client), "nn")
        return (*mst_rule_groups(result, self.cluster_sensitivity), "mst")

    def evaluate(self, embeddings) -> DuplicatesOutput:
        """Hash the rows (exact) and cluster them with :func:`distdataeval.cluster` (near).

        Parameters
        ----------
        embeddings : array-like, dask array, zarr array or str
            (n, ...) samples.

        Returns
        -------
        DuplicatesOutput
        """
        from distdataeval.io.source import open_source
        from distdataeval.runtime.client import active_client

        with active_client(self.client) as c:
            x = open_source(embeddings).data
            result = None
            if self.near:
                from distdataeval.api import cluster

                result = cluster(x, algorithm=self.cluster_algorithm, n_clusters=self.n_clusters,
                                 knn=self.knn, client=c)
            return self._build(x, result, c)

    def from_clusters(self, result, embeddings=None) -> DuplicatesOutput:
        """Near duplicates from an existing :class:`ClusterResult`; exact ones too when the
        embeddings are given.

        Raises
        ------
        InvalidInputError
            ``result`` is not a ClusterResult, or its n differs from the embeddings'.
        """
        from distdataeval.runtime.client import active_client

        if not hasattr(result, "spanning_tree") or not hasattr(result, "clusters"):
            raise InvalidInputError(f"result must be a ClusterResult, got {type(result).__name__}")
        with active_client(self.client) as c:
            x = None
            if embeddings is not None:
                from distdataeval.io.source import open_source

                x = open_source(embeddings).data
                n_res = int(np.asarray(result.clusters).shape[0])
                if int(x.shape[0]) != n_res:
                    raise InvalidInputError(
                        f"the ClusterResult covers {n_res} samples but the embeddings have {x.shape[0]}; "
                        "pass the result of clustering these embeddings"
                    )
            return self._build(x, result if self.near else None, c)

    def _build(self, x, result, c) -> DuplicatesOutput:
        n = int(x.shape[0]) if x is not None else int(np.asarray(result.clusters).shape[0])
        empty = (np.empty(0, np.int64), np.empty(0, np.int64))
        ex = exact_duplicate_groups(x, c) if (self.exact and x is not None) else empty
        if result is not None:
            nm, ns, method = self._near(result, c)
        else:
            (nm, ns), method = empty, None
        return DuplicatesOutput(n, ex[0], ex[1], nm, ns, method, self.cluster_sensitivity, result)
