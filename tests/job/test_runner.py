"""The batch job in-process (``run_job``) on a real LocalCluster of 2 worker processes started
from the ``local`` profile: outputs equal the library call's and brute force; resume, invalidation
by a changed parameter, the output rules, and atomicity of a failing stage."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import zarr
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist

from distdataeval import cluster, config
from distdataeval.io.source import open_source
from distdataeval.job import stages as registry
from distdataeval.job.runner import OutputExistsError, run_job
from distdataeval.job.state import StageState
from distdataeval.stats import cluster_stats
from tests.conftest import mixture

N, D, CHUNK = 3000, 8, 500
WORKERS = ["cluster.local.n-workers=2"]

N_ROW_ARRAYS = {  # name: (dtype, trailing shape)
    "clusters": (np.int64, ()), "membership_strengths": (np.float32, ()), "noise": (np.bool_, ()),
    "k_neighbors": (np.int64, (25,)), "k_distances": (np.float32, (25,)),
    "stats/distances": (np.float32, ()), "stats/assigned": (np.int64, ()),
    "duplicates/exact_group": (np.int64, ()), "duplicates/near_group": (np.int64, ()),
    "outliers/scores": (np.float32, ()), "outliers/flags": (np.bool_, ()),
    "priority/order": (np.int64, ()), "priority/scores": (np.float32, ()),
}
EDGE_ARRAYS = {
    "mst/sources": np.int64, "mst/targets": np.int64, "mst/weights": np.float64,
    "linkage/left": np.int64, "linkage/right": np.int64, "linkage/distance": np.float64, "linkage/size": np.int64,
}


@pytest.fixture(scope="module")
def data():
    x, _ = mixture(N, D, n_centers=4, seed=3)
    return x


@pytest.fixture(scope="module")
def input_store(tmp_path_factory, data):
    path = str(tmp_path_factory.mktemp("input") / "in.zarr")
    g = zarr.open_group(path, mode="w")
    a = g.create_array("emb", shape=data.shape, chunks=(CHUNK, D), dtype=data.dtype)
    a[...] = data
    return path


def _run(input_store, out, *extra, overwrite=False, client=None):
    """Run the job; with ``client`` on that cluster, else on the one the local profile starts."""
    stream = io.StringIO()
    summary = run_job(f"{input_store}/emb", str(out), overrides=[*WORKERS, *extra], overwrite=overwrite,
                      quiet=True, stream=stream, client=client)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    return summary, events


def _read(out, name):
    return zarr.open_array(str(out), path=name, mode="r")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, input_store):
    out = tmp_path_factory.mktemp("output") / "out.zarr"
    summary, events = _run(input_store, out)
    return out, summary, events


@pytest.fixture(scope="module")
def reference(dask_client, input_store):
    with config.use_seed(0):
        result = cluster(input_store, array="emb", client=dask_client)
        # the input's own row chunks (reductions are summed block by block, in the same order)
        x = open_source(input_store, "emb").data
        stats = cluster_stats(x, result.clusters, client=dask_client)
    return result, stats


def test_outputs_equal_the_library_call(first_run, reference):
    out, _, _ = first_run
    result, stats = reference
    np.testing.assert_array_equal(_read(out, "clusters")[...], result.clusters)
    np.testing.assert_array_equal(_read(out, "membership_strengths")[...], result.membership_strengths)
    np.testing.assert_array_equal(_read(out, "noise")[...], result.noise)
    np.testing.assert_array_equal(_read(out, "k_neighbors")[...], result.k_neighbors)
    np.testing.assert_array_equal(_read(out, "k_distances")[...], result.k_distances)
    tree = result.spanning_tree
    np.testing.assert_array_equal(_read(out, "mst/sources")[...], tree.sources)
    np.testing.assert_array_equal(_read(out, "mst/targets")[...], tree.targets)
    np.testing.assert_array_equal(_read(out, "mst/weights")[...], tree.weights)
    for name in ("left", "right", "distance", "size"):
        np.testing.assert_array_equal(_read(out, f"linkage/{name}")[...], getattr(result.linkage, name))
    for name in ("cluster_ids", "centers", "counts", "dist_mean", "dist_std", "distances", "assigned"):
        np.testing.assert_array_equal(_read(out, f"stats/{name}")[...], getattr(stats, name))


def test_evaluator_outputs_equal_the_evaluators(first_run, reference, input_store, dask_client):
    from distdataeval.evaluators.duplicates import Duplicates
    from distdataeval.evaluators.outliers import Outliers
    from distdataeval.evaluators.prioritize import Prioritize

    out, summary, _ = first_run
    result, _ = reference
    x = open_source(input_store, "emb").data
    with config.use_seed(0):
        dup = Duplicates(client=dask_client).from_clusters(result, embeddings=x)
        outl = Outliers(client=dask_client).from_clusters(x, result)
        prio = Prioritize(client=dask_client).evaluate(x, cluster_result=result)
    np.testing.assert_array_equal(_read(out, "duplicates/exact_group")[...], dup.exact_group)
    np.testing.assert_array_equal(_read(out, "duplicates/near_group")[...], dup.near_group)
    np.testing.assert_array_equal(_read(out, "outliers/scores")[...], outl.scores)
    np.testing.assert_array_equal(_read(out, "outliers/flags")[...], outl.flags)
    assert _read(out, "outliers/flags").attrs["threshold_rule"] == f"{outl.rule}:{outl.multiplier:g}"
    np.testing.assert_array_equal(_read(out, "priority/order")[...], prio.indices)
    np.testing.assert_array_equal(_read(out, "priority/scores")[...], prio.sample_scores)
    assert summary["counts"]["outliers"] == int(outl.flags.sum())
    assert summary["counts"]["near_duplicates"]["groups"] == int(dup.near_sizes.size)
    # group ids are ordered by each group's smallest row
    near = _read(out, "duplicates/near_group")[...]
    firsts = [int(np.flatnonzero(near == g)[0]) for g in range(int(near.max()) + 1)]
    assert firsts == sorted(firsts) and len(firsts) > 0


def test_knn_and_mst_equal_brute_force(first_run, data):
    out, _, _ = first_run
    x = data.astype(np.float64)
    full = cdist(x, x)
    np.fill_diagonal(full, np.inf)
    expected = np.sort(full, axis=1)[:, :25]
    np.testing.assert_allclose(_read(out, "k_distances")[...], expected, rtol=1e-5, atol=1e-6)
    np.fill_diagonal(full, 0.0)
    total = minimum_spanning_tree(full).sum()
    assert _read(out, "mst/weights")[...].sum() == pytest.approx(total, rel=1e-5)


def test_every_array_has_its_dtype_shape_and_chunking(first_run):
    out, summary, _ = first_run
    for name, (dtype, tail) in N_ROW_ARRAYS.items():
        z = _read(out, name)
        assert z.dtype == dtype, name
        assert z.shape == (N, *tail), name
        assert z.chunks == (CHUNK, *tail), name  # row-chunked like the input
    for name, dtype in EDGE_ARRAYS.items():
        z = _read(out, name)
        assert (z.dtype, z.shape, z.chunks) == (dtype, (N - 1,), (CHUNK,)), name
    k = summary["counts"]["clusters"]
    assert _read(out, "stats/cluster_ids").shape == (k,)
    assert _read(out, "stats/centers").shape == (k, D)
    assert _read(out, "stats/centers").dtype == np.float64
    for name in ("counts", "dist_mean", "dist_std"):
        assert _read(out, f"stats/{name}").shape == (k,)
    assert (_read(out, "stats/counts").dtype, _read(out, "stats/dist_std").dtype) == (np.int64, np.float64)


def test_summary_records_the_run(first_run, reference):
    out, summary, _ = first_run
    result, _ = reference
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["counts"] == summary["counts"]
    assert on_disk["counts"]["clusters"] == result.n_clusters
    assert on_disk["counts"]["noise"] == int(result.noise.sum())
    assert on_disk["input"]["shape"] == [N, D] and on_disk["input"]["dtype"] == "float32"
    assert on_disk["knn"]["method"] == "exact" and on_disk["knn"]["k"] == 25
    assert on_disk["seed"] == 0
    assert on_disk["versions"]["numpy"] == np.__version__
    for stage in ("validate", "knn", "mst", "labels", "stats", "duplicates", "outliers", "priority"):
        assert on_disk["stages"][stage]["status"] == "computed"
        assert on_disk["stages"][stage]["seconds"] >= 0
    assert on_disk["stages"]["knn"]["arrays"]["k_neighbors"]["shape"] == [N, 25]


def test_events_are_structured_and_name_each_stage(first_run):
    _, _, events = first_run
    assert events[0]["event"] == "cluster" and len(events[0]["worker_pids"]) == 2
    assert events[0]["dashboard"] is None or events[0]["dashboard"].startswith("http")
    done = [e["stage"] for e in events if e["event"] == "stage_complete"]
    assert done == ["validate", "knn", "mst", "labels", "stats", "duplicates", "outliers", "priority"]
    assert all({"time", "event", "message"} <= set(e) for e in events)


def test_rerun_of_the_same_job_skips_every_completed_stage(tmp_path, input_store, first_run, dask_client):
    out = tmp_path / "out.zarr"
    _run(input_store, out, client=dask_client)
    before = {s: StageState(str(out)).marker(s) for s in ("knn", "mst", "labels", "stats", "priority")}
    _, events = _run(input_store, out, client=dask_client)
    skipped = [e["message"] for e in events if e["event"] == "stage_skipped"]
    assert "stage knn: complete, skipped" in skipped
    assert not [e for e in events if e["event"] == "stage_start"]
    for stage, marker in before.items():
        assert StageState(str(out)).marker(stage) == marker  # computed once, same run id
    np.testing.assert_array_equal(_read(out, "clusters")[...], _read(first_run[0], "clusters")[...])


def test_changed_parameter_needs_overwrite_and_invalidates_only_dependent_stages(tmp_path, input_store, dask_client):
    out = tmp_path / "out.zarr"
    _run(input_store, out, client=dask_client)
    with pytest.raises(OutputExistsError, match=r"different job \(changed: pipeline\.n_clusters\).*--overwrite"):
        _run(input_store, out, "pipeline.n_clusters=2", client=dask_client)
    _, events = _run(input_store, out, "pipeline.n_clusters=2", overwrite=True, client=dask_client)
    started = [e["stage"] for e in events if e["event"] == "stage_start"]
    assert started == ["labels", "stats", "duplicates", "outliers", "priority"]
    state = StageState(str(out))
    assert [state.marker(s)["computed"] for s in ("validate", "knn", "mst", "labels", "stats")] == [1, 1, 1, 2, 2]
    # an evaluator setting invalidates only its own stage
    _, events = _run(input_store, out, "pipeline.n_clusters=2", "evaluators.outliers.n_std=2.0", overwrite=True,
                     client=dask_client)
    assert [e["stage"] for e in events if e["event"] == "stage_start"] == ["outliers"]
    with config.use_seed(0):
        expected = cluster(input_store, array="emb", n_clusters=2, client=dask_client)
    np.testing.assert_array_equal(_read(out, "clusters")[...], expected.clusters)


def test_an_output_not_written_by_a_job_is_never_replaced(tmp_path, input_store):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match="not written by 'distdataeval run'"):
            _run(input_store, foreign, overwrite=overwrite)
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_a_failing_stage_leaves_no_array_and_no_mark(tmp_path, input_store, monkeypatch, dask_client):
    out = tmp_path / "out.zarr"
    labels = registry.STAGES["labels"]

    def half_then_fail(ctx):
        ctx.write("clusters", np.zeros(ctx.source.n, dtype=np.int64))  # one array committed...
        raise RuntimeError("disk full")  # ...then the stage dies

    monkeypatch.setitem(registry.STAGES, "labels", registry.Stage(
        labels.name, labels.needs, labels.depends, labels.writes, half_then_fail, labels.load))
    monkeypatch.setattr("distdataeval.job.runner.MAX_ATTEMPTS", 1)
    with pytest.raises(RuntimeError, match="disk full"):
        _run(input_store, out, client=dask_client)
    state = StageState(str(out))
    assert state.completed() == ["knn", "mst", "validate"]  # nothing after the failed stage either
    assert not os.path.exists(out / "clusters")
    assert "clusters" not in zarr.open_group(str(out), mode="r").attrs.get("complete", [])
    monkeypatch.undo()
    # leftovers of a killed run: a half-written array and an array of an unmarked stage
    (out / "stats" / ".distances.partial-0123456789ab").mkdir(parents=True)
    zarr.open_group(str(out), mode="a").create_array("stats/counts", shape=(3,), dtype="i8")
    _, events = _run(input_store, out, client=dask_client)  # the same command resumes after the failure
    assert [e["stage"] for e in events if e["event"] == "stage_start"] == [
        "labels", "stats", "duplicates", "outliers", "priority"]
    assert [e["leftovers_removed"] for e in events if e["event"] == "job_start"] == [2]
    assert not (out / "stats" / ".distances.partial-0123456789ab").exists()
    assert _read(out, "clusters").shape == (N,)


def test_progress_line_shows_tasks_elapsed_and_eta():
    from distdataeval.job.progress import format_bar

    line = format_bar("knn", 50, 200, 10.0, width=8)
    assert line == "stage knn [##......] 50/200 tasks 10.0 s ETA 30 s"  # 150 left at 5 tasks/s
    assert format_bar("mst", 0, 0, 0.2, width=4) == "stage mst [....] 0/0 tasks 0.2 s ETA ?"
    assert format_bar("mst", 7, 7, 3.0, width=4).endswith("7/7 tasks 3.0 s ETA 0 s")
