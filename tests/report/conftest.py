"""A real small run written to an output store, plus evaluator-shaped arrays computed in NumPy."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from tests.conftest import mixture

N = 2000
D = 6
CHUNK = 300  # several row blocks, so every blockwise reduction has something to combine
EXACT_COPIES = {5: (700, 1500), 300: (1200,)}


@dataclass
class RunStore:
    path: str
    x: np.ndarray
    arrays: dict
    summary: dict
    min_cluster_size: int


def groups_from_labels(labels: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Group ids 0.. ordered by each group's smallest row; -1 for rows not in a group of >= 2."""
    out = np.full(labels.shape[0], -1, dtype=np.int64)
    rows = np.flatnonzero(member)
    uniq, first, counts = np.unique(labels[rows], return_index=True, return_counts=True)
    keep = counts >= 2
    order = np.argsort(rows[first[keep]])
    new_id = np.full(uniq.shape[0], -1, dtype=np.int64)
    new_id[np.flatnonzero(keep)[order]] = np.arange(order.shape[0])
    out[rows] = new_id[np.searchsorted(uniq, labels[rows])]
    return out


def evaluator_arrays(x: np.ndarray, clusters: np.ndarray, knn: np.ndarray, kdist: np.ndarray) -> dict:
    """Duplicates and outliers the way the evaluators lay them out, computed here in NumPy/SciPy."""
    n = x.shape[0]
    _, inverse, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    exact = groups_from_labels(inverse.ravel(), counts[inverse.ravel()] >= 2)
    # near: pairs (i, nn(i)) closer than the 2 % distance quantile, joined transitively
    d0 = kdist[:, 0].astype(np.float64)
    flagged = np.flatnonzero((d0 < np.quantile(d0, 0.02)) & (d0 > 0))
    graph = coo_matrix((np.ones(flagged.shape[0]), (flagged, knn[flagged, 0])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    in_pair = np.zeros(n, bool)
    in_pair[flagged] = True
    in_pair[knn[flagged, 0]] = True
    near = groups_from_labels(comp, in_pair)
    # outliers: z-score of the distance to the cluster mean, within the cluster
    labels = np.where(clusters < 0, clusters.max() + 1, clusters)
    centres = np.stack([x[labels == c].mean(axis=0) for c in range(labels.max() + 1)])
    dist = np.linalg.norm(x - centres[labels], axis=1)
    mean = np.array([dist[labels == c].mean() for c in range(labels.max() + 1)])
    std = np.array([dist[labels == c].std() for c in range(labels.max() + 1)])
    scores = ((dist - mean[labels]) / std[labels]).astype(np.float32)
    return {
        "duplicates/exact_group": exact,
        "duplicates/near_group": near,
        "outliers/scores": scores,
        "outliers/flags": scores > 2.5,
    }


@pytest.fixture(scope="session")
def run_store(tmp_path_factory, dask_client) -> RunStore:
    from distdataeval import cluster
    from distdataeval.io.sink import ResultStore

    x, _ = mixture(N, d=D, n_centers=4, seed=3)
    for src, copies in EXACT_COPIES.items():
        for dst in copies:
            x[dst] = x[src]
    result = cluster(x, knn="exact", reassign_noise=False)
    arrays = {
        "clusters": np.asarray(result.clusters, np.int64),
        "membership_strengths": np.asarray(result.membership_strengths, np.float32),
        "noise": np.asarray(result.noise, bool),
        "k_neighbors": np.asarray(result.k_neighbors, np.int64),
        "k_distances": np.asarray(result.k_distances, np.float32),
        "mst/sources": result.spanning_tree.sources,
        "mst/targets": result.spanning_tree.targets,
        "mst/weights": result.spanning_tree.weights,
        "linkage/left": result.linkage.left,
        "linkage/right": result.linkage.right,
        "linkage/distance": result.linkage.distance,
        "linkage/size": result.linkage.size,
    }
    arrays.update(evaluator_arrays(x, arrays["clusters"], arrays["k_neighbors"], arrays["k_distances"]))
    path = str(tmp_path_factory.mktemp("report") / "run.zarr")
    store = ResultStore(path)
    for name, values in arrays.items():
        store.write_numpy(name, np.asarray(values), CHUNK)
    store.group["outliers"].attrs["threshold_rule"] = "z-score > 2.5 <within cluster>"
    summary = {
        "parameters": {"min_cluster_size": int(result.min_cluster_size), "knn": "exact", "note": "<b>bold</b> & co"},
        "seed": 0,
        "input": {"path": "<script>alert('x')</script>", "shape": [N, D], "dtype": "float32"},
        "timings": {"knn": 0.5, "mst": 0.25},
    }
    with open(f"{path}/summary.json", "w", encoding="utf-8") as fh:
        json.dump(summary, fh)
    return RunStore(path, x, arrays, summary, int(result.min_cluster_size))


def copy_store(src: str, dst: str, keep: tuple[str, ...], summary: bool = True) -> str:
    """A store holding only the arrays in ``keep`` (copied from ``src``)."""
    import zarr

    from distdataeval.io.sink import ResultStore

    out = ResultStore(dst)
    group = zarr.open_group(src, mode="r")
    for name in keep:
        arr = group[name]
        out.write_numpy(name, arr[...], arr.chunks[0])
    if summary:
        with open(f"{src}/summary.json", encoding="utf-8") as fh, open(f"{dst}/summary.json", "w", encoding="utf-8") as out_fh:
            out_fh.write(fh.read())
    return dst
