"""The demo command, run as a user runs it (a new process with its own local cluster): it writes
a generated dataset to Zarr and runs the batch job on it."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import zarr

from distdataeval.demo import make_mixture


def _demo(tmp_path, *extra):
    return subprocess.run(
        [sys.executable, "-m", "distdataeval.cli", "demo", "--n", "3000", "--d", "16", "--workers", "2",
         "--dir", str(tmp_path), "--quiet", *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_demo_runs_the_job_and_resumes(tmp_path):
    out = _demo(tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    found = int(re.search(r"clusters found: (\d+)", text).group(1))
    assert 2 <= found <= 20
    ari = float(re.search(r"\(ARI, planted outliers excluded\): ([0-9.]+)", text).group(1))
    assert ari > 0.95
    assert "Traceback" not in out.stderr
    # the input is the generator's data, the outputs are the job's
    x, _ = make_mixture(3000, 16, seed=0)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "input.zarr" / "embeddings"), mode="r")[:], x)
    summary = json.loads((tmp_path / "output.zarr" / "summary.json").read_text())
    assert summary["counts"]["rows"] == 3000 and summary["counts"]["clusters"] == found
    assert (tmp_path / "output.zarr" / "report.html").stat().st_size > 10_000
    clusters = zarr.open_array(str(tmp_path / "output.zarr" / "clusters"), mode="r")[:]
    # the rerun resumes: every stage is skipped and the outputs stay identical
    again = _demo(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "stage knn: complete, skipped" in again.stderr
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "output.zarr" / "clusters"), mode="r")[:], clusters)


def test_demo_rejects_bad_sizes():
    out = subprocess.run([sys.executable, "-m", "distdataeval.cli", "demo", "--n", "1"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--n must be >= 2" in out.stderr
