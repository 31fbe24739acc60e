"""The job's stages: a registry of what each stage computes, needs, depends on and writes.

Each :class:`Stage` declares its name, the job parameters its result depends on, the stages it
needs, and the arrays it writes into the output store. ``run`` computes the stage and writes its
arrays (each committed atomically by :class:`~distdataeval.io.sink.ResultStore`); ``load``
restores the stage's in-memory product from the store when a resumed run skipped it but a later
stage needs it. A stage whose implementation is not in this tree (an evaluator that has not
landed) reports itself unavailable and the job goes on without it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from distdataeval.errors import InvalidParameterError


@dataclass
class JobContext:
    """What stages share during one run.

    Attributes
    ----------
    source : Source
        The (lazy) input.
    plan : ClusterPlan
        Validated clustering parameters.
    client : distributed.Client
    store : ResultStore
        The output store.
    params : dict
        Resolved pipeline parameters (profile + overrides).
    evaluators : dict
        Evaluator settings by evaluator name.
    markers : dict
        Stage name -> its completion marker (info recorded when it was computed).
    """

    source: object
    plan: object
    client: object
    store: object
    params: dict
    evaluators: dict
    markers: dict = field(default_factory=dict)
    products: dict = field(default_factory=dict)

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk of every n-row output array (the processed row blocks)."""
        return int(max(self.source.data.chunks[0]))

    def product(self, name: str):
        """The in-memory result of stage ``name`` (computed this run, or loaded from the store)."""
        if name not in self.products:
            self.products[name] = STAGES[name].load(self)
        return self.products[name]

    def write(self, name: str, values) -> None:
        """Write a driver-held array (n or n-1 rows chunked like the input; others one chunk)."""
        values = np.asarray(values)
        self.store.write_numpy(name, values, self.chunk_rows)


@dataclass(frozen=True)
class Stage:
    """One stage of the job.

    Attributes
    ----------
    name : str
    needs : tuple of str
        Stages whose results this one reads (their run ids enter this stage's hash).
    depends : callable
        ``depends(ctx) -> dict``: the parameters the stage's result depends on.
    writes : callable
        ``writes(ctx) -> list[str]``: the arrays it writes.
    run : callable
        ``run(ctx) -> (product, info)``; ``info`` (JSON-able) is kept in the stage's marker.
    load : callable
        ``load(ctx) -> product`` from the store of a completed stage.
    available : callable
        ``available() -> bool``: its implementation exists in this tree.
    """

    name: str
    needs: tuple
    depends: Callable
    writes: Callable
    run: Callable
    load: Callable
    available: Callable = lambda: True
    optional: bool = False


def _has(module: str, attr: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), attr)
    except ImportError:
        return False


# ----------------------------------------------------------------------------- validate

def _validate_run(ctx):
    from distdataeval import pipeline

    prepared = pipeline.prepare(ctx.source, ctx.plan, ctx.client)
    return prepared, {"n": prepared.n, "d": prepared.d}


VALIDATE = Stage(
    name="validate",
    needs=(),
    depends=lambda ctx: {"input": ctx.params["_input_identity"], "knn": ctx.plan.knn},
    writes=lambda ctx: [],
    run=_validate_run,
    load=lambda ctx: _validate_run(ctx)[0],
)


def _validated_rows(ctx):
    """The validated input for stages that only read rows lazily (labels): this run's prepared
    blocks if they exist, else the source without persisted blocks (its validation is the
    completed validate stage of the same input), so a resumed run does not hold the data."""
    if "validate" in ctx.products:
        return ctx.products["validate"]
    from distdataeval import pipeline

    return pipeline.Prepared(ctx.source, [], tuple(int(c) for c in ctx.source.data.chunks[0]))


# ----------------------------------------------------------------------------- k-NN

