"""Memory sampling shared by the benchmark scripts.

:class:`PeakRSS` samples, in a thread, the RSS of this (driver) process and the summed RSS of the
Dask worker processes, keeping the peaks of the period it covers (``with PeakRSS(client) as m:``;
``m.driver``, ``m.workers`` in bytes; ``m.peak`` is the workers' peak, for older callers).
"""

from __future__ import annotations

import threading


class PeakRSS:
    """Peak RSS of the driver and of the workers (summed) while the ``with`` block runs."""

    def __init__(self, client, interval: float = 0.2):
        import psutil

        self.client, self.interval = client, interval
        self.me = psutil.Process()
        self.driver = self.workers = 0
        self._stop = threading.Event()

    @property
    def peak(self) -> int:
        return self.workers

    def _sample(self) -> None:
        self.driver = max(self.driver, self.me.memory_info().rss)
        mem = self.client.run(lambda: __import__("psutil").Process().memory_info().rss)
        self.workers = max(self.workers, int(sum(mem.values())))

    def __enter__(self):
        self._stop.clear()
        self._sample()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except Exception:  # noqa: BLE001 - the cluster may be closing
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        try:
            self._sample()
        except Exception:  # noqa: BLE001
            pass
