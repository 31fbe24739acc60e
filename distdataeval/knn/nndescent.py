"""One pynndescent k-NN graph build, with the NN-descent core loaded from numba's cache.

``pynndescent.NNDescent`` compiles its NN-descent core in every new process (~20 s of one core:
numba cannot cache it, see :mod:`distdataeval.knn._nndescent_kernels`). For the squared
Euclidean distance on float32 data, which is every build of this package, :func:`neighbor_graph`
lets ``NNDescent`` do everything it does (random states, the initialisation forest, its parameter
defaults) and swaps only the compiled core for our cacheable copy of it, which gives the same
graph bit for bit. The swap is made only for the pynndescent releases it was checked against
(``CHECKED_RELEASES``) and only for the duration of the call; anything else runs pynndescent
unchanged.

Exact releases, not a range: numba's cache is keyed to our kernel file, not to pynndescent, so
a cached core holds the pynndescent kernels it was compiled with. Only ever compiling it under a
checked release keeps what is cached and what was checked the same code.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Iterator

import numpy as np

CHECKED_RELEASES = ("0.7.0",)
# the parameters of pynndescent_.nn_descent the swapped-in core is a drop-in for
_CORE_PARAMETERS = (
    "data",
    "n_neighbors",
    "rng_state",
    "max_candidates",
    "dist",
    "n_iters",
    "delta",
    "init_graph",
    "rp_tree_init",
    "leaf_array",
    "low_memory",
    "verbose",
    "kernel",
)
_LOCK = threading.Lock()
calls = {"cached": 0, "pynndescent": 0}  # builds per core in this process (tests, diagnostics)


def cached_core_available() -> bool:
    """True when the installed pynndescent is one the cached core was checked against."""
    import pynndescent
    from pynndescent import pynndescent_

    if pynndescent.__version__ not in CHECKED_RELEASES:
        return False
    original = getattr(pynndescent_.nn_descent, "py_func", None)
    return original is not None and tuple(inspect.signature(original).parameters) == _CORE_PARAMETERS


def _swapped_core(original):
    from pynndescent import distances, kernels
    from pynndescent.pynndescent_ import EMPTY_GRAPH

    from distdataeval.knn import _nndescent_kernels as NK

    def core(data, n_neighbors, rng_state, max_candidates=50, dist=distances.euclidean, n_iters=10, delta=0.001,
             init_graph=EMPTY_GRAPH, rp_tree_init=True, leaf_array=None, low_memory=True, verbose=False, kernel=0):  # fmt: skip
        import numba

        # (low_memory: not read by the checked releases' nn_descent)
        ours = (
            dist is distances.squared_euclidean
            and kernel == kernels.KERNEL_SQEUCLIDEAN
            and init_graph is EMPTY_GRAPH
            and rp_tree_init
            and leaf_array is not None
            and not verbose
        )
        if not ours:
            calls["pynndescent"] += 1
            return original(data, n_neighbors, rng_state, max_candidates, dist, n_iters, delta, init_graph, rp_tree_init,
                            leaf_array, low_memory, verbose, kernel)  # fmt: skip
        calls["cached"] += 1
        return NK.nn_descent_sqeuclidean(
            data, n_neighbors, rng_state, max_candidates, n_iters, delta, leaf_array, kernel, numba.get_num_threads()
        )

    return core


@contextlib.contextmanager
def _core(cached: bool) -> Iterator[None]:
    from pynndescent import pynndescent_

    with _LOCK:
        if not cached:
            calls["pynndescent"] += 1
            yield
            return
        original = pynndescent_.nn_descent
        pynndescent_.nn_descent = _swapped_core(original)
        try:
            yield
        finally:
            pynndescent_.nn_descent = original


def neighbor_graph(x: np.ndarray, n_neighbors: int, seed: int, max_candidates: int, cached: bool | None = None) -> np.ndarray:
    """Approximate ``n_neighbors``-NN indices of the rows of ``x`` (float32), one thread.

    Parameters
    ----------
    x : ndarray of float32, shape (s, d)
        The rows; C order.
    n_neighbors : int
        Width of the graph (each row's own index included, as pynndescent returns it).
    seed : int
        pynndescent's ``random_state``.
    max_candidates : int
        pynndescent's ``max_candidates``.
    cached : bool, optional
        Use the cacheable core (default: when :func:`cached_core_available`); ``False`` runs
        pynndescent's own. Both give the same graph.

    Returns
    -------
    ndarray of int32, shape (s, n_neighbors)
    """
    from pynndescent import NNDescent

    if cached is None:
        cached = cached_core_available()
    with _core(cached):
        index = NNDescent(
            np.ascontiguousarray(x, dtype=np.float32),
            n_neighbors=n_neighbors,
            metric="euclidean",
            random_state=seed,
            n_jobs=1,
            low_memory=True,
            compressed=True,
            max_candidates=max_candidates,
        )
        return index.neighbor_graph[0]
