"""``distdataeval run`` as a subprocess (``python -m distdataeval`` and ``jobs/run_job.py``):
outputs, progress bars on a terminal, and one clear stderr line for each kind of bad input."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading

import numpy as np
import pytest
import zarr

from distdataeval import cluster, config
from tests.conftest import mixture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N, D = 1200, 6
WORKERS = ["--set", "cluster.local.n-workers=2"]


@pytest.fixture(scope="module")
def input_store(tmp_path_factory):
    x, _ = mixture(N, D, n_centers=3, seed=11)
    path = str(tmp_path_factory.mktemp("cli") / "in.zarr")
    g = zarr.open_group(path, mode="w")
    g.create_array("emb", shape=x.shape, chunks=(300, D), dtype=x.dtype)[...] = x
    g.create_array("other", shape=(10, 2), chunks=(10, 2), dtype="f4")[...] = 0
    return path


def _cli(*args, entry=("-m", "distdataeval", "run"), timeout=300):
    return subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _with_terminal(*args):
    """Run with stderr on a pseudo-terminal (progress bars are drawn only there)."""
    master, slave = pty.openpty()
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "jobs", "run_job.py"), *args], stdout=subprocess.PIPE,
                          stderr=slave, text=True, timeout=300, cwd=ROOT)
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    return proc, b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def quiet_run(input_store, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cli") / "quiet.zarr")
    proc = _cli("--input", f"{input_store}/emb", "--output", out, "--quiet", *WORKERS)
    return out, proc


def test_quiet_run_writes_results_and_only_log_lines(quiet_run, input_store, dask_client):
    out, proc = quiet_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    events = [json.loads(line) for line in lines]  # every stderr line is a JSON event
    assert events[-1]["event"] == "job_complete"
    started = [e for e in events if e["event"] == "cluster"]
    assert len(started) == 1 and "dashboard" in started[0] and len(started[0]["worker_pids"]) == 2
    assert os.path.exists(os.path.join(out, "summary.json"))
    assert os.path.exists(os.path.join(out, "report.html"))
    with config.use_seed(0):
        expected = cluster(input_store, array="emb", client=dask_client)
    np.testing.assert_array_equal(zarr.open_array(out, path="clusters")[...], expected.clusters)
    np.testing.assert_array_equal(zarr.open_array(out, path="k_neighbors")[...], expected.k_neighbors)


def test_jobs_entry_point_on_a_terminal_draws_progress_and_matches(quiet_run, input_store, tmp_path):
    out = str(tmp_path / "tty.zarr")
    proc, terminal = _with_terminal("--input", f"{input_store}/emb", "--output", out, *WORKERS)
    assert proc.returncode == 0, terminal
    for stage in ("validate", "knn", "mst", "stats"):
        assert f"stage {stage} [" in terminal
    assert "tasks" in terminal and "ETA" in terminal
    assert "clusters" in proc.stdout and out in proc.stdout  # the closing human summary
    for name in ("clusters", "membership_strengths", "mst/weights", "stats/distances"):
        np.testing.assert_array_equal(zarr.open_array(out, path=name)[...],
                                      zarr.open_array(quiet_run[0], path=name)[...])


def _one_error_line(proc, *words):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("distdataeval run: error: ")
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_missing_store(tmp_path):
    proc = _cli("--input", str(tmp_path / "absent.zarr"), "--output", str(tmp_path / "o"))
    _one_error_line(proc, "absent.zarr", "does not exist")
    assert not os.path.exists(tmp_path / "o")


def test_wrong_array_name(input_store, tmp_path):
    proc = _cli("--input", f"{input_store}/embz", "--output", str(tmp_path / "o"))
    _one_error_line(proc, "'embz'", "arrays found", "emb")


def test_group_without_array_name(input_store, tmp_path):
    proc = _cli("--input", input_store, "--output", str(tmp_path / "o"))
    _one_error_line(proc, "name the embeddings array", "other")


def test_unknown_profile_key(input_store, tmp_path):
    proc = _cli("--input", f"{input_store}/emb", "--output", str(tmp_path / "o"), "--set", "pipeline.knnn=exact")
    _one_error_line(proc, "pipeline.knnn", "did you mean 'pipeline.knn'")


def test_output_exists(quiet_run, input_store):
    out, _ = quiet_run
    before = zarr.open_array(out, path="clusters")[...]
    proc = _cli("--input", f"{input_store}/emb", "--output", out, "--set", "pipeline.n_clusters=5")
    _one_error_line(proc, "different job", "pipeline.n_clusters", "--overwrite")
    np.testing.assert_array_equal(zarr.open_array(out, path="clusters")[...], before)


def test_output_that_is_not_a_job_output(input_store, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    proc = _cli("--input", f"{input_store}/emb", "--output", str(tmp_path / "mine"), "--overwrite")
    _one_error_line(proc, "not written by 'distdataeval run'")
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]
