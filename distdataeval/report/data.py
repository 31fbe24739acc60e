"""Read what the report shows from an output store, in O(sample) driver memory.

Every n-row array is reduced blockwise on the Dask scheduler in use (a distributed client if
one is current, else threads): histograms, id counts, top-k rows and group members come back as
small arrays. Only the linkage arrays (four (n-1,) vectors, needed by the condensed tree) are
held whole on the driver. A section whose arrays are absent is ``None`` and its reason is kept
in :attr:`ReportData.missing`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import dask
import dask.array as da
from dask.delayed import Delayed
import numpy as np

from distdataeval.errors import CorruptStoreError, InvalidInputError, InvalidParameterError, StoreNotFoundError
from distdataeval.io.source import open_source
from distdataeval.report import _blocks
from distdataeval.report.projection import Projection, project_sample
from distdataeval.tree import LinkageTree, linkage_to_condensed_tree, select_clusters_eom
from distdataeval.tree.records import CondensedTree

SUMMARY_FILE = "summary.json"
N_ROW_ARRAYS = (
    "clusters",
    "membership_strengths",
    "noise",
    "k_neighbors",
    "k_distances",
    "stats/distances",
    "stats/assigned",
    "duplicates/exact_group",
    "duplicates/near_group",
    "outliers/scores",
    "outliers/flags",
    "priority/order",
    "priority/scores",
)
LINKAGE_ARRAYS = ("linkage/left", "linkage/right", "linkage/distance", "linkage/size")


@dataclass(frozen=True)
class Histogram:
    """Counts of one stored vector's finite values.

    Attributes
    ----------
    edges : ndarray of float64, shape (bins + 1,)
    counts : ndarray of int64, shape (bins,)
    n_finite, n_nonfinite : int
        Values counted / left out (nan, inf).
    markers : tuple of (str, float)
        Thresholds to draw, each with its label.
    """

    edges: np.ndarray
    counts: np.ndarray
    n_finite: int
    n_nonfinite: int
    markers: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ClusterSizes:
    """Cluster sizes from the ``clusters`` array.

    Attributes
    ----------
    cluster_ids, counts : ndarray of int64, shape (K,)
        Ids ascending (-1 excluded) and their row counts.
    n_unassigned : int
        Rows labelled -1 in ``clusters``.
    n_noise : int or None
        Rows HDBSCAN itself called noise (``noise`` array), None when absent.
    """

    cluster_ids: np.ndarray
    counts: np.ndarray
    n_unassigned: int
    n_noise: int | None


@dataclass(frozen=True)
class DuplicateGroups:
    """The largest groups of one duplicate kind.

    Attributes
    ----------
    kind : str
        "exact" or "near".
    n_groups, n_rows : int
        All groups of this kind, and the rows they hold.
    group_ids, sizes : ndarray of int64, shape (m,)
        The m largest groups, largest first (ties: smaller id first).
    members : tuple of ndarray of int64
        The first rows (ascending, at most ``member_cap``) of each listed group.
    """

    kind: str
    n_groups: int
    n_rows: int
    group_ids: np.ndarray
    sizes: np.ndarray
    members: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class OutlierRows:
    """The strongest outliers: highest scores among flagged rows (all rows without flags).

    Attributes
    ----------
    rows : ndarray of int64, shape (m,)
    scores : ndarray of float64, shape (m,)
        Descending.
    clusters : ndarray of int64 or None, shape (m,)
    nn_distances : ndarray of float64 or None, shape (m,)
    n_flagged : int or None
    threshold_rule : str or None
    """

    rows: np.ndarray
    scores: np.ndarray
    clusters: np.ndarray | None
    nn_distances: np.ndarray | None
    n_flagged: int | None
    threshold_rule: str | None


@dataclass(frozen=True)
class TreeView:
    """The condensed tree rebuilt from the stored linkage, and the EOM-selected clusters.

    Attributes
    ----------
    condensed : CondensedTree
    selected : ndarray of int64
        Condensed-tree ids of the selected clusters.
    min_cluster_size : int
    mcs_origin : str
        Where ``min_cluster_size`` came from ("summary.json" or "default rule").
    """

    condensed: CondensedTree
    selected: np.ndarray
    min_cluster_size: int
    mcs_origin: str


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows; a ``None`` section was not computed (reason in ``missing``)."""

    store: str
    n: int | None
    summary: dict | None
    sizes: ClusterSizes | None
    outlier_hist: Histogram | None
    nn_hist: Histogram | None
    exact_duplicates: DuplicateGroups | None
    near_duplicates: DuplicateGroups | None
    outliers: OutlierRows | None
    tree: TreeView | None
    projection: Projection | None
    missing: dict = field(default_factory=dict)


