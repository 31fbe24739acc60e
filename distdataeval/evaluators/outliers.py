"""``Outliers`` in cluster mode: samples far from their cluster centre.

Default (the seed rule, DECISIONS #3): a sample is an outlier when its distance to the nearest
cluster centre exceeds ``mean + n_std * std`` of that cluster's distances (``n_std = 3``).
DataEval 1.1.4's thresholds are named options (``cluster_threshold``), resolved as DataEval does:

* ``"zscore"`` → mean + 2.5·std (DataEval's default); ``("zscore", m)`` → mean + m·std;
* a bare number ``m`` or ``("adaptive", m)`` → DataEval's ``AdaptiveThreshold(m)`` (median +
  tail-weighted double MAD, with its point-mass handling); ``"adaptive"`` → m = 3.5;
* ``("modzscore", m)`` → median + m·MAD/0.6745; ``("iqr", m)`` → Q3 + m·IQR.

In every case the statistics include the sample itself, only the upper bound is used, a sample
is flagged when ``distance > upper`` (strict), and a cluster whose spread is ~0 flags nothing.
Centres and the assignment follow DataEval's ``compute_cluster_stats`` (spec §2.5/§3) via
:func:`distdataeval.stats.cluster_stats`: centre = mean of the cluster's members; HDBSCAN's noise
(``ClusterResult.noise``) counts as -1, and when any noise exists every sample is measured to its
nearest centre. The score of each sample is its z-score within its cluster,
``(distance - mean) / std`` (0 when std <= 1e-12), as DataEval reports for flagged samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distdataeval.errors import InvalidInputError, InvalidParameterError
from distdataeval.stats import ClusterStats, cluster_stats

EPSILON = 1e-12  # DataEval's "no spread" bound
THRESHOLD_NAMES = ("zscore", "adaptive", "modzscore", "iqr")
DEFAULT_MULTIPLIERS = {"zscore": 2.5, "adaptive": 3.5, "modzscore": 3.5, "iqr": 1.5}
_NORMAL_P90_MAD = 1.91


def dataeval_labels(result) -> np.ndarray:
    """DataEval 1.1.4's ``clusters`` of a :class:`ClusterResult`: HDBSCAN noise as -1, except
    that an all-noise labelling is one cluster 0 (DataEval's post-fix)."""
    clusters = np.asarray(result.clusters, dtype=np.int64)
    noise = np.asarray(result.noise, dtype=bool)
    if noise.all() or not noise.any():
        return clusters
    return np.where(noise, -1, clusters)


def check_cluster_options(cluster_algorithm, n_clusters, knn) -> None:
    """Validate the options an evaluator passes on to ``cluster()`` when it is constructed."""
    from distdataeval.api import ALGORITHMS, KNN_METHODS

    if cluster_algorithm not in ALGORITHMS:
        raise InvalidParameterError(f"cluster_algorithm must be one of {ALGORITHMS}, got {cluster_algorithm!r}")
    if knn not in KNN_METHODS:
        raise InvalidParameterError(f"knn must be one of {KNN_METHODS}, got {knn!r}")
    if n_clusters is not None and (isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer))
                                   or n_clusters < 1):
        raise InvalidParameterError(f"n_clusters must be None or an int >= 1, got {n_clusters!r}")


def _check_multiplier(name: str, m) -> float:
    if isinstance(m, bool) or not isinstance(m, (int, float, np.integer, np.floating)) or not np.isfinite(m) or m < 0:
        raise InvalidParameterError(f"{name} must be a finite number >= 0, got {m!r}")
    return float(m)


def resolve_threshold(cluster_threshold, n_std: float) -> tuple[str, float]:
    """(rule name, multiplier) for ``Outliers``; ``None`` means the seed rule ("std", n_std)."""
    if cluster_threshold is None:
        return "std", _check_multiplier("n_std", n_std)
    if isinstance(cluster_threshold, str):
        if cluster_threshold not in THRESHOLD_NAMES:
            raise InvalidParameterError(
                f"cluster_threshold must be one of {THRESHOLD_NAMES}, a number (adaptive) or a "
                f"(name, multiplier) tuple; got {cluster_threshold!r}"
            )
        return cluster_threshold, DEFAULT_MULTIPLIERS[cluster_threshold]
    if isinstance(cluster_threshold, tuple) and len(cluster_threshold) == 2:
        name, m = cluster_threshold
        if name not in THRESHOLD_NAMES:
            raise InvalidParameterError(f"unknown threshold name {name!r}; expected one of {THRESHOLD_NAMES}")
        return name, _check_multiplier("threshold multiplier", m)
    if isinstance(cluster_threshold, (int, float, np.integer, np.floating)) and not isinstance(cluster_threshold, bool):
        return "adaptive", _check_multiplier("cluster_threshold", cluster_threshold)
    raise InvalidParameterError(
        f"cluster_threshold must be None, one of {THRESHOLD_NAMES}, a number or a (name, multiplier) "
        f"tuple; got {cluster_threshold!r}"
    )