def _knn_depends(ctx) -> dict:
    p = ctx.plan
    dep = {"knn": p.knn, "k": min(25, ctx.source.n - 1)}
    if p.knn == "approx":
        dep.update(seed=ctx.params["seed"], overlap=p.overlap, partition_rows=p.partition_rows,
                   partition_sample=p.partition_sample, recall_target=p.recall_target, border=p.border,
                   neighbor_factor=p.neighbor_factor, max_candidates=p.max_candidates, escalate=p.escalate)
    return dep


def _knn_run(ctx):
    from distdataeval import pipeline

    graph = pipeline.knn_stage(ctx.product("validate"), ctx.plan, ctx.client, sink=ctx.store)
    info = {"method": graph.method, "recall": graph.recall, "uncertified": int(graph.uncertified),
            "k": int(graph.k_neighbors.shape[1])}
    return graph, info


def _knn_load(ctx):
    from distdataeval import pipeline

    info = ctx.markers.get("knn", {})
    return pipeline.KnnGraph.from_store(ctx.store, info.get("method", ctx.plan.knn), info.get("recall"))


KNN = Stage(
    name="knn",
    needs=("validate",),
    depends=_knn_depends,
    writes=lambda ctx: ["k_neighbors", "k_distances"],
    run=_knn_run,
    load=_knn_load,
)


# ----------------------------------------------------------------------------- MST

def _mst_run(ctx):
    from distdataeval import pipeline

    tree = pipeline.mst_stage(ctx.product("validate"), ctx.product("knn"), ctx.plan, ctx.client, sink=ctx.store)
    return tree, {"n_knn_components": int(tree.n_knn_components), "total_weight": float(tree.weights.sum())}


def _mst_load(ctx):
    from distdataeval import pipeline

    info = ctx.markers.get("mst", {})
    return pipeline.spanning_tree_from_store(ctx.store, ctx.source.n, int(info.get("n_knn_components", 1)))


MST = Stage(
    name="mst",
    needs=("knn",),
    depends=lambda ctx: {"knn": ctx.plan.knn},
    writes=lambda ctx: ["mst/sources", "mst/targets", "mst/weights"],
    run=_mst_run,
    load=_mst_load,
)


# ----------------------------------------------------------------------------- labels

LABEL_ARRAYS = ["clusters", "membership_strengths", "noise",
                "linkage/left", "linkage/right", "linkage/distance", "linkage/size"]


def _labels_depends(ctx) -> dict:
    p = ctx.plan
    dep = {"algorithm": p.algorithm, "min_cluster_size": p.min_cluster_size,
           "max_cluster_size": p.max_cluster_size, "reassign_noise": p.reassign_noise}
    if p.algorithm == "kmeans":
        dep.update(n_clusters=p.n_clusters, n_init=p.n_init, seed=ctx.params["seed"])
    return dep


def _labels_run(ctx):
    from distdataeval import pipeline

    lab = pipeline.labels_stage(_validated_rows(ctx), ctx.product("mst"), ctx.plan, ctx.client)
    ctx.write("clusters", np.asarray(lab.clusters, dtype=np.int64))
    ctx.write("membership_strengths", np.asarray(lab.membership, dtype=np.float32))
    ctx.write("noise", np.asarray(lab.noise, dtype=bool))
    link = lab.linkage
    ctx.write("linkage/left", np.asarray(link.left, dtype=np.int64))
    ctx.write("linkage/right", np.asarray(link.right, dtype=np.int64))
    ctx.write("linkage/distance", np.asarray(link.distance, dtype=np.float64))
    ctx.write("linkage/size", np.asarray(link.size, dtype=np.int64))
    clusters = np.asarray(lab.clusters)
    info = {"n_clusters": int(np.unique(clusters[clusters >= 0]).size), "n_noise": int(np.asarray(lab.noise).sum()),
            "algorithm": ctx.plan.algorithm, "min_cluster_size": int(ctx.plan.min_cluster_size)}
    return lab, info


