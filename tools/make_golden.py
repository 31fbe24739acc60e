"""Generate golden reference outputs of DataEval 1.1.4's ``cluster()``.

What it does
------------
Builds a fixed set of small, deterministic datasets (numpy ``default_rng``),
runs DataEval 1.1.4's ``cluster()`` on each one (HDBSCAN, plus one KMeans
case), checks the results of the spec scenarios C1..C8 against the values
observed in ``shared/spec/DATAEVAL_BEHAVIOUR.md`` section 9.1, and writes

* ``tests/golden/cluster_<ID>.npz`` (``np.savez_compressed``), one per scenario;
* ``tests/golden/README.md`` (scenario list, exact recipes, calls, summaries,
  package versions).

Fields of each ``.npz``
-----------------------
``X``                  the input exactly as given to DataEval (original dtype).
                       Absent when it would not fit the 300 KB file budget
                       (``X_in_file`` False): rebuild it with ``build_X(id)``
                       from this module (numpy only) and check ``X_sha256``.
``clusters``           int64 (n,)
``mst``                float32 (n-1, 3)   [source, target, weight], weight-sorted
``linkage_tree``       float32 (n-1, 4)   [larger child, smaller child, dist, size]
``membership_strengths`` float32 (n,)
``k_neighbors``        int64 (len(knn_rows), k)   rows ``knn_rows`` of DataEval's array
``k_distances``        float32 (len(knn_rows), k)
``knn_rows``           int64, which rows of the (n, k) kNN arrays are stored
                       (``arange(n)`` except for the size-capped G_mcs family)
``n_clusters_arg``     int, -1 for None
``max_cluster_size_arg`` int, -1 for None
``algorithm``          str, "hdbscan" or "kmeans"
``seed``               int, value passed to ``dataeval.config.set_seed`` before the call (-1: none)
``min_cluster_size``   int, the mcs DataEval derives (section 2.2 of the spec; -1 for kmeans)
``knn_components``     int, connected components of the undirected 25-NN graph
                       (> 1 means DataEval's component-joining step ran)
``n_samples``, ``X_shape``, ``X_dtype``, ``X_sha256`` (sha256 of C-order bytes), ``X_in_file``
``dataeval_version``

Setting up the venv (outside the repo, exactly like this)
---------------------------------------------------------
::

    python3 -m venv /work/golden-venv
    /work/golden-venv/bin/pip install torch==2.13.0     # FIRST: the CPU wheel on disk;
                                                        # otherwise pip pulls a multi-GB CUDA build
    /work/golden-venv/bin/pip install dataeval==1.1.4 scikit-learn scipy

Run from the repository root::

    /work/golden-venv/bin/python tools/make_golden.py

The dataset builders (``build_X``, ``SCENARIOS``) only need numpy, so tests can
import this file to rebuild inputs; DataEval is imported only inside ``main()``.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "golden"
MAX_FILE_BYTES = 300 * 1024
MAX_TOTAL_BYTES = 3 * 1024 * 1024


# ---------------------------------------------------------------------------
# Dataset recipes (numpy only). The README quotes these functions verbatim.
# ---------------------------------------------------------------------------


def blobs_plus_far(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(loc=(0, 0), scale=0.3, size=(50, 2))
    b = rng.normal(loc=(5, 5), scale=0.3, size=(50, 2))
    far = [[20, 20], [-15, 10], [10, -20]]
    return np.concatenate([a, b, far]).astype(np.float64)  # n = 103


def c2_normal(n: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, 3))


def c3_ones() -> np.ndarray:
    return np.ones((20, 4))


def c3b_copies_plus_blob() -> np.ndarray:
    return np.concatenate([np.zeros((30, 2)), np.random.default_rng(2).normal(loc=5, scale=1, size=(30, 2))])


def c5_d600() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate([rng.normal(0, 1, (100, 600)), rng.normal(3, 1, (100, 600))])


def c6_uniform() -> np.ndarray:
    return np.random.default_rng(4).uniform(size=(200, 8))


def c7_three_blobs() -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.concatenate([rng.normal(c, 0.1, (30, 2)) for c in [(0, 0), (100, 0), (0, 100)]])


def c8_grid() -> np.ndarray:
    return np.array([(i, j) for i in range(8) for j in range(8)], dtype=np.float64)


def g_density() -> np.ndarray:
    # 4 blobs of strongly varying density and size, d=8, float32 (n = 830)
    rng = np.random.default_rng(100)
    scales = [0.05, 0.3, 1.0, 2.0]
    sizes = [400, 200, 150, 80]
    centers = rng.normal(0, 12, (4, 8))
    X = np.concatenate([rng.normal(c, s, (m, 8)) for c, s, m in zip(centers, scales, sizes)])
    return X.astype(np.float32)


def g_uniform() -> np.ndarray:
    return np.random.default_rng(101).uniform(size=(800, 5))


def g_dups() -> np.ndarray:
    # 420 distinct points in 4 blobs (d=16) + 180 exact copies of random rows
    # (30% of 600), shuffled so copies sit at random positions, float32
    rng = np.random.default_rng(102)
    centers = rng.normal(0, 4, (4, 16))
    uniq = np.concatenate([rng.normal(c, 1.0, (m, 16)) for c, m in zip(centers, [150, 120, 90, 60])])
    src = rng.integers(0, len(uniq), 180)
    X = np.concatenate([uniq, uniq[src]])[rng.permutation(600)]
    return X.astype(np.float32)


def g_disconnected() -> np.ndarray:
    # 12 tight groups of 15..24 points + 3 groups of 60, far apart in d=4, float64
    rng = np.random.default_rng(103)
    sizes = list(rng.integers(15, 25, 12)) + [60, 60, 60]
    centers = rng.uniform(-200, 200, (len(sizes), 4))
    return np.concatenate([rng.normal(c, 0.5, (m, 4)) for c, m in zip(centers, sizes)])


def g_d600() -> np.ndarray:
    # three Gaussian groups (150/100/50) in d=600, n=300, float32
    rng = np.random.default_rng(104)
    centers = rng.normal(0, 2.0, (3, 600))
    X = np.concatenate([rng.normal(c, 1.0, (m, 600)) for c, m in zip(centers, [150, 100, 50])])
    return X.astype(np.float32)


def g_mcs() -> np.ndarray:
    # n=3000, d=10, 6 blobs with some overlap, float32 (mcs = min(max(5, 150), 100) = 100).
    # The 120-point blob is a cluster only because of the cap at 100 (mcs 150 would merge it).
    rng = np.random.default_rng(107)
    sizes = [900, 700, 580, 400, 300, 120]
    centers = rng.normal(0, 2.5, (6, 10))
    X = np.concatenate([rng.normal(c, 1.0, (m, 10)) for c, m in zip(centers, sizes)])
    return X.astype(np.float32)


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------


@dataclass
class Scenario:
    id: str
    build: Callable[[], np.ndarray]
    build_src: str  # expression shown in the README
    algorithm: str = "hdbscan"
    n_clusters: int | None = None
    max_cluster_size: int | None = None
    seed: int | None = None
    store_x: bool = True
    knn_step: int = 1  # store rows knn_offset::knn_step of k_neighbors/k_distances
    knn_offset: int = 0
    note: str = ""
    tie_free: bool = True  # asserted: all float32 MST weights distinct


def _sc(id, fn, src, **kw) -> Scenario:
    return Scenario(id=id, build=fn, build_src=src, **kw)


SCENARIOS: list[Scenario] = [
    _sc("C1", blobs_plus_far, "blobs_plus_far(0)"),
    _sc("C1b", blobs_plus_far, "blobs_plus_far(0)", n_clusters=2),
    _sc("C1c", blobs_plus_far, "blobs_plus_far(0)", n_clusters=10),
    _sc("C1d", blobs_plus_far, "blobs_plus_far(0)", algorithm="kmeans", n_clusters=2, seed=0),
    *[_sc(f"C2_n{n}", (lambda n=n: c2_normal(n)), f"c2_normal({n})") for n in (2, 3, 5, 6, 10)],
    _sc("C3", c3_ones, "c3_ones()", tie_free=False, note="all points identical: compare partition only"),
    _sc("C3b", c3b_copies_plus_blob, "c3b_copies_plus_blob()", tie_free=False, note="30 identical rows: ties of 0"),
    _sc("C5", c5_d600, "c5_d600()", store_x=False, note="X (960 KB) not stored: rebuild it"),
    _sc("C6", c6_uniform, "c6_uniform()"),
    _sc("C7", c7_three_blobs, "c7_three_blobs()"),
    _sc("C8", c8_grid, "c8_grid()", tie_free=False, note="integer grid: all distances tie; compare partition only"),
    _sc("G_density", g_density, "g_density()"),
    _sc("G_uniform", g_uniform, "g_uniform()"),
    _sc(
        "G_dups",
        g_dups,
        "g_dups()",
        tie_free=False,
        note="distance ties of 0: compare only the partition, sorted MST weights and k_distances",
    ),
    _sc("G_disconnected", g_disconnected, "g_disconnected()"),
    _sc("G_d600", g_d600, "g_d600()", store_x=False, note="X (720 KB) not stored: rebuild it"),
    _sc("G_mcs", g_mcs, "g_mcs()", knn_step=6, note="kNN arrays stored for rows 0::6 only (size cap); a 120-point blob is a cluster only thanks to the cap mcs=100"),
    _sc(
        "G_mcs_max",
        g_mcs,
        "g_mcs()",
        max_cluster_size=400,
        store_x=False,
        knn_step=6,
        knn_offset=2,
        note="same X as G_mcs (not stored again); kNN arrays rows 2::6",
    ),
    _sc(
        "G_mcs_nc20",
        g_mcs,
        "g_mcs()",
        n_clusters=20,
        store_x=False,
        knn_step=6,
        knn_offset=4,
        note="same X as G_mcs (not stored again); kNN arrays rows 4::6",
    ),
]

SCENARIO_BY_ID = {s.id: s for s in SCENARIOS}


def build_X(scenario_id: str) -> np.ndarray:
    """Rebuild the input of a scenario (numpy only)."""
    return SCENARIO_BY_ID[scenario_id].build()


def x_sha256(X: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest()


def min_cluster_size(n: int, n_clusters: int | None) -> int:
    if n_clusters is not None:
        return max(5, n // (3 * n_clusters))
    return min(max(5, int(0.05 * n)), 100)


def knn_components(k_neighbors: np.ndarray) -> int:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n, k = k_neighbors.shape
    rows = np.repeat(np.arange(n), k)
    g = coo_matrix((np.ones(n * k, dtype=np.int8), (rows, k_neighbors.ravel())), shape=(n, n)).tocsr()
    return int(connected_components(g, directed=True, connection="weak")[0])


# ---------------------------------------------------------------------------
# Spec checks (DATAEVAL_BEHAVIOUR.md section 9.1)
# ---------------------------------------------------------------------------


def check_spec(results: dict) -> list[str]:
    bad: list[str] = []

    def expect(cond: bool, msg: str) -> None:
        print(("  ok   " if cond else "  FAIL ") + msg)
        if not cond:
            bad.append(msg)

    def close(a, b, tol=1e-4) -> bool:
        return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=tol, rtol=tol))

    exp_c1 = np.array([1] * 50 + [0] * 50 + [-1] * 3)
    r = results["C1"]
    expect(np.array_equal(r["clusters"], exp_c1), "C1 labels 0-49 -> 1, 50-99 -> 0, 100-102 -> -1")
    expect(close(r["membership_strengths"][100:], [0, 0, 0]), "C1 membership of far rows = 0")
    expect(close(r["membership_strengths"].mean(), 0.9514), "C1 mean membership 0.9514")
    expect(r["mst"].shape == (102, 3) and r["mst"].dtype == np.float32, "C1 mst (102,3) float32")
    expect(close(r["mst"][0], [91, 87, 0.014441]), f"C1 mst[0] == [91, 87, 0.014441] (got {r['mst'][0]})")
    expect(close(r["mst"][-1], [102, 34, 21.6848]), f"C1 mst[-1] == [102, 34, 21.6848] (got {r['mst'][-1]})")
    expect(close(r["linkage_tree"][0], [91, 87, 0.014441, 2]), f"C1 linkage[0] (got {r['linkage_tree'][0]})")
    expect(close(r["linkage_tree"][-1], [203, 102, 21.6848, 103]), f"C1 linkage[-1] (got {r['linkage_tree'][-1]})")
    expect(r["k_neighbors"].shape == (103, 25) and r["k_neighbors"].dtype == np.int64, "C1 k_neighbors (103,25) int64")
    expect(list(r["k_neighbors"][0, :5]) == [22, 32, 48, 17, 40], f"C1 k_neighbors[0,:5] (got {r['k_neighbors'][0, :5]})")

    r = results["C1b"]
    expect(np.array_equal(r["clusters"], exp_c1), "C1b same labels as C1")
    expect(close(r["membership_strengths"].mean(), 0.8513), f"C1b mean membership 0.8513 (got {r['membership_strengths'].mean():.4f})")
    r = results["C1c"]
    expect(
        all(np.array_equal(r[k], results["C1"][k]) for k in ("clusters", "mst", "linkage_tree", "membership_strengths")),
        "C1c identical to C1",
    )
    r = results["C1d"]
    exp = np.array([1] * 50 + [0] * 51 + [1] * 2)
    expect(np.array_equal(r["clusters"], exp), "C1d kmeans labels 0-49 -> 1, 50-100 -> 0, 101-102 -> 1")
    expect(close(r["membership_strengths"][100:], [0.0656, 0.1910, 0.0]), f"C1d far membership (got {r['membership_strengths'][100:]})")

    for n in (2, 3, 5, 6, 10):
        r = results[f"C2_n{n}"]
        expect(
            np.all(r["clusters"] == 0) and np.all(r["membership_strengths"] == 0),
            f"C2 n={n}: all labels 0, membership all 0",
        )
    r = results["C3"]
    expect(
        np.all(r["clusters"] == 0) and np.all(r["membership_strengths"] == 1) and np.all(r["mst"][:, 2] == 0),
        "C3 one cluster 0, membership 1, MST weights 0",
    )
    r = results["C3b"]
    expect(
        np.all(r["clusters"][:30] == 1) and np.all(r["membership_strengths"][:30] == 1) and np.all(r["clusters"][30:] == 0),
        "C3b copies -> 1 (membership 1.0), normal -> 0",
    )
    r = results["C5"]
    expect(
        np.array_equal(np.unique(r["clusters"]), [0, 1])
        and len(np.unique(r["clusters"][:100])) == 1
        and len(np.unique(r["clusters"][100:])) == 1,
        "C5 two clusters = the two groups, no noise",
    )
    r = results["C6"]
    u, c = np.unique(r["clusters"], return_counts=True)
    expect(dict(zip(u.tolist(), c.tolist())) == {-1: 77, 0: 123}, f"C6 labels {{-1: 77, 0: 123}} (got {dict(zip(u.tolist(), c.tolist()))})")
    r = results["C7"]
    expect(
        np.array_equal(r["clusters"], np.repeat([1, 2, 0], 30)),
        "C7 groups -> labels 1, 2, 0",
    )
    expect(r["knn_components"] > 1, f"C7 kNN graph disconnected (components={r['knn_components']})")
    expect(close(np.sort(r["mst"][:, 2])[-2:], [99.573, 99.655], 1e-3), f"C7 two largest MST weights (got {np.sort(r['mst'][:, 2])[-2:]})")
    r = results["C8"]
    expect(
        np.all(r["clusters"] == 0) and np.all(r["membership_strengths"] == 1) and np.all(r["mst"][:, 2] == 1),
        "C8 one cluster 0, membership 1, MST weights 1",
    )
    return bad


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def summarize(labels: np.ndarray) -> str:
    u, c = np.unique(labels, return_counts=True)
    return "{" + ", ".join(f"{a}: {b}" for a, b in zip(u.tolist(), c.tolist())) + "}"


def call_str(s: Scenario) -> str:
    args = ["X"]
    if s.algorithm != "hdbscan":
        args.append(f'"{s.algorithm}"')
    if s.n_clusters is not None:
        args.append(f"n_clusters={s.n_clusters}")
    if s.max_cluster_size is not None:
        args.append(f"max_cluster_size={s.max_cluster_size}")
    call = f"cluster({', '.join(args)})"
    return (f"set_seed({s.seed}); " if s.seed is not None else "") + call


def versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("dataeval", "numpy", "scikit-learn", "scipy", "numba", "llvmlite", "torch"):
        out[pkg] = md.version(pkg)
    return out


def main() -> int:
    import dataeval
    from dataeval.config import set_seed
    from dataeval.core import cluster  # defined in dataeval.core._clusterer

    if dataeval.__version__ != "1.1.4":
        print(f"expected dataeval 1.1.4, got {dataeval.__version__}", file=sys.stderr)
        return 2

    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    rows_md: list[str] = []
    for s in SCENARIOS:
        X = s.build()
        if s.seed is not None:
            set_seed(s.seed)
        kwargs = {}
        if s.n_clusters is not None:
            kwargs["n_clusters"] = s.n_clusters
        if s.max_cluster_size is not None:
            kwargs["max_cluster_size"] = s.max_cluster_size
        cr = cluster(X, s.algorithm, **kwargs)
        n = X.shape[0]
        res = {
            "clusters": np.asarray(cr["clusters"]).astype(np.int64),
            "mst": np.asarray(cr["mst"]),
            "linkage_tree": np.asarray(cr["linkage_tree"]),
            "membership_strengths": np.asarray(cr["membership_strengths"]),
            "k_neighbors": np.asarray(cr["k_neighbors"]),
            "k_distances": np.asarray(cr["k_distances"]),
        }
        assert res["mst"].dtype == np.float32 and res["mst"].shape == (n - 1, 3), s.id
        assert res["linkage_tree"].dtype == np.float32 and res["linkage_tree"].shape == (n - 1, 4), s.id
        assert res["membership_strengths"].dtype == np.float32, s.id
        assert res["k_neighbors"].dtype == np.int64 and res["k_distances"].dtype == np.float32, s.id
        assert res["k_neighbors"].shape == (n, min(25, n - 1)), s.id
        res["knn_components"] = knn_components(res["k_neighbors"])
        mst_ties = int((np.diff(np.sort(res["mst"][:, 2])) == 0).sum())
        if s.tie_free and mst_ties:
            print(f"ERROR: {s.id} is meant to be tie-free but has {mst_ties} equal MST weights", file=sys.stderr)
            return 1
        results[s.id] = res

        knn_rows = np.arange(s.knn_offset, n, s.knn_step, dtype=np.int64)
        payload = dict(
            clusters=res["clusters"],
            mst=res["mst"],
            linkage_tree=res["linkage_tree"],
            membership_strengths=res["membership_strengths"],
            k_neighbors=res["k_neighbors"][knn_rows],
            k_distances=res["k_distances"][knn_rows],
            knn_rows=knn_rows,
            n_clusters_arg=np.int64(-1 if s.n_clusters is None else s.n_clusters),
            max_cluster_size_arg=np.int64(-1 if s.max_cluster_size is None else s.max_cluster_size),
            algorithm=np.str_(s.algorithm),
            seed=np.int64(-1 if s.seed is None else s.seed),
            min_cluster_size=np.int64(min_cluster_size(n, s.n_clusters) if s.algorithm == "hdbscan" else -1),
            knn_components=np.int64(res["knn_components"]),
            n_samples=np.int64(n),
            X_shape=np.array(X.shape, dtype=np.int64),
            X_dtype=np.str_(X.dtype.str),
            X_sha256=np.str_(x_sha256(X)),
            X_in_file=np.bool_(s.store_x),
            dataeval_version=np.str_(dataeval.__version__),
        )
        if s.store_x:
            payload["X"] = X
        path = OUT / f"cluster_{s.id}.npz"
        np.savez_compressed(path, **payload)
        size = path.stat().st_size
        lab = res["clusters"]
        k = len(np.unique(lab[lab >= 0]))
        print(
            f"{s.id:15s} n={n:5d} d={X.shape[1]:4d} {X.dtype}  K={k:3d} noise={int((lab == -1).sum()):4d} "
            f"knn_comp={res['knn_components']:3d} size={size / 1024:.1f} KB"
        )
        if size >= MAX_FILE_BYTES:
            print(f"ERROR: {path.name} is {size} bytes (limit {MAX_FILE_BYTES})", file=sys.stderr)
            return 1
        rows_md.append(
            f"| {s.id} | `{s.build_src}` | `{call_str(s)}` | {n} | {X.shape[1]} | {X.dtype} | "
            f"{payload['min_cluster_size']} | {k} | {int((lab == -1).sum())} | {summarize(lab)} | "
            f"{float(res['membership_strengths'].mean()):.4f} | "
            f"{res['knn_components']} | {mst_ties} | {'yes' if s.store_x else 'no'} | {size / 1024:.1f} KB | {s.note} |"
        )

    # Cross-checks on the G_mcs family: identical inputs give identical graph arrays.
    for other in ("G_mcs_max", "G_mcs_nc20"):
        for key in ("mst", "linkage_tree", "k_neighbors", "k_distances"):
            assert np.array_equal(results["G_mcs"][key], results[other][key]), (other, key)
    assert results["G_disconnected"]["knn_components"] > 1, "G_disconnected: kNN graph is connected"

    # The cap at 100 matters for G_mcs: without it mcs would be 150; n_clusters=6 gives mcs 166.
    lab166 = cluster(g_mcs(), n_clusters=6)["clusters"]
    k100 = len(np.unique(results["G_mcs"]["clusters"][results["G_mcs"]["clusters"] >= 0]))
    k166 = len(np.unique(lab166[lab166 >= 0]))
    cap_note = (
        f"G_mcs cap check (not saved): cluster(g_mcs(), n_clusters=6), i.e. mcs 166 > 150, finds {k166} "
        f"clusters {summarize(lab166)}; the default mcs 100 finds {k100}."
    )
    print(cap_note)
    assert k166 != k100, "the mcs cap makes no difference on G_mcs"

    print("\nSpec checks (DATAEVAL_BEHAVIOUR.md 9.1):")
    bad = check_spec(results)

    total = sum(p.stat().st_size for p in OUT.glob("cluster_*.npz"))
    print(f"\ntotal size of cluster_*.npz: {total / 1024:.1f} KB")
    if total >= MAX_TOTAL_BYTES:
        print("ERROR: total size over budget", file=sys.stderr)
        return 1

    write_readme(rows_md, bad, versions(), cap_note)
    print(f"{len(bad)} spec mismatch(es)")
    return 1 if bad else 0


README_HEAD = """\
# Golden outputs of DataEval 1.1.4 `cluster()`

