"""The cell search kernels against brute force over the same candidate sets."""

import numpy as np
import pytest

from distdataeval.evaluators import _search_kernels as K


def _cells(n=1500, d=6, n_centroids=12, p=3, seed=0, labels=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) + rng.integers(0, 3, (n, 1)) * 4.0
    # labels mostly follow the data's three groups, with 10% of them random
    y = (x[:, 0] // 4).astype(np.int64).clip(0, labels - 1)
    noisy = rng.random(n) < 0.1
    y[noisy] = rng.integers(0, labels, noisy.sum())
    centre = x.mean(axis=0)
    blocks = [K.prepare_search_block(x[s : s + 400], s, centre, y[s : s + 400]) for s in range(0, n, 400)]
    centroids = (x[rng.choice(n, n_centroids, replace=False)] - centre)
    routes = [K.route_block(b, centroids, p) for b in blocks]
    homes = np.unique(np.concatenate([r[0] for r in routes]))
    cells = {int(c): K.gather_cell(int(c), *routes) for c in homes}
    return x - centre, y, cells, homes


def _brute(xc, y, i, cand, k, mode):
    cand = cand[cand != i]
    if mode == "same":
        cand = cand[y[cand] == y[i]]
    else:
        cand = cand[y[cand] != y[i]]
    d = ((xc[cand] - xc[i]) ** 2).sum(axis=1)
    return np.sort(d)[:k]


@pytest.mark.parametrize("k", [1, 7, 30])
def test_search_cells_equals_brute_force_over_probed_and_other_cells(k):
    xc, y, cells, homes = _cells()
    group = [int(h) for h in homes[:3]]
    other = {group[0]: np.array([int(h) for h in homes[-2:]], np.int64), group[1]: np.array([int(homes[3])], np.int64)}
    ids = np.unique(np.concatenate([np.unique(cells[h].probes) for h in group] + list(other.values()))).astype(np.int64)
    ids = np.intersect1d(ids, homes)
    q_ids, (same, oth) = K.search_cells(group, ids, [cells[int(c)] for c in ids], k, ("same", "other"), other)
    members = {int(c): cells[int(c)].ids for c in homes}
    expected_ids = np.concatenate([cells[h].ids for h in group])
    np.testing.assert_array_equal(q_ids, expected_ids)
    row_probes = {int(i): p for h in group for i, p in zip(cells[h].ids, cells[h].probes)}
    row_home = {int(i): h for h in group for i in cells[h].ids}
    for r, i in enumerate(q_ids.tolist()):
        probed = np.concatenate([members[int(c)] for c in row_probes[i] if int(c) in members])
        extra = [members[int(c)] for c in other.get(row_home[i], ()) if int(c) not in row_probes[i]]
        want_same = _brute(xc, y, i, probed, k, "same")
        want_other = _brute(xc, y, i, np.concatenate([probed, *extra]) if extra else probed, k, "other")
        got_same = same.sqdist[r][np.isfinite(same.sqdist[r])]
        got_other = oth.sqdist[r][np.isfinite(oth.sqdist[r])]
        np.testing.assert_allclose(got_same, want_same, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(got_other, want_other, rtol=1e-5, atol=1e-9)
        # ids match their distances and labels follow the modes
        have = same.ids[r] >= 0
        # distances are exact for the float32 rows the cells hold (differences in float64), and
        # within float32 rounding of the float64 rows
        x32 = xc.astype(np.float32).astype(np.float64)
        np.testing.assert_allclose(((x32[same.ids[r][have]] - x32[i]) ** 2).sum(axis=1), same.sqdist[r][have], rtol=1e-12)
        np.testing.assert_allclose(((xc[same.ids[r][have]] - xc[i]) ** 2).sum(axis=1), same.sqdist[r][have], rtol=1e-5)
        assert (y[same.ids[r][have]] == y[i]).all() and i not in same.ids[r]
        have = oth.ids[r] >= 0
        assert (y[oth.ids[r][have]] != y[i]).all()
        np.testing.assert_array_equal(oth.labels[r][have], y[oth.ids[r][have]])


def test_cells_are_grouped_by_label_and_float32_rows_match():
    xc, _y, cells, _homes = _cells()
    for c in cells.values():
        assert c.x32.dtype == np.float32 and c.x32.flags.c_contiguous
        assert (np.diff(c.labels) >= 0).all()
        for lab in np.unique(c.labels):
            a, b = c.label_range(int(lab))
            assert (c.labels[a:b] == lab).all() and b - a == (c.labels == lab).sum()
        np.testing.assert_array_equal(c.x32, xc[c.ids].astype(np.float32))


def test_sort_rows_orders_by_distance_then_id_missing_last():
    rng = np.random.default_rng(3)
    sq = rng.integers(0, 5, (40, 12)).astype(np.float64)
    ids = rng.permutation(40 * 12).reshape(40, 12).astype(np.int64)
    ids[rng.random(ids.shape) < 0.2] = -1
    sq[ids < 0] = np.inf
    sq[0, :] = np.inf  # a row with no candidate at all
    ids[0, :] = -1
    lab = ids * 7
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), sq), axis=1)
    s2, i2, l2 = sq.copy(), ids.copy(), lab.copy()
    K.sort_rows(s2, i2, l2)
    np.testing.assert_array_equal(i2, np.take_along_axis(ids, order, axis=1))
    np.testing.assert_array_equal(s2, np.take_along_axis(sq, order, axis=1))
    np.testing.assert_array_equal(l2, np.take_along_axis(lab, order, axis=1))
    # _select orders the same way (after keeping the k smallest)
    sel = K._select(ids, sq, lab, 12)
    np.testing.assert_array_equal(sel.ids, i2)


