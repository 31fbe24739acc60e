"""Open embeddings from NumPy, Dask, Zarr or a Zarr store path, and validate them.

Shape and dtype problems are found here without reading the data. Finiteness needs one pass over
the data: :func:`scan_source` builds that pass as a Dask reduction (it also returns the column
mean used to centre the data for k-NN), and the orchestrator computes it.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np

from distdataeval.errors import (
    CorruptStoreError,
    InvalidInputError,
    InvalidParameterError,
    StoreNotFoundError,
)

MAX_RECOMMENDED_DIM = 500
MAX_CHUNK_ROWS = 65536
N_BAD_ROWS_SHOWN = 5


class HighDimensionWarning(UserWarning):
    """Embedding dimension above 500: distances lose contrast; reduce it (e.g. PCA) first."""


@dataclass(frozen=True)
class Source:
    """Validated embeddings as a lazy (n, d) Dask array, row-chunked with one column chunk.

    Attributes
    ----------
    data : dask array, shape (n, d), float32 or float64
    origin : str
        Where the data came from (for messages and reports).
    """

    data: da.Array
    origin: str

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    @property
    def d(self) -> int:
        return int(self.data.shape[1])


def _open_zarr_path(path: str, array: str | None):
    import zarr

    try:
        node = zarr.open(path, mode="r")
    except FileNotFoundError as exc:
        raise StoreNotFoundError(f"no Zarr store at {path!r} ({exc})") from None
    except Exception as exc:  # metadata that is not Zarr
        raise CorruptStoreError(f"cannot read the Zarr store at {path!r}: {type(exc).__name__}: {exc}") from None
    if isinstance(node, zarr.Array):
        if array is not None:
            raise InvalidParameterError(f"{path!r} is already an array; do not pass array={array!r}")
        return node
    names = sorted(node.array_keys())
    if array is None:
        if len(names) == 1:
            return node[names[0]]
        raise InvalidParameterError(
            f"the Zarr store {path!r} is a group; name the embeddings array with array=... "
            f"(arrays found: {names or 'none'})"
        )
    try:
        found = node[array]
    except KeyError:
        raise StoreNotFoundError(f"no array {array!r} in the Zarr store {path!r} (arrays found: {names or 'none'})") from None
    if not isinstance(found, zarr.Array):
        raise InvalidParameterError(f"{array!r} in {path!r} is a group, not an array")
    return found


def _zarr_to_dask(arr):
    """Lazy Dask view of a Zarr array; an in-memory store is read here instead, because worker
    processes cannot see this process's memory (they would read fill values, silently)."""
    import zarr

    store = arr.store
    protocol = getattr(getattr(store, "fs", None), "protocol", ())
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    if isinstance(store, zarr.storage.MemoryStore) or "memory" in protocols:
        return np.asarray(arr[...])
    return da.from_zarr(arr)


def _to_dask(embeddings, array: str | None) -> tuple[da.Array, str]:
    if isinstance(embeddings, (str, os.PathLike)):
        path = os.fspath(embeddings)
        return _zarr_to_dask(_open_zarr_path(path, array)), f"zarr:{path}" + (f"/{array}" if array else "")
    if array is not None:
        raise InvalidParameterError("array=... is only meaningful with a Zarr store path")
    try:
        import zarr

        if isinstance(embeddings, zarr.Array):
            return _zarr_to_dask(embeddings), "zarr-array"
    except ImportError:  # pragma: no cover - zarr is a dependency
        pass
    if isinstance(embeddings, da.Array):
        return embeddings, "dask"
    if isinstance(embeddings, np.ndarray) and embeddings.dtype == object:
        raise InvalidInputError("embeddings must be numeric, got dtype object")
    try:
        arr = np.asarray(embeddings)
    except Exception as exc:
        raise InvalidInputError(f"embeddings cannot be read as an array: {exc}") from None
    return arr, "numpy"


def _check_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind == "f":
        return np.dtype(np.float64) if dtype.itemsize > 4 else np.dtype(np.float32)
    if dtype.kind in "iub":
        return np.dtype(np.float64)
    raise InvalidInputError(f"embeddings must be numeric (float, int or bool), got dtype {dtype}")


