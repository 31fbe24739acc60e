"""``write_report``: read the store, draw the plots, write ``<store>/report.html`` atomically."""

from __future__ import annotations

import os
import pathlib
import tempfile

from distdataeval.report import plots as _plots
from distdataeval.report.data import read_report_data
from distdataeval.report.html import render_page

REPORT_FILE = "report.html"


def write_report(store_path, source=None, *, sample_size: int = 20_000, seed: int = 0) -> pathlib.Path:
    """Write the run's self-contained HTML report next to its results.

    Parameters
    ----------
    store_path : str or os.PathLike
        Local directory of the run's output Zarr group.
    source : array-like, dask array, zarr array, str or os.PathLike, optional
        The run's input embeddings; needed only for the 2-D projection (a PCA of a seeded
        random sample of ``sample_size`` rows). Without it that section says "not computed".
    sample_size : int, default 20000
        Rows sampled for the projection.
    seed : int, default 0
        Seed of that sample (same store, source and seed give the same page).

    Returns
    -------
    pathlib.Path
        ``<store_path>/report.html``, written to a temporary file in the same directory and
        renamed into place, so a reader never sees a partial page.

    Raises
    ------
    StoreNotFoundError, CorruptStoreError, InvalidParameterError, InvalidInputError
        See :func:`distdataeval.report.data.read_report_data`.

    Examples
    --------
    >>> from distdataeval.report import write_report
    >>> path = write_report("run.zarr", "embeddings.zarr")  # doctest: +SKIP
    """
    data = read_report_data(store_path, source, sample_size=sample_size, seed=seed)
    images: dict[str, bytes] = {}
    if data.sizes is not None:
        images["cluster-sizes"] = _plots.plot_cluster_sizes(data.sizes)
    if data.outlier_hist is not None:
        images["outlier-scores"] = _plots.plot_histogram(data.outlier_hist, "outlier score", "outlier scores")
    if data.nn_hist is not None:
        images["nn-distances"] = _plots.plot_histogram(
            data.nn_hist, "distance to the nearest neighbour (k_distances[:, 0])", "nearest-neighbour distances"
        )
    if data.projection is not None:
        images["projection"] = _plots.plot_projection(data.projection)
    if data.tree is not None:
        images["condensed-tree"] = _plots.plot_condensed_tree(data.tree)
    page = render_page(data, images)
    final = pathlib.Path(data.store) / REPORT_FILE
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html.partial", dir=data.store)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return final
