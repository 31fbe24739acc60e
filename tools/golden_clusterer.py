"""Generate golden outputs of DataEval 0.61.0's legacy ``Clusterer`` (spec §8, §9.6).

DataEval 0.61.0's ``Clusterer`` lives in one module that needs only NumPy and SciPy, so it is
loaded straight from the wheel by file path (no torch, no install):

    pip download --no-deps dataeval==0.61.0 -d /tmp/de061
    python tools/golden_clusterer.py --wheel /tmp/de061/dataeval-0.61.0-py3-none-any.whl

Writes ``tests/golden/clusterer_<id>.npz``; each file holds the input ``x`` and the outputs:
``lgml_keys``/``lgml_values`` (last_good_merge_levels in insertion order), ``outliers``,
``potential_outliers``, and ``duplicates``/``near_duplicates`` as flat members plus group offsets
(``*_flat``, ``*_offsets``). Never imported by the package or its tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MODULE = "dataeval/_internal/detectors/clusterer.py"
OUT = Path(__file__).resolve().parents[1] / "tests" / "golden"


def load_clusterer(wheel: Path):
    tmp = Path(tempfile.mkdtemp(prefix="de061-"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(MODULE, tmp)
    spec = importlib.util.spec_from_file_location("de061_clusterer", tmp / MODULE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Clusterer


def blobs_plus_far(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(loc=(0, 0), scale=0.3, size=(50, 2))
    b = rng.normal(loc=(5, 5), scale=0.3, size=(50, 2))
    far = [[20, 20], [-15, 10], [10, -20]]
    return np.concatenate([a, b, far]).astype(np.float64)


def dup_data(seed: int = 0) -> np.ndarray:
    x = blobs_plus_far(seed)
    return np.concatenate([x, [x[0], x[60], x[10] + 1e-3]])


def mixture(n: int, d: int, n_centers: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, spread, (n_centers, d))
    labels = rng.integers(0, n_centers, n)
    return centers[labels] + rng.normal(0.0, 1.0, (n, d))


def scenarios() -> dict[str, np.ndarray]:
    from sklearn.datasets import make_blobs

    out = {"L1": blobs_plus_far(0), "L2": dup_data(0)}
    base = make_blobs(n_samples=50, centers=[(-1, -1), (1, 1)], cluster_std=0.5, random_state=33)[0]
    l3 = base.copy()
    l3[9] = l3[24]
    l3[23] = l3[48]
    l3[1] = l3[11] + 1e-2
    out["L3"], out["L3b"] = l3, base
    rng = np.random.default_rng(1)
    for n in (2, 3, 5, 10):
        out[f"L4_n{n}"] = rng.normal(size=(n, 3))
    out["L5"] = np.ones((20, 4))
    out["L8"] = np.random.default_rng(4).uniform(size=(200, 8))
    # beyond the spec's table: larger tie-free data with many cluster-cluster merges
    out["M1"] = mixture(600, 8, 5, 6.0, seed=0)
    out["M2"] = mixture(1500, 16, 12, 4.0, seed=1)
    out["M3"] = np.random.default_rng(5).normal(size=(800, 3))
    return out


def flatten_groups(groups) -> tuple[np.ndarray, np.ndarray]:
    flat = np.array([int(i) for g in groups for i in g], dtype=np.int64)
    offsets = np.cumsum([0] + [len(g) for g in groups]).astype(np.int64)
    return flat, offsets


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help="dataeval-0.61.0 wheel")
    args = parser.parse_args(argv)
    clusterer_cls = load_clusterer(args.wheel)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, x in scenarios().items():
        c = clusterer_cls(x)
        res = c.evaluate()
        lg = c.last_good_merge_levels
        dup_flat, dup_off = flatten_groups(res["duplicates"])
        near_flat, near_off = flatten_groups(res["near_duplicates"])
        np.savez_compressed(
            OUT / f"clusterer_{name}.npz",
            x=x,
            lgml_keys=np.array([int(k) for k in lg], dtype=np.int64),
            lgml_values=np.array([int(v) for v in lg.values()], dtype=np.int64),
            outliers=np.array([int(i) for i in res["outliers"]], dtype=np.int64),
            potential_outliers=np.array([int(i) for i in res["potential_outliers"]], dtype=np.int64),
            duplicates_flat=dup_flat,
            duplicates_offsets=dup_off,
            near_duplicates_flat=near_flat,
            near_duplicates_offsets=near_off,
        )
        print(f"{name}: n={len(x)} lgml={len(lg)} outliers={len(res['outliers'])} "
              f"potential={len(res['potential_outliers'])} dups={len(res['duplicates'])} "
              f"near={len(res['near_duplicates'])}", file=sys.stderr)


if __name__ == "__main__":
    main()
