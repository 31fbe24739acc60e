"""Exception hierarchy.

Every error raised on purpose by distdataeval derives from :class:`DistDataEvalError`
*and* from the matching builtin, so callers can catch either (``except ValueError`` keeps
working for code written against DataEval).
"""

from __future__ import annotations


class DistDataEvalError(Exception):
    """Base class of every error raised on purpose by distdataeval."""


class InvalidInputError(DistDataEvalError, ValueError):
    """The embeddings are unusable: wrong shape, dtype, non-finite values, too few rows."""


class InvalidParameterError(DistDataEvalError, ValueError):
    """A parameter has a wrong value or an unknown name."""


class StoreNotFoundError(DistDataEvalError, FileNotFoundError):
    """A Zarr store, or an array inside it, does not exist."""


class CorruptStoreError(DistDataEvalError, OSError):
    """A Zarr store exists but cannot be read as an array."""


class IndexOverflowError(DistDataEvalError, OverflowError):
    """A float32 compatibility view would corrupt integer ids (ids above 2**24: the ``mst`` view
    from n > 2**24 points, the ``linkage_tree`` view, whose node ids reach 2n - 2, from n > 2**23 + 1)."""


class UnknownParameterError(InvalidParameterError, TypeError):
    """A keyword that the function does not take (the message suggests the nearest valid one)."""
