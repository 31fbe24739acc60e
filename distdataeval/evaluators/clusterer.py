"""The legacy ``Clusterer`` (DataEval 0.61.0, spec §8) computed from the MST, not a dense pdist.

0.61.0 builds an n x n distance matrix, SciPy's single-linkage tree, and walks the tree keeping
every cluster's full sample list at every level. Single linkage *is* the minimum spanning tree,
so this port takes the MST and linkage tree of :func:`distdataeval.cluster` and derives the same
bookkeeping in O(n) numba passes (``_clusterer_kernels``). What 0.61.0 reads from the dense
matrix is replaced as follows:

* **Cluster-to-cluster distances (spec §8.3).** A merge only ever reads the distances between
  its own two clusters (``M[0:level, outer, inner]``), and those two clusters' states below the
  merge are nested growing point sets. The merge statistic needs the whole profile only when it
  is a mean (the merge is an out2 event, or out1 on a large cluster); otherwise it is the max,
  which is the level-0 value (sets only grow, so the profile never increases): the closest of
  4 point pairs. A mean profile is defined incrementally (each arriving point against the other
  side as it stands; it stops as soon as it reaches the merge's own MST edge length, the exact
  lower bound). Each side's state at a level is one linkage node, i.e. a contiguous range of the
  dendrogram's leaf order, so the profile is computed from range-restricted nearest-neighbour
  queries (``_merge_profile_kernels``): one query per point of the smaller side (or of both
  sides when they are of similar size), answered by one k-d tree over the involved points below
  ``PROFILE_TREE_MAX_DIM`` dimensions, by a scan of the range's rows (stored in leaf order) from
  it on. Only the rows of the points involved are gathered to the driver.
* **Duplicate pairs (spec §8.7).** "Exact" pairs (D <= tau/100) are joined transitively, so their
  groups are the components of the MST edges <= tau/100 (the cut property). "Near" pairs
  (tau/100 < D <= tau) come from the k-NN graph: a row whose k-th neighbour is farther than tau
  has every point within tau in its list; rows whose whole list is within tau get an exact
  radius search over the row blocks on the workers.

* **Single linkage.** ``cluster()`` joins the components of a disconnected k-NN graph by DataEval
  1.1.4's rule, which need not give the *minimum* spanning tree; in exact mode the Clusterer
  keeps the k-NN forest and re-joins it by exact Boruvka rounds (every component's shortest edge
  to any other, found on the workers), so the tree is SciPy's single linkage.

Cost: the bookkeeping is O(n) on the driver (a few int64/float64 arrays of n - 1 merges; 0.61.0's
per-level copies are never materialised, a run of copies is handled in O(1)). A max-aggregated
merge costs 4 distances. A mean-aggregated merge with sides A and B costs a pairwise scan capped
at ``PROFILE_SCAN_FACTOR`` pairs per point of the smaller side (off by default), then
O(min(|A|, |B|)) range nearest-neighbour queries (O(|A| + |B|) when the two are within a factor ``PROFILE_BALANCE``):
since a point is on the smaller side of O(log n) merges, O(n log n) queries in all, where
0.61.0's definition scanned up to |A| x |B| pairs per merge (without the tree, a query costs its
range's size instead). The k-d tree (built once, O(n d) memory plus (log2(n / 64) + 1) x n
int32 sorted positions) or the leaf-ordered copy, and the involved rows, live on the driver
(float32 input stays float32), at most about twice the n x d input. Measured (d = 8,
``benchmarks/bench_clusterer.py``, one run each on a loaded 2-core machine):
``last_good_merge_levels`` 10.5 s = 47% of ``cluster()`` at 100k rows (the scan: 162%), 124 s =
104% at 300k (the scan: 590%); the cost still grows ~n^2.25 (a query restricted to a small
low-level state searches a tree shared with all other points), see ``benchmarks/README.md``.
Exact-mode re-bridging adds two exact nearest-other-component searches per Boruvka round.
The profile queries and the k-d tree build run on the driver's numba threads (the workers are
idle meanwhile): at 1M x 64 (approx), ``last_good_merge_levels`` 26.3 s = 43% of a warm
``cluster()`` on the first machine; ``evaluate()`` 14.0 s = 45% of a 31.0 s ``cluster()`` on a
later one, with buckets of 64 points; 8.24 s = 25.4% of a 32.4 s ``cluster()`` on the same one
without the tree in 64-d (``benchmarks/README.md``).

Exactness: all of this equals the dense definition when the MST is the Euclidean MST and the
k-NN graph is exact, which is ``knn="exact"`` (the default up to 50,000 rows). With
``knn="approx"`` the MST comes from an approximate graph (recall is reported on the result) and
its components stay joined by ``cluster()``'s own rule (no exact re-bridging, which would be a
brute-force search at that size): merge levels, statistics and duplicate groups can then differ
where a true nearest neighbour was missed, and near-duplicate pairs outside a row's approximate
neighbour list are not found.

Ties: 0.61.0 takes equal-distance merges in SciPy's order (Prim from point 0); this port takes
them in the MST's order (weight, source, target). On data with exact distance ties (duplicate
points, integer grids) cluster ids and levels can therefore differ from 0.61.0's, deterministically.
Statistics are kept in float64 and rounded to float32 where 0.61.0 stores float32; 0.61.0 sums
float32 lists, so a merge distance within ~1e-7 (relative) of a threshold may classify differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import dask
import numba
import numpy as np

from distdataeval.errors import InvalidInputError, InvalidParameterError
from distdataeval.evaluators import _clusterer_kernels as K
from distdataeval.evaluators import _merge_profile_kernels as P
from distdataeval.evaluators import _range_nn_kernels as R

__all__ = ["Clusterer"]

KNN_METHODS = ("auto", "exact", "approx")
# float32 distances decide a threshold test unless they sit within this relative band of it;
# those pairs are re-measured exactly in float64 (0.61.0 compares float64 pdist values)
AMBIGUOUS_BAND = 1e-6
# query rows per radius-search batch (rows x d float64 go to every worker)
RADIUS_BATCH = 4096
# points per leaf bucket of the bounding-box tree of the merge-profile queries. Measured with
# Clusterer.evaluate (same process, same cluster() result, identical outputs): 1M x 64 (approx),
# 16 and 64 alternating three times: 21.21 / 19.14 / 19.77 s against 15.14 / 15.14 / 15.64 s
# (32, 128, 256, 512 in a noisier sweep: 17.9-19.2, 16.9-18.9, 19.1, 18.5 s); 100k x 8 blobs
# 16: 3.65-3.70 s, 64: 3.68, 128: 4.22-4.30. In 64-d small buckets descend deep for little
# pruning; 64 is as fast as 16 in 8-d.
PROFILE_BUCKET = 64
# range queries of the merge profiles go through a k-d tree below this many dimensions; from it
# on every query scans its range's rows (contiguous, in leaf order) and no tree is built. In 64-d
# the tree prunes little: on one 1M x 64 cluster() result (approx; merges one at a time on one
# thread), the profiles took 18.5-19.6 s with the tree, 10.3-11.2 s with scans only (and the
# tree's build, 1.3 s, saved). In 8-d it is the other way round: the 100k mixture of
# bench_clusterer.py took 3.9 s with the tree and 31 s with scans of ranges up to 65,536 rows
# (_merge_profile_kernels._nearest_in_range has the figures).
PROFILE_TREE_MAX_DIM = 32
# a merge profile is first scanned pairwise, up to this many pairs per point of the smaller side
# plus PROFILE_SCAN_BASE (0, 0: only merges settled by their level-0 pairs; larger budgets were
# slower on a 100k mixture, see _merge_profile_kernels)
PROFILE_SCAN_FACTOR = 0
PROFILE_SCAN_BASE = 0
# past the scan, sides within this size ratio are merged level by level with range queries
PROFILE_BALANCE = 4
# profile levels computed per kernel call (float64 each)
PROFILE_BATCH = 4_000_000
# merges are profiled in parallel on the driver's numba threads (the workers are idle then),
# dealt round-robin into this many chunks per thread (the costly merges are not evenly spread)
PROFILE_CHUNKS_PER_THREAD = 8


@dataclass(frozen=True)
class _States:
    """Per-merge bookkeeping of spec §8.2 (arrays of length n-1, indexed by merge t)."""

    cid: np.ndarray
    level: np.ndarray
    inner: np.ndarray
    last: np.ndarray
    copy_hi: np.ndarray
    avg: np.ndarray
    std: np.ndarray
    out1: np.ndarray
    out2: np.ndarray
    size: np.ndarray
    max_level: int
    max_clusters: int
    top: np.ndarray
    chain_order: np.ndarray  # merges sorted by (cid, level)
    chain_start: np.ndarray  # int64 (max_clusters + 1,) offsets into chain_order


def _min_cluster_size(n: int) -> int:
    return min(max(2, int(n * 0.05)), 100)


def _check_levels(last_merge_levels) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(last_merge_levels, Mapping):
        raise InvalidParameterError(
            f"last_merge_levels must be a mapping of cluster id -> level, got {type(last_merge_levels).__name__}"
        )
    keys, values = [], []
    for key, value in last_merge_levels.items():
        for what, v in (("cluster id", key), ("level", value)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise InvalidParameterError(f"last_merge_levels: every {what} must be an int, got {v!r}")
        if key < 0:
            raise InvalidParameterError(f"last_merge_levels: cluster ids are >= 0, got {key}")
        keys.append(int(key))
        values.append(int(value))
    return np.asarray(keys, dtype=np.int64), np.asarray(values, dtype=np.int64)


def _groups(n: int, a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    """Transitive closure of index pairs: sorted groups, sorted lexicographically."""
    if a.size == 0:
        return []
    root, touched = K.pair_components(n, np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64))
    members = np.flatnonzero(touched)
    order = np.lexsort((members, root[members]))
    members = members[order]
    cuts = np.flatnonzero(np.diff(root[members])) + 1
    return sorted(g.tolist() for g in np.split(members, cuts))


def _radius_pairs_block(block: np.ndarray, offset: int, queries: np.ndarray, query_ids: np.ndarray,
                        lo: float, hi: float):
    """Pairs (query id, row id) of one row block with lo < D <= hi, exact float64 distances."""
    block = np.asarray(block, dtype=np.float64)
    qa, rb = [], []
    for q, qid in zip(queries, query_ids):
        d = np.sqrt(((block - q) ** 2).sum(axis=1))
        hit = np.flatnonzero((d > lo) & (d <= hi))
        if hit.size:
            qa.append(np.full(hit.size, qid, np.int64))
            rb.append(hit.astype(np.int64) + offset)
    if not qa:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(qa), np.concatenate(rb)


class Clusterer:
    """Flag outliers and duplicates from the single-linkage hierarchy (DataEval 0.61.0's rules).

    Behaves as ``dataeval.detectors.Clusterer`` of DataEval 0.61.0 (spec §8), but is computed
    from the minimum spanning tree of :func:`distdataeval.cluster` instead of a dense n x n
    distance matrix, so it runs on millions of rows. Nothing is computed until a result is asked
    for; results are cached.

    Parameters
    ----------
    dataset : array-like, dask array, zarr array, str or os.PathLike
        (n, d) embeddings, n >= 2, d >= 1, finite. Like 0.61.0, an array with other than 2
        dimensions is an error (flatten images first). A string is a Zarr store path/URL.
    knn : {"auto", "exact", "approx"}
        k-NN method of the underlying :func:`~distdataeval.cluster` run. Results equal 0.61.0's
        definitions only with exact search ("auto" is exact up to 50,000 rows).
    client : distributed.Client, optional
        Dask client; default: the current one, else a local cluster.
    chunk_rows : int, optional
        Rows per block.
    cluster_result : ClusterResult, optional
        An existing :func:`~distdataeval.cluster` result of ``dataset`` to build on (its MST,
        linkage and k-NN graph are reused instead of running ``cluster()`` again). It must have
        ``dataset``'s row count; ``knn`` is then taken from it.

    Attributes
    ----------
    last_good_merge_levels : dict of int to int
        Cluster id -> last good merge level (spec §8.5), in 0.61.0's insertion order.

    Raises
    ------
    InvalidInputError
        Not 2-D, fewer than 2 rows, no features, a non-numeric dtype, or NaN/inf values.

    Examples
    --------
    >>> import numpy as np
    >>> from distdataeval import Clusterer
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 0.3, (50, 2)), rng.normal(5, 0.3, (50, 2)), [[20.0, 20.0]]])
    >>> out = Clusterer(x).evaluate()                       # doctest: +SKIP
    >>> 100 in out["outliers"]                              # doctest: +SKIP
    True
    """

    def __init__(self, dataset, *, knn: str = "auto", client=None, chunk_rows: int | None = None,
                 cluster_result=None):
        from distdataeval.io.source import open_source

        if knn not in KNN_METHODS:
            raise InvalidParameterError(f"knn must be one of {KNN_METHODS}, got {knn!r}")
        if not isinstance(dataset, str) and not hasattr(dataset, "__fspath__"):
            if not hasattr(dataset, "ndim"):
                dataset = np.asarray(dataset)
            if dataset.ndim != 2:
                raise InvalidInputError(
                    f"Clusterer needs a 2-D (samples, features) array, got {dataset.ndim} dimensions "
                    f"with shape {tuple(dataset.shape)}; flatten each sample first"
                )
        source = open_source(dataset, chunk_rows=chunk_rows)
        if isinstance(dataset, np.ndarray):
            finite = np.isfinite(dataset).all(axis=1)
            if not finite.all():
                bad = np.flatnonzero(~finite)
                raise InvalidInputError(
                    f"embeddings contain NaN or infinite values in {bad.size} of {source.n} rows "
                    f"(first rows: {', '.join(map(str, bad[:5]))}{', ...' if bad.size > 5 else ''}); "
                    "remove or impute them first"
                )
        self._dataset = dataset
        self._source = source
        self._numpy = dataset if isinstance(dataset, np.ndarray) else None
        self._knn = knn
        self._client = client
        self._chunk_rows = chunk_rows
        self._n = source.n
        self._min_size = _min_cluster_size(source.n)
        self._result = None
        if cluster_result is not None:
            from distdataeval.result import ClusterResult

            if not isinstance(cluster_result, ClusterResult):
                raise InvalidParameterError(
                    f"cluster_result must be a ClusterResult, got {type(cluster_result).__name__}"
                )
            if cluster_result.clusters.shape[0] != source.n:
                raise InvalidParameterError(
                    f"cluster_result has {cluster_result.clusters.shape[0]} rows but the dataset has {source.n}"
                )
            self._result = cluster_result
            self._knn = cluster_result.knn_method
        self._states: _States | None = None
        self._lgml: dict[int, int] | None = None
        self._linkage = None

    # ---------------------------------------------------------------- the tree
    @property
    def cluster_result(self):
        """The :class:`~distdataeval.ClusterResult` (MST, linkage, k-NN graph) everything derives from."""
        if self._result is None:
            from distdataeval.api import cluster
            from distdataeval.runtime.client import active_client

            with active_client(self._client) as c:
                self._result = cluster(self._dataset, knn=self._knn, client=c, chunk_rows=self._chunk_rows)
        return self._result

    @property
    def min_cluster_size(self) -> int:
        """0.61.0's minimum cluster size: min(max(2, floor(0.05 n)), 100)."""
        return self._min_size

    def _single_linkage(self):
        """(MST sources, targets, weights, linkage left, right, distance): the exact single-linkage
        tree in exact mode; ``cluster()``'s own tree otherwise (see the module docstring)."""
        if self._linkage is None:
            res = self.cluster_result
            tree = res.spanning_tree
            src, dst, w = tree.sources, tree.targets, tree.weights
            if res.n_knn_components > 1 and res.knn_method == "exact":
                src, dst, w = self._euclidean_mst(res)
            from distdataeval.tree._kernels import linkage_from_edges

            left, right, dist, _size, bad = linkage_from_edges(
                np.ascontiguousarray(src, np.int64), np.ascontiguousarray(dst, np.int64),
                np.ascontiguousarray(w, np.float64), self._n,
            )
            if bad != -1:  # pragma: no cover - cluster() always returns a spanning tree
                raise RuntimeError(f"spanning tree edge {bad} closes a cycle")
            self._linkage = (src, dst, w, left, right, dist)
        return self._linkage

    def _euclidean_mst(self, res):
        """Replace ``cluster()``'s bridges by exact Boruvka rounds.

        ``cluster()`` joins the components of the k-NN forest by DataEval 1.1.4's rule (each
        point to its nearest point in a *later* component), which need not give the minimum
        spanning tree, while 0.61.0's single linkage is the exact one. The k-NN forest is kept
        (the tree edges that are k-NN edges); each round adds every component's shortest edge to
        any other component (exact search on the workers, nearest later and nearest earlier
        component), until one tree remains.
        """
        from distdataeval.mst import _kernels as mk
        from distdataeval.mst.bridge import forest_state, proposals_to_edges
        from distdataeval.mst.reduce import EdgeList
        from distdataeval.pipeline import ClusterPlan, _nearest_later_points, _Timer, prepare
        from distdataeval.runtime.client import active_client

        n = self._n
        tree, nbr = res.spanning_tree, np.asarray(res.k_neighbors)
        s, t = tree.sources, tree.targets
        is_knn = (nbr[s] == t[:, None]).any(axis=1) | (nbr[t] == s[:, None]).any(axis=1)
        forest = EdgeList(np.minimum(s, t)[is_knn], np.maximum(s, t)[is_knn], tree.weights[is_knn])
        parent, size = forest_state(forest, n)
        labels = mk.component_labels(parent)
        added = []
        with active_client(self._client) as client:
            plan = ClusterPlan("hdbscan", 2, None, "exact", False)
            prep = prepare(self._source, plan, client)
            while labels.max() > 0:
                n_comp = int(labels.max()) + 1
                ids = np.arange(n, dtype=np.int64)
                found = []
                for pos in (labels, n_comp - 1 - labels):  # nearest later, then nearest earlier
                    near, d2, _, _ = _nearest_later_points(client, prep.blocks, prep.d, pos, prep.row_chunks, _Timer())
                    found.append((near, d2))
                q = np.concatenate([ids, ids])
                nn = np.concatenate([f[0] for f in found])
                dd = np.concatenate([f[1] for f in found])
                ok = (nn >= 0) & np.isfinite(dd)
                q, nn, dd = q[ok], nn[ok], dd[ok]
                w = np.sqrt(dd).astype(np.float32).astype(np.float64)
                lo, hi = np.minimum(q, nn), np.maximum(q, nn)
                # each component's shortest outgoing edge, ties by (low, high)
                order = np.lexsort((hi, lo, w, labels[q]))
                comp = labels[q][order]
                first = order[np.r_[True, comp[1:] != comp[:-1]]]
                cand = EdgeList(lo[first], hi[first], w[first]).sorted()
                keep = mk.kruskal_select(cand.low, cand.high, parent, size)
                added.append(EdgeList(cand.low[keep], cand.high[keep], cand.weight[keep]))
                labels = mk.component_labels(parent)
        edges = EdgeList.concat([forest, *added]).sorted()
        return edges.low, edges.high, edges.weight

    def _tree(self):
        _, _, _, left, right, dist = self._single_linkage()
        return (np.ascontiguousarray(left, np.int64), np.ascontiguousarray(right, np.int64),
                np.ascontiguousarray(dist, np.float64))

    @property
    def _st(self) -> _States:
        if self._states is None:
            left, right, dist = self._tree()
            (cid, level, inner, last, copy_hi, _nd, avg, std, out1, out2, size, max_level,
             n_cids) = K.linkage_to_states(left, right, dist, self._n)
            order = np.lexsort((level, cid))
            start = np.searchsorted(cid[order], np.arange(n_cids + 1))
            self._states = _States(
                cid, level, inner, last, copy_hi, avg, std, out1, out2, size, int(max_level), int(n_cids),
                K.top_levels(cid, level, copy_hi, n_cids), order, start.astype(np.int64),
            )
        return self._states

    # ------------------------------------------------------------ data access
    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of sorted unique ``ids`` (from memory, or gathered from the workers), float32 input
        kept float32 (kernels widen every element to float64, as SciPy's pdist does)."""
        if self._numpy is not None:
            rows = self._numpy[ids]
        else:
            from distdataeval.runtime.client import active_client

            x = self._source.data
            with active_client(self._client):
                if ids.size * 2 >= x.shape[0]:
                    # most rows: whole blocks gathered and indexed here (Dask's fancy-index take
                    # shuffles; measured at 1M x 64: 3.0 s for ~all rows); the driver then holds
                    # at most twice the rows it needs, briefly
                    rows = x.compute()[ids]
                else:
                    rows = x[ids].compute()
        return np.ascontiguousarray(rows, dtype=np.float32 if rows.dtype == np.float32 else np.float64)

    def _exact_distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Exact float64 Euclidean distances of index pairs (a[j], b[j])."""
        if a.size == 0:
            return np.empty(0, np.float64)
        ids = np.unique(np.concatenate([a, b]))
        rows = self._rows(ids)
        ra = rows[np.searchsorted(ids, a)].astype(np.float64)
        rb = rows[np.searchsorted(ids, b)]
        return np.sqrt(((ra - rb) ** 2).sum(axis=1))

    # ------------------------------------------------------- merge statistics
    def _merge_entries(self):
        """Cluster-cluster merges in 0.61.0's discovery order (level, then creation)."""
        st = self._st
        t = np.flatnonzero(st.inner >= 0)
        return t[np.lexsort((t, st.level[t]))]

    def _merge_statistics(self, entries: np.ndarray, exhaustive: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(merge_stat float32, intra_max float32) per entry (spec §8.3-8.4).

        Mean profiles come from range nearest-neighbour queries in leaf order
        (``_merge_profile_kernels``); ``exhaustive=True`` runs the incremental pairwise scan
        (``_clusterer_kernels.merge_profile``) instead, which gives identical values (kept as
        the reference; it costs O(|A| x |B|) per merge).
        """
        st = self._st
        n = self._n
        left, right, _ = self._tree()
        mst_src, mst_dst, _, _, _, _ = self._single_linkage()
        use_mean = st.out2[entries] | (st.out1[entries] & (st.size[entries] >= self._min_size))
        intra = K.intra_max(st.cid, st.level, st.avg, st.max_clusters, st.max_level)
        intra_max = intra[st.cid[entries]].astype(np.float32)

        # level-0 states are the pairs: pair points per cid
        pairs = np.flatnonzero(st.level == 0)
        pair_pts = np.empty((st.max_clusters, 2), np.int64)
        pair_pts[st.cid[pairs], 0] = right[pairs]
        pair_pts[st.cid[pairs], 1] = left[pairs]

        # the two sides of every mean merge are two linkage nodes' leaf sets (their states at
        # l_top), i.e. leaf-order ranges: mark them, plus the pairs and edges, for one gather
        mean_t = np.ascontiguousarray(entries[use_mean])
        l_tops = np.ascontiguousarray(np.minimum(st.level[mean_t], st.max_level) - 1)
        outer_child, inner_child = (np.ascontiguousarray(c) for c in self._children(mean_t))
        start = R.leaf_starts(left, right, st.size, n)
        cover = np.zeros(n + 1, np.int64)
        P.mark_mean_sides(mean_t, l_tops, outer_child, inner_child, st.level, st.chain_order, st.chain_start,
                          st.cid, start, st.size, n, cover)
        covered = np.cumsum(cover[:n]) > 0  # by leaf-order position
        order = np.empty(n, np.int64)
        order[start[:n]] = np.arange(n)
        need = np.zeros(n, np.bool_)
        need[order[covered]] = True
        need[pair_pts[st.cid[entries]].ravel()] = True
        need[pair_pts[st.inner[entries]].ravel()] = True
        need[mst_src[mean_t]] = True
        need[mst_dst[mean_t]] = True
        ids = np.flatnonzero(need)
        rows = self._rows(ids)
        row_pos = np.full(n, -1, np.int64)
        row_pos[ids] = np.arange(ids.size)

        # max: the level-0 profile value, the closest of the two pairs' 4 point pairs
        po = row_pos[pair_pts[st.cid[entries]]]
        pi = row_pos[pair_pts[st.inner[entries]]]
        d4 = np.stack([
            np.sqrt(((rows[po[:, i]].astype(np.float64) - rows[pi[:, j]]) ** 2).sum(axis=1))
            for i in (0, 1) for j in (0, 1)
        ])
        stat = d4.min(axis=0).astype(np.float32)
        if mean_t.size == 0:
            return stat, intra_max
        floors = K.row_distances(rows, row_pos[mst_src[mean_t]], row_pos[mst_dst[mean_t]])
        mean_pos = np.flatnonzero(use_mean)
        if exhaustive:
            buf = np.empty((6, n), np.int64)
            for pos, oc, ic, l_top, floor in zip(mean_pos, outer_child, inner_child, l_tops, floors):
                prof = K.merge_profile(oc, ic, l_top, n, left, right, st.cid, st.level, rows, row_pos, floor, buf)
                stat[pos] = np.mean(prof.astype(np.float32))
            return stat, intra_max

        # the mean sides' points, indexed by leaf-order position, in a k-d tree
        tree_pts = order[covered]
        cnt = np.zeros(n + 1, np.int64)
        np.cumsum(covered, out=cnt[1:])
        tree_pos = np.where(covered[start[:n]], cnt[start[:n]], -1)  # point -> position among tree rows
        xs = rows[row_pos[tree_pts]]  # in position order
        del rows
        if xs.shape[1] >= PROFILE_TREE_MAX_DIM:
            # no tree: every range query scans its range's rows (n_leaves = 0)
            xk = xp = xs
            kpos = krow = np.arange(xs.shape[0], dtype=np.int64)
            box_lo = box_hi = np.empty((2, xs.shape[1]), xs.dtype)
            level_pos = np.empty((1, xs.shape[0]), np.int32)
            n_leaves = 0
        else:
            kd_rows, xk, box_lo, box_hi, level_pos, n_leaves = R.build_tree(
                xs, np.arange(tree_pts.size, dtype=np.int32), PROFILE_BUCKET)
            kpos = kd_rows  # the tree's rows were given in position order
            krow = np.empty_like(kpos)
            krow[kpos] = np.arange(kpos.size)
            xp = xs  # the rows in position order: a range scan reads them contiguously
        del xs
        src_pos = np.ascontiguousarray(tree_pos[mst_src[mean_t]])
        dst_pos = np.ascontiguousarray(tree_pos[mst_dst[mean_t]])
        lengths = l_tops + 1
        j = 0
        while j < mean_t.size:  # batches of at most PROFILE_BATCH levels
            stop = max(j + 1, int(np.searchsorted(np.cumsum(lengths[j:]), PROFILE_BATCH, side="right")) + j)
            offsets = np.zeros(stop - j + 1, np.int64)
            np.cumsum(lengths[j:stop], out=offsets[1:])
            out = np.empty(int(offsets[-1]), np.float64)
            sl = slice(j, stop)
            # costliest merges (largest states) first, chunks taken one at a time by idle threads
            cost_order = np.argsort(-st.size[mean_t[sl]], kind="stable")
            with numba.parallel_chunksize(1):
                P.mean_profiles(mean_t[sl], l_tops[sl], outer_child[sl], inner_child[sl], st.level, st.cid,
                                st.chain_order, st.chain_start, start, st.size, cnt, n, src_pos[sl], dst_pos[sl],
                                floors[sl], xk, xp, kpos, krow, level_pos, box_lo, box_hi, n_leaves,
                                PROFILE_BUCKET, PROFILE_SCAN_FACTOR, PROFILE_SCAN_BASE, PROFILE_BALANCE, offsets,
                                out, cost_order, PROFILE_CHUNKS_PER_THREAD * numba.get_num_threads())
            for k, pos in enumerate(mean_pos[sl]):
                stat[pos] = np.mean(out[offsets[k] : offsets[k + 1]].astype(np.float32))
            j = stop
        return stat, intra_max

    def _children(self, merges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Merge indices of the (outer, inner) children of cluster-cluster merges."""
        st = self._st
        left, right, _ = self._tree()
        a, b = right[merges] - self._n, left[merges] - self._n
        a_outer = st.cid[a] == st.cid[merges]
        return np.where(a_outer, a, b), np.where(a_outer, b, a)

    @staticmethod
    def _good_merges(merge_stat: np.ndarray, intra_max: np.ndarray) -> np.ndarray:
        """0.61.0's merge classification (spec §8.4) on float32 values, NaN-propagating like it."""
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.unique(intra_max))
            threshold = logs.mean() + 2 * logs.std()
            value = np.log(merge_stat)
            desired = value < threshold
            rel = np.abs((value - threshold) / threshold)
            check = rel[~desired]
            check = check[check < 1]
            spread = check.mean() + check.std() if check.size else np.float32(np.nan)
            return desired | (rel < spread)

    @property
    def last_good_merge_levels(self) -> dict[int, int]:
        """Cluster id -> last good merge level (spec §8.5), cached."""
        if self._lgml is None:
            st = self._st
            if st.max_clusters <= 1:
                self._lgml = {0: int(self._n * 0.1)}
                return self._lgml
            entries = self._merge_entries()
            stat, intra = self._merge_statistics(entries)
            good = self._good_merges(stat, intra)
            levels = {}
            # level descending, discovery order on equal levels (a stable sort)
            order = np.argsort(-st.level[entries], kind="stable")
            for t, ok in zip(entries[order].tolist(), good[order].tolist()):
                lv, outer, inner = int(st.level[t]), int(st.cid[t]), int(st.inner[t])
                if not ok:
                    levels.setdefault(outer, 0)
                    levels.setdefault(inner, 0)
                    if levels[outer] > lv:
                        levels[outer] = lv - 1
                elif outer in levels:
                    levels[outer] = max(levels[outer], lv)
            self._lgml = levels
        return self._lgml

    # --------------------------------------------------------------- outputs
    def find_outliers(self, last_merge_levels: Mapping[int, int]) -> tuple[list[int], list[int]]:
        """Outliers and possible outliers by the step at which each sample joined its cluster.

        A sample is an outlier when the merge that attached it, above its cluster's last good
        merge level, is longer than the cluster's mean merge distance + 2 std (spec §8.6).

        Parameters
        ----------
        last_merge_levels : mapping of int to int
            Cluster id -> last good merge level (ids without states are ignored, as in 0.61.0).

        Returns
        -------
        outliers, possible_outliers : list of int
            Sorted sample indices; the two lists may overlap (as in 0.61.0).
        """
        keys, values = _check_levels(last_merge_levels)
        st = self._st
        left, right, _ = self._tree()
        has = np.zeros(st.max_clusters, np.bool_)
        lgml = np.zeros(st.max_clusters, np.int64)
        known = keys < st.max_clusters
        has[keys[known]] = True
        lgml[keys[known]] = values[known]
        outl, poss = K.find_outliers(
            self._n, left, right, st.cid, st.level, st.inner, st.last, st.copy_hi, st.out1, st.out2,
            st.size, has, lgml, st.top, self._min_size,
        )
        return np.flatnonzero(outl).tolist(), np.flatnonzero(poss).tolist()

    def _state_at(self, c: int, lv: int) -> tuple[float, int]:
        """(std, size) of cluster ``c``'s state at level ``lv`` (a copy has std 0)."""
        st = self._st
        chain = st.chain_order[st.chain_start[c] : st.chain_start[c + 1]] if 0 <= c < st.max_clusters else []
        if len(chain):
            k = int(np.searchsorted(st.level[chain], lv, side="right")) - 1
            if k >= 0:
                t = chain[k]
                if st.level[t] == lv:
                    return float(st.std[t]), int(st.size[t])
                if st.copy_hi[t] >= lv:
                    return 0.0, int(st.size[t])
        raise InvalidParameterError(
            f"last_merge_levels: cluster {c} has no state at level {lv} (0.61.0 would raise KeyError); "
            "use levels from last_good_merge_levels"
        )

    def find_duplicates(self, last_merge_levels: Mapping[int, int]) -> tuple[list[list[int]], list[list[int]]]:
        """Exact and near duplicate groups under one global threshold tau (spec §8.7).

        tau is the mean, over the clusters of at least ``min_cluster_size`` samples at their
        last good merge level, of the std of their merge distances. Pairs within tau/100 are
        "exact" duplicates, pairs within tau (and not exact) "near" ones; each kind is closed
        transitively on its own.

        Parameters
        ----------
        last_merge_levels : mapping of int to int
            Cluster id -> level; every (id, level) must be a state of the hierarchy.

        Returns
        -------
        duplicates, near_duplicates : list of list of int
            Groups of sample indices, each sorted, sorted lexicographically.

        Raises
        ------
        InvalidParameterError
            A (cluster id, level) of ``last_merge_levels`` is not a state of the hierarchy.
        """
        keys, values = _check_levels(last_merge_levels)
        stds = []
        for c, lv in zip(keys.tolist(), values.tolist()):
            sd, size = self._state_at(c, lv)
            if size >= self._min_size:
                stds.append(sd)
        if not stds:
            return [], []
        tau = float(np.mean(stds))
        return self._exact_groups(tau / 100), self._near_groups(tau / 100, tau)

    def _decide(self, a: np.ndarray, b: np.ndarray, d32: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """Mask of pairs with lo < D <= hi (lo may be -inf), re-measuring the ambiguous ones."""
        d32 = d32.astype(np.float64)
        ok = (d32 > lo) & (d32 <= hi)
        amb = np.zeros(d32.shape, bool)
        for thr in (lo, hi):
            if np.isfinite(thr) and thr > 0:
                amb |= np.abs(d32 - thr) <= AMBIGUOUS_BAND * thr
        if amb.any():
            exact = self._exact_distances(a[amb], b[amb])
            ok[amb] = (exact > lo) & (exact <= hi)
        return ok

    def _exact_groups(self, thr: float) -> list[list[int]]:
        """Components of the pairs D <= thr: the MST edges <= thr (cut property)."""
        src, dst, w, _, _, _ = self._single_linkage()
        cand = np.flatnonzero(w <= thr * (1 + 2 * AMBIGUOUS_BAND))
        a, b = src[cand], dst[cand]
        keep = self._decide(a, b, w[cand], -np.inf, thr)
        return _groups(self._n, a[keep], b[keep])

    def _near_groups(self, lo: float, hi: float) -> list[list[int]]:
        """Components of the pairs lo < D <= hi from the k-NN graph, completed by radius search."""
        res = self.cluster_result
        nbr, dist = res.k_neighbors, res.k_distances
        band = hi * (1 + 2 * AMBIGUOUS_BAND)
        if isinstance(nbr, np.ndarray):
            parts = [_knn_candidates(nbr, dist, 0, band)]
        else:
            import dask.array as da

            offsets = np.concatenate([[0], np.cumsum(nbr.chunks[0])[:-1]])
            nb = nbr.rechunk({1: -1}).to_delayed().ravel()
            db = da.asarray(dist).rechunk((nbr.chunks[0], -1)).to_delayed().ravel()
            task = dask.delayed(_knn_candidates, pure=True)
            from distdataeval.runtime.client import active_client

            with active_client(self._client):
                parts = dask.compute(*[task(x, y, int(o), band) for x, y, o in zip(nb, db, offsets)])
        a = np.concatenate([p[0] for p in parts])
        b = np.concatenate([p[1] for p in parts])
        d32 = np.concatenate([p[2] for p in parts])
        saturated = np.concatenate([p[3] for p in parts])
        keep = self._decide(a, b, d32, lo, hi)
        a, b = a[keep], b[keep]
        if saturated.size:
            ra, rb = self._radius_pairs(saturated, lo, hi)
            a, b = np.concatenate([a, ra]), np.concatenate([b, rb])
        return _groups(self._n, a, b)

    def _radius_pairs(self, query_ids: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Exact lo < D <= hi pairs of ``query_ids`` against every row, block by block on the workers."""
        from distdataeval.runtime.client import active_client

        x = self._source.data
        offsets = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]])
        blocks = x.to_delayed().ravel()
        task = dask.delayed(_radius_pairs_block, pure=True)
        out_a, out_b = [], []
        with active_client(self._client):
            for s in range(0, query_ids.size, RADIUS_BATCH):
                ids = query_ids[s : s + RADIUS_BATCH]
                q = self._rows(ids)
                parts = dask.compute(*[task(blk, int(o), q, ids, lo, hi) for blk, o in zip(blocks, offsets)])
                out_a += [p[0] for p in parts]
                out_b += [p[1] for p in parts]
        return np.concatenate(out_a), np.concatenate(out_b)

    def evaluate(self) -> dict:
        """Outliers and duplicates at the last good merge levels (0.61.0's ``evaluate``).

        Returns
        -------
        dict
            ``outliers`` and ``potential_outliers`` (sorted lists of int), ``duplicates`` and
            ``near_duplicates`` (lists of sorted index lists).
        """
        levels = self.last_good_merge_levels
        outliers, potential = self.find_outliers(levels)
        duplicates, near = self.find_duplicates(levels)
        return {
            "outliers": outliers,
            "potential_outliers": potential,
            "duplicates": duplicates,
            "near_duplicates": near,
        }


def _knn_candidates(nbr: np.ndarray, dist: np.ndarray, offset: int, band: float):
    """k-NN entries within ``band`` of a row block as pairs, plus the rows whose whole list is
    within ``band`` (their list may miss points within it)."""
    nbr = np.asarray(nbr)
    dist = np.asarray(dist)
    rows, cols = np.nonzero(dist <= band)
    a = rows.astype(np.int64) + offset
    b = nbr[rows, cols].astype(np.int64)
    valid = b >= 0
    saturated = np.flatnonzero(dist[:, -1] <= band).astype(np.int64) + offset
    return a[valid], b[valid], dist[rows, cols][valid], saturated
