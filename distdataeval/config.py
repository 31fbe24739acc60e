"""Global seed, in DataEval's words (``set_seed`` / ``get_seed`` / ``use_seed``).

The seed is a root: every random choice derives a child generator from it through
:func:`numpy.random.SeedSequence.spawn`-style keys (:func:`seed_sequence`), never from numpy's
global generator.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np

from distdataeval.errors import InvalidParameterError

__all__ = ["set_seed", "get_seed", "use_seed", "seed_sequence", "rng_for", "search_seed"]

_lock = threading.Lock()
_seed: int | None = None


def _check_seed(seed: int | None) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidParameterError(f"seed must be a non-negative int or None, got {seed!r}")
    if seed < 0:
        raise InvalidParameterError(f"seed must be non-negative, got {seed}")
    return int(seed)


def set_seed(seed: int | None) -> None:
    """Fix the root seed used by every random choice in distdataeval.

    Parameters
    ----------
    seed : int or None
        A non-negative integer, or None to clear it (random choices then use fresh entropy).

    Examples
    --------
    >>> from distdataeval import config
    >>> config.set_seed(0)
    >>> config.get_seed()
    0
    """
    global _seed
    value = _check_seed(seed)
    with _lock:
        _seed = value


def get_seed() -> int | None:
    """Return the root seed set by :func:`set_seed` (None when unset)."""
    return _seed


@contextlib.contextmanager
def use_seed(seed: int | None) -> Iterator[None]:
    """Temporarily set the root seed; the previous value is restored on exit."""
    global _seed
    value = _check_seed(seed)
    with _lock:
        previous = _seed
        _seed = value
    try:
        yield
    finally:
        with _lock:
            _seed = previous


_STAGE_KEYS = {"knn": 1, "mst": 2, "kmeans": 3, "sampling": 4, "prioritize": 5, "recall": 6}


def seed_sequence(stage: str, *path: int, seed: int | None = None) -> np.random.SeedSequence:
    """A deterministic child seed sequence for one stage (and optional sub-path, e.g. a partition).

    With no root seed set, fresh OS entropy is used (results are then not reproducible,
    exactly as documented for DataEval's KMeans without ``set_seed``).
    """
    root = get_seed() if seed is None else _check_seed(seed)
    if stage not in _STAGE_KEYS:
        raise InvalidParameterError(f"unknown seed stage {stage!r}; known: {sorted(_STAGE_KEYS)}")
    key = (_STAGE_KEYS[stage], *(int(p) for p in path))
    if root is None:
        return np.random.SeedSequence(spawn_key=key)
    return np.random.SeedSequence(root, spawn_key=key)


def search_seed() -> int:
    """Root seed of an approximate search's own random choices (samples, partitions, cells): the
    one :func:`set_seed` set, else 0.

    DataEval's searches are exact, so the same call always gives the same result; an
    approximation standing in for one must too, seed or not. (Draws the user asks for, such as
    KMeans initialisation or Prioritize's sampling, follow :func:`seed_sequence`: fresh entropy
    without a seed, as in DataEval.)
    """
    root = get_seed()
    return 0 if root is None else root


def rng_for(stage: str, *path: int, seed: int | None = None) -> np.random.Generator:
    """A numpy Generator for one stage, derived from the root seed."""
    return np.random.default_rng(seed_sequence(stage, *path, seed=seed))
