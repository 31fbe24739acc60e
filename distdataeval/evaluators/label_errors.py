"""``label_errors``: samples that sit closer to another class than to their own (spec section 6).

For every sample i of class L, with ``k_eff`` neighbours:

* intra(i) = mean distance to its ``k_eff`` nearest samples of class L (itself excluded),
* extra(i) = mean distance to its ``k_eff`` nearest samples of any other class,
* score(i) = intra(i) / extra(i); a sample is reported when score(i) >= 1, with suggested
  labels from a rank-weighted vote of those extra-class neighbours (nearest weighs
  ceil(k_eff / 3), farthest 1; the best class needs a 0.4 share, a runner-up within 0.2 of it
  is suggested too).

This equals DataEval 1.1.4's ``label_errors``. It is computed as one distributed brute-force
search over row blocks that keeps, per row, the nearest same-class and the nearest other-class
samples in one pass (:mod:`distdataeval.evaluators.masked_search`): no n x n matrix, no loop over
classes. Where DataEval crashes, this raises a clear error or applies a documented rule:

* one class only: :class:`~distdataeval.errors.InvalidInputError` (DataEval: IndexError);
* a class of a single sample (DataEval: ``k_eff = 0``, an sklearn error): such a class is left
  out of ``k_eff = min(k, smallest class size - 1)``, and its sample, which has no intra-class
  neighbour, gets score ``inf``; it is therefore always reported, with suggestions from its
  extra-class neighbours (a label nothing else shares is worth a look);
* when a class has fewer than ``k_eff`` samples outside it (possible only next to singleton
  classes), extra(i) averages the ones there are;
* ``k >= n``, a label array of the wrong length, non-integer labels: clear errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import dask
import numpy as np

from distdataeval.errors import InvalidInputError, InvalidParameterError
from distdataeval.evaluators import _label_error_kernels as LK
from distdataeval.evaluators.masked_search import masked_knn, prepare_search_blocks
from distdataeval.io.source import check_scan, open_source, scan_source
from distdataeval.runtime.client import active_client

__all__ = ["LabelErrorResult", "label_errors"]

_KEYS = ("errors", "error_rank", "scores")
DEFAULT_K = 50


@dataclass(frozen=True, eq=False)
class LabelErrorResult(Mapping):
    """Output of :func:`label_errors`; reads like DataEval's ``LabelErrorResult`` dict.

    Attributes
    ----------
    errors : dict of int to (int, list of int)
        Sample id -> (its label, suggested labels), for every sample with score >= 1, in
        ascending id order. Suggestions are always other classes (possibly an empty list).
    error_rank : ndarray of int64, shape (n,)
        Sample ids by descending score (equal scores by ascending id).
    scores : ndarray of float32, shape (n,)
        intra / extra mean neighbour distance per sample (``inf`` for a class of one sample).
    k : int
        Neighbours actually averaged (``k_eff``).
    """

    errors: dict
    error_rank: np.ndarray
    scores: np.ndarray
    k: int

    def __getitem__(self, key: str):
        if key not in _KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InvalidParameterError(f"k must be an int, got {k!r}")
    if k < 1:
        raise InvalidParameterError(f"k must be >= 1, got {k}")
    return int(k)


def _check_labels(labels, n: int) -> np.ndarray:
    y = np.asarray(labels.compute() if hasattr(labels, "compute") else labels)
    if y.ndim != 1:
        raise InvalidInputError(f"labels must be a 1-D array of class ids, got shape {y.shape}")
    if y.shape[0] != n:
        raise InvalidInputError(f"labels has {y.shape[0]} entries but embeddings have {n} samples; pass one label per sample")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        raise InvalidInputError(
            f"labels must be integer class ids, got dtype {y.dtype}; convert them (e.g. labels.astype(int) for "
            "whole-number floats, or np.unique(..., return_inverse=True) for names)"
        )
    return y.astype(np.int64)


def effective_k(k: int, counts: np.ndarray, n: int) -> int:
    """``min(k, smallest class size - 1)`` over the classes of two or more samples."""
    multi = counts[counts >= 2]
    return int(min(k, multi.min() - 1)) if multi.size else int(min(k, n - 1))


def label_errors(
    embeddings,
    labels,
    k: int | None = None,
    *,
    client=None,
    array: str | None = None,
    chunk_rows: int | None = None,
) -> LabelErrorResult:
    """Find samples whose neighbourhood suggests a different label (DataEval's ``label_errors``).

    Parameters
    ----------
    embeddings : array-like, dask array, zarr array, str or os.PathLike
        (n, ...) samples; axes after the first are flattened. A string is a Zarr store path/URL.
    labels : array-like of int, shape (n,)
        Class id per sample (any integers; at least two distinct classes).
    k : int, optional
        Neighbours per side (default 50, DataEval's); the search uses
        ``k_eff = min(k, smallest class size - 1)`` (classes of one sample left out, see the
        module notes). An explicit ``k`` must be < n.
    client : distributed.Client, optional
        Cluster to run on (default: the current client, else a local cluster).
    array : str, optional
        Array name inside a Zarr group given as ``embeddings``.
    chunk_rows : int, optional
        Rows per block.

    Returns
    -------
    LabelErrorResult
        ``errors`` dict, ``error_rank`` int64 (n,), ``scores`` float32 (n,), ``k``.

    Raises
    ------
    InvalidInputError
        Wrong label length or shape, non-integer labels, a single class, NaN/inf embeddings.
    InvalidParameterError
        ``k`` not an int, < 1 or >= n.

    Examples
    --------
    >>> import numpy as np
    >>> from distdataeval import label_errors
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 0.5, (30, 2)), rng.normal(4, 0.5, (30, 2))])
    >>> y = np.repeat([0, 1], 30); y[0] = 1
    >>> label_errors(x, y, k=10).errors                    # doctest: +SKIP
    {0: (1, [0])}
    """
    explicit_k = k is not None
    k = _check_k(DEFAULT_K if k is None else k)
    with active_client(client) as c:
        n_workers = max(1, len(c.scheduler_info().get("workers", {})))
        source = open_source(embeddings, array, chunk_rows=chunk_rows, n_workers=n_workers)
        n = source.n
        y = _check_labels(labels, n)
        classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        if classes.size < 2:
            raise InvalidInputError(
                f"label_errors needs at least 2 classes (it compares each sample's own class with the others); "
                f"all {n} labels are {classes[0]}"
            )
        if explicit_k and k >= n:
            raise InvalidParameterError(f"k must be < the number of samples n = {n}, got k = {k}")
        k_eff = effective_k(k, counts, n)
        centre = check_scan(source, c.compute(scan_source(source)).result())
        x = source.data
        blocks = prepare_search_blocks(x, centre, codes.astype(np.int64))
        chunks = x.chunks[0]
        neighbours = masked_knn(blocks, chunks, blocks, chunks, k_eff, ("same", "other"), d=source.d, exclude_self=True)
        offsets = np.concatenate([[0], np.cumsum(chunks)[:-1]])
        score = dask.delayed(LK.score_block, pure=True)
        parts = c.compute([score(nb, k_eff, int(o)) for nb, o in zip(neighbours, offsets)], sync=True)
    scores = np.concatenate([p[0] for p in parts]).astype(np.float32)
    flagged = np.concatenate([p[1] for p in parts]).astype(np.int64)
    suggestions = np.concatenate([p[2] for p in parts]).reshape(-1, 2)
    rank = np.lexsort((np.arange(n), -scores.astype(np.float64))).astype(np.int64)
    errors = {
        int(i): (int(y[i]), [int(classes[s]) for s in row if s >= 0]) for i, row in zip(flagged, suggestions)
    }
    return LabelErrorResult(errors=errors, error_rank=rank, scores=scores, k=k_eff)