def _tail_factor(mad: float, p90: float) -> float:
    if mad <= EPSILON:
        return 1.0
    ratio = (p90 / mad) / _NORMAL_P90_MAD
    return 1.0 + float(np.log1p(max(0.0, ratio - 1.0)))


def _adaptive_upper(v: np.ndarray, m: float) -> float | None:
    """Upper bound of DataEval's AdaptiveThreshold(m) on one cluster's distances."""
    if v.size < 3:
        return None
    med = float(np.median(v))
    left, right = v[v <= med], v[v >= med]
    ldev, rdev = np.abs(left - med), np.abs(right - med)
    mad_l = float(np.median(ldev)) if left.size else 0.0
    mad_r = float(np.median(rdev)) if right.size else 0.0
    p90_r = float(np.percentile(rdev, 90)) if right.size > 1 else 0.0
    tf_r = _tail_factor(mad_r, p90_r)
    if mad_l <= EPSILON or mad_r <= EPSILON:
        meanad = float(np.mean(np.abs(v - med)))
        if mad_l <= EPSILON and mad_r <= EPSILON:
            if meanad <= EPSILON:
                return None
            vals, counts = np.unique(v, return_counts=True)
            mode = float(vals[np.argmax(counts)])
            non_mode = v[v != mode]
            if non_mode.size > 10:
                devs = np.abs(non_mode - mode)
                if float(np.min(devs)) / (meanad / 0.6745) < 1.0:
                    nm_mad = float(np.median(devs))
                    if nm_mad > EPSILON:
                        nm_tf = _tail_factor(nm_mad, float(np.percentile(devs, 90)))
                        return med + m * (nm_mad / 0.6745 * nm_tf)
        if meanad <= EPSILON:
            return None
        if mad_r <= EPSILON:
            mad_r = meanad
    return med + m * tf_r * (mad_r / 0.6745)


def _modzscore_upper(v: np.ndarray, m: float) -> float | None:
    med = np.nanmedian(v)
    dev = np.abs(v - med)
    mad = np.nanmedian(dev)
    if mad <= EPSILON:
        mad = np.nanmean(dev)
    if mad <= EPSILON:
        return None
    return float(med + m * (mad / 0.6745))


def _iqr_upper(v: np.ndarray, m: float) -> float | None:
    q1, q3 = np.nanpercentile(v, (25, 75), method="midpoint")
    if q3 - q1 <= EPSILON:
        return None
    return float(q3 + m * (q3 - q1))


_ROBUST = {"adaptive": _adaptive_upper, "modzscore": _modzscore_upper, "iqr": _iqr_upper}


def cluster_upper_bounds(stats: ClusterStats, rule: str, m: float) -> np.ndarray:
    """float64 (K,) upper distance bound per cluster (+inf where the rule gives no bound)."""
    k = stats.cluster_ids.size
    if rule in ("std", "zscore"):
        std = stats.dist_std
        ok = np.isfinite(std) & (std > EPSILON)
        return np.where(ok, stats.dist_mean + m * np.where(ok, std, 0.0), np.inf)
    upper = np.full(k, np.inf)
    pos = stats.positions
    have = pos >= 0
    # one sort, then each cluster's distances are one contiguous slice (each row read once)
    order = np.argsort(pos[have], kind="stable")
    vals = stats.distances[have][order]
    bounds = np.searchsorted(pos[have][order], np.arange(k + 1))
    func = _ROBUST[rule]
    for j in np.flatnonzero(np.diff(bounds) > 0):
        u = func(vals[bounds[j] : bounds[j + 1]], m)
        if u is not None:
            upper[j] = u
    return upper


@dataclass(frozen=True)
class OutliersOutput:
    """Result of :class:`Outliers`.

    Attributes
    ----------
    indices : ndarray of int64, shape (m,)
        Outlier sample indices, ascending.
    values : ndarray of float64, shape (m,)
        DataEval's ``metric_value`` of each outlier: its z-score within its cluster.
    scores : ndarray of float32, shape (n,)
        z-score of every sample within its assigned cluster (0 where the cluster's std is ~0,
        NaN where a sample has no cluster).
    flags : ndarray of bool, shape (n,)
        True for outliers.
    upper : ndarray of float64, shape (K,)
        The distance bound of each cluster (+inf: no bound).
    stats : ClusterStats
        Centres, assignment and distances the decision used.
    rule : str
        "std" (seed rule), "zscore", "adaptive", "modzscore" or "iqr".
    multiplier : float
    """

    indices: np.ndarray
    values: np.ndarray
    scores: np.ndarray
    flags: np.ndarray
    upper: np.ndarray
    stats: ClusterStats
    rule: str
    multiplier: float

    @property
    def outliers(self) -> dict[int, float]:
        """Mapping sample index → z-score (DataEval's ``cluster_distance`` metric value)."""
        return dict(zip(self.indices.tolist(), self.values.tolist()))

    def with_threshold(self, cluster_threshold=None, n_std: float = 3.0) -> OutliersOutput:
        """Re-decide from the stored statistics with another threshold (no re-clustering)."""
        rule, m = resolve_threshold(cluster_threshold, n_std)
        return detect_outliers(self.stats, rule, m)

    def __len__(self) -> int:
        return int(self.indices.size)


