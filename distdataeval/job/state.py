"""Stage markers of a job's output store: which stages are complete, with which parameters.

A marker is a small JSON file ``<output>/_job/stages/<stage>.json``, written (temporary file,
then ``os.replace``) only after every array of the stage has been committed. Its ``hash`` covers
the stage's parameters and the run ids of the stages it needs, so a changed parameter, or a
recomputed upstream stage, invalidates every stage downstream. ``computed`` counts how many
times the stage was computed into this store (a resumed run that skips it leaves it unchanged).

``<output>/_job/job.json`` records the job that owns the store (input identity and parameters);
it decides whether a rerun resumes or needs ``--overwrite`` (see :mod:`distdataeval.job.runner`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid

JOB_DIR = "_job"


def canonical_hash(value) -> str:
    """sha256 of a JSON-able value in canonical form (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_json_atomic(path: str, value) -> None:
    """Write JSON to ``path`` through a temporary file and a rename (never half-written)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w") as fh:
        json.dump(value, fh, indent=2, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: str):
    """The JSON value at ``path``, or None if missing or unreadable (a torn write is 'absent')."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


class StageState:
    """Stage markers and the job manifest of one output store (a local directory).

    Parameters
    ----------
    root : str
        The output store's directory.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.dir = os.path.join(root, JOB_DIR)

    def _path(self, stage: str) -> str:
        return os.path.join(self.dir, "stages", f"{stage}.json")

    def marker(self, stage: str) -> dict | None:
        """The stage's marker (dict with ``hash``, ``run_id``, ``computed``, ...) or None."""
        return read_json(self._path(stage))

    def is_complete(self, stage: str, stage_hash: str) -> bool:
        """True when the stage is marked complete with exactly this hash."""
        m = self.marker(stage)
        return m is not None and m.get("hash") == stage_hash

    def clear(self, stage: str) -> None:
        """Remove the stage's completion mark (keeping its computation count)."""
        m = self.marker(stage)
        if m is None:
            return
        if m.get("hash") is not None:
            m = {"computed": m.get("computed", 0)}
            write_json_atomic(self._path(stage), m)

    def mark_complete(self, stage: str, stage_hash: str, info: dict) -> dict:
        """Mark the stage complete (call only after all its writes succeeded)."""
        previous = self.marker(stage) or {}
        m = {
            "stage": stage,
            "hash": stage_hash,
            "run_id": uuid.uuid4().hex,
            "computed": int(previous.get("computed", 0)) + 1,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **info,
        }
        write_json_atomic(self._path(stage), m)
        return m

    def completed(self) -> list[str]:
        """Names of the stages currently marked complete."""
        folder = os.path.join(self.dir, "stages")
        if not os.path.isdir(folder):
            return []
        names = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".json"))
        return [s for s in names if (self.marker(s) or {}).get("hash")]

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.dir, "job.json")

    def manifest(self) -> dict | None:
        """The job manifest (input identity, parameters) or None for a store not made by a job."""
        return read_json(self.manifest_path)

    def write_manifest(self, manifest: dict) -> None:
        write_json_atomic(self.manifest_path, manifest)