def local_store_dir(store_path) -> str:
    """Absolute directory of a local output store; clear errors for anything else."""
    if not isinstance(store_path, (str, os.PathLike)):
        raise InvalidParameterError(f"store_path must be a path, got {type(store_path).__name__}")
    path = os.fspath(store_path)
    if "://" in path and not path.startswith("file://"):
        raise InvalidParameterError(f"the report is written next to a local store; {path!r} is not a local path")
    path = os.path.abspath(path.removeprefix("file://"))
    if not os.path.isdir(path):
        raise StoreNotFoundError(f"no output store at {path!r}")
    return path


def _open_group(path: str):
    import zarr

    try:
        return zarr.open_group(path, mode="r")
    except Exception as exc:  # noqa: BLE001 - any failure here means "not a Zarr group"
        raise CorruptStoreError(f"{path!r} is not a readable Zarr group: {type(exc).__name__}: {exc}") from None


def _read_summary(path: str) -> dict | None:
    file = os.path.join(path, SUMMARY_FILE)
    if not os.path.exists(file):
        return None
    try:
        with open(file, encoding="utf-8") as fh:
            summary = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptStoreError(f"{file!r} is not valid JSON: {exc}") from None
    if not isinstance(summary, dict):
        raise CorruptStoreError(f"{file!r} must hold a JSON object, got {type(summary).__name__}")
    return summary


def _find_key(tree, key: str):
    """First value stored under ``key`` anywhere in nested dicts (depth first), else None."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


class _Arrays:
    """The store's arrays as lazy Dask arrays, shape-checked against one n."""

    def __init__(self, group) -> None:
        self.group = group
        self.n: int | None = None
        self._cache: dict[str, da.Array | None] = {}
        for name in N_ROW_ARRAYS:
            arr = self.get(name)
            if arr is None:
                continue
            if self.n is None:
                self.n = int(arr.shape[0])
            elif arr.shape[0] != self.n:
                raise CorruptStoreError(f"array {name!r} has {arr.shape[0]} rows where other arrays have {self.n}")

    def _node(self, name: str):
        import zarr

        try:
            node = self.group[name]
        except (KeyError, FileNotFoundError):
            return None
        if not isinstance(node, zarr.Array):
            raise CorruptStoreError(f"{name!r} in the store is a group, expected an array")
        return node

    def get(self, name: str) -> da.Array | None:
        if name not in self._cache:
            node = self._node(name)
            self._cache[name] = None if node is None else da.from_zarr(node)
        return self._cache[name]

    def attrs(self, *names: str) -> dict:
        """Attributes of the named nodes merged (later names win), missing nodes skipped."""
        out: dict = {}
        for name in names:
            try:
                out.update(dict(self.group[name].attrs))
            except (KeyError, FileNotFoundError):
                continue
        return out

    def column0(self, name: str) -> da.Array | None:
        arr = self.get(name)
        if arr is None:
            return None
        return arr[:, 0] if arr.ndim == 2 else arr


def _finite_range(x: da.Array) -> da.Array:
    nb = x.numblocks[0]
    return da.map_blocks(
        _blocks.finite_range,
        x,
        new_axis=1,
        chunks=((1,) * nb, (_blocks.FINITE_RANGE_FIELDS,)),
        dtype=np.float64,
    )


def _histogram(x: da.Array, edges: np.ndarray) -> da.Array:
    nb = x.numblocks[0]
    bins = edges.shape[0] - 1
    per_block = da.map_blocks(_blocks.histogram, x, edges=edges, new_axis=1, chunks=((1,) * nb, (bins,)), dtype=np.int64)
    return per_block.sum(axis=0)