def _labels_load(ctx):
    from distdataeval import pipeline
    from distdataeval.tree.records import LinkageTree

    get = lambda name: np.asarray(ctx.store.read_dask(name).compute())  # noqa: E731 - O(n) arrays
    clusters = get("clusters")
    noise = get("noise")
    raw = np.where(noise, -1, clusters)
    link = LinkageTree(get("linkage/left"), get("linkage/right"), get("linkage/distance"), get("linkage/size"))
    return pipeline.Labels(clusters, get("membership_strengths"), noise, raw, link)


LABELS = Stage(
    name="labels",
    needs=("mst",),
    depends=_labels_depends,
    writes=lambda ctx: list(LABEL_ARRAYS),
    run=_labels_run,
    load=_labels_load,
)


# ----------------------------------------------------------------------------- stats

STATS_ARRAYS = ["stats/cluster_ids", "stats/centers", "stats/counts", "stats/dist_mean", "stats/dist_std",
                "stats/distances", "stats/assigned"]


def _stats_run(ctx):
    from distdataeval.stats import cluster_stats

    labels = ctx.product("labels")
    s = cluster_stats(ctx.source.data, np.asarray(labels.clusters), client=ctx.client)
    for name in STATS_ARRAYS:
        ctx.write(name, getattr(s, name.split("/", 1)[1]))
    return s, {"n_clusters": int(s.cluster_ids.size)}


def _stats_load(ctx):
    from distdataeval.stats import ClusterStats

    get = lambda name: np.asarray(ctx.store.read_dask(name).compute())  # noqa: E731
    return ClusterStats(**{name.split("/", 1)[1]: get(name) for name in STATS_ARRAYS})


STATS = Stage(
    name="stats",
    needs=("labels",),
    depends=lambda ctx: {"reassign": "all"},
    writes=lambda ctx: list(STATS_ARRAYS),
    run=_stats_run,
    load=_stats_load,
    available=lambda: _has("distdataeval.stats", "cluster_stats"),
)


# ----------------------------------------------------------------------------- registry

STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Add a stage to the registry (after the stages it needs)."""
    missing = [s for s in stage.needs if s not in STAGES]
    if missing:
        raise InvalidParameterError(f"stage {stage.name!r} needs unknown stages {missing}")
    STAGES[stage.name] = stage
    return stage


for _stage in (VALIDATE, KNN, MST, LABELS, STATS):
    register(_stage)



# ----------------------------------------------------------------------------- evaluators

def _settings(ctx, name: str) -> dict:
    """The evaluator's keyword arguments (its profile section without ``enabled``)."""
    return {k.replace("-", "_"): v for k, v in (ctx.evaluators.get(name) or {}).items() if k != "enabled"}


def _cluster_result(ctx):
    """A :class:`~distdataeval.result.ClusterResult` assembled from the knn, mst and labels stages."""
    from distdataeval.result import ClusterResult

    graph, tree, lab = ctx.product("knn"), ctx.product("mst"), ctx.product("labels")
    return ClusterResult(
        clusters=np.asarray(lab.clusters), membership_strengths=np.asarray(lab.membership),
        k_neighbors=graph.k_neighbors, k_distances=graph.k_distances, spanning_tree=tree, linkage=lab.linkage,
        noise=np.asarray(lab.noise), raw_labels=np.asarray(lab.raw_labels),
        min_cluster_size=ctx.plan.min_cluster_size, knn_method=graph.method,
        n_knn_components=tree.n_knn_components, knn_recall=graph.recall, algorithm=ctx.plan.algorithm,
    )


def _duplicates_run(ctx):
    from distdataeval.evaluators.duplicates import Duplicates

    out = Duplicates(**_settings(ctx, "duplicates"), client=ctx.client).from_clusters(
        _cluster_result(ctx), embeddings=ctx.source.data)
    ctx.write("duplicates/exact_group", out.exact_group)
    ctx.write("duplicates/near_group", out.near_group)
    return None, {"exact_groups": int(out.exact_sizes.size), "exact_rows": int(out.exact_sizes.sum()),
                  "near_groups": int(out.near_sizes.size), "near_rows": int(out.near_sizes.sum()),
                  "near_method": out.near_method}


