"""The report's plots, drawn with matplotlib (Agg, no pyplot state) and returned as PNG bytes."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure

from distdataeval.report.data import ClusterSizes, Histogram, TreeView
from distdataeval.report.projection import Projection

DPI = 100
MARKER_COLOURS = ("#d62728", "#9467bd", "#2ca02c", "#ff7f0e")
_PALETTE = np.array(
    [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
        "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79",
    ]
)


def _figure(width: float = 7.5, height: float = 3.6) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def cluster_colours(ids: np.ndarray) -> np.ndarray:
    """A colour per cluster id (cycling a 20-colour palette); grey for -1."""
    ids = np.asarray(ids, dtype=np.int64)
    out = _PALETTE[np.mod(ids, _PALETTE.shape[0])].astype(object)
    out[ids < 0] = "#b0b0b0"
    return out


def plot_cluster_sizes(sizes: ClusterSizes) -> bytes:
    """Cluster sizes, largest first (bars up to 60 clusters, a step line beyond)."""
    fig = _figure()
    ax = fig.add_subplot()
    order = np.lexsort((sizes.cluster_ids, -sizes.counts))
    counts = sizes.counts[order]
    ranks = np.arange(1, counts.shape[0] + 1)
    if counts.shape[0] == 0:
        ax.text(0.5, 0.5, "no clusters", ha="center", va="center", transform=ax.transAxes)
    elif counts.shape[0] <= 60:
        ax.bar(ranks, counts, color=cluster_colours(sizes.cluster_ids[order]), edgecolor="#333333", linewidth=0.4)
        if counts.shape[0] <= 25:
            ax.set_xticks(ranks, [str(c) for c in sizes.cluster_ids[order]], fontsize=8)
            ax.set_xlabel("cluster id (largest first)")
        else:
            ax.set_xlabel("cluster rank (largest first)")
    else:
        ax.step(ranks, counts, where="mid", color="#1f77b4")
        ax.set_xlabel("cluster rank (largest first)")
    if counts.shape[0] and counts.max() > 50 * max(counts.min(), 1):
        ax.set_yscale("log")
    ax.set_ylabel("rows")
    extra = f"{sizes.n_unassigned} rows unassigned (-1)"
    if sizes.n_noise is not None:
        extra += f"; {sizes.n_noise} HDBSCAN noise"
    ax.set_title(f"{counts.shape[0]} clusters; {extra}", fontsize=10)
    return _png(fig)


def plot_histogram(hist: Histogram, xlabel: str, title: str) -> bytes:
    """A histogram with its threshold markers as labelled vertical lines."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.stairs(hist.counts, hist.edges, fill=True, color="#7aa6d1", edgecolor="#2b5c8a")
    for (label, value), colour in zip(hist.markers, MARKER_COLOURS, strict=False):
        ax.axvline(value, color=colour, linestyle="--", linewidth=1.5, label=f"{label} = {value:.4g}")
    if hist.markers:
        ax.legend(fontsize=8, loc="upper right")
    positive = hist.counts[hist.counts > 0]
    if positive.size and positive.max() > 100 * positive.min():
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    note = f" ({hist.n_nonfinite} non-finite left out)" if hist.n_nonfinite else ""
    ax.set_title(f"{title}: {hist.n_finite} rows{note}", fontsize=10)
    return _png(fig)


def plot_projection(proj: Projection) -> bytes:
    """Sampled rows on principal axes 1-2, coloured by cluster; outliers and duplicates marked."""
    fig = _figure(7.5, 6.0)
    ax = fig.add_subplot()
    x, y = proj.xy[:, 0], proj.xy[:, 1]
    size = 6 if x.shape[0] > 5000 else 12
    colours = cluster_colours(proj.clusters) if proj.clusters is not None else "#1f77b4"
    ax.scatter(x, y, s=size, c=colours, linewidths=0, alpha=0.8, rasterized=True, label="rows (colour = cluster)")
    if proj.duplicates is not None and proj.duplicates.any():
        d = proj.duplicates
        ax.scatter(x[d], y[d], s=36, facecolors="none", edgecolors="black", linewidths=0.8, label=f"duplicate ({d.sum()})")
    if proj.outliers is not None and proj.outliers.any():
        o = proj.outliers
        ax.scatter(x[o], y[o], s=40, marker="x", c="#d62728", linewidths=1.2, label=f"outlier ({o.sum()})")
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel(f"PC 1 ({100 * proj.explained[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * proj.explained[1]:.1f}% of variance)")
    ax.set_title(f"PCA of {proj.rows.shape[0]} sampled rows of {proj.n_total}", fontsize=10)
    return _png(fig)