def _edges(lo: float, hi: float, bins: int) -> np.ndarray:
    if not np.isfinite(lo):
        lo, hi = 0.0, 1.0
    if hi <= lo:
        pad = max(abs(lo) * 1e-3, 1e-9)
        lo, hi = lo - pad, hi + pad
    return np.linspace(lo, hi, bins + 1)


def _value_counts(x: da.Array):
    parts = [dask.delayed(_blocks.value_counts)(b) for b in x.to_delayed(optimize_graph=False).ravel()]
    return dask.delayed(_blocks.merge_value_counts)(parts)


def _members(x: da.Array, wanted: np.ndarray, cap: int):
    offsets = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]])
    parts = [
        dask.delayed(_blocks.members_of)(b, int(off), wanted, cap)
        for b, off in zip(x.to_delayed(optimize_graph=False).ravel(), offsets, strict=True)
    ]
    return dask.delayed(_blocks.first_members)(parts, wanted, cap)


def _compute(lazy: dict) -> dict:
    """Compute a dict of Dask arrays and Delayed objects in one pass.

    Every value is wrapped as a Delayed first: dask 2026.8's ``compute`` returns mixed
    Array/Delayed arguments in the wrong order (Delayed results first).
    """
    keys = list(lazy)
    values = dask.compute(*(v if isinstance(v, Delayed) else dask.delayed(v) for v in (lazy[k] for k in keys)))
    return dict(zip(keys, values, strict=True))


def _numeric_attr(attrs: dict, key: str) -> float | None:
    value = attrs.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    return None


