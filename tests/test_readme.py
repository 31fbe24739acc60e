"""The README's evaluator example runs as written (names, signatures and attributes exist)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tests.conftest import mixture

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_evaluator_example_runs(dask_client):
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Evaluators"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    x, labels = mixture(600, d=6, n_centers=4, seed=3)
    x[:5] = x[5:10]  # a few exact duplicates
    import distdataeval as dde

    result = dde.cluster(x)
    namespace = {"x": x, "labels": labels, "result": result}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["km"].clusters.max() + 1 <= int(np.sqrt(600))
    assert [0, 5] in namespace["dup"].exact
    assert set(namespace["legacy"]) == {"outliers", "potential_outliers", "duplicates", "near_duplicates"}
    assert namespace["pri"].indices.shape == (600,)
