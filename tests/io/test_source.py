"""Input handling and validation at the boundary (clear errors, never a numba/Dask traceback)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

import distdataeval as dde
from distdataeval.errors import (
    CorruptStoreError,
    InvalidInputError,
    InvalidParameterError,
    StoreNotFoundError,
    UnknownParameterError,
)
from distdataeval.io.source import open_source
from tests.conftest import mixture


class TestShapeAndDtype:
    def test_one_sample(self):
        with pytest.raises(InvalidInputError, match="at least 2 samples, got 1"):
            open_source(np.zeros((1, 3)))

    def test_zero_samples(self):
        with pytest.raises(InvalidInputError, match="at least 2 samples, got 0"):
            open_source(np.zeros((0, 3)))

    def test_no_features(self):
        with pytest.raises(InvalidInputError, match=r"at least 1 feature per sample, got shape \(5, 0\)"):
            open_source(np.zeros((5, 0)))

    def test_scalar(self):
        with pytest.raises(InvalidInputError, match="sample axis"):
            open_source(np.float64(3.0))

    @pytest.mark.parametrize("values", [np.array([["a", "b"], ["c", "d"]]), np.zeros((3, 2), dtype=complex)])
    def test_non_numeric(self, values):
        with pytest.raises(InvalidInputError, match=f"must be numeric .*got dtype {values.dtype}"):
            open_source(values)

    def test_object_dtype(self):
        with pytest.raises(InvalidInputError, match="dtype object"):
            open_source(np.array([[1, None], [2, 3]], dtype=object))

    def test_flattens_extra_axes(self):
        x = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)
        src = open_source(x)
        assert src.data.shape == (10, 6)
        np.testing.assert_array_equal(src.data.compute(), x.reshape(10, 6))

    def test_flattens_dask_extra_axes(self):
        x = da.from_array(np.arange(40 * 2 * 2, dtype=np.float32).reshape(40, 2, 2), chunks=(10, 1, 2))
        src = open_source(x)
        assert src.data.shape == (40, 4) and src.data.chunks[1] == (4,)

    def test_integers_become_float64(self):
        assert open_source(np.arange(12).reshape(6, 2)).data.dtype == np.float64

    def test_float32_kept(self):
        assert open_source(np.zeros((4, 2), np.float32)).data.dtype == np.float32

    def test_high_dimension_warns(self):
        with pytest.warns(dde.HighDimensionWarning, match="d = 501 is above 500"):
            open_source(np.zeros((4, 501), np.float32))

    def test_column_chunks_merged(self):
        x = da.zeros((100, 8), chunks=(25, 3))
        assert open_source(x).data.chunks == ((25, 25, 25, 25), (8,))

    def test_bad_chunk_rows(self):
        with pytest.raises(InvalidParameterError, match="chunk_rows must be a positive int"):
            open_source(np.zeros((4, 2)), chunk_rows=0)


class TestZarr:
    def test_store_path_with_array_name(self, tmp_path):
        x, _ = mixture(100)
        g = zarr.open_group(str(tmp_path / "e.zarr"), mode="w")
        g.create_array("emb", data=x, chunks=(30, 8))
        g.create_array("other", data=np.zeros(3))
        src = open_source(str(tmp_path / "e.zarr"), array="emb")
        assert src.data.chunks[0] == (30, 30, 30, 10)
        np.testing.assert_array_equal(src.data.compute(), x)

    def test_single_array_group_needs_no_name(self, tmp_path):
        g = zarr.open_group(str(tmp_path / "e.zarr"), mode="w")
        g.create_array("only", data=np.ones((5, 2)))
        assert open_source(tmp_path / "e.zarr").n == 5

    def test_zarr_array_object(self, tmp_path):
        arr = zarr.create_array(str(tmp_path / "a.zarr"), data=np.ones((6, 3), np.float32), chunks=(2, 3))
        assert open_source(arr).data.chunks[0] == (2, 2, 2)

    def test_missing_store(self, tmp_path):
        with pytest.raises(StoreNotFoundError, match="no Zarr store at .*missing.zarr"):
            open_source(str(tmp_path / "missing.zarr"))

    def test_missing_store_is_file_not_found(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            open_source(str(tmp_path / "missing.zarr"))

    def test_missing_array_lists_arrays(self, tmp_path):
        g = zarr.open_group(str(tmp_path / "e.zarr"), mode="w")
        g.create_array("emb", data=np.ones((5, 2)))
        with pytest.raises(StoreNotFoundError, match=r"no array 'embeddings' .*arrays found: \['emb'\]"):
            open_source(str(tmp_path / "e.zarr"), array="embeddings")

    def test_group_needs_array_name(self, tmp_path):
        g = zarr.open_group(str(tmp_path / "e.zarr"), mode="w")
        g.create_array("a", data=np.ones((5, 2)))
        g.create_array("b", data=np.ones((5, 2)))
        with pytest.raises(InvalidParameterError, match=r"name the embeddings array with array=.*\['a', 'b'\]"):
            open_source(str(tmp_path / "e.zarr"))

    def test_corrupt_store(self, tmp_path):
        store = tmp_path / "bad.zarr"
        store.mkdir()
        (store / "zarr.json").write_text("{ this is not json")
        with pytest.raises(CorruptStoreError, match="cannot read the Zarr store"):
            open_source(str(store))

    def test_array_name_without_store(self):
        with pytest.raises(InvalidParameterError, match="only meaningful with a Zarr store path"):
            open_source(np.ones((3, 2)), array="x")


class TestThroughCluster:
    """The same checks reached through the public API, including the one that reads data."""

    def test_nan_rows_named(self, dask_client):
        x, _ = mixture(300)
        x[[7, 123, 250], 1] = np.nan
        x[200, 0] = np.inf
        with pytest.raises(InvalidInputError, match=r"NaN or infinite values in 4 of 300 rows \(first rows: 7, 123, 200, 250\)"):
            dde.cluster(x, chunk_rows=64)

    def test_nan_in_dask_input(self, dask_client):
        x, _ = mixture(50)
        x[49, 3] = -np.inf
        with pytest.raises(InvalidInputError, match=r"in 1 of 50 rows \(first rows: 49\)"):
            dde.cluster(da.from_array(x, chunks=(20, 8)))

    def test_many_bad_rows_truncated(self, dask_client):
        x = np.full((40, 2), np.nan)
        with pytest.raises(InvalidInputError, match=r"40 of 40 rows \(first rows: 0, 1, 2, 3, 4, \.\.\.\)"):
            dde.cluster(x)

    def test_unknown_parameter_suggests(self):
        with pytest.raises(UnknownParameterError, match="unknown parameter 'n_cluster'; did you mean 'n_clusters'"):
            dde.cluster(np.zeros((5, 2)), n_cluster=3)

    def test_unknown_parameter_is_type_error(self):
        with pytest.raises(TypeError, match="unknown parameter 'zzz'"):
            dde.cluster(np.zeros((5, 2)), zzz=1)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"algorithm": "dbscan"}, "algorithm must be one of"),
            ({"knn": "fast"}, "knn must be one of"),
            ({"n_clusters": 0}, "n_clusters must be >= 1, got 0"),
            ({"n_clusters": 2.5}, "n_clusters must be an int"),
            ({"max_cluster_size": -1}, "max_cluster_size must be >= 1"),
            ({"n_init": 0}, "n_init must be 'auto' or an int >= 1"),
            ({"reassign_noise": "yes"}, "reassign_noise must be True or False"),
        ],
    )
    def test_bad_parameters(self, kwargs, message):
        with pytest.raises(InvalidParameterError, match=message):
            dde.cluster(np.zeros((5, 2)), **kwargs)

    def test_one_sample_through_api(self, dask_client):
        with pytest.raises(ValueError, match="at least 2 samples"):
            dde.cluster(np.zeros((1, 3)))


def test_memory_store_is_read_by_the_driver(dask_client):
    # worker processes cannot see an in-memory store: it must not be read lazily by them
    x, _ = mixture(300, d=4, seed=6)
    g = zarr.open_group("memory://test-source.zarr", mode="w")
    g.create_array("e", data=x, chunks=(100, 4))
    a = dde.cluster("memory://test-source.zarr", array="e")
    b = dde.cluster(x)
    np.testing.assert_array_equal(a.clusters, b.clusters)
    np.testing.assert_array_equal(a.k_neighbors, b.k_neighbors)
