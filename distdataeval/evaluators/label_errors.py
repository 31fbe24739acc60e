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

**Search modes.** The exact search above costs O(n^2 d): 3.7 s at 30k rows and 49 s at 100k
(d = 64, measured below), so more than an hour at 1M. ``search="approx"`` is a cell (IVF) search:

1. ``n_cells`` (default ``ceil(n / 512)``) cells of about equal size, fitted on a seeded sample
   (40 rows per cell, at least 10,000): k-means with ``n_cells / GROUP_CELLS`` centroids gives
   groups of neighbouring cells, and each group's sample rows are split by k-means into parts
   of ~40 rows (parts of fewer than 10 sample rows, i.e. outliers, are dropped). Plain k-means
   leaves clustered data in cells of very different sizes (at 1M rows, 2048-row cells held 1 to
   12,192 rows), so a row's probes cost up to 6x the mean. Every row goes to its nearest cell
   (its *home*) and probes its ``nprobe`` (default 16) nearest cells, ranked among the cells of
   its ``GROUP_PROBES`` (8) nearest groups only (coarse-to-fine: routing costs n x (groups +
   ~130 cells) distances instead of n x n_cells; 3.4 instead of 7.3 core-s at 1M, 7.7 instead of
   21.9 at 2M, with the same recall).

   ``nprobe`` (default ``None``) is calibrated on the driver before routing, from the centroid
   sample it already holds (:func:`_calibrate_nprobe`, ~1.3 s at 1M): the search is exact
   within the probed cells, so a row's intra-class recall is the share of its neighbours whose
   home cell it probes. A sample row's ``round(k x sample share)`` nearest same-class sample
   rows stand for its ``k`` neighbours (the ball that holds k rows holds that many sample
   rows), and the smallest nprobe in [``NPROBE_MIN``, ``NPROBE_MAX``] = [8, 64] whose share
   reaches ``recall_target`` (0.95) is taken. A fixed nprobe cannot serve every size: recall
   depends on how much of a class the probes cover, and at 2M rows (classes of ~35k rows)
   nprobe 16 gave intra recall 0.894; the calibration picks 30 there (recall 0.956, 136.5 s
   instead of 107.2 s), 14 at 1M (predicted 0.952, measured 0.950) and 8 at 200k (measured
   0.986).
2. One task per group of neighbouring home cells (at most ``2 x GROUP_CELLS``) searches their
   rows, exactly and with the same masked intra / extra heaps as the exact mode, against the
   rows of the cells they probe (each probed cell is compared with all the group's rows that
   probe it in one GEMM): work n x nprobe x (n / n_cells) x d, memory per task the probed
   cells. For the extra-class lists each home cell's rows also search up to ``nprobe_other``
   (default 96) cells with centroids nearest to the home centroid, comparing only those
   cells' rows of another class than the query row's (a cell's rows are kept grouped by label,
   so these are two contiguous ranges): a cell of the row's own class costs ~1% of a probe (its
   mislabelled rows), a cell of another class one probe. The list is cut, nearest first, once
   its rows of other classes than the home cell's main class (from per-cell label counts)
   exceed ``OTHER_BUDGET_ROWS`` (2048). A class spans many cells at 1M rows, so a row's
   ``nprobe`` nearest cells often hold no other class; this reaches across the class
   boundary. ``nprobe_other=0`` turns it off.
   The candidate GEMM runs in float32 on slabs that stay in cache (``CELL_QUERY_SLAB x
   CELL_REF_SLAB``); the kept candidates' distances are recomputed from float64 differences
   of the rows. Routed blocks and cells hold the (centred) rows once, in float32: distances
   then differ from the exact mode's by ~1e-7 relative (the recall check allows 1e-6), and the
   workers' peak fell from 3.1–3.2 to 1.8 GiB at 1M rows, 7.1 to 3.6 GiB at 2M (same flags and
   recall; 3.3 GiB with the probes as uint16). Routed blocks and gathered cells coexist during
   the search, so memory is ~2 row copies plus the probes: 10M rows at nprobe 64 did not fit
   two 11.8 GiB workers. The task graph is written as layers, not one
   ``dask.delayed`` call per task (:func:`~distdataeval.evaluators.masked_search.cell_knn`).
3. A row that found fewer intra- or extra-class neighbours than it has is searched exactly:
   short of extra-class neighbours (e.g. no other class in its probed cells), over all rows, at
   most ``FALLBACK_MAX_ROWS`` of them; short of intra-class neighbours only (typically a
   mislabelled row far from its class, i.e. what this function looks for), among the rows of
   its own class only, which costs (class size) distances per row instead of n, within a budget
   of ``FALLBACK_MAX_ROWS x n`` distances. Rows missing most neighbours go first, then the
   highest scores; a warning counts the rows left with partial lists. The intra-only rows keep
   the extra-class list of the cell search.