def detect_outliers(stats: ClusterStats, rule: str, multiplier: float) -> OutliersOutput:
    """Flag samples whose centre distance exceeds their cluster's upper bound."""
    upper = cluster_upper_bounds(stats, rule, multiplier)
    pos = stats.positions
    have = pos >= 0
    p = np.maximum(pos, 0)
    flags = np.zeros(pos.size, dtype=bool)
    if upper.size:
        flags[have] = stats.distances[have] > upper[p[have]]
    scores = np.full(pos.size, np.nan, dtype=np.float64)
    if stats.cluster_ids.size:
        mean, std = stats.dist_mean[p], stats.dist_std[p]
        spread = np.isfinite(std) & (std > EPSILON)
        z = np.where(spread, (stats.distances.astype(np.float64) - mean) / np.where(spread, std, 1.0), 0.0)
        scores[have] = z[have]
    indices = np.flatnonzero(flags).astype(np.int64)
    return OutliersOutput(
        indices=indices,
        values=scores[indices],
        scores=scores.astype(np.float32),
        flags=flags,
        upper=upper,
        stats=stats,
        rule=rule,
        multiplier=float(multiplier),
    )


class Outliers:
    """Cluster-mode outlier detection on embeddings (DataEval's ``Outliers`` with an extractor).

    Parameters
    ----------
    n_std : float, default 3.0
        Seed rule multiplier: outlier when distance > mean + n_std·std of its cluster.
    cluster_threshold : None, str, float or (str, float), optional
        DataEval's thresholds instead of the seed rule: ``"zscore"`` (2.5, DataEval's default),
        ``("zscore", m)``, a bare number or ``("adaptive", m)`` (AdaptiveThreshold),
        ``("modzscore", m)``, ``("iqr", m)``.
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
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 0.3, (50, 2)), rng.normal(5, 0.3, (50, 2)), [[20.0, 20.0]]])
    >>> Outliers().evaluate(x).indices                   # doctest: +SKIP
    array([100])
    """

    def __init__(self, n_std: float = 3.0, cluster_threshold=None, cluster_algorithm: str = "hdbscan",
                 n_clusters: int | None = None, knn: str = "auto", client=None):
        self.rule, self.multiplier = resolve_threshold(cluster_threshold, n_std)
        check_cluster_options(cluster_algorithm, n_clusters, knn)
        self.n_std = n_std
        self.cluster_threshold = cluster_threshold
        self.cluster_algorithm = cluster_algorithm
        self.n_clusters = n_clusters
        self.knn = knn
        self.client = client

    def evaluate(self, embeddings) -> OutliersOutput:
        """Cluster ``embeddings`` with :func:`distdataeval.cluster`, then detect outliers.

        Parameters
        ----------
        embeddings : array-like, dask array, zarr array or str
            (n, ...) samples, as accepted by :func:`distdataeval.cluster`.

        Returns
        -------
        OutliersOutput
        """
        from distdataeval.api import cluster
        from distdataeval.io.source import open_source

        source = open_source(embeddings)
        result = cluster(source.data, algorithm=self.cluster_algorithm, n_clusters=self.n_clusters,
                         knn=self.knn, client=self.client)
        return self.from_labels(source.data, dataeval_labels(result))

    def from_clusters(self, embeddings, result) -> OutliersOutput:
        """Detect outliers from an existing :class:`ClusterResult` of the same embeddings.

        Raises
        ------
        InvalidInputError
            When the result's number of samples differs from the embeddings'.
        """
        if not hasattr(result, "clusters") or not hasattr(result, "noise"):
            raise InvalidInputError(f"result must be a ClusterResult, got {type(result).__name__}")
        return self.from_labels(embeddings, dataeval_labels(result))

    def from_labels(self, embeddings, labels) -> OutliersOutput:
        """Detect outliers for any labelling (-1 = no cluster), e.g. KMeans labels.

        Parameters
        ----------
        embeddings : array-like or dask array, shape (n, ...)
        labels : array-like of int, shape (n,)
        """
        from distdataeval.io.source import open_source

        x = open_source(embeddings).data
        lab = np.asarray(labels) if not hasattr(labels, "dask") else labels
        if lab.ndim != 1 or lab.shape[0] != x.shape[0]:
            raise InvalidInputError(
                f"cluster labels cover {lab.shape[0] if lab.ndim else 0} samples but the embeddings have "
                f"{x.shape[0]}; pass the ClusterResult of these embeddings"
            )
        stats = cluster_stats(x, lab, reassign="all", client=self.client)
        return detect_outliers(stats, self.rule, self.multiplier)
