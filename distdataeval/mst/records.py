"""Record produced by the MST stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distdataeval.errors import IndexOverflowError

FLOAT32_EXACT_IDS = 2**24


@dataclass(frozen=True)
class SpanningTree:
    """A spanning tree of n points as n-1 weighted edges, sorted by (weight, source, target).

    Attributes
    ----------
    sources : ndarray of int64, shape (n-1,)
        First endpoint of each edge (the point whose neighbour list produced the edge).
    targets : ndarray of int64, shape (n-1,)
        Second endpoint of each edge.
    weights : ndarray of float64, shape (n-1,)
        Euclidean edge length (the float32 k-NN distance, widened), ascending.
    n_points : int
        Number of points n.
    n_knn_components : int
        Connected components of the k-NN graph before bridging (1 = no bridging needed).
    """

    sources: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    n_points: int
    n_knn_components: int = 1

    def __post_init__(self) -> None:
        m = self.n_points - 1
        for name in ("sources", "targets", "weights"):
            arr = getattr(self, name)
            if arr.shape != (m,):
                raise ValueError(f"SpanningTree.{name} must have shape ({m},), got {arr.shape}")

    def as_dataeval(self) -> np.ndarray:
        """DataEval's ``mst`` view: float32 (n-1, 3) rows of (source, target, weight).

        Raises
        ------
        IndexOverflowError
            When n >= 2**24: float32 cannot hold those ids exactly; use the int64 arrays.
        """
        if self.n_points > FLOAT32_EXACT_IDS:
            raise IndexOverflowError(
                f"n = {self.n_points} points: a float32 mst would corrupt ids >= 2**24; "
                "use SpanningTree.sources/targets (int64) instead"
            )
        out = np.empty((self.n_points - 1, 3), dtype=np.float32)
        out[:, 0] = self.sources
        out[:, 1] = self.targets
        out[:, 2] = self.weights
        return out