@pytest.mark.parametrize("p", [1, 5, 40])
def test_nearest_cells_equals_a_full_sort(p):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(700, 8))
    centroids = rng.normal(size=(30, 8)) * 2
    got = K.nearest_cells(x, centroids, p, rows=256)
    d2 = ((x[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    want = np.argsort(d2, axis=1, kind="stable")[:, : min(p, 30)]
    assert got.shape == want.shape and got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def test_coarse_to_fine_routing_equals_a_full_sort_within_the_nearest_groups():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 6))
    centroids = rng.normal(size=(60, 6)) * 2
    group_of = rng.integers(0, 12, 60)
    group_centroids = np.stack([centroids[group_of == g].mean(axis=0) for g in range(12)])
    got = K.coarse_to_fine_cells(x, centroids, 5, group_of, group_centroids, groups=3)
    top = K.nearest_cells(x, group_centroids, 3)
    d2 = ((x[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    for i in range(x.shape[0]):
        allowed = np.flatnonzero(np.isin(group_of, top[i]))
        want = allowed[np.lexsort((allowed, d2[i, allowed]))][:5]
        np.testing.assert_array_equal(got[i], want)
    # with every group probed it is the plain nearest-cell ranking
    full = K.coarse_to_fine_cells(x, centroids, 5, group_of, group_centroids, groups=12)
    np.testing.assert_array_equal(full, K.nearest_cells(x, centroids, 5))


def test_probes_kept_as_uint16_search_the_same(monkeypatch):
    """Routed rows keep their probes as uint16 when there are few enough cells, int32 above;
    the search returns the same neighbours either way."""
    _xc, _y, small, homes = _cells(p=4)
    monkeypatch.setattr(K, "PROBE_UINT16_CELLS", 5)  # 12 cells: above it, int32
    _xc, _y, wide, _homes = _cells(p=4)
    assert all(c.probes.dtype == np.uint16 for c in small.values())
    assert all(c.probes.dtype == np.int32 for c in wide.values())
    group = [int(h) for h in homes[:4]]
    ids = np.asarray(homes, dtype=np.int64)
    other = {group[0]: np.array([int(homes[-1])], np.int64)}
    for a, b in zip(K.search_cells(group, ids, [small[int(c)] for c in ids], 9, ("same", "other"), other)[1],
                    K.search_cells(group, ids, [wide[int(c)] for c in ids], 9, ("same", "other"), other)[1]):
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.sqdist, b.sqdist)
