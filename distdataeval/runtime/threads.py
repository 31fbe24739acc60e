"""Cap BLAS/OpenMP and numba threads for the duration of a block of work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """Limit BLAS/OpenMP pools (threadpoolctl) and numba to ``n`` threads; restore on exit.

    Used inside Dask tasks so that a worker running several tasks at once does not
    oversubscribe its cores.
    """
    import numba
    from threadpoolctl import threadpool_limits

    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        with threadpool_limits(limits=n):
            yield
    finally:
        numba.set_num_threads(previous)