Generated by `tools/make_golden.py` (run `/work/golden-venv/bin/python tools/make_golden.py`
from the repository root; the venv setup is in the script's docstring). Do not edit by hand:
this file is rewritten by the script.

## Versions used

{versions}

## Loading

```python
f = np.load("tests/golden/cluster_C1.npz")   # no pickle needed
X = f["X"] if f["X_in_file"] else build_X("C1")            # build_X from tools/make_golden.py
assert hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest() == str(f["X_sha256"])
rows = f["knn_rows"]      # rows of DataEval's (n, k) kNN arrays stored in k_neighbors / k_distances
```

Fields: `X` (when stored), `clusters` int64, `mst` float32 (n-1,3), `linkage_tree` float32 (n-1,4),
`membership_strengths` float32, `k_neighbors` int64, `k_distances` float32, `knn_rows` int64,
scalars `n_clusters_arg` / `max_cluster_size_arg` (-1 = None), `algorithm`, `seed` (-1 = no
`set_seed`), `min_cluster_size` (derived, -1 for kmeans), `knn_components` (weakly connected
components of the 25-NN graph; > 1 means DataEval's component-joining ran), `n_samples`,
`X_shape`, `X_dtype`, `X_sha256`, `X_in_file`, `dataeval_version`.

Size budget (each file < 300 KB, total < 3 MB) forces three deviations from "everything in
every file":

* **C5** (200x600 float64 = 960 KB) and **G_d600** (300x600 float32 = 720 KB) do not store `X`;
  rebuild it from the recipe below and check `X_sha256`.
* **G_mcs** stores `X` but its kNN arrays only for rows 0::6 (`knn_rows`); **G_mcs_max** and
  **G_mcs_nc20** use the same `X` (not stored again; same sha256) and store kNN rows 2::6 and
  4::6 (so the three files together cover every even row).
  Their `mst`, `linkage_tree`, `k_neighbors`, `k_distances` equal G_mcs's (asserted by the script).

## What to compare

* Tie-free scenarios (all except C3, C3b, C8, G_dups; the script asserts that their float32 MST
  weights are all distinct): exactly for `clusters`, `k_neighbors`, the MST endpoints as
  **unordered** pairs (`np.sort(mst[:, :2], axis=1)`), `linkage_tree[:, [0, 1, 3]]`; with float32
  tolerance for `mst[:, 2]`, `linkage_tree[:, 2]`, `k_distances`, `membership_strengths`.
* MST orientation (`mst[:, 0]` vs `mst[:, 1]`) is **not** tie-free even on continuous data: almost
  every MST edge is a mutual kNN pair whose two directed copies (i, j, w) and (j, i, w) carry the
  same float32 weight, and which copy DataEval's Kruskal meets first is decided by the unstable
  numba argsort of the flattened kNN edge list. Do not compare column order. (`linkage_tree` is
  unaffected: it stores max/min child ids.)
* **C3, C3b, C8** (identical rows or an integer grid) and **G_dups** (about 30% of rows are exact
  copies of other rows, so many distances are exactly 0): tie order is implementation-defined
  (unstable argsort in sklearn and DataEval), so compare only the partition (labels up to
  renumbering, plus the -1 set), the sorted MST weights and `k_distances` (row-wise sorted
  distances); not `k_neighbors`, MST endpoints or linkage child ids.
* KMeans (C1d) depends on sklearn's KMeans with `random_state=0`; a Dask/dask-ml
  reimplementation should only be expected to match the partition, not the seed stream.

## Scenarios

| id | recipe | call | n | d | dtype | mcs | clusters | n noise (-1) | label counts | mean membership | knn_components | MST weight ties | X stored | file | note |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{rows}

{cap_note} G_mcs_nc20 (mcs 50) gives the same labels as G_mcs, with different membership strengths.

## Spec check (DATAEVAL_BEHAVIOUR.md section 9.1)

{spec}

## Recipes (exact code, from `tools/make_golden.py`)

```python
import numpy as np

{sources}
```
"""


def write_readme(rows_md: list[str], bad: list[str], vers: dict[str, str], cap_note: str) -> None:
    fns = [
        blobs_plus_far,
        c2_normal,
        c3_ones,
        c3b_copies_plus_blob,
        c5_d600,
        c6_uniform,
        c7_three_blobs,
        c8_grid,
        g_density,
        g_uniform,
        g_dups,
        g_disconnected,
        g_d600,
        g_mcs,
    ]
    sources = "\n\n".join(textwrap.dedent(inspect.getsource(f)).rstrip() for f in fns)
    spec = (
        "All C1..C8 values quoted in the spec's 9.1 table were reproduced (see the script's `check_spec`)."
        if not bad
        else "Mismatches:\n\n" + "\n".join(f"* {b}" for b in bad)
    )
    text = README_HEAD.format(
        versions="\n".join(f"* {k} {v}" for k, v in vers.items()),
        rows="\n".join(rows_md),
        cap_note=cap_note,
        spec=spec,
        sources=sources,
    )
    (OUT / "README.md").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