def condensed_tree_layout(view: TreeView) -> dict[str, np.ndarray]:
    """Boxes of the condensed tree's clusters: x span (nested in the parent's), lambda span.

    Returns
    -------
    dict of ndarray, each shape (C,), indexed by cluster id - n
        ``x0``, ``width`` (rows at birth), ``birth``, ``death`` (lambda; +inf clipped to a finite
        top), ``parent`` (-1 for the root), ``selected`` (bool).
    """
    ct = view.condensed
    n = ct.n_points
    count = ct.n_clusters
    is_cluster = ct.child >= n
    child = ct.child[is_cluster] - n
    parent_of = np.full(count, -1, dtype=np.int64)
    parent_of[child] = ct.parent[is_cluster] - n
    width = np.full(count, float(n))
    width[child] = ct.child_size[is_cluster]
    lam = ct.lambda_val.astype(np.float64)
    finite = lam[np.isfinite(lam)]
    top = finite.max() * 1.1 if finite.size and finite.max() > 0 else 1.0
    lam = np.where(np.isfinite(lam), lam, top)
    birth = np.zeros(count)
    birth[child] = lam[is_cluster]
    death = birth.copy()
    np.maximum.at(death, ct.parent - n, lam)
    # Children sit side by side, centred in the parent's span. Rows come breadth-first, so a
    # cluster's own birth row (which places it) precedes the rows of its children.
    x0 = np.zeros(count)
    kid_total = np.zeros(count)
    np.add.at(kid_total, parent_of[child], width[child])
    next_x = np.full(count, np.nan)
    for c in child.tolist():
        p = parent_of[c]
        if np.isnan(next_x[p]):
            next_x[p] = x0[p] + (width[p] - kid_total[p]) / 2
        x0[c] = next_x[p]
        next_x[p] += width[c]
    selected = np.zeros(count, dtype=bool)
    selected[np.asarray(view.selected, np.int64) - n] = True
    return {"x0": x0, "width": width, "birth": birth, "death": death, "parent": parent_of, "selected": selected}


def cluster_profiles(view: TreeView, lay: dict[str, np.ndarray], levels: int = 48) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rows still in each cluster at ``levels + 1`` lambdas from its birth to its death.

    Each cluster's condensed-tree rows are visited once (rows sorted by parent, then lambda), so
    the work is O(m log m) for m rows, whatever the number of clusters.

    Returns
    -------
    list of (lambdas, rows) per cluster id - n, each ndarray of float64 of shape (levels + 1,)
    """
    ct = view.condensed
    n = ct.n_points
    top = float(lay["death"].max()) if lay["death"].size else 1.0
    lam = np.where(np.isfinite(ct.lambda_val), ct.lambda_val, top)
    order = np.lexsort((lam, ct.parent))
    parent, lam, size = ct.parent[order] - n, lam[order], ct.child_size[order].astype(np.float64)
    bounds = np.searchsorted(parent, np.arange(lay["width"].shape[0] + 1))
    out = []
    for c in range(lay["width"].shape[0]):
        lo, hi = bounds[c], bounds[c + 1]
        grid = np.linspace(lay["birth"][c], lay["death"][c], levels + 1)
        gone = np.concatenate([[0.0], np.cumsum(size[lo:hi])])
        # rows that left strictly before each level (points leaving at the level count as still in)
        left = gone[np.searchsorted(lam[lo:hi], grid, side="left")]
        out.append((grid, np.maximum(lay["width"][c] - left, 0.0)))
    return out


def plot_condensed_tree(view: TreeView) -> bytes:
    """Icicle plot of the condensed tree: each cluster narrows as its rows fall out (lambda grows
    downwards); the clusters selected by EOM are orange."""
    lay = condensed_tree_layout(view)
    fig = _figure(7.5, 5.0)
    ax = fig.add_subplot()
    mids = lay["x0"] + lay["width"] / 2
    shapes = []
    levels = 48 if lay["width"].shape[0] <= 2000 else 6  # bounded vertex count on huge trees
    for c, (grid, rows) in enumerate(cluster_profiles(view, lay, levels)):
        half = np.maximum(rows / 2, 0.002 * view.condensed.n_points)
        left = np.column_stack([mids[c] - half, grid])
        right = np.column_stack([mids[c] + half, grid])[::-1]
        shapes.append(np.vstack([left, right]))
    colours = np.where(lay["selected"], "#e8743b", "#9bb7d4")
    ax.add_collection(PolyCollection(shapes, facecolors=colours, edgecolors="#333333", linewidths=0.4))
    kids = np.flatnonzero(lay["parent"] >= 0)
    segments = [[(mids[lay["parent"][c]], lay["birth"][c]), (mids[c], lay["birth"][c])] for c in kids]
    ax.add_collection(LineCollection(segments, colors="#333333", linewidths=0.6))
    n = view.condensed.n_points
    ax.set_xlim(-0.01 * n, 1.01 * n)
    top = max(float(lay["death"].max()), 1e-12)
    ax.set_ylim(top * 1.02, 0.0)
    ax.set_xticks([])
    ax.set_ylabel("lambda = 1 / distance")
    ax.set_xlabel("clusters side by side; width = rows still in the cluster")
    ax.set_title(
        f"condensed tree: {lay['width'].shape[0]} clusters, {int(lay['selected'].sum())} selected (orange), "
        f"min_cluster_size = {view.min_cluster_size}",
        fontsize=10,
    )
    return _png(fig)
