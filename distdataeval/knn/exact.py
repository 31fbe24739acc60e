"""Exact k-NN by blocked brute force over Dask row blocks.

Each task scans one query block against a group of ref blocks (all of them while they fit in
``GROUP_BYTES``): a float32 GEMM ranks candidates, a per-row heap keeps the best ``k + margin`` of
them, and their distances are recomputed exactly in float64 by direct differences. The task also
returns a lower bound on the squared distance of every ref it dropped (its float32 boundary score
minus a proven round-off bound). Per query block a merge of the groups keeps the k best exact
candidates; a row whose k-th distance is not below every tile's bound is
*uncertified* and recomputed in float64 over all refs (:func:`refine_rows`). No n x n matrix
ever exists: a tile is processed in slabs of at most ``QUERY_SLAB x REF_SLAB`` scores.

Self is excluded by index, never by column position.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np

from distdataeval.knn import _kernels as K
from distdataeval.knn.blocks import PreparedBlock, prepare_block, prepared_from_centred, roundoff_bound, take_rows
from distdataeval.runtime.threads import limit_threads

QUERY_SLAB = 2048
REF_SLAB = 8192
CANDIDATE_MARGIN = 8
# One task scans a query block against a group of ref blocks with a running heap per row, so a
# row's heap is warm for all but the first slab (a fresh heap per block pair spends most of its
# time inserting). A group holds at most this much prepared data (float64 + float32 rows).
GROUP_BYTES = 256 << 20


@dataclass(frozen=True)
class _TileResult:
    ids: np.ndarray  # (m, K) int64, sentinel = unused
    sqdist: np.ndarray  # (m, K) float64 exact
    lower_bound: np.ndarray  # (m,) float64, squared distance below which nothing was dropped


def prepare_blocks(x: da.Array, mean: np.ndarray, keep_x64: bool = True) -> list:
    """One delayed :class:`PreparedBlock` per row block of ``x`` (d must be a single chunk);
    ``keep_x64=False`` makes compact blocks (float32 rows only)."""
    offsets = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]])
    blocks = x.to_delayed().ravel()
    prep = dask.delayed(prepare_block, pure=True)
    token = dask.base.tokenize(x.name, mean, keep_x64)
    return [
        prep(b, int(o), mean, keep_x64, dask_key_name=f"knn-prep-{token}-{i}") for i, (b, o) in enumerate(zip(blocks, offsets))
    ]


def permute_blocks(blocks: list, order: np.ndarray, row_chunks: tuple) -> list:
    """Prepared blocks of the rows in ``order`` (row i of the result is row ``order[i]``), lazily."""
    offsets = np.concatenate([[0], np.cumsum(row_chunks)[:-1]]).astype(int)
    token = dask.base.tokenize(blocks, order)
    take = dask.delayed(take_rows, pure=True)
    return [
        take(blocks, order[o : o + m], int(o), dask_key_name=f"knn-permute-{token}-{i}")
        for i, (o, m) in enumerate(zip(offsets, row_chunks))
    ]


def _scan_group(q: PreparedBlock, refs: list, n_keep: int, q_pos=None, r_pos=None, allowed=None) -> _TileResult:
    """Scan one query block against a group of ref blocks with one running heap per row.

    With ``allowed`` (bool (C, C) over position labels), a ref block is skipped when no pair
    (query label, ref label) within the two blocks' label ranges is allowed.
    """
    if allowed is not None:
        qlo, qhi = int(q_pos.min()), int(q_pos.max())
        keep = [j for j in range(len(refs)) if allowed[qlo : qhi + 1, int(r_pos[j].min()) : int(r_pos[j].max()) + 1].any()]
        refs = [refs[j] for j in keep]
        r_pos = [r_pos[j] for j in keep]
    if not refs:
        m = q.n_rows
        return _TileResult(
            np.full((m, n_keep), K.ID_SENTINEL, dtype=np.int64), np.full((m, n_keep), np.inf), np.full(m, np.inf)
        )
    with limit_threads(1):
        return _scan_group_unlimited(q, refs, n_keep, q_pos, r_pos)


def _scan_group_unlimited(q: PreparedBlock, refs: list, n_keep: int, q_pos=None, r_pos=None) -> _TileResult:
    m = q.n_rows
    d = q.x64.shape[1]
    heap_s = np.full((m, n_keep), np.inf, dtype=np.float32)
    heap_i = np.full((m, n_keep), K.ID_SENTINEL, dtype=np.int64)
    self_ids = q.ids
    # one preallocated scratch for every slab: a fresh large array per GEMM costs page faults
    # that cut single-thread sgemm throughput several-fold
    widest = max(r.n_rows for r in refs)
    scratch = np.empty(min(m, QUERY_SLAB) * min(widest, REF_SLAB), dtype=np.float32)
    # augmented rows: [q, 1] . [-2 r, |r|^2] = |r|^2 - 2 q.r, so the GEMM yields the score itself
    q_aug = np.empty((m, d + 1), dtype=np.float32)
    q_aug[:, :d] = q.x32
    q_aug[:, d] = 1.0
    for j, r in enumerate(refs):
        r_aug = np.empty((r.n_rows, d + 1), dtype=np.float32)
        np.multiply(r.x32, -2.0, out=r_aug[:, :d])  # exact scaling
        r_aug[:, d] = r.sqnorm32
        for qs in range(0, m, QUERY_SLAB):
            qe = min(m, qs + QUERY_SLAB)
            qx = q_aug[qs:qe]
            first = 0
            if q_pos is not None and r_pos[j].size and np.all(r_pos[j][:-1] <= r_pos[j][1:]):
                # refs sorted by position: those at or before the slab's earliest position can
                # never qualify, so the GEMM starts after them
                first = int(np.searchsorted(r_pos[j], q_pos[qs:qe].min(), side="right"))
            for rs in range(first, r.n_rows, REF_SLAB):
                re = min(r.n_rows, rs + REF_SLAB)
                gram = scratch[: (qe - qs) * (re - rs)].reshape(qe - qs, re - rs)
                np.matmul(qx, r_aug[rs:re].T, out=gram)
                if q_pos is None:
                    K.push_scores(gram, r.offset + rs, self_ids[qs:qe], heap_s[qs:qe], heap_i[qs:qe])
                else:
                    K.push_scores_later(
                        gram, r.offset + rs, q_pos[qs:qe], r_pos[j][rs:re], heap_s[qs:qe], heap_i[qs:qe]
                    )
    # The heap root is the worst kept score; it only decreases while scanning, so every candidate
    # ever dropped scored at least the final root.
    full = heap_i[:, 0] != K.ID_SENTINEL
    bound = roundoff_bound(d, q.norm, max(float(r.norm.max()) for r in refs))
    lower = np.where(full, q.norm**2 + heap_s[:, 0].astype(np.float64) - bound, np.inf)
    sqdist = np.full(heap_i.shape, np.inf)
    for r in refs:
        K.exact_sqdist_of_candidates(q.x64, r.x64, r.offset, heap_i, sqdist)
    return _TileResult(heap_i, sqdist, lower)


def group_blocks(indices, row_chunks: tuple, bytes_per_row: int, budget: int = GROUP_BYTES) -> list:
    """Split block indices, in order, into groups of at most ``budget`` bytes
    (``row_chunks[j] * bytes_per_row`` each; a block larger than the budget forms its own group)."""
    groups, current, size = [], [], 0
    for j in indices:
        b = row_chunks[j] * bytes_per_row
        if current and size + b > budget:
            groups.append(current)
            current, size = [], 0
        current.append(j)
        size += b
    if current:
        groups.append(current)
    return groups


def _group_refs(indices: list, row_chunks: tuple, d: int, budget: int = GROUP_BYTES) -> list:
    """Split ref block indices into groups of at most ``budget`` bytes of prepared data."""
    return group_blocks(indices, row_chunks, 12 * d + 16, budget)


def _merge_tiles(tiles: list, k: int):
    ids = np.concatenate([t.ids for t in tiles], axis=1)
    sq = np.concatenate([t.sqdist for t in tiles], axis=1)
    lower = np.min(np.stack([t.lower_bound for t in tiles]), axis=0)
    out_i, out_d = K.merge_candidates(ids, sq, k)
    kth = out_d[:, k - 1]
    # exact when nothing dropped could be closer; distance 0 cannot be beaten; lower = inf means
    # no tile dropped anything
    certified = (kth < lower) | (kth == 0.0) | np.isinf(lower)
    return out_i, out_d, certified


def _no_candidates(m: int, k: int):
    return (
        np.full((m, k), K.ID_SENTINEL, dtype=np.int64),
        np.full((m, k), np.inf),
        np.ones(m, dtype=bool),
    )


def _tile_merge_tree(
    q, refs, n_keep, k, name, qi, q_pos=None, r_pos=None, needed=None, m=0, row_chunks=(), d=1, allowed=None,
    budget: int = GROUP_BYTES,
):
    scan = dask.delayed(_scan_group, pure=True)
    wanted = [j for j in range(len(refs)) if needed is None or needed[j]]
    tiles = [
        scan(
            q,
            [refs[j] for j in group],
            n_keep,
            q_pos,
            None if r_pos is None else [r_pos[j] for j in group],
            allowed,
            dask_key_name=f"{name}-tile-{qi}-{g}",
        )
        for g, group in enumerate(_group_refs(wanted, row_chunks, d, budget))
    ]
    if not tiles:
        return dask.delayed(_no_candidates, pure=True)(m, k, dask_key_name=f"{name}-merge-{qi}")
    return dask.delayed(_merge_tiles, pure=True)(tiles, k, dask_key_name=f"{name}-merge-{qi}")


def exact_knn_candidates(
    blocks: list,
    row_chunks: tuple,
    k: int,
    positions: np.ndarray | None = None,
    tile_mask: np.ndarray | None = None,
    *,
    d: int,
    allowed_pairs=None,
):
    """Lazy exact k-NN over prepared row blocks (see :func:`prepare_blocks`).

    Parameters
    ----------
    blocks : list of Delayed PreparedBlock
    row_chunks : tuple of int
        Rows per block.
    k : int
        Neighbours per row (k <= n - 1).
    positions : ndarray of int64, shape (n,), optional
        Component positions; when given, row i only searches rows j with
        ``positions[j] > positions[i]`` (rows of the last component get no neighbour).
    tile_mask : ndarray of bool, shape (blocks, blocks), optional
        Tiles (query block, ref block) to compute; the caller guarantees that a skipped tile
        holds no candidate that could be among a row's k best.
    d : int
        Dimension (sizes the groups of ref blocks one task scans).
    allowed_pairs : ndarray of bool (C, C) or Delayed of it, optional
        With ``positions``: a ref block is only scanned if some (query position, ref position)
        pair of the two blocks is allowed; the caller guarantees the others hold no candidate
        among a row's k best. Evaluated inside the tasks, so it may be a lazy result.

    Returns
    -------
    neighbors : dask array of int64, shape (n, k)
        Sentinel ``ID_SENTINEL`` where a row has fewer than k candidates.
    sqdist : dask array of float64, shape (n, k)
        Exact squared distances (inf where no candidate).
    certified : dask array of bool, shape (n,)
        False for rows that :func:`exact_rows_search` must recompute.
    """
    n = int(sum(row_chunks))
    n_keep = min(k + CANDIDATE_MARGIN, n - 1)
    offsets = np.concatenate([[0], np.cumsum(row_chunks)[:-1]]).astype(int)
    name = f"knn-exact-{dask.base.tokenize(blocks, k, positions, tile_mask, allowed_pairs)}"
    r_pos = None if positions is None else [positions[o : o + m] for o, m in zip(offsets, row_chunks)]
    nbr, dst, cert = [], [], []
    for qi, (q, m) in enumerate(zip(blocks, row_chunks)):
        q_pos = None if positions is None else r_pos[qi]
        needed = None if tile_mask is None else tile_mask[qi]
        merged = _tile_merge_tree(q, blocks, n_keep, k, name, qi, q_pos, r_pos, needed, m, row_chunks, d, allowed_pairs)
        nbr.append(da.from_delayed(merged[0], shape=(m, k), dtype=np.int64))
        dst.append(da.from_delayed(merged[1], shape=(m, k), dtype=np.float64))
        cert.append(da.from_delayed(merged[2], shape=(m,), dtype=bool))
    return da.concatenate(nbr, axis=0), da.concatenate(dst, axis=0), da.concatenate(cert, axis=0)


def _exact_rows_against_block(queries: np.ndarray, query_ids: np.ndarray, r: PreparedBlock, k: int, q_pos=None, r_pos=None):
    m = queries.shape[0]
    heap_s = np.full((m, k), np.inf, dtype=np.float64)
    heap_i = np.full((m, k), K.ID_SENTINEL, dtype=np.int64)
    if q_pos is None:
        K.push_exact(queries, r.x64, r.offset, query_ids, heap_s, heap_i)
    else:
        K.push_exact_later(queries, r.x64, r.offset, q_pos, r_pos, heap_s, heap_i)
    return heap_i, heap_s


def _select_rows(b: PreparedBlock, row_ids: np.ndarray) -> np.ndarray:
    sel = row_ids[(row_ids >= b.offset) & (row_ids < b.offset + b.n_rows)]
    return b.x64[sel - b.offset]


def _concat_rows(parts: list) -> np.ndarray:
    return np.concatenate(parts, axis=0)


def gather_rows(blocks: list, row_ids: np.ndarray):
    """Lazy float64 (centred) rows ``row_ids`` (sorted ids) of the prepared blocks; each block
    contributes only its selected rows."""
    picked = [dask.delayed(_select_rows, pure=True)(b, row_ids) for b in blocks]
    return dask.delayed(_concat_rows, pure=True)(picked)


def exact_rows_search(blocks: list, row_ids: np.ndarray, k: int, q_pos=None, r_pos=None):
    """Exact float64 k-NN of a few rows (given by id) against every block. Lazy.

    Returns a Delayed (ids (m, k) int64, sqdist (m, k) float64), ascending by (distance, id).
    With ``q_pos``/``r_pos`` (component positions of the query rows, and per block of the refs)
    only refs in a strictly later component are searched.
    """
    queries = gather_rows(blocks, row_ids)
    parts = [
        dask.delayed(_exact_rows_against_block, pure=True)(
            queries, row_ids, b, k, q_pos, None if r_pos is None else r_pos[j]
        )
        for j, b in enumerate(blocks)
    ]

    def _merge(parts):
        ids = np.concatenate([p[0] for p in parts], axis=1)
        sq = np.concatenate([p[1] for p in parts], axis=1)
        return K.merge_candidates(ids, sq, k)

    return dask.delayed(_merge, pure=True)(parts)


def exact_knn_of_rows(blocks: list, row_ids: np.ndarray, row_chunks: tuple, k: int, d: int, tiles: int = 1):
    """Lazy exact k-NN of a few rows (a sample, by global id) against all blocks.

    Returns a Delayed (ids (m, k) int64, sqdist (m, k) float64, certified (m,) bool): the
    blocked GEMM search with its certificate, as for whole blocks. ``tiles``: split the scan
    into at least that many tasks (short tasks interleave with other work; the result does not
    depend on the split).
    """
    n = int(sum(row_chunks))
    row_ids = np.sort(row_ids)
    # each block contributes only its selected rows (no task receives every block)
    query = dask.delayed(prepared_from_centred, pure=True)(gather_rows(blocks, row_ids), 0, row_ids)
    n_keep = min(k + CANDIDATE_MARGIN, n - 1)
    name = f"knn-sample-{dask.base.tokenize(blocks, row_ids, k)}"
    budget = min(GROUP_BYTES, max(1, math.ceil(n * (12 * d + 16) / max(1, tiles))))
    return _tile_merge_tree(query, blocks, n_keep, k, name, 0, None, None, None, len(row_ids), row_chunks, d,
                            budget=budget)


def knn_to_distances(sqdist: da.Array) -> da.Array:
    """float32 Euclidean distances from exact float64 squared distances."""
    return da.sqrt(sqdist).astype(np.float32)
