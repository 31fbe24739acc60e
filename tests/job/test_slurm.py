"""A real single-node SLURM (Debian slurm-wlm + munge on localhost, started by .ci/start-slurm.sh):
the batch job runs through the ``slurm`` profile, dask-jobqueue submitting the Dask workers as
SLURM jobs, and its outputs equal a local run's.

These tests fail (they do not skip) when SLURM cannot be started: CI runs them for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.conftest import mixture

# the output store also holds summary.json, report.html and the job's state folder
pytestmark = pytest.mark.filterwarnings("ignore:Object at .* is not recognized:UserWarning")

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / ".ci" / "start-slurm.sh"


@pytest.fixture(scope="module")
def slurm():
    """Start (or find) the single-node SLURM; fail loudly if it cannot run here."""
    out = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f".ci/start-slurm.sh failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    info = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T %c"], capture_output=True, text=True, check=True)
    name, state, cpus = info.stdout.split()
    assert state in ("idle", "mixed") and int(cpus) >= 2, info.stdout
    return name


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A small Zarr input: 600 x 8 float32 rows of a Gaussian mixture, chunks of 200 rows."""
    path = tmp_path_factory.mktemp("slurm") / "emb.zarr"
    x, _ = mixture(600, d=8, n_centers=4, seed=3)
    group = zarr.open_group(str(path), mode="w")
    arr = group.create_array("x", shape=x.shape, chunks=(200, 8), dtype="float32")
    arr[:] = x
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distdataeval", "run", "--quiet", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=900)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    out = {}
    root = zarr.open_group(str(path), mode="r")

    def walk(group, prefix=""):
        for name, arr in group.arrays():
            out[prefix + name] = arr[...]
        for name, sub in group.groups():
            walk(sub, prefix + name + "/")

    walk(root)
    return out


def _squeue_jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()


def test_job_through_slurm_profile_equals_local_run(slurm, store, tmp_path):
    logs = tmp_path / "worker-logs"
    logs.mkdir()
    common = ["--input", f"{store}/x", "--set", "pipeline.seed=7", "--set", "pipeline.knn=exact"]
    local = _run("--profile", "local", "--set", "cluster.local.n-workers=2", "--output", str(tmp_path / "local.zarr"),
                 *common, cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    on_slurm = _run(
        "--profile", str(ROOT / "conf" / "slurm.yaml"),
        "--set", "cluster.slurm.scheduler-options={host: 127.0.0.1}",  # the single node: loopback
        "--set", "cluster.slurm.memory=1GiB",
        "--set", "cluster.slurm.n-workers=2",
        "--set", f"cluster.slurm.log-directory={logs}",
        "--set", "cluster.slurm.walltime='00:10:00'",
        "--output", str(tmp_path / "slurm.zarr"),
        *common,
        cwd=tmp_path,
    )
    assert on_slurm.returncode == 0, on_slurm.stderr

    # the workers ran as SLURM jobs: dask-jobqueue's job logs, one per worker job, each naming the
    # SLURM job id and the scheduler on loopback; none is left in the queue
    outs = sorted(logs.glob("dask-worker-*.out")) + sorted(logs.glob("dask-worker-*.err"))
    job_ids = {p.stem.split("-")[-1] for p in outs}
    assert len(job_ids) == 2, [p.name for p in outs]
    text = "".join(p.read_text() for p in outs)
    assert "Registered to:" in text and "tcp://127.0.0.1:" in text
    assert [j for j in _squeue_jobs() if j.split()[0] in job_ids] == []

    # the same arrays, equal values
    a, b = _arrays(tmp_path / "local.zarr"), _arrays(tmp_path / "slurm.zarr")
    assert set(a) == set(b)
    assert {"clusters", "k_neighbors", "k_distances", "mst/weights", "linkage/left"} <= set(a)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # and they are a real clustering of the planted mixture, not an empty agreement
    assert len(np.unique(a["clusters"])) >= 2


def test_rendered_sbatch_script_runs_the_job(slurm, store, tmp_path):
    """The rendered sbatch script itself, submitted with sbatch: the job process runs on the
    node and submits its worker job to the same SLURM (2 CPUs: one for each)."""
    from distdataeval.job.profiles import load_profile
    from distdataeval.job.render import render_sbatch

    logs = tmp_path / "worker-logs"
    logs.mkdir()
    sets = [
        "cluster.slurm.scheduler-options={host: 127.0.0.1}",
        "cluster.slurm.n-workers=1",
        "cluster.slurm.memory=1GiB",
        f"cluster.slurm.log-directory={logs}",
        "cluster.slurm.walltime='00:10:00'",
        "job.memory=2GiB",
        "job.walltime='00:15:00'",
        f"job.job-script-prologue=[cd {tmp_path}]",
        "pipeline.seed=7",
        "pipeline.knn=exact",
    ]
    profile = load_profile(ROOT / "conf" / "slurm.yaml", sets)
    script = tmp_path / "job.sbatch"
    script.write_text(render_sbatch(profile, str(ROOT / "conf" / "slurm.yaml"), f"{store}/x", str(tmp_path / "out.zarr")))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    assert shutil.which("distdataeval", path=env["PATH"]), "the distdataeval command must be on PATH"
    out = subprocess.run(["sbatch", "--wait", "--parsable", f"--chdir={tmp_path}", str(script)],
                         capture_output=True, text=True, env=env, timeout=900)
    job_log = "".join(p.read_text() for p in tmp_path.glob("distdataeval-*.log"))
    assert out.returncode == 0, f"{out.stderr}\n{job_log}"
    assert (tmp_path / "out.zarr" / "summary.json").is_file(), job_log
    # the worker job was submitted from inside the job
    assert len(list(logs.glob("dask-worker-*.out"))) == 1

    # equal to a local run of the same settings
    local = _run("--profile", "local", "--set", "cluster.local.n-workers=2", "--set", "pipeline.seed=7",
                 "--set", "pipeline.knn=exact", "--input", f"{store}/x", "--output", str(tmp_path / "local.zarr"),
                 cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    a, b = _arrays(tmp_path / "local.zarr"), _arrays(tmp_path / "out.zarr")
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
