"""Progress of a job: structured events and a per-stage progress bar.

Events are one JSON object per line on stderr (``{"time": ..., "event": "stage_start", ...,
"message": "stage knn: start"}``): grep-able and machine-readable in batch logs. The progress
bar (terminal only, not with ``quiet``) shows the tasks the Dask scheduler finished since the
stage started over the tasks it was given, elapsed time and an ETA. The counts come from a
small scheduler plugin (:class:`TaskCounter`) that the driver polls.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from distributed.diagnostics.plugin import SchedulerPlugin

PLUGIN_NAME = "distdataeval-task-counter"


class TaskCounter(SchedulerPlugin):
    """Scheduler plugin counting tasks submitted and tasks finished (cumulative)."""

    name = PLUGIN_NAME

    def __init__(self) -> None:
        self.submitted = 0
        self.finished = 0
        self.failed = 0

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if start == "released" and finish == "waiting":
            self.submitted += 1
        elif start == "processing" and finish == "memory":
            self.finished += 1
        elif finish == "erred":
            self.failed += 1


def _read_counter(dask_scheduler=None):
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME)
    if plugin is None:
        return None
    return plugin.submitted, plugin.finished


class EventLog:
    """Structured log: one JSON line per event on ``stream`` (stderr by default).

    Parameters
    ----------
    stream : file, optional
    """

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()
        self.bar_active = False

    def emit(self, event: str, message: str, **fields) -> None:
        """Write one event line (clearing a progress bar drawn on the same terminal first)."""
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event, **fields,
                  "message": message}
        line = json.dumps(record, default=str)
        with self.lock:
            if self.bar_active:
                self.stream.write("\r\033[K")
            self.stream.write(line + "\n")
            self.stream.flush()

    def draw(self, text: str) -> None:
        with self.lock:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self.bar_active = True

    def end_bar(self) -> None:
        with self.lock:
            if self.bar_active:
                self.stream.write("\n")
                self.stream.flush()
                self.bar_active = False


def format_bar(stage: str, done: int, total: int, elapsed: float, width: int = 28) -> str:
    """One progress line: ``stage knn [#####.....] 120/300 tasks 12.3 s ETA 18 s``."""
    frac = min(1.0, done / total) if total else 0.0
    filled = int(round(frac * width))
    eta = f"{elapsed * (total - done) / done:.0f} s" if 0 < done < total else ("0 s" if total and done >= total else "?")
    return f"stage {stage} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} tasks {elapsed:.1f} s ETA {eta}"


def install_counter(client) -> bool:
    """Register :class:`TaskCounter` on the scheduler; False if the scheduler refuses it."""
    try:
        if task_counts(client) is not None:  # already there (a client reused across jobs)
            return True
        client.register_plugin(TaskCounter(), name=PLUGIN_NAME)
        return True
    except Exception:  # noqa: BLE001 - a remote scheduler without distdataeval: no counts
        return False


def task_counts(client) -> tuple[int, int] | None:
    """(submitted, finished) task counts since the counter was installed, or None."""
    try:
        return client.run_on_scheduler(_read_counter)
    except Exception:  # noqa: BLE001 - progress is best effort, never fails a job
        return None


class StageProgress:
    """Context manager drawing one stage's progress bar from a background thread.

    Parameters
    ----------
    client : distributed.Client
    log : EventLog
    stage : str
    show : bool
        Draw the bar (a terminal and not quiet); the task counts are recorded either way.
    interval : float
        Seconds between redraws.
    """

    def __init__(self, client, log: EventLog, stage: str, show: bool, interval: float = 0.5) -> None:
        self.client, self.log, self.stage, self.show, self.interval = client, log, stage, show, interval
        self._stop = threading.Event()
        self._thread = None
        self.base = None
        self.tasks = 0

    def _counts(self):
        now = task_counts(self.client)
        if now is None or self.base is None:
            return None
        return now[1] - self.base[1], now[0] - self.base[0]

    def _draw(self) -> None:
        c = self._counts()
        if c is not None and self.show:
            self.log.draw(format_bar(self.stage, c[0], c[1], time.perf_counter() - self.t0))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.base = task_counts(self.client)
        self._thread = threading.Thread(target=self._loop, name=f"progress-{self.stage}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._draw()  # the stage's final state stays on the terminal
        c = self._counts()
        self.tasks = c[0] if c is not None else 0
        self.log.end_bar()