def read_report_data(
    store_path,
    source=None,
    *,
    sample_size: int = 20_000,
    seed: int = 0,
    bins: int = 60,
    top: int = 20,
    member_cap: int = 12,
) -> ReportData:
    """Read and reduce what the report needs from an output store.

    Parameters
    ----------
    store_path : str or os.PathLike
        Local directory of the run's Zarr group (layout in ARCHITECTURE.md "Storage").
    source : array-like, dask array, zarr array, str or os.PathLike, optional
        The input embeddings, for the 2-D projection; without it that section is not computed.
    sample_size : int, default 20000
        Rows drawn (without replacement, seeded) for the projection.
    seed : int, default 0
        Seed of the projection sample.
    bins : int, default 60
        Histogram bins.
    top : int, default 20
        Rows of the outlier table and groups per duplicate table.
    member_cap : int, default 12
        Rows listed per duplicate group.

    Returns
    -------
    ReportData

    Raises
    ------
    StoreNotFoundError
        No directory at ``store_path``.
    CorruptStoreError
        Not a Zarr group, unreadable ``summary.json``, or n-row arrays of different lengths.
    InvalidParameterError
        Bad ``sample_size``, ``seed``, ``bins``, ``top`` or ``member_cap``.
    InvalidInputError
        ``source`` has a different number of rows than the store.
    """
    for name, value, low in (("sample_size", sample_size, 2), ("bins", bins, 1), ("top", top, 1), ("member_cap", member_cap, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InvalidParameterError(f"{name} must be an int >= {low}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidParameterError(f"seed must be a non-negative int, got {seed!r}")
    path = local_store_dir(store_path)
    group = _open_group(path)
    summary = _read_summary(path)
    arrays = _Arrays(group)
    missing: dict[str, str] = {}
    src = None
    if source is not None:
        src = open_source(source)
        if arrays.n is not None and src.n != arrays.n:
            raise InvalidInputError(f"source has {src.n} rows but the output store has {arrays.n}: not the run's input")

    clusters = arrays.get("clusters")
    noise = arrays.get("noise")
    scores = arrays.get("outliers/scores")
    flags = arrays.get("outliers/flags")
    nn = arrays.column0("k_distances")
    near = arrays.get("duplicates/near_group")
    exact = arrays.get("duplicates/exact_group")

    # Pass 1: ranges, id counts, flagged extremes, top outliers.
    lazy: dict[str, object] = {}
    if clusters is not None:
        lazy["cluster_counts"] = _value_counts(clusters)
        lazy["unassigned"] = (clusters < 0).sum()
    if noise is not None:
        lazy["noise"] = noise.sum()
    if scores is not None:
        lazy["score_range"] = _finite_range(scores)
        finite_scores = da.where(da.isfinite(scores), scores.astype(np.float64), -np.inf)
        ranked = da.where(flags, finite_scores, -np.inf) if flags is not None else finite_scores
        lazy["top_rows"] = da.argtopk(ranked, min(top, scores.shape[0]))
        if flags is not None:
            lazy["n_flagged"] = flags.sum()
            lazy["lowest_flagged"] = da.where(flags, finite_scores, np.inf).min()
    if nn is not None:
        lazy["nn_range"] = _finite_range(nn)
        if near is not None:
            lazy["near_nn_max"] = da.where((near >= 0) & da.isfinite(nn), nn.astype(np.float64), -np.inf).max()
    for kind, ids in (("exact", exact), ("near", near)):
        if ids is not None:
            lazy[f"{kind}_counts"] = _value_counts(ids)
    got = _compute(lazy)

    # Pass 2: histograms, group members, the top outliers' other columns.
    lazy2: dict[str, object] = {}
    if scores is not None:
        lo, hi, n_fin, n_nonfin = _blocks.combine_finite_ranges(got["score_range"])
        score_edges = _edges(lo, hi, bins)
        lazy2["score_hist"] = _histogram(scores, score_edges)
    if nn is not None:
        lo, hi, nn_fin, nn_nonfin = _blocks.combine_finite_ranges(got["nn_range"])
        nn_edges = _edges(lo, hi, bins)
        lazy2["nn_hist"] = _histogram(nn, nn_edges)
    if scores is not None:
        sorted_rows = np.sort(np.asarray(got["top_rows"], dtype=np.int64))
        lazy2["top_values"] = ranked[sorted_rows]
        if clusters is not None:
            lazy2["top_clusters"] = clusters[sorted_rows]
        if nn is not None:
            lazy2["top_nn"] = nn[sorted_rows]
    largest: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind, ids in (("exact", exact), ("near", near)):
        if ids is None:
            continue
        values, counts = got[f"{kind}_counts"]
        order = np.lexsort((values, -counts))[:top]
        largest[kind] = (values[order], counts[order])
        lazy2[f"{kind}_members"] = _members(ids, np.sort(values[order]), member_cap)
    got2 = _compute(lazy2)

    sizes = None
    if clusters is not None:
        ids, counts = got["cluster_counts"]
        sizes = ClusterSizes(ids, counts, int(got["unassigned"]), int(got["noise"]) if noise is not None else None)
    else:
        missing["sizes"] = "array 'clusters' is absent from the store"

    outlier_hist = outliers = None
    if scores is not None:
        attrs = arrays.attrs("outliers", "outliers/scores", "outliers/flags")
        markers = []
        threshold = _numeric_attr(attrs, "threshold")
        if threshold is not None:
            markers.append(("threshold", threshold))
        if flags is not None and int(got["n_flagged"]) > 0 and np.isfinite(float(got["lowest_flagged"])):
            markers.append(("lowest flagged score", float(got["lowest_flagged"])))
        outlier_hist = Histogram(score_edges, np.asarray(got2["score_hist"], np.int64), n_fin, n_nonfin, tuple(markers))
        values = np.asarray(got2["top_values"], dtype=np.float64)
        order = np.lexsort((sorted_rows, -values))  # descending score, ties by row
        order = order[np.isfinite(values[order])]  # unflagged rows ranked -inf
        top_rows, top_scores = sorted_rows[order], values[order]
        where = order
        rule = attrs.get("threshold_rule")
        outliers = OutlierRows(
            rows=top_rows,
            scores=top_scores,
            clusters=np.asarray(got2["top_clusters"], np.int64)[where] if clusters is not None else None,
            nn_distances=np.asarray(got2["top_nn"], np.float64)[where] if nn is not None else None,
            n_flagged=int(got["n_flagged"]) if flags is not None else None,
            threshold_rule=str(rule) if rule is not None else None,
        )
    else:
        missing["outlier_hist"] = missing["outliers"] = "array 'outliers/scores' is absent from the store"

    nn_hist = None
    if nn is not None:
        attrs = arrays.attrs("duplicates", "duplicates/near_group")
        markers = []
        threshold = _numeric_attr(attrs, "threshold")
        if threshold is not None:
            markers.append(("near-duplicate threshold", threshold))
        if near is not None and np.isfinite(float(got["near_nn_max"])):
            markers.append(("largest NN distance in a near-duplicate group", float(got["near_nn_max"])))
        nn_hist = Histogram(nn_edges, np.asarray(got2["nn_hist"], np.int64), nn_fin, nn_nonfin, tuple(markers))
    else:
        missing["nn_hist"] = "array 'k_distances' is absent from the store"

    dups: dict[str, DuplicateGroups | None] = {}
    for kind in ("exact", "near"):
        if kind not in largest:
            dups[kind] = None
            missing[f"{kind}_duplicates"] = f"array 'duplicates/{kind}_group' is absent from the store"
            continue
        values, counts = got[f"{kind}_counts"]
        gids, gsizes = largest[kind]
        members = got2[f"{kind}_members"]
        dups[kind] = DuplicateGroups(
            kind=kind,
            n_groups=int(values.shape[0]),
            n_rows=int(counts.sum()),
            group_ids=gids,
            sizes=gsizes,
            members=tuple(members[int(g)] for g in gids),
        )

    tree = _tree_view(arrays, summary, missing)
    projection = None
    if src is None:
        missing["projection"] = "no input embeddings were given to the report (source=None)"
    elif arrays.n is None:
        missing["projection"] = "the store has no per-row arrays to colour the projection with"
    else:
        projection = project_sample(
            src,
            sample_size=sample_size,
            seed=seed,
            clusters=clusters,
            outlier_flags=flags,
            duplicate_groups=[g for g in (exact, near) if g is not None],
        )

    return ReportData(
        store=path,
        n=arrays.n,
        summary=summary,
        sizes=sizes,
        outlier_hist=outlier_hist,
        nn_hist=nn_hist,
        exact_duplicates=dups["exact"],
        near_duplicates=dups["near"],
        outliers=outliers,
        tree=tree,
        projection=projection,
        missing=missing,
    )


def _tree_view(arrays: _Arrays, summary: dict | None, missing: dict) -> TreeView | None:
    from distdataeval.pipeline import min_cluster_size_for

    absent = [name for name in LINKAGE_ARRAYS if arrays.get(name) is None]
    if absent:
        missing["tree"] = f"linkage arrays absent from the store: {', '.join(absent)}"
        return None
    left, right, distance, size = dask.compute(*(arrays.get(name) for name in LINKAGE_ARRAYS))
    n = int(left.shape[0]) + 1
    linkage = LinkageTree(
        left=np.ascontiguousarray(left, np.int64),
        right=np.ascontiguousarray(right, np.int64),
        distance=np.ascontiguousarray(distance, np.float64),
        size=np.ascontiguousarray(size, np.int64),
    )
    mcs = _find_key(summary, "min_cluster_size")
    origin = "summary.json"
    if isinstance(mcs, bool) or not isinstance(mcs, int) or mcs < 2:
        n_clusters = _find_key(summary, "n_clusters")
        n_clusters = n_clusters if isinstance(n_clusters, int) and not isinstance(n_clusters, bool) and n_clusters > 0 else None
        mcs = min_cluster_size_for(n, n_clusters)
        origin = "default rule (not in summary.json)"
    maxcs = _find_key(summary, "max_cluster_size")
    maxcs = float(maxcs) if isinstance(maxcs, (int, float)) and not isinstance(maxcs, bool) and maxcs > mcs else np.inf
    condensed = linkage_to_condensed_tree(linkage, mcs, maxcs)
    selected = select_clusters_eom(condensed, maxcs, allow_single_cluster=True)
    return TreeView(condensed=condensed, selected=np.asarray(selected, np.int64), min_cluster_size=int(mcs), mcs_origin=origin)
