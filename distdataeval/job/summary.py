"""``summary.json``: the machine-readable record of a job (parameters, seed, versions, per-stage
timings and sizes, counts, k-NN method and recall, input)."""

from __future__ import annotations

import os
import time

from distdataeval.job.state import write_json_atomic

SUMMARY_FILE = "summary.json"


def build_summary(ctx, identity: dict, params: dict, evaluators: dict, stages: dict, versions: dict,
                  wall_seconds: float, dashboard: str | None) -> dict:
    """The summary of a finished run (see the module docstring for its sections).

    Parameters
    ----------
    ctx : JobContext
    identity : dict
        Input identity (path, shape, dtype, chunks).
    params, evaluators : dict
        Resolved pipeline parameters and evaluator settings.
    stages : dict
        Per-stage status, seconds, tasks and written arrays.
    versions : dict
    wall_seconds : float
    dashboard : str or None

    Returns
    -------
    dict
    """
    markers = ctx.markers
    knn = markers.get("knn", {})
    labels = markers.get("labels", {})
    counts = {"rows": ctx.source.n, "clusters": labels.get("n_clusters"), "noise": labels.get("n_noise")}
    store = ctx.store
    dup = markers.get("duplicates")
    if dup:
        counts["exact_duplicates"] = {"groups": dup["exact_groups"], "rows": dup["exact_rows"]}
        counts["near_duplicates"] = {"groups": dup["near_groups"], "rows": dup["near_rows"],
                                     "method": dup.get("near_method")}
    if markers.get("outliers"):
        counts["outliers"] = markers["outliers"]["outliers"]
        counts["outlier_threshold_rule"] = markers["outliers"]["threshold_rule"]
    return {
        "input": {"path": identity["path"], "shape": identity["shape"], "dtype": identity["dtype"],
                  "chunk_rows": identity["chunks"]},
        "output": os.path.abspath(store.store),
        "parameters": {"pipeline": {k: v for k, v in params.items() if not k.startswith("_")},
                       "evaluators": evaluators,
                       "resolved": {"knn": ctx.plan.knn, "algorithm": ctx.plan.algorithm,
                                    "min_cluster_size": ctx.plan.min_cluster_size,
                                    "max_cluster_size": ctx.plan.max_cluster_size,
                                    "n_clusters": ctx.plan.n_clusters, "chunk_rows": ctx.chunk_rows}},
        "seed": params.get("seed"),
        "versions": versions,
        "knn": {"method": knn.get("method"), "k": knn.get("k"), "recall": knn.get("recall"),
                "uncertified_rows": knn.get("uncertified"),
                "n_knn_components": markers.get("mst", {}).get("n_knn_components")},
        "counts": counts,
        "stages": stages,
        "wall_seconds": round(wall_seconds, 3),
        "dashboard": dashboard,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_summary(output: str, summary: dict) -> str:
    """Write ``summary.json`` into the output store's directory (atomically); return its path."""
    path = os.path.join(output, SUMMARY_FILE)
    write_json_atomic(path, summary)
    return path
