"""Fault tests of the batch job, each on real worker processes through the CLI:

(a) one worker process killed (SIGKILL) in the middle of the approximate k-NN stage: the job
    finishes and its outputs equal an undisturbed run's with the same seed;
(b) the whole job process group killed (SIGKILL) once the MST stage is marked complete: the same
    command resumes, skipping the finished stages (stage counters in the store and the log), and
    produces the outputs of an uninterrupted run;
(c) NaN rows far into the store: the job exits non-zero with one clear message and leaves no
    stage marked complete and no result array.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import zarr

from distdataeval import cluster, config
from distdataeval.io.source import open_source
from distdataeval.job.state import StageState
from distdataeval.stats import cluster_stats
from tests.conftest import mixture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKERS = ["--set", "cluster.local.n-workers=2"]
COMPARED = ["k_neighbors", "k_distances", "mst/sources", "mst/targets", "mst/weights", "clusters",
            "membership_strengths", "noise", "linkage/left", "linkage/size", "stats/assigned", "stats/distances",
            "stats/centers"]


def _store(path, x, chunk):
    g = zarr.open_group(str(path), mode="w")
    g.create_array("emb", shape=x.shape, chunks=(chunk, x.shape[1]), dtype=x.dtype)[...] = x
    return f"{path}/emb"


class Job:
    """A ``distdataeval run`` subprocess in its own session; its JSON events read as they come."""

    def __init__(self, *args, env=None):
        # later --set of the same key wins
        self.proc = subprocess.Popen([sys.executable, "-m", "distdataeval", "run", "--quiet", *WORKERS, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        self.events, self.other = [], []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                try:
                    event = json.loads(line)
                    event["_t"] = time.monotonic()
                    self.events.append(event)
                except ValueError:
                    self.other.append(line.rstrip())
                self.cond.notify_all()

    def wait_for(self, predicate, timeout=400):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events:
                    if predicate(e):
                        return e
                if self.proc.poll() is not None and not self.reader.is_alive():
                    raise AssertionError(f"job ended before the event: {self.other}")
                left = deadline - time.monotonic()
                assert left > 0, "timed out waiting for an event"
                self.cond.wait(min(left, 1.0))

    def finish(self, timeout=600):
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return rc

    def kill_group(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.finish()


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _assert_same_outputs(a, b):
    for name in COMPARED:
        np.testing.assert_array_equal(zarr.open_array(str(a), path=name)[...], zarr.open_array(str(b), path=name)[...],
                                      err_msg=name)


def test_a_worker_killed_during_knn(tmp_path):
    x, _ = mixture(16000, 12, n_centers=6, seed=5)
    source = _store(tmp_path / "in.zarr", x, 2000)
    approx = ["--set", "pipeline.knn=approx", "--set", "pipeline.seed=7"]
    # the undisturbed run on one worker (a third pynndescent compilation instead of a fourth;
    # the outputs do not depend on the number of workers)
    calm = Job("--input", source, "--output", str(tmp_path / "calm.zarr"), *approx,
               "--set", "cluster.local.n-workers=1")
    hit = Job("--input", source, "--output", str(tmp_path / "hit.zarr"), *approx)
    pids = hit.wait_for(lambda e: e["event"] == "cluster")["worker_pids"]
    # partitions planned: the builds are submitted now (each waits for its worker's background
    # pynndescent compile, started before validation)
    hit.wait_for(lambda e: "k-NN approx:" in e["message"] and "partitions" in e["message"])
    before = {p: _cpu_ticks(p) for p in pids}
    time.sleep(1.0)
    busiest = max(pids, key=lambda p: _cpu_ticks(p) - before[p])
    os.kill(busiest, signal.SIGKILL)
    killed_at = time.monotonic()
    assert hit.finish() == 0, hit.other
    assert calm.finish() == 0, calm.other
    knn_done = hit.wait_for(lambda e: e["event"] == "stage_complete" and e["stage"] == "knn")
    assert knn_done["_t"] > killed_at  # the worker died while the k-NN stage was running
    _assert_same_outputs(tmp_path / "hit.zarr", tmp_path / "calm.zarr")
    summary = json.loads((tmp_path / "hit.zarr" / "summary.json").read_text())
    assert summary["knn"]["method"] == "approx" and summary["knn"]["recall"] > 0.9
    # recovered by Dask (tasks recomputed on the restarted worker) or, failing that, a stage retry
    retries = [e for e in hit.events if e["event"] == "stage_retry"]
    print(f"worker {busiest} killed; k-NN stage attempts: {summary['stages']['knn']['attempts']}, "
          f"retries: {[e['message'] for e in retries]}")


def test_job_killed_after_mst_resumes(tmp_path, dask_client):
    x, _ = mixture(4000, 8, n_centers=4, seed=9)
    source = _store(tmp_path / "in.zarr", x, 500)
    out = tmp_path / "out.zarr"
    args = ("--input", source, "--output", str(out))
    first = Job(*args, env={"DISTDATAEVAL_HOLD_AFTER_STAGE": "mst:120"})
    first.wait_for(lambda e: e["event"] == "hold" and e["stage"] == "mst")
    first.kill_group()
    assert first.proc.returncode == -signal.SIGKILL
    state = StageState(str(out))
    assert state.completed() == ["knn", "mst", "validate"]
    assert not os.path.exists(out / "summary.json")

    second = Job(*args)
    assert second.finish() == 0, second.other
    skipped = [e["message"] for e in second.events if e["event"] == "stage_skipped"]
    assert skipped == ["stage validate: complete, skipped", "stage knn: complete, skipped",
                       "stage mst: complete, skipped"]
    assert [e["stage"] for e in second.events if e["event"] == "stage_start"] == [
        "labels", "stats", "duplicates", "outliers", "priority"]
    assert [state.marker(s)["computed"] for s in ("validate", "knn", "mst", "labels", "stats")] == [1, 1, 1, 1, 1]

    with config.use_seed(0):
        expected = cluster(source.rsplit("/", 1)[0], array="emb", client=dask_client)
        stats = cluster_stats(open_source(source.rsplit("/", 1)[0], "emb").data, expected.clusters, client=dask_client)
    read = lambda name: zarr.open_array(str(out), path=name)[...]  # noqa: E731
    np.testing.assert_array_equal(read("clusters"), expected.clusters)
    np.testing.assert_array_equal(read("membership_strengths"), expected.membership_strengths)
    np.testing.assert_array_equal(read("k_neighbors"), expected.k_neighbors)
    np.testing.assert_array_equal(read("mst/weights"), expected.spanning_tree.weights)
    np.testing.assert_array_equal(read("linkage/left"), expected.linkage.left)
    np.testing.assert_array_equal(read("stats/distances"), stats.distances)
    np.testing.assert_array_equal(read("stats/dist_mean"), stats.dist_mean)


def test_nan_rows_far_into_the_store(tmp_path):
    x, _ = mixture(6000, 8, seed=2)
    x[5700] = np.nan
    x[5999, 3] = np.inf
    source = _store(tmp_path / "in.zarr", x, 500)
    out = tmp_path / "out.zarr"
    job = Job("--input", source, "--output", str(out))
    assert job.finish() != 0
    # the last line, and the only one of the job's own that is not a JSON event
    assert job.other[-1] == ("distdataeval run: error: embeddings contain NaN or infinite values in 2 of 6000 rows "
                             "(first rows: 5700, 5999); remove or impute them before clustering")
    assert sum(line.startswith("distdataeval") for line in job.other) == 1
    failed = [e for e in job.events if e["event"] == "stage_failed"]
    assert [e["stage"] for e in failed] == ["validate"]
    assert StageState(str(out)).completed() == []
    with warnings.catch_warnings():  # _job/ and summary files are not Zarr nodes (zarr warns)
        warnings.simplefilter("ignore")
        arrays = list(zarr.open_group(str(out), mode="r").array_keys())
    assert arrays == []
    assert not os.path.exists(out / "summary.json")
