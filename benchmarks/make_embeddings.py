#!/usr/bin/env python3
"""Deterministic synthetic embeddings, written to a Zarr store block by block.

    python benchmarks/make_embeddings.py OUT.zarr --n 1000000 --d 64 --seed 0 [--chunk-rows 16384]

or, from Python::

    from make_embeddings import make_embeddings
    meta = make_embeddings("emb.zarr", n=1_000_000, d=64, seed=0)

The store is a Zarr group holding

* ``embeddings`` (name set by ``array``): float32 (n, d), rows in ``chunk_rows`` chunks;
* ``true_labels``: int32 (n,), the mixture component of each row (-1 for outliers; a duplicate
  carries the label of the row it copies);
* ``kind``: int32 (n,), 0 normal, 1 exact duplicate, 2 near duplicate, 3 outlier;
* ``source``: int64 (n,), for kinds 1 and 2 the row index of the (normal) row that was copied,
  -1 otherwise;
* ``centers``: float32 (K, d), the component means;

and group attributes with every parameter and the count of each kind of row.

Content (all parameters are attributes of the store):

* a Gaussian mixture of K components, ``K = clip(round(1.5 * n ** 0.25), 30, 60)`` unless given
  (30 at 100k rows, 47 at 1M, 60 from ~2.6M); weights lognormal(0, 0.8), normalised; means
  ``offset + N(0, center_spread^2 I)``; each component is anisotropic: per-axis standard
  deviations ``scale_k * (j + 1) ** -alpha_k`` (normalised to a mean variance of ``scale_k^2``,
  ``scale_k`` lognormal(0, 0.35), ``alpha_k`` uniform in [0.2, 0.8]), rotated by a random
  orthogonal matrix;
* ~0.5% exact duplicates: byte-identical copies of normal rows, in groups of 2-5 identical rows
  (the original plus 1-4 copies);
* ~1% near duplicates: a normal row plus N(0, (1e-3 * scale_k)^2) per coordinate;
* ~0.5% outliers: ``offset + r * u`` with u uniform on the unit sphere and
  ``r = R * U(1.5, 3)``, ``R = max_k(|c_k - offset| + 3 * scale_k * sqrt(d))``: far from every
  component.

Determinism and memory: the rows are produced in fixed generation blocks of ``GEN_BLOCK = 65536``
rows; block ``b`` draws from ``SeedSequence(seed, spawn_key=(1, b))`` and the mixture
parameters from ``SeedSequence(seed, spawn_key=(0,))``, so the data depend on ``(n, d, seed,
n_clusters)`` only, never on ``chunk_rows``. The exact counts per block are
``floor(hi * p) - floor(lo * p)`` for rows ``[lo, hi)``, i.e. ``floor(n * p)`` in all. Inside a
block every row's component is drawn independently and the block is shuffled, so the row order
carries no information, except that a duplicate lies in the same 65,536-row block as its
original. Blocks are buffered and written as whole, aligned chunks (region writes); memory stays
at a few generation blocks (~50 MiB at d = 64) whatever n is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

GENERATOR_VERSION = 1
GEN_BLOCK = 65536  # rows per generation block: fixes the randomness, independent of chunk_rows
DEFAULT_CHUNK_ROWS = 16384  # distdataeval's default block size for NumPy input (its upper cap)
P_EXACT_DUP = 0.005
P_NEAR_DUP = 0.01
P_OUTLIER = 0.005
NEAR_DUP_NOISE = 1e-3  # near-duplicate noise, relative to the component's scale
CENTER_SPREAD = 3.0  # std of the component means around the offset (per coordinate)
KIND_NORMAL, KIND_EXACT_DUP, KIND_NEAR_DUP, KIND_OUTLIER = 0, 1, 2, 3


def default_n_clusters(n: int) -> int:
    return int(min(60, max(30, round(1.5 * n**0.25))))


def mixture_params(n: int, d: int, seed: int, n_clusters: int | None = None) -> dict:
    """The mixture (means, rotations, per-axis spreads, weights), drawn from the seed alone."""
    k = int(n_clusters) if n_clusters else default_n_clusters(n)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    weights = rng.lognormal(0.0, 0.8, k)
    weights /= weights.sum()
    offset = rng.normal(0.0, 2.0, d)
    centers = offset + rng.normal(0.0, CENTER_SPREAD, (k, d))
    scales = rng.lognormal(0.0, 0.35, k)
    alphas = rng.uniform(0.2, 0.8, k)
    axes = np.arange(1, d + 1, dtype=np.float64)
    sigmas = np.empty((k, d))
    rotations = np.empty((k, d, d), dtype=np.float32)
    for c in range(k):
        s = axes ** -alphas[c]
        sigmas[c] = scales[c] * s / math.sqrt(np.mean(s**2))
        q, r = np.linalg.qr(rng.standard_normal((d, d)))
        rotations[c] = (q * np.sign(np.diag(r))).T  # rows: orthonormal directions
    radius = float(np.max(np.linalg.norm(centers - offset, axis=1) + 3.0 * scales * math.sqrt(d)))
    return {
        "n_clusters": k,
        "weights": weights,
        "offset": offset,
        "centers": centers,
        "scales": scales,
        "alphas": alphas,
        "sigmas": sigmas,
        "rotations": rotations,
        "outlier_radius": radius,
    }


def _count(lo: int, hi: int, p: float) -> int:
    return math.floor(hi * p) - math.floor(lo * p)


def generate_block(b: int, n: int, d: int, seed: int, mix: dict):
    """Rows ``[b * GEN_BLOCK, min(n, (b + 1) * GEN_BLOCK))``: (x float32, labels, kind, source)."""
    lo = b * GEN_BLOCK
    hi = min(n, lo + GEN_BLOCK)
    m = hi - lo
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, b)))
    n_out = _count(lo, hi, P_OUTLIER)
    n_dup = _count(lo, hi, P_EXACT_DUP)
    n_near = _count(lo, hi, P_NEAR_DUP)
    n_norm = m - n_out - n_dup - n_near
    if n_norm < 1:  # tiny n: everything normal
        n_out = n_dup = n_near = 0
        n_norm = m

    # normal rows, grouped by component (the block is shuffled at the end)
    labels = np.sort(rng.choice(mix["n_clusters"], size=n_norm, p=mix["weights"])).astype(np.int32)
    x_norm = rng.standard_normal((n_norm, d), dtype=np.float32)
    bounds = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [n_norm]])
    for a, e in zip(starts, ends):
        c = labels[a]
        z = x_norm[a:e]
        z *= mix["sigmas"][c].astype(np.float32)
        x_norm[a:e] = z @ mix["rotations"][c]
        x_norm[a:e] += mix["centers"][c].astype(np.float32)

    # exact duplicates: groups of 2-5 identical rows (original + 1-4 copies)
    extra = []
    total = 0
    while total < n_dup:
        e = int(rng.integers(1, 5))
        e = min(e, n_dup - total)
        extra.append(e)
        total += e
    n_groups = len(extra)
    dup_src = np.repeat(rng.choice(n_norm, size=n_groups, replace=False), extra) if n_groups else np.empty(0, np.int64)

    # near duplicates
    near_src = rng.choice(n_norm, size=n_near, replace=False) if n_near else np.empty(0, np.int64)
    noise = rng.standard_normal((n_near, d), dtype=np.float32)
    noise *= (NEAR_DUP_NOISE * mix["scales"][labels[near_src]]).astype(np.float32)[:, None]
    x_near = x_norm[near_src] + noise

    # outliers
    u = rng.standard_normal((n_out, d))
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-300)
    r = mix["outlier_radius"] * rng.uniform(1.5, 3.0, n_out)
    x_out = (mix["offset"] + u * r[:, None]).astype(np.float32)

    x = np.concatenate([x_norm, x_norm[dup_src], x_near, x_out])
    lab = np.concatenate([labels, labels[dup_src], labels[near_src], np.full(n_out, -1, np.int32)])
    kind = np.concatenate(
        [
            np.full(n_norm, KIND_NORMAL, np.int32),
            np.full(dup_src.size, KIND_EXACT_DUP, np.int32),
            np.full(n_near, KIND_NEAR_DUP, np.int32),
            np.full(n_out, KIND_OUTLIER, np.int32),
        ]
    )
    src_local = np.concatenate([np.full(n_norm, -1, np.int64), dup_src, near_src, np.full(n_out, -1, np.int64)])

    perm = rng.permutation(m)  # new position i holds old row perm[i]
    inv = np.empty(m, np.int64)
    inv[perm] = np.arange(m)
    src = src_local[perm]
    has = src >= 0
    src[has] = lo + inv[src[has]]
    return x[perm], lab[perm], kind[perm], src


class _AlignedWriter:
    """Buffers consecutive row blocks and writes whole, chunk-aligned regions."""

    def __init__(self, arrays: dict, chunk_rows: int) -> None:
        self.arrays = arrays
        self.chunk_rows = chunk_rows
        self.pending: dict[str, list] = {k: [] for k in arrays}
        self.buffered = 0
        self.written = 0

    def add(self, parts: dict) -> None:
        for k, v in parts.items():
            self.pending[k].append(v)
        self.buffered += len(next(iter(parts.values())))
        self._flush(final=False)

    def _flush(self, final: bool) -> None:
        rows = self.buffered if final else (self.buffered // self.chunk_rows) * self.chunk_rows
        if rows == 0:
            return
        for k, arr in self.arrays.items():
            buf = np.concatenate(self.pending[k]) if len(self.pending[k]) > 1 else self.pending[k][0]
            arr[self.written : self.written + rows] = buf[:rows]
            self.pending[k] = [buf[rows:]] if rows < len(buf) else []
        self.written += rows
        self.buffered -= rows

    def close(self) -> None:
        self._flush(final=True)


def make_embeddings(
    path,
    n: int,
    d: int = 64,
    seed: int = 0,
    chunk_rows: int | None = None,
    array: str = "embeddings",
    n_clusters: int | None = None,
    compress: bool = True,
    threads: int | None = None,
) -> dict:
    """Write the dataset to a new Zarr group at ``path`` (overwritten); return its metadata.

    The data depend on ``(n, d, seed, n_clusters)`` only; ``chunk_rows`` (default 16384) and
    ``compress`` (zarr's default codec, else none) change the storage, never the values;
    ``threads`` (default ``min(2, cores)``) generate blocks concurrently, in order of writing.
    """
    import zarr

    n, d, seed = int(n), int(d), int(seed)
    if n < 2 or d < 1:
        raise ValueError(f"need n >= 2 and d >= 1, got n={n}, d={d}")
    if array in ("true_labels", "kind", "source", "centers"):
        raise ValueError(f"array name {array!r} is reserved")
    chunk_rows = int(chunk_rows or min(DEFAULT_CHUNK_ROWS, n))
    t0 = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):  # same BLAS path for the QR whatever the machine's threads
        mix = mixture_params(n, d, seed, n_clusters)
    codec = {} if compress else {"compressors": None}
    root = zarr.open_group(str(path), mode="w")
    arrays = {
        "x": root.create_array(array, shape=(n, d), chunks=(chunk_rows, d), dtype="float32", **codec),
        "labels": root.create_array("true_labels", shape=(n,), chunks=(chunk_rows,), dtype="int32", **codec),
        "kind": root.create_array("kind", shape=(n,), chunks=(chunk_rows,), dtype="int32", **codec),
        "source": root.create_array("source", shape=(n,), chunks=(chunk_rows,), dtype="int64", **codec),
    }
    root.create_array("centers", data=mix["centers"].astype(np.float32))
    writer = _AlignedWriter(arrays, chunk_rows)
    counts = np.zeros(4, dtype=np.int64)
    cluster_sizes = np.zeros(mix["n_clusters"], dtype=np.int64)
    n_blocks = math.ceil(n / GEN_BLOCK)
    workers = max(1, int(threads or min(2, os.cpu_count() or 1)))
    # blocks are independent: generate up to `workers + 1` ahead in threads (numpy releases the
    # GIL in the RNG fills and the matmuls), write them in order from this thread
    # BLAS on one thread: the matmuls are small, and concurrent blocks are the parallelism
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(max_workers=workers) as pool:
        ahead: deque = deque()
        next_b = 0
        while next_b < n_blocks or ahead:
            while next_b < n_blocks and len(ahead) <= workers:
                ahead.append(pool.submit(generate_block, next_b, n, d, seed, mix))
                next_b += 1
            x, lab, kind, src = ahead.popleft().result()
            counts += np.bincount(kind, minlength=4)
            cluster_sizes += np.bincount(lab[lab >= 0], minlength=mix["n_clusters"])
            writer.add({"x": x, "labels": lab, "kind": kind, "source": src})
            del x, lab, kind, src
    writer.close()
    seconds = time.perf_counter() - t0
    meta = {
        "generator": "benchmarks/make_embeddings.py",
        "generator_version": GENERATOR_VERSION,
        "path": str(path),
        "n": n,
        "d": d,
        "seed": seed,
        "dtype": "float32",
        "array": array,
        "true_labels_array": "true_labels",
        "kind_array": "kind",
        "source_array": "source",
        "centers_array": "centers",
        "kind_codes": {"normal": KIND_NORMAL, "exact_dup": KIND_EXACT_DUP, "near_dup": KIND_NEAR_DUP, "outlier": KIND_OUTLIER},
        "counts": {
            "normal": int(counts[KIND_NORMAL]),
            "exact_dup": int(counts[KIND_EXACT_DUP]),
            "near_dup": int(counts[KIND_NEAR_DUP]),
            "outlier": int(counts[KIND_OUTLIER]),
        },
        "n_clusters": int(mix["n_clusters"]),
        "cluster_sizes": [int(v) for v in cluster_sizes],
        "p_exact_dup": P_EXACT_DUP,
        "p_near_dup": P_NEAR_DUP,
        "p_outlier": P_OUTLIER,
        "near_dup_noise": NEAR_DUP_NOISE,
        "center_spread": CENTER_SPREAD,
        "scales": [float(v) for v in mix["scales"]],
        "alphas": [float(v) for v in mix["alphas"]],
        "weights": [float(v) for v in mix["weights"]],
        "outlier_radius": mix["outlier_radius"],
        "gen_block_rows": GEN_BLOCK,
        "chunk_rows": chunk_rows,
        "compressed": bool(compress),
        "zarr_version": zarr.__version__,
        "numpy_version": np.__version__,
    }
    root.attrs.update(meta)
    meta["seconds"] = seconds
    return meta


def read_meta(path) -> dict | None:
    """The attributes of a store written by :func:`make_embeddings` (None if absent/unreadable)."""
    try:
        import zarr

        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:
        return None
    return attrs if attrs.get("generator") == "benchmarks/make_embeddings.py" else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="path of the Zarr store to (over)write")
    p.add_argument("--n", type=int, required=True, help="rows")
    p.add_argument("--d", type=int, default=64, help="dimension (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="root seed (default: %(default)s)")
    p.add_argument("--chunk-rows", type=int, default=None, help=f"rows per Zarr chunk (default: {DEFAULT_CHUNK_ROWS})")
    p.add_argument("--array", default="embeddings", help="name of the embeddings array (default: %(default)s)")
    p.add_argument("--n-clusters", type=int, default=None, help="mixture components (default: clip(1.5 n^0.25, 30, 60))")
    p.add_argument("--no-compress", action="store_true", help="store chunks uncompressed")
    p.add_argument("--threads", type=int, default=None, help="generation threads (default: min(2, cores))")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")
    args = p.parse_args(argv)
    meta = make_embeddings(
        args.out, args.n, args.d, args.seed, args.chunk_rows, args.array, args.n_clusters, not args.no_compress,
        args.threads,
    )
    if args.json:
        print(json.dumps(meta, indent=2))
    else:
        c = meta["counts"]
        print(
            f"{meta['path']}: {meta['n']} x {meta['d']} float32 in {meta['seconds']:.1f} s; "
            f"{meta['n_clusters']} clusters (sizes {min(meta['cluster_sizes'])}..{max(meta['cluster_sizes'])}); "
            f"normal {c['normal']}, exact dup {c['exact_dup']}, near dup {c['near_dup']}, outlier {c['outlier']}; "
            f"chunks of {meta['chunk_rows']} rows"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
