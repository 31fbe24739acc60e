"""``Prioritize``: rank samples from easy to hard (DataEval 1.1.4's ``Prioritize``, spec section 7).

Every method first divides the embeddings by their largest row norm (and a ``reference`` by its
own), then scores or orders the samples:

* ``knn``: score = distance to the (k+1)-th nearest other sample (or the (k+1)-th nearest
  reference sample). **How k is capped.** DataEval's default is ``k = floor(sqrt(n))`` over a
  dense n x n matrix. Here the default is ``k = min(floor(sqrt(n)), 24)``, so that the score is a
  column of the 25-NN graph that :func:`distdataeval.cluster` already builds (pass its result
  as ``cluster_result=`` to reuse it; otherwise an exact blocked search of k + 1 neighbours
  runs). Up to n = 624 this equals DataEval's default. Above, the score is the 25th-neighbour
  distance instead of the (floor(sqrt(n)) + 1)-th: still a local-density estimate, but a more
  local one, so rankings differ in detail. An explicit ``k`` is always honoured: when
  ``k + 1`` exceeds the graph's width, the exact distributed search of
  :mod:`distdataeval.evaluators.masked_search` computes it (cost O(n^2 d), no n x n matrix).
* ``kmeans_distance`` / ``hdbscan_distance``: score = distance to the sample's cluster centre
  (KMeans with ``c`` clusters, default floor(sqrt(n)); or HDBSCAN with ``n_clusters=c``, whose
  noise makes *every* sample go to its nearest centre, DataEval's rule).
* ``kmeans_complexity`` / ``hdbscan_complexity``: no scores; clusters are drawn with softmax
  weights of (mean member distance) x (mean distance to the nearest other centres), each draw
  taking the cluster's hardest remaining sample; the drawn list reversed is the ranking. The
  draws come from :func:`distdataeval.config.rng_for` (``set_seed`` makes them reproducible;
  DataEval used numpy's global generator) and run in O(n log n) on the driver (see
  :func:`~distdataeval.evaluators._prioritize_kernels.complexity_order`).

Policies: ``difficulty`` (the ranking itself), ``class_balanced`` (round-robin over classes in
order of first appearance), ``stratified`` (scores in ``num_bins`` equal-width bins, round-robin
over the bins). **Stratified differs from DataEval by default** (DECISIONS #7): bins are taken
over the samples in rank order, each turn emitting the next easiest sample of the bin.
DataEval bins the score array in *sample* order and emits the p-th easiest sample for a
sample position p (a mix of coordinates); ``stratify_by="position"`` reproduces that.
``order="hard_first"`` reverses the policy's list.

Other deviations from DataEval: ``knn`` requires ``k < n - 1`` (DataEval accepts ``k = n - 1``
and scores every sample ``inf``); with a reference of the same length as the embeddings,
DataEval's distance methods reuse the reference's cluster labels by position, here every
sample always goes to its nearest centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import dask.array as da
import numpy as np

from distdataeval.runtime.compute import compute_in_order
from distdataeval import config
from distdataeval import _stats_kernels as SK
from distdataeval.errors import InvalidInputError, InvalidParameterError
from distdataeval.evaluators import _prioritize_kernels as PK
from distdataeval.evaluators.masked_search import kth_distance, masked_knn, prepare_search_blocks
from distdataeval.io.source import check_scan, open_source, scan_source
from distdataeval.runtime.client import active_client

__all__ = ["Prioritize", "PrioritizeOutput"]

METHODS = ("knn", "kmeans_distance", "kmeans_complexity", "hdbscan_distance", "hdbscan_complexity")
COMPLEXITY_METHODS = ("kmeans_complexity", "hdbscan_complexity")
ORDERS = ("easy_first", "hard_first")
POLICIES = ("difficulty", "stratified", "class_balanced")
STRATIFY_BY = ("rank", "position")
# the shared graph of cluster() holds 25 neighbours: column k is the (k+1)-th
GRAPH_WIDTH = 25
DEFAULT_K_CAP = GRAPH_WIDTH - 1
NORM_FLOOR = 1e-12


def _choice(name: str, value, allowed: tuple) -> str:
    if value not in allowed:
        raise InvalidParameterError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _opt_int(name: str, value, minimum: int | None = None):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{name} must be an int or None, got {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_class_labels(class_labels, n: int) -> np.ndarray:
    y = np.asarray(class_labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise InvalidInputError(f"class_labels must have shape ({n},), one label per sample; got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise InvalidInputError(f"class_labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


@dataclass(frozen=True, eq=False)
class PrioritizeOutput:
    """A ranking of all samples, mirroring DataEval's ``PrioritizeOutput``.

    ``easy_first()``, ``hard_first()``, ``stratified(num_bins)`` and ``class_balanced(labels)``
    return new outputs (chainable; each replaces only its own setting).

    Attributes
    ----------
    ranking : ndarray of int64, shape (n,)
        The method's easy-first ranking, before any policy.
    sample_scores : ndarray of float32, shape (n,), or None
        Score of each sample by sample id (None for the complexity methods).
    method, order, policy : str
    num_bins : int
        Bins of the stratified policy.
    class_labels : ndarray of int64, shape (n,), or None
        Labels of the class-balanced policy.
    stratify_by : {"rank", "position"}
        How the stratified policy walks the samples (see the module notes).
    """

    ranking: np.ndarray
    sample_scores: np.ndarray | None
    method: str
    order: str = "easy_first"
    policy: str = "difficulty"
    num_bins: int = 50
    class_labels: np.ndarray | None = field(default=None, repr=False)
    stratify_by: str = "rank"

    @cached_property
    def _policy_indices(self) -> np.ndarray:
        ranking = self.ranking
        if self.policy == "class_balanced":
            return ranking[PK.round_robin(self.class_labels[ranking])]
        if self.policy == "stratified":
            if self.stratify_by == "rank":
                return ranking[PK.round_robin(PK.score_bins(self.sample_scores[ranking], self.num_bins))]
            return ranking[PK.round_robin(PK.score_bins(self.sample_scores, self.num_bins))]
        return ranking

    @cached_property
    def indices(self) -> np.ndarray:
        """int64 (n,): sample ids in the final order (policy applied, then ``order``)."""
        idx = self._policy_indices
        return idx[::-1].copy() if self.order == "hard_first" else idx

    @property
    def scores(self) -> np.ndarray | None:
        """float32 (n,): the scores of ``indices`` in that order (None for complexity methods)."""
        return None if self.sample_scores is None else self.sample_scores[self.indices]

    def __len__(self) -> int:
        return int(self.ranking.shape[0])

    def easy_first(self) -> "PrioritizeOutput":
        """The same policy, easiest samples first."""
        return replace(self, order="easy_first")

    def hard_first(self) -> "PrioritizeOutput":
        """The same policy, hardest samples first (the exact reverse of ``easy_first``)."""
        return replace(self, order="hard_first")

    def stratified(self, num_bins: int = 50, stratify_by: str | None = None) -> "PrioritizeOutput":
        """Round-robin over ``num_bins`` equal-width score bins.

        Raises
        ------
        InvalidParameterError
            For a complexity method (it has no scores) or a bad ``num_bins``/``stratify_by``.
        """
        if self.sample_scores is None:
            raise InvalidParameterError(
                f"policy 'stratified' needs scores, but method {self.method!r} produces none; use "
                "'difficulty' or 'class_balanced', or a distance/knn method"
            )
        num_bins = _opt_int("num_bins", num_bins, 1)
        by = _choice("stratify_by", self.stratify_by if stratify_by is None else stratify_by, STRATIFY_BY)
        return replace(self, policy="stratified", num_bins=num_bins, stratify_by=by)

    def class_balanced(self, class_labels=None) -> "PrioritizeOutput":
        """Round-robin over classes (in order of first appearance in the ranking).

        Raises
        ------
        InvalidInputError
            No labels here nor from ``evaluate``, or labels of the wrong length or dtype.
        """
        labels = self.class_labels if class_labels is None else class_labels
        if labels is None:
            raise InvalidInputError("policy 'class_balanced' needs class_labels (one integer label per sample)")
        return replace(self, policy="class_balanced", class_labels=_check_class_labels(labels, len(self)))


@dataclass(frozen=True)
class _Normalised:
    data: da.Array  # rows divided by the largest row norm (at least float32)
    scale: float  # that norm
    centre: np.ndarray  # column mean of ``data`` (float64)

    @property
    def n(self) -> int:
        return int(self.data.shape[0])


class Prioritize:
    """Rank samples by how easy or hard they are (DataEval's ``Prioritize``, on Dask).

    Parameters
    ----------
    method : {"knn", "kmeans_distance", "kmeans_complexity", "hdbscan_distance", "hdbscan_complexity"}
    k : int, optional
        ``knn``: neighbour rank of the score (default ``min(floor(sqrt(n)), 24)``; see the module
        notes on the cap). Must be < n - 1 (< the reference size with a reference).
    c : int, optional
        KMeans: clusters (default floor(sqrt(n))). HDBSCAN: ``n_clusters`` of
        :func:`distdataeval.cluster` (default: its min_cluster_size rule). Must be < n.
    n_init : int or "auto"
        KMeans initialisations.
    max_cluster_size : int, optional
        HDBSCAN's largest cluster.
    order : {"easy_first", "hard_first"}
    policy : {"difficulty", "stratified", "class_balanced"}
    num_bins : int, default 50
        Bins of the stratified policy.
    reference : array-like, dask array, zarr array or path, optional
        Score against this set instead (k-NN: its neighbours; clusters fitted on it).
    stratify_by : {"rank", "position"}, default "rank"
        "position" reproduces DataEval's stratified order (see the module notes).
    client : distributed.Client, optional
        Cluster to run on (default: the current client, else a local cluster).

    Raises
    ------
    InvalidParameterError
        Unknown method, order, policy or stratify_by; ``stratified`` with a complexity method;
        bad integers.

    Examples
    --------
    >>> import numpy as np
    >>> from distdataeval import Prioritize, config
    >>> config.set_seed(0)
    >>> x = np.random.default_rng(0).normal(size=(200, 4))
    >>> out = Prioritize(method="knn", k=5).evaluate(x)     # doctest: +SKIP
    >>> out.indices[:3], out.scores[:3]                     # doctest: +SKIP
    """

    def __init__(
        self,
        method: str = "knn",
        k: int | None = None,
        c: int | None = None,
        n_init: int | str = "auto",
        max_cluster_size: int | None = None,
        order: str = "easy_first",
        policy: str = "difficulty",
        num_bins: int = 50,
        reference=None,
        *,
        stratify_by: str = "rank",
        client=None,
    ) -> None:
        self.method = _choice("method", method, METHODS)
        self.order = _choice("order", order, ORDERS)
        self.policy = _choice("policy", policy, POLICIES)
        self.stratify_by = _choice("stratify_by", stratify_by, STRATIFY_BY)
        if self.policy == "stratified" and self.method in COMPLEXITY_METHODS:
            raise InvalidParameterError(
                f"policy 'stratified' needs scores, but method {method!r} produces none; use 'difficulty' or "
                "'class_balanced', or a distance/knn method"
            )
        # DataEval: k <= 0 / c <= 0 mean "use the default"
        k = _opt_int("k", k)
        c = _opt_int("c", c)
        self.k = None if k is None or k <= 0 else k
        self.c = None if c is None or c <= 0 else c
        if not (n_init == "auto" or (isinstance(n_init, (int, np.integer)) and not isinstance(n_init, bool) and n_init >= 1)):
            raise InvalidParameterError(f"n_init must be 'auto' or an int >= 1, got {n_init!r}")
        self.n_init = n_init
        self.max_cluster_size = _opt_int("max_cluster_size", max_cluster_size, 1)
        self.num_bins = _opt_int("num_bins", num_bins, 1)
        self.reference = reference
        self.client = client

    # ---------------------------------------------------------------- factories (DataEval's names)
    @classmethod
    def knn(cls, k: int | None = None, reference=None, **kwargs) -> "Prioritize":
        """A k-NN distance prioritizer."""
        return cls(method="knn", k=k, reference=reference, **kwargs)

    @classmethod
    def kmeans_distance(cls, c: int | None = None, n_init="auto", reference=None, **kwargs) -> "Prioritize":
        """Distance to the KMeans centre."""
        return cls(method="kmeans_distance", c=c, n_init=n_init, reference=reference, **kwargs)

    @classmethod
    def kmeans_complexity(cls, c: int | None = None, n_init="auto", reference=None, **kwargs) -> "Prioritize":
        """KMeans complexity-weighted sampling."""
        return cls(method="kmeans_complexity", c=c, n_init=n_init, reference=reference, **kwargs)

    @classmethod
    def hdbscan_distance(cls, c: int | None = None, max_cluster_size=None, reference=None, **kwargs) -> "Prioritize":
        """Distance to the HDBSCAN cluster centre."""
        return cls(method="hdbscan_distance", c=c, max_cluster_size=max_cluster_size, reference=reference, **kwargs)

    @classmethod
    def hdbscan_complexity(cls, c: int | None = None, max_cluster_size=None, reference=None, **kwargs) -> "Prioritize":
        """HDBSCAN complexity-weighted sampling."""
        return cls(method="hdbscan_complexity", c=c, max_cluster_size=max_cluster_size, reference=reference, **kwargs)

    # ---------------------------------------------------------------- evaluate
    def evaluate(self, embeddings, class_labels=None, *, cluster_result=None) -> PrioritizeOutput:
        """Rank the samples of ``embeddings``.

        Parameters
        ----------
        embeddings : array-like, dask array, zarr array, str or os.PathLike
            (n, ...) samples; axes after the first are flattened.
        class_labels : array-like of int, shape (n,), optional
            Needed by the ``class_balanced`` policy.
        cluster_result : ClusterResult, optional
            A :func:`distdataeval.cluster` result of these embeddings, reused instead of
            recomputing: its k-NN graph (``knn``, when k + 1 <= its width), its HDBSCAN labels
            (``hdbscan_*``) or its KMeans labels (``kmeans_*``, from ``algorithm="kmeans"``;
            the centres are then the means of the clusters' rows); ``c`` and
            ``max_cluster_size`` must be left unset, and the result must come from the
            method's algorithm. Not used with a ``reference``. From an approx-mode result the ``knn`` scores are
            those of the approximate graph (its measured recall is ``knn_recall``).

        Returns
        -------
        PrioritizeOutput

        Raises
        ------
        InvalidInputError
            Bad embeddings, reference or labels; ``class_balanced`` without labels.
        InvalidParameterError
            ``k`` or ``c`` too large for the data.
        """
        if self.policy == "class_balanced" and class_labels is None:
            raise InvalidInputError("policy 'class_balanced' needs class_labels (one integer label per sample)")
        with active_client(self.client) as client:
            emb = self._normalise(embeddings, client)
            ref = None if self.reference is None else self._normalise(self.reference, client)
            labels = None if class_labels is None else _check_class_labels(class_labels, emb.n)
            if cluster_result is not None and int(cluster_result.clusters.shape[0]) != emb.n:
                raise InvalidInputError(
                    f"cluster_result has {cluster_result.clusters.shape[0]} samples but embeddings have {emb.n}"
                )
            if self.method == "knn":
                ranking, scores = self._rank_knn(emb, ref, client, cluster_result)
            else:
                ranking, scores = self._rank_clusters(emb, ref, client, cluster_result)
        out = PrioritizeOutput(
            ranking=ranking, sample_scores=scores, method=self.method, order=self.order, num_bins=self.num_bins,
            class_labels=labels, stratify_by=self.stratify_by,
        )
        if self.policy == "stratified":
            out = out.stratified(self.num_bins)
        elif self.policy == "class_balanced":
            out = out.class_balanced()
        return out

    @staticmethod
    def _normalise(x, client) -> _Normalised:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        source = open_source(x, n_workers=n_workers)
        data = source.data
        if data.dtype not in (np.float32, np.float64):
            data = data.astype(np.float32)
        scan, max_sq = compute_in_order(client, scan_source(source), (data.astype(np.float64) ** 2).sum(axis=1).max())
        mean = check_scan(source, scan)
        scale = max(math.sqrt(float(max_sq)), NORM_FLOOR)
        return _Normalised(data / data.dtype.type(scale), scale, mean / scale)

    # ------------------------------------------------------------------------ knn
    def _rank_knn(self, emb: _Normalised, ref: _Normalised | None, client, cluster_result):
        n = emb.n
        k = self.k if self.k is not None else min(math.isqrt(n), DEFAULT_K_CAP)
        if ref is None and k >= n - 1:
            raise InvalidParameterError(
                f"k must be < n - 1 = {n - 1} (the score is the distance to the (k+1)-th nearest other sample), got k = {k}"
            )
        if ref is not None and k >= ref.n:
            raise InvalidParameterError(
                f"k must be < the reference size {ref.n} (the score is the distance to the (k+1)-th nearest "
                f"reference sample), got k = {k}"
            )
        if ref is None and cluster_result is not None and k < cluster_result.k_distances.shape[1]:
            col = cluster_result.k_distances[:, k]
            col = col.compute() if hasattr(col, "compute") else np.asarray(col)
            scores = (np.asarray(col, dtype=np.float64) / emb.scale).astype(np.float32)
        else:
            target = emb if ref is None else ref
            centre = target.centre
            queries = prepare_search_blocks(emb.data, centre)
            refs = queries if ref is None else prepare_search_blocks(ref.data, centre)
            found = masked_knn(
                queries, emb.data.chunks[0], refs, target.data.chunks[0], k + 1, ("all",),
                d=int(emb.data.shape[1]), exclude_self=ref is None,
            )
            scores = client.compute(kth_distance(found, emb.data.chunks[0], k), sync=True).astype(np.float32)
        return np.argsort(scores, kind="stable").astype(np.int64), scores

    # ------------------------------------------------------------------- clusters
    def _rank_clusters(self, emb: _Normalised, ref: _Normalised | None, client, cluster_result):
        fit_on = emb if ref is None else ref
        if self.c is not None and self.c >= fit_on.n:
            raise InvalidParameterError(
                f"c must be < the number of samples it clusters ({fit_on.n}), got c = {self.c}"
            )
        if self.method.startswith("kmeans"):
            centres, positions = self._kmeans(fit_on, client, None if ref is not None else cluster_result)
        else:
            centres, positions = self._hdbscan(fit_on, client, None if ref is not None else cluster_result)
        if ref is not None:
            positions = None  # every sample goes to its nearest reference centre
        positions, distances = _assign(emb.data, centres, positions, client)
        if self.method.endswith("_distance"):
            scores = distances.astype(np.float32)
            return np.argsort(scores, kind="stable").astype(np.int64), scores
        log_w = PK.cluster_log_weights(centres, positions, distances)
        rng = config.rng_for("prioritize", METHODS.index(self.method))
        return PK.complexity_order(positions, distances, log_w, rng), None

    def _kmeans(self, fit_on: _Normalised, client, cluster_result):
        from distdataeval.kmeans import fit_kmeans
        from distdataeval.stats import cluster_stats

        if cluster_result is not None:
            _check_reuse(cluster_result, "kmeans", self.c is not None)
            # KMeans is scale-free, so the clustering of the raw rows is that of the normalised
            # ones; the centres are the means of the clusters' (normalised) rows
            labels = np.asarray(cluster_result.clusters, dtype=np.int64)
            stats = cluster_stats(fit_on.data, labels, reassign="all", client=client)
            return np.asarray(stats.centers, dtype=np.float64), stats.positions
        c = self.c if self.c is not None else max(1, math.isqrt(fit_on.n))
        fit = fit_kmeans(fit_on.data, c, n_init=self.n_init, client=client)
        return np.asarray(fit.centers, dtype=np.float64), np.asarray(fit.labels, dtype=np.int64)

    def _hdbscan(self, fit_on: _Normalised, client, cluster_result):
        from distdataeval.api import cluster
        from distdataeval.stats import cluster_stats

        if cluster_result is not None:
            _check_reuse(cluster_result, "hdbscan", self.c is not None or self.max_cluster_size is not None)
            raw = np.asarray(cluster_result.raw_labels, dtype=np.int64)
        else:
            result = cluster(
                fit_on.data, "hdbscan", n_clusters=self.c, max_cluster_size=self.max_cluster_size, knn="exact",
                client=client, reassign_noise=False,
            )
            raw = np.asarray(result.raw_labels, dtype=np.int64)
        # DataEval's cluster(): all noise becomes one cluster 0
        labels = raw if (raw >= 0).any() else np.zeros_like(raw)
        stats = cluster_stats(fit_on.data, labels, reassign="all", client=client)
        return np.asarray(stats.centers, dtype=np.float64), stats.positions


def _check_reuse(cluster_result, algorithm: str, sized: bool) -> None:
    """A cluster_result handed to a cluster method must come from that method's algorithm, and
    the method's own size settings cannot apply to it."""
    made_by = getattr(cluster_result, "algorithm", "hdbscan")
    if made_by != algorithm:
        raise InvalidParameterError(
            f"the {algorithm}_* methods reuse a cluster(algorithm={algorithm!r}) result; this cluster_result "
            f"was made by {made_by!r} (run cluster(..., algorithm={algorithm!r}) or leave cluster_result out)"
        )
    if sized:
        extra = "" if algorithm == "kmeans" else " and max_cluster_size"
        raise InvalidParameterError(f"c{extra} cannot be combined with cluster_result (its clustering is reused as is)")


def _assign(x: da.Array, centres: np.ndarray, positions: np.ndarray | None, client):
    """(positions int64 (n,), distances float64 (n,)) of each row to its centre; rows go to the
    nearest centre when ``positions`` is None. One blockwise pass, gathered (O(n))."""
    if positions is None:
        pos = da.map_blocks(lambda b: SK.nearest_center(b, centres), x, drop_axis=1, dtype=np.int64)
    else:
        pos = da.from_array(positions, chunks=(x.chunks[0],))
    dist = da.blockwise(SK.center_distances, "i", x, "ij", pos, "i", centres, None, dtype=np.float32, concatenate=True)
    pos, dist = client.compute([pos, dist], sync=True)
    return np.asarray(pos, dtype=np.int64), np.asarray(dist, dtype=np.float64)
