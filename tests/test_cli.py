"""The demo command, run as a user runs it (a new process with its own local cluster)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_runs_and_reports():
    out = subprocess.run(
        [sys.executable, "-m", "distdataeval.cli", "demo", "--n", "3000", "--d", "16", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    text = out.stdout
    assert "local Dask cluster: 2 worker processes on 127.0.0.1" in text
    found = int(re.search(r"clusters found: (\d+)", text).group(1))
    assert 2 <= found <= 20
    ari = float(re.search(r"\(ARI, planted outliers excluded\): ([0-9.]+)", text).group(1))
    assert ari > 0.95
    assert "Traceback" not in out.stderr


def test_demo_rejects_bad_sizes():
    out = subprocess.run([sys.executable, "-m", "distdataeval.cli", "demo", "--n", "1"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--n must be >= 2" in out.stderr
