"""distdataeval: DataEval's clustering-based data evaluation on Dask.

Public API (DataEval's names): :func:`cluster` returning :class:`ClusterResult`, and
:mod:`distdataeval.config` for seeds.
"""

from distdataeval import config
from distdataeval.api import cluster
from distdataeval.errors import (
    CorruptStoreError,
    DistDataEvalError,
    IndexOverflowError,
    InvalidInputError,
    InvalidParameterError,
    StoreNotFoundError,
    UnknownParameterError,
)
from distdataeval.evaluators.clusterer import Clusterer
from distdataeval.evaluators.duplicates import Duplicates, DuplicatesOutput
from distdataeval.evaluators.label_errors import LabelErrorResult, label_errors
from distdataeval.evaluators.outliers import Outliers, OutliersOutput
from distdataeval.evaluators.prioritize import Prioritize, PrioritizeOutput
from distdataeval.io.source import HighDimensionWarning
from distdataeval.result import ClusterResult
from distdataeval.stats import ClusterStats, cluster_stats

__version__ = "0.1.0"

__all__ = [
    "ClusterResult",
    "Clusterer",
    "ClusterStats",
    "CorruptStoreError",
    "DistDataEvalError",
    "Duplicates",
    "DuplicatesOutput",
    "HighDimensionWarning",
    "IndexOverflowError",
    "InvalidInputError",
    "InvalidParameterError",
    "LabelErrorResult",
    "Outliers",
    "OutliersOutput",
    "Prioritize",
    "PrioritizeOutput",
    "StoreNotFoundError",
    "UnknownParameterError",
    "cluster",
    "cluster_stats",
    "config",
    "label_errors",
]
