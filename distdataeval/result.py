"""``ClusterResult``: DataEval's six fields, plus what distdataeval adds."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from distdataeval.mst.records import SpanningTree
from distdataeval.tree.records import LinkageTree

DATAEVAL_KEYS = ("clusters", "mst", "linkage_tree", "membership_strengths", "k_neighbors", "k_distances")


@dataclass(frozen=True, eq=False)
class ClusterResult(Mapping):
    """Output of :func:`distdataeval.cluster`; reads like DataEval's ``ClusterResult``.

    Both ``result["clusters"]`` and ``result.clusters`` work; iterating gives DataEval's six keys.

    Attributes
    ----------
    clusters : ndarray of int64, shape (n,)
        Cluster id per sample. With ``reassign_noise=True`` (default) HDBSCAN noise is reassigned to
        the nearest cluster centre, so there is no -1; with ``False`` these are DataEval's labels.
    membership_strengths : ndarray of float32, shape (n,)
        HDBSCAN membership (noise keeps 0) or KMeans' 1 - d / max(d).
    k_neighbors : ndarray or dask array of int64, shape (n, k), k = min(25, n - 1)
        NumPy in exact mode; in approx mode a Dask array held by the workers (or Zarr-backed
        with ``workdir``): the graph is never gathered on the driver unless you ask for it.
    k_distances : ndarray or dask array of float32, shape (n, k)
    spanning_tree : SpanningTree
        The MST with int64 ids; ``mst`` is its DataEval-shaped float32 view.
    linkage : LinkageTree
        The single-linkage tree with int64 ids; ``linkage_tree`` is its float32 view.
    noise : ndarray of bool, shape (n,)
        True where HDBSCAN itself labelled the sample -1 (before any reassignment or post-fix).
    raw_labels : ndarray of int64, shape (n,)
        HDBSCAN's labels before the all-noise post-fix and the reassignment.
    min_cluster_size : int
    knn_method : str
        How the k-NN graph was computed ("exact" or "approx").
    knn_recall : float or None
        Approximate mode: recall@k measured on a random sample of rows against exact search
        (share of the true k nearest distances found). None in exact mode.
    n_knn_components : int
        Components of the k-NN graph before bridging.
    timings : dict
        Wall seconds per stage.
    algorithm : str
        ``"hdbscan"`` or ``"kmeans"``: what made ``clusters``.
    """

    clusters: np.ndarray
    membership_strengths: np.ndarray
    k_neighbors: np.ndarray
    k_distances: np.ndarray
    spanning_tree: SpanningTree
    linkage: LinkageTree
    noise: np.ndarray
    raw_labels: np.ndarray
    min_cluster_size: int
    knn_method: str
    n_knn_components: int
    knn_recall: float | None = None
    timings: dict = field(default_factory=dict)
    algorithm: str = "hdbscan"

    @property
    def mst(self) -> np.ndarray:
        """float32 (n-1, 3) rows (source, target, weight), ascending weight (DataEval's view)."""
        return self.spanning_tree.as_dataeval()

    @property
    def linkage_tree(self) -> np.ndarray:
        """float32 (n-1, 4) rows [larger child, smaller child, distance, size] (DataEval's view)."""
        return self.linkage.as_dataeval()

    @property
    def n_clusters(self) -> int:
        """Number of distinct cluster ids (excluding -1)."""
        return int(np.unique(self.clusters[self.clusters >= 0]).size)

    def __getitem__(self, key: str):
        if key not in DATAEVAL_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(DATAEVAL_KEYS)

    def __len__(self) -> int:
        return len(DATAEVAL_KEYS)

    def __repr__(self) -> str:
        n = self.clusters.shape[0]
        return (
            f"ClusterResult(n={n}, n_clusters={self.n_clusters}, noise={int(self.noise.sum())}, "
            f"k={self.k_neighbors.shape[1]}, knn={self.knn_method!r}"
            + (f", recall={self.knn_recall:.3f})" if self.knn_recall is not None else ")")
        )