DUPLICATES = Stage(
    name="duplicates",
    needs=("labels",),
    depends=lambda ctx: _settings(ctx, "duplicates"),
    writes=lambda ctx: ["duplicates/exact_group", "duplicates/near_group"],
    run=_duplicates_run,
    load=lambda ctx: None,
    available=lambda: _has("distdataeval.evaluators.duplicates", "Duplicates"),
    optional=True,
)


def _outliers_run(ctx):
    import zarr

    from distdataeval.evaluators.outliers import Outliers

    out = Outliers(**_settings(ctx, "outliers"), client=ctx.client).from_clusters(ctx.source.data, _cluster_result(ctx))
    rule = f"{out.rule}:{out.multiplier:g}"
    ctx.write("outliers/scores", np.asarray(out.scores, dtype=np.float32))
    ctx.write("outliers/flags", np.asarray(out.flags, dtype=bool))
    for path in ("outliers", "outliers/scores", "outliers/flags"):
        zarr.open(ctx.store.store, path=path, mode="r+").attrs["threshold_rule"] = rule
    return None, {"outliers": int(out.flags.sum()), "threshold_rule": rule}


OUTLIERS = Stage(
    name="outliers",
    needs=("labels",),
    depends=lambda ctx: _settings(ctx, "outliers"),
    writes=lambda ctx: ["outliers/scores", "outliers/flags"],
    run=_outliers_run,
    load=lambda ctx: None,
    available=lambda: _has("distdataeval.evaluators.outliers", "Outliers"),
    optional=True,
)


def _priority_run(ctx):
    import zarr

    from distdataeval.evaluators.prioritize import Prioritize

    settings = _settings(ctx, "priority")
    result = _cluster_result(ctx)
    method = settings.get("method", "knn")
    sized = settings.get("c") is not None or settings.get("max_cluster_size") is not None
    if method != "knn" and (method.split("_")[0] != ctx.plan.algorithm or sized):
        result = None  # the clustering is reused only where it is the one the method asks for
    out = Prioritize(**settings, client=ctx.client).evaluate(ctx.source.data, cluster_result=result)
    ctx.write("priority/order", np.asarray(out.indices, dtype=np.int64))
    written = ["order"]
    if out.sample_scores is not None:
        ctx.write("priority/scores", np.asarray(out.sample_scores, dtype=np.float32))
        zarr.open(ctx.store.store, path="priority/scores", mode="r+").attrs["indexed_by"] = "row"
        written.append("scores")
    return None, {"method": out.method, "policy": out.policy, "order": out.order, "arrays": written}


PRIORITY = Stage(
    name="priority",
    needs=("labels",),
    depends=lambda ctx: {**_settings(ctx, "priority"), "seed": ctx.params["seed"]},
    writes=lambda ctx: ["priority/order", "priority/scores"],
    run=_priority_run,
    load=lambda ctx: None,
    available=lambda: _has("distdataeval.evaluators.prioritize", "Prioritize"),
    optional=True,
)

for _stage in (DUPLICATES, OUTLIERS, PRIORITY):
    register(_stage)


def plan_for(source, params: dict):
    """The :class:`~distdataeval.pipeline.ClusterPlan` of ``params`` for ``source`` (the same rules
    as :func:`distdataeval.cluster`), and the source to process (coarsened in approx mode)."""
    import warnings

    from distdataeval import api

    checked = api.check_cluster_params(params["algorithm"], params["knn"], params["reassign_noise"],
                                       params["n_clusters"], params["max_cluster_size"], params["n_init"],
                                       prefix="pipeline.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the ignored max_cluster_size: the job logs its plan
        return api.plan_for(source, checked, coarsen=params.get("chunk_rows") is None)
