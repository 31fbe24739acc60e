"""report.html from a real small run: every section, numbers equal to NumPy on the stored arrays,
missing arrays, escaping, atomic write, bad input."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from sklearn.decomposition import PCA

from distdataeval.errors import CorruptStoreError, InvalidInputError, InvalidParameterError, StoreNotFoundError
from distdataeval.report import read_report_data, write_report
from distdataeval.report.plots import cluster_profiles, condensed_tree_layout
from distdataeval.report.projection import sample_rows
from tests.report.conftest import copy_store
from tests.report.page import parse, png_size

SECTION_IDS = [
    "summary",
    "cluster-sizes",
    "outlier-scores",
    "nn-distances",
    "projection",
    "condensed-tree",
    "duplicates",
    "outliers",
]
PLOT_IDS = ["cluster-sizes", "outlier-scores", "nn-distances", "projection", "condensed-tree"]


@pytest.fixture(scope="module")
def report(run_store):
    path = write_report(run_store.path, run_store.x, sample_size=1500, seed=7)
    text = path.read_text(encoding="utf-8")
    return path, text, parse(text)


def _figures(page) -> dict[str, str]:
    return {k: v for k, v in page.tables["figures"]}


def _top_flagged(scores: np.ndarray, flags: np.ndarray, m: int = 20) -> np.ndarray:
    rows = np.flatnonzero(flags)
    order = np.lexsort((rows, -scores[rows].astype(np.float64)))
    return rows[order][:m]


class TestPage:
    def test_written_next_to_the_store(self, run_store, report):
        path, _, _ = report
        assert path == type(path)(run_store.path) / "report.html"
        assert path.is_file()
        assert not [f for f in os.listdir(run_store.path) if f.startswith(".report-")]

    def test_every_section_in_order_with_a_plot(self, report):
        _, text, page = report
        assert list(page.sections) == SECTION_IDS
        for sid in PLOT_IDS:
            width, height = png_size(page.images[f"plot-{sid}"])
            assert width >= 600 and height >= 300
        assert "Not computed" not in text

    def test_self_contained(self, report):
        _, text, page = report
        assert all(u.startswith("data:image/png;base64,") for u in page.urls)
        assert not {"script", "link", "iframe", "object"} & set(page.tags)
        csp = [m["content"] for m in page.metas if m.get("http-equiv") == "Content-Security-Policy"]
        assert csp and "default-src 'none'" in csp[0]
        assert "http://" not in text and "https://" not in text

    def test_text_from_the_store_is_escaped(self, run_store, report):
        _, text, page = report
        assert "<script" not in text and "<b>" not in text
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
        summary = dict(page.tables["summary-json"])
        assert summary["input.path"] == "<script>alert('x')</script>"  # shown as text
        assert summary["parameters.note"] == "<b>bold</b> & co"
        assert "z-score > 2.5 <within cluster>" in page.sections["outliers"]

    def test_summary_json_listed(self, run_store, report):
        _, _, page = report
        summary = dict(page.tables["summary-json"])
        assert summary["parameters.min_cluster_size"] == str(run_store.min_cluster_size)
        assert summary["input.shape"] == json.dumps([2000, 6])
        assert summary["timings.knn"] == "0.5"


class TestNumbersMatchTheArrays:
    def test_figures(self, run_store, report):
        _, _, page = report
        a = run_store.arrays
        fig = _figures(page)
        labels = a["clusters"]
        ids, counts = np.unique(labels[labels >= 0], return_counts=True)
        assert fig["rows"] == "2000"
        assert fig["clusters"] == str(ids.shape[0])
        assert fig["largest cluster"] == str(counts.max())
        assert fig["smallest cluster"] == str(counts.min())
        assert fig["rows unassigned (-1)"] == str(int((labels < 0).sum()))
        assert fig["HDBSCAN noise rows"] == str(int(a["noise"].sum()))
        for kind in ("exact", "near"):
            g = a[f"duplicates/{kind}_group"]
            assert fig[f"{kind} duplicate groups"] == str(np.unique(g[g >= 0]).shape[0])
            assert fig[f"rows in {kind} duplicate groups"] == str(int((g >= 0).sum()))
        assert fig["flagged outliers"] == str(int(a["outliers/flags"].sum()))

    def test_the_run_has_what_the_checks_need(self, run_store):
        a = run_store.arrays
        assert np.unique(a["clusters"][a["clusters"] >= 0]).shape[0] >= 3
        assert (a["duplicates/exact_group"] >= 0).sum() == 5  # rows 5, 700, 1500 and 300, 1200
        assert np.unique(a["duplicates/near_group"][a["duplicates/near_group"] >= 0]).shape[0] >= 3
        assert a["outliers/flags"].sum() >= 5

    def test_cluster_sizes(self, run_store):
        data = read_report_data(run_store.path)
        labels = run_store.arrays["clusters"]
        ids, counts = np.unique(labels[labels >= 0], return_counts=True)
        np.testing.assert_array_equal(data.sizes.cluster_ids, ids)
        np.testing.assert_array_equal(data.sizes.counts, counts)
        assert data.sizes.n_noise == int(run_store.arrays["noise"].sum())

    def test_histograms_and_thresholds(self, run_store):
        data = read_report_data(run_store.path, bins=40)
        a = run_store.arrays
        for hist, values in ((data.outlier_hist, a["outliers/scores"]), (data.nn_hist, a["k_distances"][:, 0])):
            v = values.astype(np.float64)
            edges = np.linspace(v.min(), v.max(), 41)
            np.testing.assert_allclose(hist.edges, edges)
            np.testing.assert_array_equal(hist.counts, np.histogram(v, edges)[0])
            assert hist.n_finite == 2000 and hist.n_nonfinite == 0
        flags = a["outliers/flags"]
        assert data.outlier_hist.markers == (("lowest flagged score", float(a["outliers/scores"][flags].min())),)
        near = a["duplicates/near_group"] >= 0
        (label, value), = data.nn_hist.markers
        assert label.startswith("largest NN distance") and value == float(a["k_distances"][near, 0].max())

    def test_outlier_table(self, run_store, report):
        _, _, page = report
        a = run_store.arrays
        top = _top_flagged(a["outliers/scores"], a["outliers/flags"])
        rows = page.tables["table-outliers"]
        assert [int(r[0]) for r in rows] == top.tolist()
        np.testing.assert_allclose([float(r[1]) for r in rows], a["outliers/scores"][top], rtol=1e-5)
        assert [int(r[2]) for r in rows] == a["clusters"][top].tolist()
        np.testing.assert_allclose([float(r[3]) for r in rows], a["k_distances"][top, 0], rtol=1e-5)

    @pytest.mark.parametrize("kind", ["exact", "near"])
    def test_duplicate_tables(self, run_store, report, kind):
        _, _, page = report
        g = run_store.arrays[f"duplicates/{kind}_group"]
        ids, sizes = np.unique(g[g >= 0], return_counts=True)
        order = np.lexsort((ids, -sizes))[:20]
        rows = page.tables[f"table-{kind}-duplicates"]
        assert [int(r[0]) for r in rows] == ids[order].tolist()
        assert [int(r[1]) for r in rows] == sizes[order].tolist()
        for r, gid in zip(rows, ids[order], strict=True):
            members = np.flatnonzero(g == gid)
            listed = r[2].split(", ...")[0]
            assert [int(m) for m in listed.split(", ")] == members[:12].tolist()
        if kind == "exact":
            assert rows[0][2] == "5, 700, 1500" and rows[1][2] == "300, 1200"

    def test_member_lists_are_capped(self, run_store):
        data = read_report_data(run_store.path, member_cap=2, top=1)
        (members,) = data.exact_duplicates.members
        assert members.tolist() == [5, 700]  # the 3-row group, first two rows (two row blocks apart)


class TestProjectionAndTree:
    def test_projection_equals_sklearn_pca_of_the_sample(self, run_store):
        data = read_report_data(run_store.path, run_store.x, sample_size=1500, seed=7)
        proj = data.projection
        assert proj.rows.shape == (1500,) and np.all(np.diff(proj.rows) > 0)
        np.testing.assert_array_equal(proj.rows, sample_rows(2000, 1500, 7))
        ref = PCA(n_components=2, svd_solver="full").fit(run_store.x[proj.rows].astype(np.float64))
        xy_ref = ref.transform(run_store.x[proj.rows].astype(np.float64))
        for j in range(2):
            sign = np.sign(xy_ref[:, j] @ proj.xy[:, j])
            np.testing.assert_allclose(proj.xy[:, j], sign * xy_ref[:, j], atol=1e-6 * np.abs(xy_ref).max())
        np.testing.assert_allclose(proj.explained, ref.explained_variance_ratio_, rtol=1e-6)
        a = run_store.arrays
        np.testing.assert_array_equal(proj.clusters, a["clusters"][proj.rows])
        np.testing.assert_array_equal(proj.outliers, a["outliers/flags"][proj.rows])
        dup = (a["duplicates/exact_group"] >= 0) | (a["duplicates/near_group"] >= 0)
        np.testing.assert_array_equal(proj.duplicates, dup[proj.rows])

    def test_sample_is_seeded(self):
        assert np.array_equal(sample_rows(10_000, 50, 1), sample_rows(10_000, 50, 1))
        assert not np.array_equal(sample_rows(10_000, 50, 1), sample_rows(10_000, 50, 2))
        assert sample_rows(30, 50, 1).tolist() == list(range(30))

    def test_same_inputs_same_page(self, run_store, report):
        _, text, _ = report
        again = write_report(run_store.path, run_store.x, sample_size=1500, seed=7).read_text(encoding="utf-8")
        assert again == text

    def test_condensed_tree_from_the_stored_linkage(self, run_store):
        data = read_report_data(run_store.path)
        tree = data.tree
        assert tree.min_cluster_size == run_store.min_cluster_size and tree.mcs_origin == "summary.json"
        labels = run_store.arrays["clusters"]
        assert tree.selected.shape[0] == np.unique(labels[labels >= 0]).shape[0]
        lay = condensed_tree_layout(tree)
        n = 2000
        assert lay["width"][0] == n and lay["parent"][0] == -1
        assert np.all(lay["death"] >= lay["birth"])
        # selected clusters hold at least the rows labelled with them (points can fall out later)
        sizes = np.sort(np.unique(labels[labels >= 0], return_counts=True)[1])
        assert np.all(np.sort(lay["width"][lay["selected"]]) >= sizes)
        for c in range(1, lay["width"].shape[0]):
            p = lay["parent"][c]
            assert lay["x0"][p] - 1e-9 <= lay["x0"][c]
            assert lay["x0"][c] + lay["width"][c] <= lay["x0"][p] + lay["width"][p] + 1e-9
            assert lay["birth"][c] >= lay["birth"][p]
        # profile: rows still in the cluster at each level, by brute force over the condensed rows
        ct = tree.condensed
        lam = np.where(np.isfinite(ct.lambda_val), ct.lambda_val, lay["death"].max())
        for c, (grid, rows) in enumerate(cluster_profiles(tree, lay, levels=10)):
            mine = ct.parent == c + n
            expect = [lay["width"][c] - ct.child_size[mine & (lam < g)].sum() for g in grid]
            np.testing.assert_array_equal(rows, expect)
            assert grid[0] == lay["birth"][c] and grid[-1] == lay["death"][c]
        # siblings do not overlap
        for p in np.unique(lay["parent"][1:]):
            kids = np.flatnonzero(lay["parent"] == p)
            spans = sorted(zip(lay["x0"][kids], lay["x0"][kids] + lay["width"][kids], strict=True))
            assert all(a_end <= b_start + 1e-9 for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))


class TestMissingArrays:
    def test_only_clusters(self, run_store, tmp_path):
        store = copy_store(run_store.path, str(tmp_path / "part.zarr"), ("clusters",))
        page = parse(write_report(store).read_text(encoding="utf-8"))
        assert list(page.sections) == SECTION_IDS
        assert "plot-cluster-sizes" in page.images and len(page.images) == 1
        for sid, needle in [
            ("outlier-scores", "'outliers/scores' is absent"),
            ("nn-distances", "'k_distances' is absent"),
            ("projection", "source=None"),
            ("condensed-tree", "linkage arrays absent"),
            ("duplicates", "'duplicates/exact_group' is absent"),
            ("outliers", "'outliers/scores' is absent"),
        ]:
            assert "Not computed" in page.sections[sid] and needle in page.sections[sid], sid
        assert "'duplicates/near_group' is absent" in page.sections["duplicates"]

    def test_scores_without_flags(self, run_store, tmp_path):
        store = copy_store(run_store.path, str(tmp_path / "s.zarr"), ("outliers/scores",), summary=False)
        data = read_report_data(store, top=5)
        scores = run_store.arrays["outliers/scores"]
        np.testing.assert_array_equal(data.outliers.rows, np.argsort(-scores.astype(np.float64), kind="stable")[:5])
        assert data.outliers.n_flagged is None and data.outlier_hist.markers == ()
        page = parse(write_report(store).read_text(encoding="utf-8"))
        assert "summary.json is absent" in page.sections["summary"]
        assert "Not computed" in page.sections["cluster-sizes"]

    def test_empty_group(self, tmp_path):
        import zarr

        zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
        page = parse(write_report(tmp_path / "empty.zarr", np.zeros((4, 2))).read_text(encoding="utf-8"))
        assert list(page.sections) == SECTION_IDS and not page.images
        assert "no per-row arrays" in page.sections["projection"]
        assert dict(page.tables["figures"])["rows"] == "unknown"

    def test_non_finite_scores_left_out(self, run_store, tmp_path):
        from distdataeval.io.sink import ResultStore

        scores = run_store.arrays["outliers/scores"].copy()
        scores[[3, 900]] = [np.nan, np.inf]
        store = ResultStore(str(tmp_path / "nf.zarr"))
        store.write_numpy("outliers/scores", scores, 300)
        data = read_report_data(store.store)
        assert data.outlier_hist.n_nonfinite == 2 and data.outlier_hist.counts.sum() == 1998
        assert 3 not in data.outliers.rows and 900 not in data.outliers.rows


class TestAtomicWrite:
    def test_failed_write_keeps_the_old_page(self, run_store, tmp_path, monkeypatch):
        store = copy_store(run_store.path, str(tmp_path / "a.zarr"), ("clusters",))
        first = write_report(store)
        before = first.read_bytes()
        calls = []

        def failing_replace(src, dst):
            calls.append((os.path.dirname(src), str(dst)))
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", failing_replace)
        with pytest.raises(OSError, match="disk full"):
            write_report(store, run_store.x)
        monkeypatch.undo()
        assert calls == [(store, str(first))]  # a temporary file in the same directory, renamed
        assert first.read_bytes() == before
        assert sorted(os.listdir(store)) == sorted(["clusters", "report.html", "summary.json", "zarr.json"])


class TestBadInput:
    def test_missing_store(self, tmp_path):
        with pytest.raises(StoreNotFoundError, match="no output store"):
            write_report(tmp_path / "nope.zarr")

    def test_not_a_zarr_group(self, tmp_path):
        (tmp_path / "plain").mkdir()
        with pytest.raises(CorruptStoreError, match="not a readable Zarr group"):
            write_report(tmp_path / "plain")

    def test_remote_store(self):
        with pytest.raises(InvalidParameterError, match="not a local path"):
            write_report("s3://bucket/run.zarr")

    def test_bad_summary(self, run_store, tmp_path):
        store = copy_store(run_store.path, str(tmp_path / "b.zarr"), ("clusters",))
        with open(f"{store}/summary.json", "w") as fh:
            fh.write("{not json")
        with pytest.raises(CorruptStoreError, match="summary.json"):
            write_report(store)

    def test_rows_disagree(self, run_store, tmp_path):
        store = copy_store(run_store.path, str(tmp_path / "c.zarr"), ("clusters",))
        from distdataeval.io.sink import ResultStore

        ResultStore(store).write_numpy("outliers/scores", np.zeros(10, np.float32), 5)
        with pytest.raises(CorruptStoreError, match="'outliers/scores' has 10 rows"):
            write_report(store)

    def test_source_of_another_length(self, run_store):
        with pytest.raises(InvalidInputError, match="source has 1999 rows but the output store has 2000"):
            read_report_data(run_store.path, run_store.x[:-1])

    @pytest.mark.parametrize(
        "kwargs, match",
        [({"sample_size": 1}, "sample_size"), ({"seed": -1}, "seed"), ({"sample_size": 2.5}, "sample_size")],
    )
    def test_bad_parameters(self, run_store, kwargs, match):
        with pytest.raises(InvalidParameterError, match=match):
            write_report(run_store.path, **kwargs)

    def test_report_dir_is_untouched_on_bad_input(self, run_store, tmp_path):
        store = shutil.copytree(run_store.path, tmp_path / "d.zarr")
        os.remove(store / "report.html") if (store / "report.html").exists() else None
        with pytest.raises(InvalidParameterError):
            write_report(store, sample_size=0)
        assert not (store / "report.html").exists()
