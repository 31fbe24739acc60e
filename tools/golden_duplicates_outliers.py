"""Golden outputs of DataEval 1.1.4's Duplicates / Outliers cluster mode (spec §9.2, §9.3).

Run from the repository root with the golden environment (dataeval 1.1.4 + torch CPU)::

    /work/golden-venv/bin/python tools/golden_duplicates_outliers.py

Writes ``tests/golden/dup_*.npz`` and ``tests/golden/out_*.npz`` (no pickled objects). Only the
scenarios whose inputs or outputs the spec text does not give in full are generated here:
D4 (KMeans labels and groups), D6/D7 and O5 (the images), O3 (KMeans labels and values), and
extra threshold cases for the adaptive / modzscore / iqr rules (O2 cannot tell them apart).
Group lists are stored flattened: ``<name>_members`` (concatenated) and ``<name>_sizes``.
"""

from __future__ import annotations

import numpy as np


def blobs_plus_far(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(loc=(0, 0), scale=0.3, size=(50, 2))
    b = rng.normal(loc=(5, 5), scale=0.3, size=(50, 2))
    far = [[20, 20], [-15, 10], [10, -20]]
    return np.concatenate([a, b, far]).astype(np.float64)


def dup_data(seed=0):
    x = blobs_plus_far(seed)
    return np.concatenate([x, [x[0], x[60], x[10] + 1e-3]])


def images():
    imgs = np.random.default_rng(7).integers(0, 255, (40, 1, 8, 8)).astype(np.uint8)
    imgs[5] = imgs[3]
    imgs[20] = imgs[3]
    imgs[30] = np.clip(imgs[12].astype(np.int64) + 1, 0, 255).astype(np.uint8)
    return imgs


def heavy_tailed():
    """Three blobs with Student-t (df=2) spread: thresholds disagree on it."""
    rng = np.random.default_rng(21)
    centres = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    return np.concatenate([c + rng.standard_t(2, (80, 2)) * 0.5 for c in centres])


def flat(groups):
    groups = [sorted(int(i) for i in g) for g in groups]
    members = np.array([i for g in groups for i in g], dtype=np.int64)
    return members, np.array([len(g) for g in groups], dtype=np.int64)


def outlier_arrays(out):
    df = out.data() if callable(getattr(out, "data", None)) else out.data
    idx = np.asarray(df["item_index"].to_numpy(), dtype=np.int64)
    val = np.asarray(df["metric_value"].to_numpy(), dtype=np.float64)
    return idx, val


def main():
    import dataeval
    from dataeval import config
    from dataeval.core import cluster
    from dataeval.extractors import FlattenExtractor
    from dataeval.flags import ImageStats
    from dataeval.quality import Duplicates, Outliers
    from dataeval.utils.thresholds import AdaptiveThreshold

    meta = {"dataeval_version": np.array(dataeval.__version__)}

    # D4: KMeans(2) on dup_data, s = 1.0
    x = dup_data(0)
    config.set_seed(0)
    cr = cluster(x, algorithm="kmeans", n_clusters=2)
    out = Duplicates(cluster_sensitivity=1.0).from_clusters(cr)
    m, s = flat([g for g, _ in out.near])
    np.savez("tests/golden/dup_D4.npz", X=x, clusters=np.asarray(cr["clusters"], np.int64),
             mst=np.asarray(cr["mst"]), near_members=m, near_sizes=s, **meta)

    # D6 / D7: images, FlattenExtractor, s = 1.0
    imgs = images()
    emb = np.asarray(FlattenExtractor()(imgs))
    d6 = Duplicates(flags=ImageStats.NONE, extractor=FlattenExtractor(), cluster_sensitivity=1.0,
                    batch_size=8).evaluate(imgs)
    d7 = Duplicates(extractor=FlattenExtractor(), cluster_sensitivity=1.0, batch_size=8).evaluate(imgs)
    m6, s6 = flat([g for g, _ in d6.near])
    m7n, s7n = flat([g for g, _ in d7.near])
    m7e, s7e = flat(d7.exact)
    np.savez("tests/golden/dup_D6_D7.npz", imgs=imgs, embeddings=emb, d6_near_members=m6, d6_near_sizes=s6,
             d7_near_members=m7n, d7_near_sizes=s7n, d7_exact_members=m7e, d7_exact_sizes=s7e, **meta)

    # O3: KMeans(2) on blobs_plus_far, default threshold
    x = blobs_plus_far(0)
    config.set_seed(0)
    cr = cluster(x, algorithm="kmeans", n_clusters=2)
    idx, val = outlier_arrays(Outliers(flags=ImageStats.NONE).from_clusters(x, cr))
    np.savez("tests/golden/out_O3.npz", X=x, clusters=np.asarray(cr["clusters"], np.int64), indices=idx,
             values=val, **meta)

    # O5: images
    idx, val = outlier_arrays(Outliers(flags=ImageStats.NONE, extractor=FlattenExtractor(), batch_size=8).evaluate(imgs))
    np.savez("tests/golden/out_O5.npz", imgs=imgs, embeddings=emb, indices=idx, values=val, **meta)

    # threshold variants on heavy-tailed blobs (DataEval's own HDBSCAN labels)
    x = heavy_tailed()
    config.set_seed(None)
    cr = cluster(x)
    variants = {"default": None, "adaptive_1": 1.0, "adaptive_2": 2.0, "zscore_1_5": ("zscore", 1.5),
                "modzscore_2": ("modzscore", 2.0), "iqr_1": ("iqr", 1.0)}
    fields = {}
    for name, th in variants.items():
        idx, val = outlier_arrays(Outliers(flags=ImageStats.NONE).from_clusters(x, cr, cluster_threshold=th))
        fields[f"{name}_indices"], fields[f"{name}_values"] = idx, val
    np.savez("tests/golden/out_thresholds.npz", X=x, clusters=np.asarray(cr["clusters"], np.int64), **fields, **meta)

    # AdaptiveThreshold upper bounds on hand-made 1-D cases (point masses, tails, tiny arrays)
    rng = np.random.default_rng(5)
    cases = [
        np.concatenate([np.zeros(30), rng.uniform(0.001, 0.5, 20)]),  # point mass + smooth tail
        np.concatenate([np.zeros(30), np.full(5, 4.0), np.full(10, 9.0)]),  # point mass + discrete jumps
        np.concatenate([np.ones(20), rng.exponential(1.0, 15) + 1.0]),  # left MAD 0 only
        rng.lognormal(0.0, 1.0, 60),  # heavy right tail
        rng.normal(5.0, 1.0, 40),
        np.array([1.0, 2.0]),  # too few values
        np.full(12, 3.0),  # no spread
    ]
    uppers = []
    for v in cases:
        _, up = AdaptiveThreshold(3.0)(v.astype(np.float32))
        uppers.append(np.nan if up is None else up)
    lengths = np.array([len(v) for v in cases], dtype=np.int64)
    np.savez("tests/golden/out_adaptive_cases.npz", values=np.concatenate(cases).astype(np.float32),
             lengths=lengths, multiplier=np.float64(3.0), uppers=np.array(uppers, dtype=np.float64), **meta)
    print("written: dup_D4, dup_D6_D7, out_O3, out_O5, out_thresholds, out_adaptive_cases")


if __name__ == "__main__":
    main()
