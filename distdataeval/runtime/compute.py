"""Computing several Dask collections of different kinds at once, results in the order given;
where persisted results live.

Measured with dask 2026.8 / distributed 2026.8: ``dask.compute(d1, x.sum(), d2, x.max())`` and
``client.compute([d1, x.sum(), d2, x.max()])`` (``d1``, ``d2`` Delayed, ``x`` a Dask array)
return ``(d1, d2, x.sum(), x.max())`` — results grouped by collection type, not in argument
order. Calls that mix Delayed objects and arrays go through :func:`compute_in_order`, which wraps
every item as a Delayed first so the order cannot depend on the kinds of collection.
"""

from __future__ import annotations

import dask
from dask.delayed import Delayed


def compute_in_order(client, *items) -> list:
    """Compute ``items`` together on ``client`` and return their results in the given order."""
    wrapped = [item if isinstance(item, Delayed) else dask.delayed(item) for item in items]
    return list(client.compute(wrapped, sync=True))


def holders(client, futures: list) -> list:
    """The worker holding each of ``futures`` (the first by address when it has replicas; ""
    when none holds it, e.g. lost meanwhile: the scheduler then places the task reading it).
    Waits for the futures first: a running one has no holder yet."""
    from distributed import wait

    wait(futures)
    where = client.who_has(futures)
    return [sorted(where.get(f.key) or [""])[0] for f in futures]


def _rows(a, lo: int, hi: int):
    return a[lo:hi]


def scattered_rows(client, a, row_chunks: tuple):
    """A NumPy array as a Dask array in ``row_chunks``, its data sent to one worker once.

    ``da.from_array`` embeds the array in every graph built on it: at 2M rows an int64 label
    vector is a 15 MiB graph, sent through the scheduler with each compute (and distributed warns
    "Sending large graph"). Scattered, it travels once, to one worker; blocks are slices of it.
    """
    import dask.array as da
    import numpy as np

    future = client.scatter(a, hash=False)
    take = dask.delayed(_rows, pure=True)
    bounds = np.concatenate([[0], np.cumsum(row_chunks)]).astype(int)
    return da.concatenate([
        da.from_delayed(take(future, int(lo), int(hi)), shape=(int(hi - lo),) + a.shape[1:], dtype=a.dtype)
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ])