4. ``recall_sample`` (1000) seeded random rows, plus up to 200 flagged rows, are searched
   exactly too; :class:`LabelErrorRecall` (``result.recall``) reports the neighbour recall
   (and the calibration's prediction), score errors, flag and suggestion agreement, and a
   ``LowRecallWarning`` is issued below ``recall_target``.

Same input, seed (:func:`distdataeval.config.set_seed`) and parameters give identical results,
whatever the row blocks.

Current design (balanced 512-row cells, nprobe 16, groups of ~16 neighbouring cells per task),
measured 2026-11-27 on a 2-core AMD EPYC VM at 1M rows (``python3
benchmarks/bench_label_errors.py --zarr /work/data/bench/emb_n1000000_d64_seed0.zarr
--task-stream``, 47 components, 10,000 labels changed): 46.2 s (1,595 cells; sample read and
centroids 3.1 s on the driver, routing 4.8 s wall for 7.3 core-s, cell search 29.6 s wall for
55.7 core-s in 105 tasks, 11,074 short rows searched within their class 2.1 s, recall check
2.8 s), recall intra 0.9615 / extra 0.9985, all 10,000 changed labels flagged. The design
before (2048-row cells of very uneven size, nprobe 4, an other-class budget of 8 cells, one
task per cell, a ``dask.delayed`` call per task) took 93.6 s with recall 0.937 / 0.9988:
~29,600 candidate pairs per row, now ~11,000. In one process on one thread a row of the cell
search costs ~46 us: the float32 candidate GEMM ~14 us (at the core's peak, ~1.3 ns per pair in
d = 64), heap offers ~19 us (~350 pushes per row, k ln(N / k) as for candidates in random order:
in 64-d the order of the cells barely predicts distance rank), exact recomputation and ordering
of the kept candidates ~6 us, the other-class cells ~4 us. With coarse-to-fine routing
(added last): 48.8 s in the same command, routing 3.4 core-s; at 2M 107.2 s (113.2 s before),
recall 0.894 / 0.975, under the target, so it warns: 16 probes see less of a class when classes
are larger (~35k rows there). Cells per task group
(``GROUP_CELLS``), one run each: 4: 51.7 s, 8: 50.5 s, 16: 47.3 s, 32: 48.8 s. Before the last
changes, nprobe 12 took 58.8 s with recall 0.925 / 0.998 and nprobe 14 58.7 s with 0.944 /
0.9985, against 61.8 s for nprobe 16 (one run each). Tried and not kept: a buffered selection
instead of heaps (append below a threshold, cut to the k best by quickselect; 64 vs 42 us per
row in this kernel); submitting the recall sample's exact search early to overlap the driver's
work (53.9 vs ~52 s: the driver and two workers share two cores); exact recomputation from the
cells without concatenating them, and leaving the other-class cells to common labels only
(both within the run-to-run noise, the latter lowering extra recall).

Earlier designs (2048-row cells from plain k-means, nprobe 4, one task per cell):

Measured with ``benchmarks/bench_label_errors.py --n 100000`` (make_embeddings data, 30
components + 0.5% outliers labelled -1, 1% of the labels changed, k = 50, d = 64; 2
single-threaded workers on a 2-core machine shared with other jobs, load 4-8, so times vary by
2x between runs): exact 49 s; approx (nprobe 4, 49 cells) 16-43 s, recall intra 0.994 / extra
0.985, 1494 rows flagged by each mode (flag agreement 1.0 on the sample, all 200 re-checked flagged
rows confirmed), suggestions agree on 0.971 of the rows flagged by both, median relative score
error 0 (max 1.46, one row), 918 short rows searched exactly; nprobe 8: 72 s under load 7, recall
0.995 / 0.998, suggestions 0.995. On a 30-class mixture (``n = 30,000``): exact 3.7 s, approx
8.3 s (the recall check and k-means are a fixed ~3 s). ``search="auto"`` (default) is therefore
exact up to ``AUTO_EXACT_MAX_ROWS`` rows, approx above: 50,000 then (exact ~10 s there, the
crossover lay between 30k and 100k); 30,000 since the balanced cells (``bench_label_errors.py --n
N --search exact|approx``, 2026-11-27: 30k exact 4.1 s / approx 3.6 s, recall 0.996 / 1.000; 50k
9.2 s / 4.1 s, recall 0.996 / 0.999).

At 1M rows (``--zarr /work/data/bench/emb_n1000000_d64_seed0.zarr``: 47 components, 10,000
labels changed; load 2.6 at the start; one run): approx 319 s (489 cells; centroids 7 s, routing
15 s, cell search 186 s, exact fallback of 5,000 of 11,777 short rows 86 s, recall check 21 s),
peak RSS driver 495 MiB, workers 2.7 GiB (sum of 2). All 10,000 changed labels flagged; on the
sample flag agreement 1.0, all 200 re-checked flagged rows confirmed, suggestions agree on
0.932; but neighbour recall intra 0.933 / extra 0.817 (median relative score error 0.008, max
3.8), so the LowRecallWarning fired: a component of ~21k rows spans ~10 cells and 4 probes see
less of it than at 100k. Exact would take about 100 x its 100k time (~1.4 h).

With the float32 candidate GEMM and the within-class fallback (same store and command, one run,
2026-11-26, idle machine, side by side with the code before them): 173.8 s (was 218.9 s in
the run just before: cell search 139 s (was 171 s), all 11,506 short rows searched exactly
within their class in 14.8 s (was 5,000 of them over all rows in 27.3 s), recall check 5.6 s);
recall intra 0.937 / extra 0.999, max relative score error on the sample 0.56 (was 3.85), no
warning about partial lists any more; peak RSS driver 556 MiB, workers 2.7 GiB (sum of 2). The
cell search is compute-bound (task stream: 195 core-s of ``_cell_search`` compute, 2 s of
transfers): ~70 us per row for the ``nprobe`` cells and ~55 us for the other-class cells, at
~45 GFLOP/s in the float32 GEMM on one core.

``nprobe_other`` (class-aware extra cells), measured in one session on the 100k store above
(load 3-5, times are noisy): default cells (49): without 25.5 s, recall 0.994 / 0.985,
suggestions 0.971, 918 short rows; with 12: 49.3 s, recall 0.994 / 0.999, suggestions 0.986,
918 short rows (intra-short, unchanged); with the defaults (32, budget 8, below): 30.2 s,
0.994 / 0.992, suggestions 0.976, 918 short rows. 489 cells at 100k (cells of ~200 rows: the 1M
geometry, harsher): without 43.4 s, recall 0.889 / 0.367, 92,953 short rows (5,000 searched
exactly), median score error 0.60; with 12: 32.0 s, 0.886 / 0.796, 36,156 short rows, median
error 0.013; with 32: 41.1 s, 0.885 / 0.977, 4,206 short rows (all searched exactly), median
error 0.0017, max 0.035 (these three without the budget cut); with 16: 34.9 s, 0.887 / 0.887,
16,081 short rows. With the budget cut (nprobe_other 32, the default): budget 4 cells 37.8 s,
extra recall 0.890, 4,302 short rows; budget 8 (the default) 40.0 s, extra 0.933, 4,207 short
rows, median score error 0.0027, max 0.040. Peak RSS unchanged (driver ~370 MiB, workers
~680 MiB). Intra recall is not affected (it depends on ``nprobe``).

At 1M rows with the defaults (same store as above, one run, load 2.2 at the start and 4-5
during it, another 1M benchmark running alongside): 467.5 s (centroids 9 s, routing 18 s, cell
search 375 s, fallback of 5,000 of 11,506 short rows 50 s, recall check 11.5 s); neighbour
recall intra 0.933 / extra 0.999 (was 0.817), median relative score error 0 (was 0.008), max
3.8; all 10,000 changed labels flagged, flag agreement 1.0, 200/200 flagged rows confirmed,
suggestions agree 0.923; peak RSS driver 500 MiB, workers 2.8 GiB (sum of 2). No
LowRecallWarning from recall any more; the short rows left are intra-short (``nprobe``).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import dask
import numpy as np

from distdataeval import config
from distdataeval.errors import InvalidInputError, InvalidParameterError
from distdataeval.evaluators import _label_error_kernels as LK
from distdataeval.evaluators import _search_kernels as K
from distdataeval.evaluators.masked_search import (
    cell_knn,
    cell_label_counts,
    exact_rows_knn,
    masked_knn,
    prepare_search_blocks,
    probe_pairs,
    route_to_cells,
    same_class_knn,
)
from distdataeval.io.source import check_scan, open_source, scan_source
from distdataeval.pipeline import LowRecallWarning
from distdataeval.runtime.client import active_client

__all__ = ["LabelErrorRecall", "LabelErrorResult", "label_errors"]

log = logging.getLogger(__name__)

_KEYS = ("errors", "error_rank", "scores")
DEFAULT_K = 50
SEARCHES = ("auto", "exact", "approx")
# search="auto" is exact up to this many rows, approx above (see the module notes for the
# measurement it comes from: with the balanced cells, approx 3.6 s / exact 4.1 s at 30k, 4.1 s /
# 9.2 s at 50k)
AUTO_EXACT_MAX_ROWS = 30_000
CELL_ROWS = 512  # approx mode: rows per cell (cells = ceil(n / CELL_ROWS))
GROUP_CELLS = 16  # approx mode: neighbouring cells whose rows one task searches (about)
NPROBE = 16  # approx mode: cells each row is searched in when nprobe is not calibrated (recall_sample=0)
# nprobe=None: the smallest nprobe in [NPROBE_MIN, NPROBE_MAX] whose predicted intra-class recall on
# the recall sample reaches recall_target (see _calibrate_nprobe)
NPROBE_MIN = 8
NPROBE_MAX = 64
# approx mode: cells nearest to a row's home cell also searched for its extra-class neighbours
# (only their rows of another class; see the module notes)
NPROBE_OTHER = 96
# ... but a home cell's extra cells stop once they hold this many rows of other classes than the
# home cell's main class (bounds the work: cells of another class are searched in full, cells of
# the same class cost only their few rows of other classes)
OTHER_BUDGET_ROWS = 2048
RECALL_SAMPLE = 1000
FLAG_SAMPLE = 200  # approx-flagged rows re-checked exactly
RECALL_TARGET = 0.95
FALLBACK_MAX_ROWS = 5000  # rows short of neighbours after probing searched exactly (at most)
CENTROID_SAMPLE_PER_CELL = 40
_SEED_PATH = 70  # seed sub-path of this evaluator's random choices


@dataclass(frozen=True)
class LabelErrorRecall:
    """Quality of an approximate ``label_errors`` run, measured against exact search.

    Attributes
    ----------
    rows : int
        Seeded random rows searched exactly as well.
    intra, extra : float
        Mean over those rows of the share of the exact intra- / extra-class neighbours the
        approximate search found (a neighbour counts when its distance is <= the exact k-th
        distance, so ties do not matter).
    score_error : float
        Largest relative score error |approx - exact| / exact over those rows.
    score_error_median : float
        Median of it.
    flag_agreement : float
        Share of those rows flagged (score >= 1) by both searches or by neither.
    flagged_checked : int
        Approx-flagged rows (seeded random, up to ``FLAG_SAMPLE``) re-scored exactly.
    flagged_confirmed : float
        Share of them the exact search flags too (nan when none was checked).
    suggestion_agreement : float
        Share of the rows flagged by both (among all rows checked) with the same suggestions.
    short_rows : int
        Rows that found fewer neighbours than they have in the probed cells.
    fallback_rows : int
        Of those, rows searched exactly (at most ``FALLBACK_MAX_ROWS``; the rest keep their
        approximate lists, with a warning).
    n_cells, nprobe : int
        Cells and cells probed per row.
    nprobe_other : int
        Cells (nearest to the home cell) also searched for extra-class neighbours.
    predicted_intra : float or None
        With ``nprobe=None``: the intra-class recall the calibration predicted for ``nprobe``
        (None when ``nprobe`` was given).
    """

    rows: int
    intra: float
    extra: float
    score_error: float
    score_error_median: float
    flag_agreement: float
    flagged_checked: int
    flagged_confirmed: float
    suggestion_agreement: float
    short_rows: int
    fallback_rows: int
    n_cells: int
    nprobe: int
    nprobe_other: int = 0
    predicted_intra: float | None = None


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
    search : {"exact", "approx"}
        The search that ran.
    recall : LabelErrorRecall or None
        Measured quality of an approximate run (None for exact).
    """

    errors: dict
    error_rank: np.ndarray
    scores: np.ndarray
    k: int
    search: str = "exact"
    recall: LabelErrorRecall | None = None

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


def _check_search(search, n_cells, nprobe, recall_sample, recall_target, nprobe_other=None):
    if search not in SEARCHES:
        raise InvalidParameterError(f"unknown search {search!r}; use one of {SEARCHES}")
    for name, value, low in (
        ("n_cells", n_cells, 1), ("nprobe", nprobe, 1), ("recall_sample", recall_sample, 0), ("nprobe_other", nprobe_other, 0),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InvalidParameterError(f"{name} must be an int >= {low}, got {value!r}")
    if isinstance(recall_target, bool) or not isinstance(recall_target, (int, float)) or not 0 <= recall_target <= 1:
        raise InvalidParameterError(f"recall_target must be a number in [0, 1], got {recall_target!r}")


def label_errors(
    embeddings,
    labels,
    k: int | None = None,
    *,
    search: str = "auto",
    n_cells: int | None = None,
    nprobe: int | None = None,
    nprobe_other: int | None = None,
    recall_sample: int = RECALL_SAMPLE,
    recall_target: float = RECALL_TARGET,
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
    search : {"auto", "exact", "approx"}
        ``"exact"``: brute force over all rows, O(n^2 d), DataEval's results. ``"approx"``: cell
        (IVF) search, O(n * nprobe * n / n_cells * d), with its recall measured on a sample
        (``result.recall``). ``"auto"`` (default): exact up to ``AUTO_EXACT_MAX_ROWS`` rows.
    n_cells : int, optional
        Approx: number of cells, of about equal sizes (default ``ceil(n / 512)``; parts of
        fewer than 10 sample rows are dropped, so there are fewer: 1,595 instead of 1,954 at 1M
        rows of the benchmark store).
    nprobe : int, optional
        Approx: cells each row is searched in. Default: calibrated per run, the smallest
        nprobe in [8, 64] whose intra-class recall, predicted on the centroid sample, reaches
        ``recall_target`` (16 when ``recall_sample=0``). At 1M rows of the benchmark store it
        picks 14, at 2M 30 (classes are larger there, so a row must probe more of its class).
    nprobe_other : int, optional
        Approx: the cells nearest (by centroid) to a row's home cell that are also searched for
        its extra-class neighbours, comparing only their rows of another class (default
        ``NPROBE_OTHER``; 0 turns it off).
    recall_sample : int
        Approx: random rows also searched exactly to measure recall (default 1000; 0 skips the
        measurement and the calibration).
    recall_target : float
        Approx: the intra-class neighbour recall ``nprobe=None`` aims at, and the measured intra-
        or extra-class recall below which a :class:`~distdataeval.pipeline.LowRecallWarning` is
        issued (default 0.95).
    client : distributed.Client, optional
        Cluster to run on (default: the current client, else a local cluster).
    array : str, optional
        Array name inside a Zarr group given as ``embeddings``.
    chunk_rows : int, optional
        Rows per block.

    Returns
    -------
    LabelErrorResult
        ``errors`` dict, ``error_rank`` int64 (n,), ``scores`` float32 (n,), ``k``, ``search``,
        ``recall``.

    Raises
    ------
    InvalidInputError
        Wrong label length or shape, non-integer labels, a single class, NaN/inf embeddings.
    InvalidParameterError
        ``k`` not an int, < 1 or >= n; unknown ``search``; bad ``n_cells``, ``nprobe``,
        ``nprobe_other``, ``recall_sample`` or ``recall_target``.

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
    _check_search(search, n_cells, nprobe, recall_sample, recall_target, nprobe_other)
    with active_client(client) as c:
        n_workers = max(1, len(c.scheduler_info().get("workers", {})))
        source = open_source(embeddings, array, chunk_rows=chunk_rows, n_workers=n_workers)
        n = source.n
        y = _check_labels(labels, n)
        classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        codes = codes.astype(np.int64)
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
        blocks = prepare_search_blocks(x, centre, codes, client=c)
        chunks = x.chunks[0]
        if search == "exact" or (search == "auto" and n <= AUTO_EXACT_MAX_ROWS):
            neighbours = masked_knn(blocks, chunks, blocks, chunks, k_eff, ("same", "other"), d=source.d, exclude_self=True)
            offsets = np.concatenate([[0], np.cumsum(chunks)[:-1]])
            score = dask.delayed(LK.score_block, pure=True)
            parts = c.compute([score(nb, k_eff, int(o)) for nb, o in zip(neighbours, offsets)], sync=True)
            scores = np.concatenate([p[0] for p in parts]).astype(np.float32)
            flagged = np.concatenate([p[1] for p in parts]).astype(np.int64)
            suggestions = np.concatenate([p[2] for p in parts]).reshape(-1, 2)
            recall = None
        else:
            scores, flagged, suggestions, recall = _approx(
                c, source, blocks, centre, codes, counts, k_eff, n_cells, nprobe, recall_sample, recall_target,
                NPROBE_OTHER if nprobe_other is None else nprobe_other,
            )
    rank = np.lexsort((np.arange(n), -scores.astype(np.float64))).astype(np.int64)
    errors = {
        int(i): (int(y[i]), [int(classes[s]) for s in row if s >= 0]) for i, row in zip(flagged, suggestions)
    }
    return LabelErrorResult(
        errors=errors, error_rank=rank, scores=scores, k=k_eff, search="exact" if recall is None else "approx", recall=recall
    )


def _collect(parts: list, scores, found, flagged: dict, sampled: dict, means=None, pending=None) -> None:
    """Write score_rows outputs into the driver's arrays (later parts overwrite earlier ones);
    ``means`` (n, 2) and ``pending`` (id -> suggestions of rows short of intra-class
    neighbours) when given."""
    for ids, sc, fd, fl, sug, (s_ids, s_intra, s_extra), mean, (o_ids, o_sug) in parts:
        scores[ids] = sc
        found[ids] = fd
        for i in set(flagged).intersection(ids.tolist()):  # a re-searched row drops its earlier flag
            del flagged[i]
        flagged.update({int(i): row for i, row in zip(fl, sug)})
        sampled.update({int(i): (a, b) for i, a, b in zip(s_ids, s_intra, s_extra)})
        if means is not None:
            means[ids] = mean
            pending.update({int(i): row for i, row in zip(o_ids, o_sug)})


def _collect_intra(parts: list, k: int, scores, found, flagged: dict, sampled: dict, means, pending: dict) -> None:
    """Replace the intra-class lists of rows searched again within their class: new intra mean,
    score from the extra mean the cell search found, flag and suggestions updated."""
    for ids, nb in parts:
        intra = LK._mean_distance(nb.sqdist[:, :k])
        means[ids, 0] = intra
        found[ids, 0] = np.isfinite(nb.sqdist[:, :k]).sum(axis=1)
        scores[ids] = LK.ratio_of_means(intra, means[ids, 1])
        for i, sc, row in zip(ids.tolist(), scores[ids].tolist(), nb.sqdist[:, :k]):
            if sc >= LK.THRESHOLD:
                flagged[i] = pending[i]
            else:
                flagged.pop(i, None)
            if i in sampled:
                sampled[i] = (row, sampled[i][1])


def _by_priority(rows: np.ndarray, expected: np.ndarray, found: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``rows`` ordered by neighbours missing (most first), then score (highest first), then id."""
    missing = (expected[rows] - found[rows]).sum(axis=1)
    return rows[np.lexsort((rows, -scores[rows].astype(np.float64), -missing))]


# relative slack when an approximate distance is compared with the exact k-th one: the cell
# search computes distances from float32 rows (float64 differences), the exact search from
# float64 rows, so the same neighbour's two distances differ by ~1e-7 relative
DISTANCE_RTOL = 1e-6


def _distance_recall(approx_sq: np.ndarray, exact_sq: np.ndarray) -> float:
    """Share of the exact neighbours found: approx distances within the exact k-th distance
    (up to ``DISTANCE_RTOL``)."""
    have = np.isfinite(exact_sq)
    count = have.sum(axis=1)
    kth = np.where(count > 0, np.max(np.where(have, exact_sq, -np.inf), axis=1), np.inf)
    hit = (approx_sq <= kth[:, None] * (1 + DISTANCE_RTOL) + 1e-12).sum(axis=1)
    ok = count > 0
    return float(np.mean(np.minimum(hit[ok], count[ok]) / count[ok])) if ok.any() else float("nan")


def _nearest_centroid(rows: np.ndarray, cent: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centroid (float64)."""
    return np.argmin((cent**2).sum(axis=1)[None, :] - 2.0 * rows @ cent.T, axis=1)


def _lloyd(rows: np.ndarray, parts: int, rng: np.random.Generator, iters: int = 10) -> np.ndarray:
    """``parts`` centroids of ``rows``: k-means++ seeding, then a few Lloyd steps (small inputs)."""
    from sklearn.cluster import kmeans_plusplus

    cent, _ = kmeans_plusplus(rows, parts, random_state=int(rng.integers(2**31 - 1)))
    for _ in range(iters):
        lab = _nearest_centroid(rows, cent)
        counts = np.bincount(lab, minlength=parts)
        sums = np.zeros_like(cent)
        np.add.at(sums, lab, rows)
        filled = counts > 0
        cent[filled] = sums[filled] / counts[filled, None]
    return cent


def _fit_cells(sample: np.ndarray, n_cells: int, group_cells: int, rng: np.random.Generator) -> tuple:
    """Cell centroids of about equal sizes, the group (of neighbouring cells) of each, and the
    groups' centroids.

    k-means (one seeded k-means++ run) with ``n_cells / group_cells`` centroids on part of the
    centred sample rows gives the groups; each group's sample rows are then split by k-means
    into parts of about ``CENTROID_SAMPLE_PER_CELL`` rows. Plain k-means on clustered data
    leaves cells of very different sizes (at 1M rows of 47 Gaussian components, 2048-row cells
    ranged from 1 to 12,192 rows), and a row's probes then cost up to 6x the mean; splitting
    evens them out. Parts of fewer than a quarter of that many sample rows (outliers) are
    dropped: their rows go to the nearest kept cell.
    """
    from sklearn.cluster import KMeans

    n_cells = max(1, min(n_cells, sample.shape[0]))
    n_groups = max(1, math.ceil(n_cells / group_cells))
    per_cell = max(1.0, sample.shape[0] / n_cells)
    if n_groups == 1:
        coarse = sample.mean(axis=0, keepdims=True)
    else:
        take = min(sample.shape[0], CENTROID_SAMPLE_PER_CELL * n_groups)
        sub = sample[np.sort(rng.choice(sample.shape[0], take, replace=False))]
        km = KMeans(n_clusters=min(n_groups, sub.shape[0]), n_init=1, max_iter=50, random_state=int(rng.integers(2**31 - 1)))
        coarse = km.fit(sub).cluster_centers_
    home = _nearest_centroid(sample, coarse)
    order = np.argsort(home, kind="stable")
    bounds = np.searchsorted(home[order], np.arange(coarse.shape[0] + 1))
    centroids, groups, kept = [], [], []
    for g in range(coarse.shape[0]):
        rows = sample[order[bounds[g] : bounds[g + 1]]]
        parts = int(round(rows.shape[0] / per_cell))
        if parts == 0 or rows.shape[0] < per_cell / 4:
            continue
        cent = rows.mean(axis=0, keepdims=True) if parts == 1 else _lloyd(rows, parts, rng)
        if parts > 1:
            lab = _nearest_centroid(rows, cent)
            cent = cent[np.bincount(lab, minlength=parts) >= per_cell / 4]
        if cent.shape[0] == 0:
            continue
        centroids.append(cent)
        groups.append(np.full(cent.shape[0], len(groups), np.int64))
        kept.append(coarse[g])
    if not centroids:  # every part too small: one cell
        return sample.mean(axis=0, keepdims=True), np.zeros(1, np.int64), sample.mean(axis=0, keepdims=True)
    return np.concatenate(centroids), np.concatenate(groups), np.stack(kept)


def _task_groups(homes: np.ndarray, group_of: np.ndarray) -> list:
    """Home cells searched together: those of one centroid group, at most ``2 * GROUP_CELLS``
    per task (a large group is cut into consecutive runs)."""
    out = []
    for g in np.unique(group_of[homes]):
        members = homes[group_of[homes] == g]
        parts = math.ceil(members.size / (2 * GROUP_CELLS))
        out.extend(np.array_split(members, parts))
    return out


def _nearest_other_cells(centroids: np.ndarray, homes: np.ndarray, q: int, other_rows: dict | None = None,
                         budget: float = np.inf, rows: int = 1024) -> dict:
    """Home cell -> the ``q`` other home cells with the nearest centroids (ties: lower id),
    nearest first, cut where their rows of other classes than the home's main class
    (``other_rows[home]``: cell -> count) would exceed ``budget`` (the nearest is always kept)."""
    if q == 0 or homes.size < 2:
        return {}
    q = min(q, homes.size - 1)
    c = centroids[homes]
    sq = (c**2).sum(axis=1)
    out = {}
    for s in range(0, homes.size, rows):  # rows x cells at a time (cells, not samples)
        d2 = sq[s : s + rows, None] + sq[None, :] - 2.0 * (c[s : s + rows] @ c.T)
        d2[np.arange(d2.shape[0]), np.arange(s, s + d2.shape[0])] = np.inf  # not itself
        part = np.argpartition(d2, q - 1, axis=1)[:, :q]
        order = np.lexsort((part, np.take_along_axis(d2, part, axis=1)), axis=1)
        for i, row in enumerate(np.take_along_axis(part, order, axis=1)):
            home, near = int(homes[s + i]), homes[row]
            if other_rows is not None:
                cost = np.cumsum([other_rows[home].get(int(cc), 0) for cc in near])
                near = near[: max(1, int(np.searchsorted(cost, budget, side="right")))]
            out[home] = near
    return out


def _other_rows(label_counts: list) -> dict:
    """Home cell -> {cell: its rows of other classes than the home cell's main class}."""
    cells = np.concatenate([p[0] for p in label_counts])
    labs = np.concatenate([p[1] for p in label_counts])
    cnt = np.concatenate([p[2] for p in label_counts])
    key, inv = np.unique(np.stack([cells, labs]), axis=1, return_inverse=True)
    cnt = np.bincount(inv.ravel(), weights=cnt).astype(np.int64)
    per_cell: dict = {}
    for cc, lab, m in zip(key[0].tolist(), key[1].tolist(), cnt.tolist()):
        per_cell.setdefault(cc, {})[lab] = m
    size = {cc: sum(v.values()) for cc, v in per_cell.items()}
    main = {cc: min(v, key=lambda lab: (-v[lab], lab)) for cc, v in per_cell.items()}
    # rows of cell cc not of class L, for the main classes L of the home cells
    return {h: _Other(per_cell, size, main[h]) for h in per_cell}


class _Other:
    """cell -> rows of another class than ``label`` (a lazy dict view)."""

    def __init__(self, per_cell, size, label):
        self.per_cell, self.size, self.label = per_cell, size, label

    def get(self, cell, default=0):
        if cell not in self.size:
            return default
        return self.size[cell] - self.per_cell[cell].get(self.label, 0)


def _approx(c, source, blocks, centre, codes, counts, k_eff, n_cells, nprobe, recall_sample, recall_target, nprobe_other):
    """The cell (IVF) search: scores (n,), flagged ids, their suggestions (codes), recall."""
    t0 = time.perf_counter()
    n, d = source.n, source.d
    x = source.data
    chunks = x.chunks[0]
    modes = ("same", "other")
    # 1. cell centroids: k-means on a seeded sample (oversized cells split)
    target_cells = n_cells if n_cells is not None else math.ceil(n / CELL_ROWS)
    target_cells = max(1, min(target_cells, n))
    rng = config.rng_for("sampling", _SEED_PATH, seed=config.search_seed())
    n_sample = min(n, max(CENTROID_SAMPLE_PER_CELL * target_cells, 10_000))
    pick = np.sort(rng.choice(n, n_sample, replace=False))
    sample = np.asarray(c.compute(x[pick]).result(), dtype=np.float64).reshape(n_sample, -1) - centre
    centroids, group_of, group_centroids = _fit_cells(
        sample, target_cells, GROUP_CELLS, config.rng_for("sampling", _SEED_PATH, 1, seed=config.search_seed())
    )
    log.debug("label_errors approx: %d cell centroids fitted in %.1f s", centroids.shape[0], time.perf_counter() - t0)
    sample_ids = np.sort(config.rng_for("recall", _SEED_PATH, seed=config.search_seed()).choice(n, min(n, recall_sample), replace=False)).astype(np.int64)
    calibration = None
    if nprobe is None and recall_sample > 0:
        # 2a. nprobe calibrated on the driver's sample (see _calibrate_nprobe)
        t_cal = time.perf_counter()
        calibration = _calibrate_nprobe(
            sample, codes[pick], n, k_eff, centroids, group_of, group_centroids, recall_target, NPROBE_MIN, NPROBE_MAX
        )
        p = calibration[0]
        log.debug("label_errors approx: nprobe %d calibrated in %.1f s (predicted intra recall %.4f)", p,
                  time.perf_counter() - t_cal, calibration[1][p - 1])
    else:
        p = int(min(nprobe if nprobe is not None else NPROBE, centroids.shape[0]))
    # 2. rows routed to their nearest cell, with the cells they probe
    routes = c.persist(route_to_cells(blocks, centroids, p, group_of, group_centroids))
    n_centroids = centroids.shape[0]
    pairs, label_counts = c.compute([probe_pairs(routes, n_centroids), cell_label_counts(routes)], sync=True)
    log.debug("label_errors approx: rows routed at %.1f s", time.perf_counter() - t0)
    pairs = np.unique(np.concatenate(pairs))
    home_of, target = np.divmod(pairs, n_centroids)
    homes, starts = np.unique(home_of, return_index=True)
    # a probed cell that is nobody's home has no rows
    probed = {int(h): np.intersect1d(t, homes) for h, t in zip(homes, np.split(target, starts[1:]))}
    # 3. search: each home cell against the cells its rows probe; scored where it ran
    score = dask.delayed(LK.score_rows, pure=True)
    other = _nearest_other_cells(
        centroids, homes, nprobe_other, _other_rows(label_counts), OTHER_BUDGET_ROWS
    )
    searches = cell_knn(routes, _task_groups(homes, group_of), probed, k_eff, modes, other, (LK.score_rows, (k_eff, sample_ids)))
    parts = c.compute(searches, sync=True)
    log.debug("label_errors approx: cells searched at %.1f s", time.perf_counter() - t0)
    del routes, searches
    scores = np.zeros(n, np.float32)
    found = np.zeros((n, 2), np.int32)
    means = np.zeros((n, 2))
    flagged: dict = {}
    sampled: dict = {}
    pending: dict = {}
    _collect(parts, scores, found, flagged, sampled, means, pending)
    del parts
    t_search = time.perf_counter() - t0
    # 4. rows with fewer neighbours than they have: exact search (bounded)
    own = counts[codes]
    expected = np.stack([np.minimum(k_eff, own - 1), np.minimum(k_eff, n - own)], axis=1)
    short_of = found < expected
    short = np.flatnonzero(short_of.any(axis=1))
    # (a) short of extra-class neighbours: searched over all rows, at most FALLBACK_MAX_ROWS; the
    # rows missing most neighbours first, then the highest scores (a partial extra-class list
    # underestimates the extra distance, so overestimates the score)
    fallback = _by_priority(np.flatnonzero(short_of[:, 1]), expected, found, scores)[:FALLBACK_MAX_ROWS]
    # (b) short of intra-class neighbours only (e.g. a mislabelled row far from its class):
    # searched exactly among the rows of its own class, up to FALLBACK_MAX_ROWS x n distances
    only_intra = _by_priority(np.flatnonzero(short_of[:, 0] & ~short_of[:, 1]), expected, found, scores)
    cost = np.cumsum(counts[codes[only_intra]])
    in_class = only_intra[: int(np.searchsorted(cost, FALLBACK_MAX_ROWS * n, side="right"))]
    fallback, in_class = np.sort(fallback), np.sort(in_class)
    covered = fallback.size + in_class.size
    if covered < short.size:
        warnings.warn(
            f"label_errors approx: {short.size} rows found fewer neighbours than they have in their {p} probed "
            f"cells; {covered} of them were searched exactly, the rest keep partial neighbour lists "
            "(raise nprobe, or use search='exact')",
            LowRecallWarning,
            stacklevel=3,
        )
    t_fb = time.perf_counter()
    full = [score(r, k_eff, sample_ids) for r in exact_rows_knn(fallback, codes, blocks, chunks, k_eff, modes, d=d)]
    intra = same_class_knn(x, in_class, centre, codes, blocks, k_eff, d=d)
    done = c.compute(full + intra, sync=True)
    _collect(done[: len(full)], scores, found, flagged, sampled)
    _collect_intra(done[len(full) :], k_eff, scores, found, flagged, sampled, means, pending)
    del done, pending
    t_fb = time.perf_counter() - t_fb
    # 5. recall: sampled rows (and some flagged rows) searched exactly
    t_rec = time.perf_counter()
    recall = _measure_recall(
        c, x, centre, codes, blocks, chunks, d, k_eff, modes, sample_ids, scores, flagged, sampled, short.size, covered,
        centroids.shape[0], p, min(nprobe_other, max(homes.size - 1, 0)),
        None if calibration is None else float(calibration[1][p - 1]),
    )
    log.info(
        "label_errors approx: %d cells, nprobe %d: cells + search %.1f s, %d short rows (%d searched exactly over all "
        "rows, %d within their class, %.1f s), recall measured in %.1f s: %s",
        centroids.shape[0], p, t_search, short.size, fallback.size, in_class.size, t_fb, time.perf_counter() - t_rec, recall,
    )
    if recall.rows and min(recall.intra, recall.extra) < recall_target:
        warnings.warn(
            f"label_errors approx: neighbour recall intra {recall.intra:.3f} / extra {recall.extra:.3f} is below the "
            f"target {recall_target}; raise nprobe or use search='exact' (O(n^2))",
            LowRecallWarning,
            stacklevel=3,
        )
    ids = np.array(sorted(flagged), dtype=np.int64)
    sug = np.array([flagged[int(i)] for i in ids], dtype=np.int64).reshape(-1, 2)
    return scores, ids, sug, recall


CALIBRATION_QUERIES = 20_000  # sample rows whose neighbourhoods calibrate nprobe (at most)


def _calibrate_nprobe(sample: np.ndarray, labels: np.ndarray, n: int, k: int, centroids: np.ndarray, group_of, group_centroids,
                      target: float, p_min: int, p_max: int) -> tuple:
    """The smallest ``nprobe`` in [p_min, p_max] (at most the number of cells) whose predicted
    intra-class recall reaches ``target``, and the predicted recall of every ``nprobe``
    (index p - 1).

    Within the cells a row probes, the search is exact, so a row finds an intra-class neighbour
    exactly when that neighbour's home cell is among its first ``nprobe`` ranked cells. The
    prediction counts this on the centroid sample (the driver holds it; no pass over the data):
    the sample is a share f = len(sample) / n of the rows, so the ball holding a row's ``k``
    nearest same-class rows holds about ``k f`` sample rows of its class; a sample row's
    ``max(1, round(k f))`` nearest same-class sample rows stand for its ``k`` neighbours. Cells
    are ranked by the routing's own function. Rows short of neighbours are searched exactly
    later, so the measured recall (``result.recall.intra``) is usually a little higher.
    """
    m = sample.shape[0]
    width = int(min(p_max, centroids.shape[0]))
    kk = max(1, int(round(k * m / n)))
    home = K.rank_cells(sample, centroids, 1, group_of, group_centroids)[:, 0]
    rng = config.rng_for("sampling", _SEED_PATH, 2, seed=config.search_seed())
    queries = np.sort(rng.choice(m, min(m, CALIBRATION_QUERIES), replace=False))
    ranked = K.rank_cells(sample[queries], centroids, width, group_of, group_centroids)  # per query
    pos_list = []
    for code in np.unique(labels[queries]):
        members = np.flatnonzero(labels == code)
        q = queries[labels[queries] == code]
        if members.size < 2:
            continue
        kc = min(kk, members.size - 1)
        ref = sample[members]
        r_sq = (ref**2).sum(axis=1)
        for s in range(0, q.size, 1024):
            rows = q[s : s + 1024]
            d2 = r_sq[None, :] - 2.0 * sample[rows] @ ref.T
            d2[members[None, :] == rows[:, None]] = np.inf  # not itself
            near = members[np.argpartition(d2, kc - 1, axis=1)[:, :kc]]
            match = home[near][:, :, None] == ranked[np.searchsorted(queries, rows)][:, None, :]
            pos_list.append(np.where(match.any(axis=2), match.argmax(axis=2), width).ravel())
    if not pos_list:
        return max(1, min(p_min, width)), np.ones(width)
    pos = np.concatenate(pos_list)
    recall = np.cumsum(np.bincount(pos, minlength=width + 1)[:width]) / pos.size
    ok = np.flatnonzero(recall >= target) + 1
    ok = ok[ok >= min(p_min, width)]
    return int(ok[0] if ok.size else width), recall


def _measure_recall(c, x, centre, codes, blocks, chunks, d, k_eff, modes, sample_ids, scores, flagged, sampled, n_short,
                    n_fallback, n_cells, p, p_other=0, predicted=None) -> LabelErrorRecall:
    """Recall and agreement on ``sample_ids`` (and up to FLAG_SAMPLE flagged rows) against an
    exact search."""
    flagged_ids = np.array(sorted(flagged), dtype=np.int64)
    rng = config.rng_for("recall", _SEED_PATH, 1, seed=config.search_seed())
    check = np.sort(rng.choice(flagged_ids, min(FLAG_SAMPLE, flagged_ids.size), replace=False)) if flagged_ids.size else flagged_ids
    rows = np.union1d(sample_ids, check)
    if rows.size == 0:
        nan = float("nan")
        return LabelErrorRecall(
            0, nan, nan, nan, nan, nan, 0, nan, nan, int(n_short), int(n_fallback), int(n_cells), int(p), int(p_other)
        )
    score = dask.delayed(LK.score_rows, pure=True)
    exact = c.compute(
        [score(r, k_eff, sample_ids) for r in exact_rows_knn(rows, codes, blocks, chunks, k_eff, modes, d=d)],
        sync=True,
    )
    e_scores = np.concatenate([p[1] for p in exact])
    e_ids = np.concatenate([p[0] for p in exact])
    e_flag = {int(i): row for p in exact for i, row in zip(p[3], p[4])}
    e_samp = {int(i): (a, b) for p in exact for i, a, b in zip(*p[5])}
    by_id = dict(zip(e_ids.tolist(), e_scores.tolist()))
    s = sample_ids
    if s.size == 0:
        intra = extra = float("nan")
    else:
        intra = _distance_recall(np.stack([sampled[int(i)][0] for i in s]), np.stack([e_samp[int(i)][0] for i in s]))
        extra = _distance_recall(np.stack([sampled[int(i)][1] for i in s]), np.stack([e_samp[int(i)][1] for i in s]))
    a_sc = scores[s].astype(np.float64)
    e_sc = np.array([by_id[int(i)] for i in s])
    fin = np.isfinite(e_sc) & (e_sc > 0)
    with np.errstate(invalid="ignore"):
        rel = np.abs(a_sc[fin] - e_sc[fin]) / e_sc[fin]
    score_error = float(np.max(rel)) if rel.size else float("nan")
    score_error_median = float(np.median(rel)) if rel.size else float("nan")
    agree = float(np.mean((a_sc >= LK.THRESHOLD) == (e_sc >= LK.THRESHOLD))) if s.size else float("nan")
    confirmed = float(np.mean([by_id[int(i)] >= LK.THRESHOLD for i in check])) if check.size else float("nan")
    both = [int(i) for i in rows if int(i) in flagged and int(i) in e_flag]
    same_sug = float(np.mean([np.array_equal(flagged[i], e_flag[i]) for i in both])) if both else float("nan")
    return LabelErrorRecall(
        int(s.size), intra, extra, score_error, score_error_median, agree, int(check.size), confirmed, same_sug, int(n_short),
        int(n_fallback), int(n_cells), int(p), int(p_other), predicted,
    )
