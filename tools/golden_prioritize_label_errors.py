"""Generate golden outputs of DataEval 1.1.4's ``label_errors`` and ``Prioritize``.

What it does
------------
Rebuilds the inputs of spec scenarios LE1-LE5 and P1-P11 (``DATAEVAL_BEHAVIOUR.md`` section
9.4 / 9.5; numpy ``default_rng`` recipes, numpy only, importable by the tests), runs DataEval
1.1.4 on them, checks the values the spec quotes, and writes small ``.npz`` files:

* ``tests/golden/le_<ID>.npz``: ``E`` float64 (n, 2), ``y`` int64 (n,), ``k`` (-1 = default),
  ``scores`` float32 (n,), ``error_rank`` int64 (n,), ``error_ids`` int64 (m,),
  ``error_labels`` int64 (m,), ``error_suggestions`` int64 (m, 2) padded with -1.
* ``tests/golden/prio_<ID>.npz``: ``indices`` int64 (n,), ``hard_first`` int64 (n,),
  ``scores`` float32 (n,) in the output's order (absent for complexity methods), plus the
  policy variants the scenario names (``stratified5``, ``class_balanced``,
  ``class_balanced_hard``).

Errors (LE4, LE5, P10, P11) are recorded as the exception class name (``error``).

Run from the repository root::

    /work/golden-venv/bin/python tools/golden_prioritize_label_errors.py

DataEval is imported only inside ``main()``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden"


def le_data():
    """Spec 9.4 recipe: three Gaussian classes with three flipped labels."""
    rng = np.random.default_rng(11)
    centres = [(0, 0), (4, 0), (0, 4)]
    e = np.concatenate([rng.normal(c, 0.5, (30, 2)) for c in centres])
    y = np.repeat(np.arange(3), 30)
    y[[0, 31, 62]] = [1, 2, 0]
    return e, y.astype(np.int64)


def le_scenarios():
    """id -> (E, y, k or None)."""
    e, y = le_data()
    clean = np.repeat(np.arange(3), 30).astype(np.int64)
    e3 = np.concatenate([e, [[2.0, 0.0]]])
    y3 = np.concatenate([clean, [0]])
    y5 = y.copy()
    y5[5] = 3
    return {
        "LE1": (e, y, None),
        "LE2": (e, y, 5),
        "LE3": (e3, y3, 10),
        "LE4": (e[:30], np.zeros(30, dtype=np.int64), None),
        "LE5": (e, y5, None),
    }


def prio_data():
    """Spec 9.5 recipe: P (41 rows, row 40 far), class labels, reference R."""
    rng = np.random.default_rng(21)
    p = np.concatenate([rng.normal((0, 0), 0.5, (20, 2)), rng.normal((5, 0), 0.5, (20, 2)), [[10.0, 10.0]]])
    r = rng.normal((0, 0), 0.5, (15, 2))
    labels = np.array([0] * 20 + [1] * 21, dtype=np.int64)
    return p, labels, r


# id -> keyword arguments of Prioritize (reference given as the string "R")
PRIO_SCENARIOS = {
    "P1": dict(method="knn"),
    "P2": dict(method="knn", k=3),
    "P5": dict(method="kmeans_distance", c=2),
    "P6": dict(method="kmeans_complexity", c=2),
    "P7": dict(method="hdbscan_distance"),
    "P8": dict(method="hdbscan_complexity"),
    "P9": dict(method="knn", k=2, reference="R"),
    "P10": dict(method="knn", k=41),
    "P11": dict(method="kmeans_complexity", policy="stratified"),
}


def _save(name: str, **arrays) -> None:
    np.savez_compressed(OUT / f"{name}.npz", **arrays)


def main() -> None:  # pragma: no cover - runs in the golden venv only
    from dataeval import config as de_config
    from dataeval.core import label_errors
    from dataeval.scope import Prioritize

    for sid, (e, y, k) in le_scenarios().items():
        try:
            out = label_errors(e, y) if k is None else label_errors(e, y, k=k)
        except Exception as exc:  # noqa: BLE001 - the class name is the golden
            _save(f"le_{sid}", E=e, y=y, k=-1 if k is None else k, error=type(exc).__name__)
            print(sid, "error", type(exc).__name__)
            continue
        ids = np.array(sorted(out["errors"]), dtype=np.int64)
        labs = np.array([out["errors"][i][0] for i in ids], dtype=np.int64)
        sugg = np.full((ids.size, 2), -1, dtype=np.int64)
        for row, i in enumerate(ids):
            s = out["errors"][i][1]
            sugg[row, : len(s)] = s
        _save(
            f"le_{sid}", E=e, y=y, k=-1 if k is None else k, scores=np.asarray(out["scores"], np.float32),
            error_rank=np.asarray(out["error_rank"], np.int64), error_ids=ids, error_labels=labs,
            error_suggestions=sugg, error="",
        )
        print(sid, {int(i): out["errors"][int(i)] for i in ids}, np.asarray(out["error_rank"])[:8])

    p, labels, r = prio_data()
    for sid, kwargs in PRIO_SCENARIOS.items():
        kw = dict(kwargs)
        if kw.get("reference") == "R":
            kw["reference"] = r
        de_config.set_seed(0, all_generators=True)
        try:
            out = Prioritize(**kw).evaluate(p)
            idx = np.asarray(out.indices, np.int64)
        except Exception as exc:  # noqa: BLE001
            _save(f"prio_{sid}", error=type(exc).__name__)
            print(sid, "error", type(exc).__name__)
            continue
        extra = {}
        if out.scores is not None:
            extra["scores"] = np.asarray(out.scores, np.float32)
        if sid == "P2":
            extra["stratified5"] = np.asarray(out.stratified(num_bins=5).indices, np.int64)
            cb = out.class_balanced(labels)
            extra["class_balanced"] = np.asarray(cb.indices, np.int64)
            extra["class_balanced_hard"] = np.asarray(cb.hard_first().indices, np.int64)
        _save(f"prio_{sid}", indices=idx, hard_first=np.asarray(out.hard_first().indices, np.int64), error="", **extra)
        print(sid, idx[:10], idx[-4:])


if __name__ == "__main__":
    main()