def default_chunk_rows(n: int, d: int, n_workers: int = 2) -> int:
    """Rows per block: several blocks per worker, at most 16384 rows and ~64 MiB of float64."""
    by_memory = max(1024, (64 << 20) // (8 * max(d, 1)))
    target = math.ceil(n / max(1, 4 * n_workers))
    return int(max(1024, min(16384, by_memory, target)))


def open_source(embeddings, array: str | None = None, *, chunk_rows: int | None = None, n_workers: int = 2) -> Source:
    """Open and check embeddings without reading their values.

    Parameters
    ----------
    embeddings : array-like, dask array, zarr array, str or os.PathLike
        Samples on the first axis; more axes are flattened per sample. A string is a path or URL
        of a Zarr store (or of an array inside one).
    array : str, optional
        Name of the array inside a Zarr group.
    chunk_rows : int, optional
        Rows per block; by default a Dask/Zarr input keeps its own row chunks (unless they exceed
        65,536 rows) and NumPy input is split by :func:`default_chunk_rows`.

    Returns
    -------
    Source

    Raises
    ------
    InvalidInputError
        Fewer than 2 samples, no features, or a non-numeric dtype.
    StoreNotFoundError, CorruptStoreError
        The Zarr store or array is missing or unreadable.
    """
    x, origin = _to_dask(embeddings, array)
    if x.ndim == 0:
        raise InvalidInputError("embeddings must have a sample axis; got a scalar")
    n = int(x.shape[0])
    if n < 2:
        raise InvalidInputError(f"clustering needs at least 2 samples, got {n}")
    d = int(np.prod(x.shape[1:], dtype=np.int64)) if x.ndim > 1 else 1
    if d < 1:
        raise InvalidInputError(f"embeddings must have at least 1 feature per sample, got shape {tuple(x.shape)}")
    dtype = _check_dtype(np.dtype(x.dtype))
    if d > MAX_RECOMMENDED_DIM:
        warnings.warn(
            f"embedding dimension d = {d} is above {MAX_RECOMMENDED_DIM}: distances lose contrast in "
            "high dimensions; consider reducing it (e.g. PCA) before clustering",
            HighDimensionWarning,
            stacklevel=3,
        )
    if chunk_rows is not None and (not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1):
        raise InvalidParameterError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    if isinstance(x, np.ndarray):
        rows = chunk_rows or default_chunk_rows(n, d, n_workers)
        x = x.reshape(n, d)
        if x.dtype != dtype:
            x = x.astype(dtype)
        data = da.from_array(x, chunks=(int(rows), d), name=f"embeddings-{dask.base.tokenize(x)}")
        return Source(data, origin)
    if x.ndim != 2:
        x = x.rechunk({i: -1 for i in range(1, x.ndim)}).reshape(n, d)
    if chunk_rows is not None:
        x = x.rechunk({0: int(chunk_rows), 1: -1})
    elif max(x.chunks[0]) > MAX_CHUNK_ROWS:
        x = x.rechunk({0: default_chunk_rows(n, d, n_workers), 1: -1})
    elif len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})
    if x.dtype != dtype:
        x = x.astype(dtype)
    return Source(x, origin)


def _scan_block(block: np.ndarray, offset: int):
    finite = np.isfinite(block).all(axis=1)
    bad = np.flatnonzero(~finite)
    good = block[finite] if bad.size else block
    return (
        int(bad.size),
        (bad[:N_BAD_ROWS_SHOWN] + offset).tolist(),
        good.sum(axis=0, dtype=np.float64),
        int(good.shape[0]),
    )


def _combine_scans(parts):
    count = sum(p[0] for p in parts)
    first = [i for p in parts for i in p[1]][:N_BAD_ROWS_SHOWN]
    total = np.sum([p[2] for p in parts], axis=0)
    rows = sum(p[3] for p in parts)
    return count, first, total / max(rows, 1)


def scan_source(source: Source):
    """Lazy one-pass scan: (number of non-finite rows, first such row ids, column mean)."""
    x = source.data
    offsets = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]])
    scan = dask.delayed(_scan_block, pure=True)
    parts = [scan(b, int(o)) for b, o in zip(x.to_delayed().ravel(), offsets)]
    return dask.delayed(_combine_scans, pure=True)(parts)


def check_scan(source: Source, scan_result) -> np.ndarray:
    """Raise on non-finite rows; return the column mean (float64, shape (d,))."""
    count, first, mean = scan_result
    if count:
        shown = ", ".join(str(i) for i in first)
        more = ", ..." if count > len(first) else ""
        raise InvalidInputError(
            f"embeddings contain NaN or infinite values in {count} of {source.n} rows "
            f"(first rows: {shown}{more}); remove or impute them before clustering"
        )
    return np.asarray(mean, dtype=np.float64)
