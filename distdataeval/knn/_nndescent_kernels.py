"""pynndescent's NN-descent for the squared Euclidean distance, in a form numba can cache.

Why this module exists: pynndescent's ``nn_descent`` and the kernels it drives take the distance
function as an argument, and ask numba for the thread count inside compiled code. numba can write
neither to its disk cache (a dispatcher passed as a value is compiled in as the address of a
Python object of this process; ``numba.get_num_threads()`` as a ``ctypes`` pointer: "dynamic
globals"). So every new process compiled them again: ~20 s of one core in each Dask worker, the
largest single cost of a fresh ``cluster()`` run below ~1M rows.

Here the three steps that take the distance (random-projection-leaf initialisation, random fill,
the per-round candidate processing) call ``squared_euclidean`` directly, the thread count is an
argument, and the loop is ours; the heavy kernels (candidate building, the batched squared
Euclidean update generation, heap pushes and update application) are pynndescent's own. Compiled
once per installation, loaded from numba's cache afterwards. The steps do the same arithmetic in
the same order as pynndescent's, so the graph is the same bit for bit (tested against
``NNDescent``); the Python side (`distdataeval.knn.nndescent`) uses this only for the pynndescent
releases it was checked against.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange
from pynndescent.distances import squared_euclidean
from pynndescent.kernels import generate_graph_update_array_batched
from pynndescent.utils import (
    apply_graph_update_array,
    apply_sorted_graph_update_array,
    build_candidates_owner,
    checked_flagged_heap_push,
    deheap_sort,
    int32_bits_as_float32,
    make_heap,
    sort_updates_by_block,
    tau_rand_int,
)

# pynndescent's kernels apply updates in blocks of this many rows (its internal constant)
UPDATE_BLOCK_ROWS = 16384
LEAF_BLOCK_PER_THREAD = 64  # leaves of the initialisation forest handled per thread and round


@njit(parallel=True, cache=True, fastmath=True)
def _leaf_updates(updates, n_updates, leaves, graph, data, n_threads):
    """Candidate edges between the points of each leaf that beat either endpoint's worst
    neighbour; thread t writes row t of ``updates`` (ids stored as float32 bit patterns)."""
    per_thread = leaves.shape[0] // n_threads + 1
    worst = graph[1]
    room = updates.shape[1]
    for t in prange(n_threads):
        count = 0
        for leaf in range(t * per_thread, min((t + 1) * per_thread, leaves.shape[0])):
            width = leaves.shape[1]
            for i in range(width):
                p = leaves[leaf, i]
                if p < 0:
                    break
                for j in range(i + 1, width):
                    q = leaves[leaf, j]
                    if q < 0:
                        break
                    d = squared_euclidean(data[p], data[q])
                    if d < max(worst[p, 0], worst[q, 0]) and count < room:
                        updates[t, count, 0] = int32_bits_as_float32(p)
                        updates[t, count, 1] = int32_bits_as_float32(q)
                        updates[t, count, 2] = d
                        count += 1
        n_updates[t] = count


@njit(cache=True)
def _init_from_leaves(data, graph, leaf_array, n_threads):
    """Seed the heaps with the pairs inside each random-projection leaf, a block of leaves at a time."""
    n_leaves, width = leaf_array.shape
    block = n_threads * LEAF_BLOCK_PER_THREAD
    per_thread = int(block * width * (width - 1) / (2 * n_threads)) + 1
    updates = np.zeros((n_threads, per_thread, 3), dtype=np.float32)
    n_updates = np.zeros(n_threads, dtype=np.int32)
    sorted_updates = np.empty((n_threads, 2 * per_thread, 3), dtype=np.float32)
    offsets = np.zeros((n_threads, n_threads + 1), dtype=np.int64)
    n = graph[0].shape[0]
    for b in range(n_leaves // block + 1):
        _leaf_updates(updates, n_updates, leaf_array[b * block : min(n_leaves, (b + 1) * block)], graph, data, n_threads)
        sort_updates_by_block(updates, n_updates, sorted_updates, offsets, n, n_threads)
        apply_sorted_graph_update_array(graph, sorted_updates, offsets, n_threads)


@njit(cache=True, fastmath=True, locals={"d": numba.float32, "idx": numba.int32, "i": numba.int32})
def _fill_random(n_neighbors, data, graph, rng_state):
    """Top up every heap still holding empty slots with random other points."""
    n = data.shape[0]
    for i in range(n):
        if graph[0][i, 0] < 0.0:
            for _ in range(n_neighbors - np.sum(graph[0][i] >= 0.0)):
                idx = np.abs(tau_rand_int(rng_state)) % n
                if n > 1:
                    while idx == i:
                        idx = np.abs(tau_rand_int(rng_state)) % n
                d = squared_euclidean(data[idx], data[i])
                checked_flagged_heap_push(graph[1][i], graph[0][i], graph[2][i], d, idx, np.uint8(1))


@njit(cache=True)
def _process_round(data, graph, new_cand, old_cand, n_threads, updates, n_updates, sorted_updates, offsets, kernel):
    """One round: the batched squared-Euclidean updates of each row block, applied; returns the count."""
    n = new_cand.shape[0]
    changed = 0
    for b in range(n // UPDATE_BLOCK_ROWS + 1):
        lo, hi = b * UPDATE_BLOCK_ROWS, min(n, (b + 1) * UPDATE_BLOCK_ROWS)
        generate_graph_update_array_batched(updates, n_updates, new_cand[lo:hi], old_cand[lo:hi], graph, data, kernel, n_threads)
        if n_threads > 1:
            sort_updates_by_block(updates, n_updates, sorted_updates, offsets, n, n_threads)
            changed += apply_sorted_graph_update_array(graph, sorted_updates, offsets, n_threads)
        else:
            changed += apply_graph_update_array(graph, updates, n_updates, n_threads)
    return changed


@njit(cache=True)
def _descend(graph, data, n_neighbors, rng_state, max_candidates, n_iters, delta, kernel, n_threads):
    """Refine ``graph`` in place by NN-descent until a round changes fewer than ``delta * n * k`` entries."""
    n = data.shape[0]
    # room for every candidate pair of one row block, shared out between the threads
    pairs = max_candidates * max_candidates + max_candidates * (max_candidates - 1) / 2
    per_thread = int(pairs * UPDATE_BLOCK_ROWS / n_threads) + 1024
    updates = np.empty((n_threads, per_thread, 3), dtype=np.float32)
    n_updates = np.zeros(n_threads, dtype=np.int32)
    if n_threads > 1:
        sorted_updates = np.empty((n_threads, 2 * per_thread, 3), dtype=np.float32)
    else:
        sorted_updates = np.empty((1, 1, 3), dtype=np.float32)
    offsets = np.zeros((n_threads, n_threads + 1), dtype=np.int64)
    new_idx = np.full((n, max_candidates), -1, dtype=np.int32)
    new_pri = np.full((n, max_candidates), np.inf, dtype=np.float32)
    old_idx = np.full((n, max_candidates), -1, dtype=np.int32)
    old_pri = np.full((n, max_candidates), np.inf, dtype=np.float32)
    active = np.ones(n, dtype=np.uint8)
    rev_dst = np.empty(n * n_neighbors, dtype=np.int32)
    rev_src = np.empty(n * n_neighbors, dtype=np.int32)
    bounds = np.zeros((n_threads, n_threads + 1), dtype=np.int64)
    for _ in range(n_iters):
        new_cand, old_cand = build_candidates_owner(
            graph, max_candidates, rng_state, n_threads, new_idx, new_pri, old_idx, old_pri, active, rev_dst, rev_src, bounds
        )
        changed = _process_round(data, graph, new_cand, old_cand, n_threads, updates, n_updates, sorted_updates, offsets, kernel)
        if changed <= delta * n_neighbors * n:
            return


@njit(cache=True)
def nn_descent_sqeuclidean(data, n_neighbors, rng_state, max_candidates, n_iters, delta, leaf_array, kernel, n_threads):
    """k-NN graph of ``data`` (float32, C order) under squared Euclidean distance.

    Random-projection-leaf initialisation from ``leaf_array``, random fill, then NN-descent with
    pynndescent's batched squared-Euclidean ``kernel`` (its non-zero id); returns pynndescent's
    ``(indices, distances)``, each row sorted. ``rng_state`` is advanced in place.
    """
    graph = make_heap(data.shape[0], n_neighbors)
    _init_from_leaves(data, graph, leaf_array, n_threads)
    _fill_random(n_neighbors, data, graph, rng_state)
    _descend(graph, data, n_neighbors, rng_state, max_candidates, n_iters, delta, kernel, n_threads)
    return deheap_sort(graph[0], graph[1])
