"""Legacy ``Clusterer`` (DataEval 0.61.0, spec §8 and §9.6).

References: DataEval 0.61.0's own outputs (``tests/golden/clusterer_*.npz``, written by
``tools/golden_clusterer.py`` from the 0.61.0 wheel, and the literal table of spec §9.6), and
``DenseOracle`` below: spec §8 written out directly with a dense SciPy ``pdist`` distance matrix
and SciPy's single-linkage tree, i.e. the O(n^2) definition our MST-based port replaces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform

from distdataeval import Clusterer, InvalidInputError, InvalidParameterError
from distdataeval.evaluators import _clusterer_kernels as K

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_IDS = ["L1", "L2", "L3", "L3b", "L4_n2", "L4_n3", "L4_n5", "L4_n10", "L5", "L8", "M1", "M2", "M3"]


# --------------------------------------------------------------------------- the dense oracle
class _State:
    def __init__(self, samples, dists, merged=None, copy=False):
        self.samples = list(samples)
        self.dists = list(dists)
        self.merged = None if copy else merged
        arr = np.asarray(self.dists, dtype=np.float32)
        if copy:
            self.avg = self.std = 0.0
            self.out1 = self.out2 = False
        else:
            self.avg = float(arr.mean())
            self.std = float(arr.std()) if arr.size > 1 else 1e-5
            last = float(arr[-1])
            self.out1 = last > self.avg + self.std
            self.out2 = last > self.avg + self.std + self.std


class DenseOracle:
    """Spec §8 literally: dense distances, explicit states per (level, cluster id)."""

    def __init__(self, x: np.ndarray, z: np.ndarray | None = None):
        self.n = n = len(x)
        cond = pdist(x)
        self.dist = squareform(cond)
        z = linkage(cond, "single") if z is None else z
        self.min_size = min(max(2, int(0.05 * n)), 100)
        self.levels: dict[int, dict[int, _State]] = {}
        self.max_level = 1
        where: dict[int, tuple[int, int]] = {}
        next_cid = 0
        for t, row in enumerate(z):
            a, b, d = int(row[0]), int(row[1]), np.float32(row[2])
            pa, pb = where.get(a), where.get(b)
            if pa is not None and pb is not None:
                sa, sb = self.levels[pa[0]][pa[1]], self.levels[pb[0]][pb[1]]
                first, second = (sa, sb) if len(sa.samples) >= len(sb.samples) else (sb, sa)
                samples, dists = first.samples + second.samples, sb.dists + sa.dists + [d]
                level, cid, merged = max(pa[0], pb[0]) + 1, min(pa[1], pb[1]), max(pa[1], pb[1])
                self.max_level = max(self.max_level, pa[0], pb[0])
                if pa[0] != pb[0]:
                    low, high_level = (pa, pb[0]) if pa[0] < pb[0] else (pb, pa[0])
                    src = self.levels[low[0]][low[1]]
                    for lv in range(high_level, low[0], -1):
                        self.levels[lv].setdefault(low[1], _State(src.samples, src.dists, copy=True))
            elif pa is not None or pb is not None:
                pc, point = (pa, b) if pa is not None else (pb, a)
                src = self.levels[pc[0]][pc[1]]
                samples, dists = src.samples + [point], src.dists + [d]
                level, cid, merged = pc[0] + 1, pc[1], None
            else:
                samples, dists, level, cid, merged = [a, b], [d], 0, next_cid, None
                next_cid += 1
            self.levels.setdefault(level, {})[cid] = _State(samples, dists, merged)
            where[n + t] = (level, cid)
        self.n_clusters = next_cid

    def cluster_distances(self) -> np.ndarray:
        m = np.full((self.max_level, self.n_clusters, self.n_clusters), -1.0, dtype=np.float32)
        for lv, states in self.levels.items():
            if lv >= self.max_level:
                continue
            for c, s in states.items():
                m[lv, c, c] = s.avg
                for c2, s2 in states.items():
                    if c2 != c:
                        m[lv, c, c2] = self.dist[np.ix_(s.samples, s2.samples)].min()
        return m

    def merges(self):
        """(level, outer, inner, merge_stat, intra_max) in discovery order."""
        m = self.cluster_distances()
        out = []
        for lv, states in self.levels.items():
            for c, s in states.items():
                if s.merged is None:
                    continue
                use_mean = s.out2 or (s.out1 and len(s.samples) >= self.min_size)
                prof = m[:lv, c, s.merged]
                stat = prof.mean() if use_mean else prof.max()
                intra = m[:, c, c]
                out.append((lv, c, s.merged, np.float32(stat), np.float32(intra[intra >= 0].max())))
        return out

    def last_good_merge_levels(self) -> dict:
        if self.n_clusters <= 1:
            return {0: int(0.1 * self.n)}
        merges = self.merges()
        stat = np.array([e[3] for e in merges], dtype=np.float32)
        intra = np.array([e[4] for e in merges], dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.unique(intra))
            thr = logs.mean() + 2 * logs.std()
            v = np.log(stat)
            desired = v < thr
            r = np.abs((v - thr) / thr)
            kept = r[~desired][r[~desired] < 1]
            s1 = kept.mean() + kept.std() if kept.size else np.nan
            good = desired | (r < s1)
        levels: dict[int, int] = {}
        for i in sorted(range(len(merges)), key=lambda i: -merges[i][0]):
            lv, outer, inner = merges[i][:3]
            if not good[i]:
                levels.setdefault(outer, 0)
                levels.setdefault(inner, 0)
                if levels[outer] > lv:
                    levels[outer] = lv - 1
            elif outer in levels:
                levels[outer] = max(levels[outer], lv)
        return levels

    def find_outliers(self, lg: dict):
        top = {}
        for lv, states in self.levels.items():
            for c in states:
                if c in lg:
                    top[c] = lv
        outliers, possible, seen = set(), set(), set()
        for lv, states in self.levels.items():
            for c, s in states.items():
                if s.merged is not None or c not in lg or lv <= lg[c]:
                    continue
                x = s.samples[-1]
                small = len(s.samples) < self.min_size
                if c in seen and x not in outliers:
                    outliers.add(x)
                elif s.out2:
                    if small:
                        outliers.update(s.samples)
                    else:
                        outliers.add(x)
                    seen.add(c)
                elif s.out1 and not small:
                    possible.add(x)
                elif lv == top[c] and small:
                    outliers.update(s.samples)
        return sorted(int(i) for i in outliers), sorted(int(i) for i in possible)

    def find_duplicates(self, lg: dict):
        stds = [self.levels[lv][c].std for c, lv in lg.items() if len(self.levels[lv][c].samples) >= self.min_size]
        tau = np.mean(stds) if stds else np.nan
        i, j = np.triu_indices(self.n, 1)
        d = self.dist[i, j]
        exact = d <= tau / 100
        near = (d <= tau) & ~exact
        return _components(i[exact], j[exact]), _components(i[near], j[near])

    def evaluate(self) -> dict:
        lg = self.last_good_merge_levels()
        out, pot = self.find_outliers(lg)
        dup, near = self.find_duplicates(lg)
        return {"outliers": out, "potential_outliers": pot, "duplicates": dup, "near_duplicates": near}


def _components(a, b) -> list[list[int]]:
    parent: dict[int, int] = {}

    def find(v):
        while parent.setdefault(v, v) != v:
            v = parent[v]
        return v

    for u, v in zip(a.tolist(), b.tolist()):
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    groups: dict[int, list[int]] = {}
    for v in list(parent):
        groups.setdefault(find(v), []).append(v)
    return sorted(sorted(g) for g in groups.values())


def _our_linkage_as_scipy(c: Clusterer) -> np.ndarray:
    left, right, dist = c._tree()
    return np.column_stack([right, left, dist, np.zeros_like(dist)]).astype(np.float64)


# ------------------------------------------------------------------------------- test data
def blobs_plus_far(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(loc=(0, 0), scale=0.3, size=(50, 2))
    b = rng.normal(loc=(5, 5), scale=0.3, size=(50, 2))
    return np.concatenate([a, b, [[20, 20], [-15, 10], [10, -20]]]).astype(np.float64)


def _groups(z, key):
    flat, off = z[f"{key}_flat"], z[f"{key}_offsets"]
    return [flat[off[i] : off[i + 1]].tolist() for i in range(len(off) - 1)]


def _datasets():
    rng = np.random.default_rng(42)
    far_blobs = np.concatenate([rng.normal(c, 0.5, (40, 4)) for c in np.eye(4) * 40 + 3])  # k-NN graph disconnected
    return {
        "uniform_300x5": np.random.default_rng(7).uniform(size=(300, 5)),
        "normal_250x2": np.random.default_rng(8).normal(size=(250, 2)),
        "far_blobs_160x4": far_blobs,
        "mixture_float32_400x6": (np.random.default_rng(9).normal(0, 4, (6, 6))[rng.integers(0, 6, 400)]
                                  + rng.normal(size=(400, 6))).astype(np.float32),
    }


# ------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("name", GOLDEN_IDS)
def test_dataeval_061_golden(dask_client, name):
    z = np.load(GOLDEN / f"clusterer_{name}.npz")
    c = Clusterer(z["x"], knn="exact")
    out = c.evaluate()
    expected = dict(zip(z["lgml_keys"].tolist(), z["lgml_values"].tolist()))
    assert list(c.last_good_merge_levels.items()) == list(expected.items())  # insertion order too
    assert out["outliers"] == z["outliers"].tolist()
    assert out["potential_outliers"] == z["potential_outliers"].tolist()
    assert out["duplicates"] == _groups(z, "duplicates")
    assert out["near_duplicates"] == _groups(z, "near_duplicates")
    assert set(out) == {"outliers", "potential_outliers", "duplicates", "near_duplicates"}
    assert all(type(i) is int for i in out["outliers"] + out["potential_outliers"])


def test_spec_table_L1_L2(dask_client):
    """Spec §9.6's literal outputs (independent of the npz files)."""
    c = Clusterer(blobs_plus_far(0), knn="exact")
    out = c.evaluate()
    assert c.last_good_merge_levels == {0: 13, 3: 7, 13: 0, 2: 7, 26: 0, 20: 0, 5: 4, 8: 0, 9: 0}
    assert c.min_cluster_size == 5
    assert out["outliers"] == [6, 7, 10, 29, 31, 34, 36, 37, 44, 45, 63, 65, 69, 73, 79, 82, 89, 95, 100, 101, 102]
    assert out["potential_outliers"] == [20, 25, 38, 39, 49, 54, 88]
    assert out["duplicates"] == []
    assert out["near_duplicates"] == [[2, 11], [7, 29], [22, 32], [26, 35], [30, 41], [40, 48], [51, 90],
                                      [61, 77, 83], [70, 71], [72, 94], [85, 96], [87, 91], [92, 99]]
    x = blobs_plus_far(0)
    x2 = np.concatenate([x, [x[0], x[60], x[10] + 1e-3]])
    c2 = Clusterer(x2, knn="exact")
    out2 = c2.evaluate()
    assert c2.last_good_merge_levels == {0: 7, 1: 12, 16: 0, 4: 3, 2: 0, 8: 4, 12: 0}
    assert out2["duplicates"] == [[0, 103], [60, 104]]
    assert [10, 105] in out2["near_duplicates"]
    assert out2["outliers"][-4:] == [100, 101, 102, 105]


def test_spec_table_L4_L5_L8(dask_client):
    rng = np.random.default_rng(1)
    expected = {2: ({0: 0}, []), 3: ({0: 0}, []), 5: ({0: 0}, [0, 3]), 10: ({0: 1}, [0, 1, 2, 5, 6, 7, 8])}
    for n in (2, 3, 5, 10):
        c = Clusterer(rng.normal(size=(n, 3)), knn="exact")
        out = c.evaluate()
        assert c.last_good_merge_levels == expected[n][0]
        assert out["potential_outliers"] == expected[n][1]
        assert out["outliers"] == out["duplicates"] == out["near_duplicates"] == []
    ones = Clusterer(np.ones((20, 4)), knn="exact")
    out = ones.evaluate()
    assert ones.last_good_merge_levels == {0: 2}
    assert out == {"outliers": [], "potential_outliers": [], "duplicates": [list(range(20))], "near_duplicates": []}
    c8 = Clusterer(np.random.default_rng(4).uniform(size=(200, 8)), knn="exact")
    out8 = c8.evaluate()
    assert (len(c8.last_good_merge_levels), len(out8["outliers"]), len(out8["potential_outliers"])) == (11, 20, 32)


@pytest.mark.parametrize("name", list(_datasets()))
def test_matches_dense_oracle(dask_client, name):
    x = _datasets()[name]
    c = Clusterer(x, knn="exact")
    oracle = DenseOracle(np.asarray(x, dtype=np.float64))
    # the single-linkage tree itself: same merge distances as SciPy's
    z = linkage(pdist(np.asarray(x, np.float64)), "single")
    np.testing.assert_array_equal(c._tree()[2], z[:, 2].astype(np.float32).astype(np.float64))
    # the cluster-distance statistics of every cluster-cluster merge, in discovery order
    ref = oracle.merges()
    entries = c._merge_entries()
    st = c._st
    assert [(int(st.level[t]), int(st.cid[t]), int(st.inner[t])) for t in entries] == [e[:3] for e in ref]
    stat, intra = c._merge_statistics(entries)
    np.testing.assert_allclose(stat, [e[3] for e in ref], rtol=1e-6)
    # 0.61.0 sums float32 lists (numpy's pairwise float32 mean); we keep float64 moments and round
    # once, so averages may differ in the last float32 bit (documented in the module)
    np.testing.assert_allclose(intra, [e[4] for e in ref], rtol=3e-7)
    assert c.last_good_merge_levels == oracle.last_good_merge_levels()
    assert c.evaluate() == oracle.evaluate()


def test_user_levels_match_oracle(dask_client):
    x = np.random.default_rng(11).normal(size=(300, 3))
    c = Clusterer(x, knn="exact")
    oracle = DenseOracle(x)
    rng = np.random.default_rng(0)
    valid = [(cid, lv) for lv, states in oracle.levels.items() for cid in states]
    for trial in range(5):
        pick = rng.choice(len(valid), size=8, replace=False)
        levels = {int(valid[i][0]): int(valid[i][1]) for i in pick}
        assert c.find_outliers(levels) == oracle.find_outliers(levels)
        assert c.find_duplicates(levels) == oracle.find_duplicates(levels)
    shifted = {k: v - 1 for k, v in c.last_good_merge_levels.items()}  # levels -1 and unknown ids too
    shifted[10**6] = 3
    assert c.find_outliers(shifted) == oracle.find_outliers(shifted)


def test_exact_ties_are_deterministic_and_follow_the_definition(dask_client):
    """Integer grid and repeated points: equal-distance merges are taken in our MST order; the
    result equals spec §8 applied to that tree, and repeats exactly."""
    grid = np.array([(i, j) for i in range(8) for j in range(8)], dtype=np.float64)
    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 3))
    repeated = np.concatenate([base, base[:15], base[:5], np.repeat(base[20:21], 6, axis=0)])
    for x in (grid, repeated):
        c1, c2 = Clusterer(x, knn="exact"), Clusterer(x, knn="exact")
        out1 = c1.evaluate()
        assert out1 == c2.evaluate()
        assert list(c1.last_good_merge_levels.items()) == list(c2.last_good_merge_levels.items())
        oracle = DenseOracle(x, _our_linkage_as_scipy(c1))
        assert c1.last_good_merge_levels == oracle.last_good_merge_levels()
        assert out1 == oracle.evaluate()
    # every repeated point is an exact duplicate of its original
    dups = Clusterer(repeated, knn="exact").evaluate()["duplicates"]
    assert [20, 60, 61, 62, 63, 64, 65] in dups
    assert all([i, 40 + i, 55 + i] in dups for i in range(5))


def test_bridged_knn_graph_gives_the_euclidean_mst(dask_client):
    """cluster() bridges k-NN components by DataEval 1.1.4's rule; single linkage needs the true
    minimum spanning tree, which the Clusterer restores (compared with SciPy's)."""
    x = np.load(GOLDEN / "clusterer_M2.npz")["x"]
    c = Clusterer(x, knn="exact")
    res = c.cluster_result
    assert res.n_knn_components > 1
    exact_total = minimum_spanning_tree(squareform(pdist(x))).sum()
    src, dst, w, *_ = c._single_linkage()
    assert len(w) == len(x) - 1
    np.testing.assert_allclose(w.sum(), exact_total, rtol=1e-6)
    assert res.spanning_tree.weights.sum() > exact_total * (1 + 1e-4)  # the case that needs it
    np.testing.assert_allclose(np.sqrt(((x[src] - x[dst]) ** 2).sum(1)), w, rtol=1e-6)


def test_closest_pair_profile_against_brute_force():
    rng = np.random.default_rng(5)
    for trial in range(20):
        d = int(rng.integers(1, 6))
        x = rng.normal(size=(60, d)) * rng.uniform(0.1, 10)
        rows = rng.permutation(60)
        no = int(rng.integers(2, 40))
        o_rows, i_rows = rows[:no], rows[no:]
        l_top = int(rng.integers(0, 12))
        o_lev = np.sort(rng.integers(0, l_top + 3, no)); o_lev[:2] = 0
        i_lev = np.sort(rng.integers(0, l_top + 3, 60 - no)); i_lev[:2] = 0
        o_lev, i_lev = rng.permutation(o_lev), rng.permutation(i_lev)
        o_lev[np.argsort(o_lev)[:2]] = 0
        dist = squareform(pdist(x))
        expected = [dist[np.ix_(o_rows[o_lev <= lv], i_rows[i_lev <= lv])].min() for lv in range(l_top + 1)]
        got = K.closest_pair_profile(x, o_rows.astype(np.int64), o_lev.astype(np.int64), i_rows.astype(np.int64),
                                     i_lev.astype(np.int64), l_top, -1.0)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        floor = dist[np.ix_(o_rows, i_rows)].min()
        got2 = K.closest_pair_profile(x, o_rows.astype(np.int64), o_lev.astype(np.int64), i_rows.astype(np.int64),
                                      i_lev.astype(np.int64), l_top, floor)
        np.testing.assert_allclose(got2, expected, rtol=1e-12)


def test_dask_and_float32_inputs_agree(dask_client):
    import dask.array as da

    x = blobs_plus_far(0)
    ref = Clusterer(x, knn="exact").evaluate()
    via_dask = Clusterer(da.from_array(x, chunks=(40, 2)), knn="exact").evaluate()
    assert via_dask == ref


def test_input_errors():
    with pytest.raises(InvalidInputError, match="2-D"):
        Clusterer(np.arange(10.0))
    with pytest.raises(InvalidInputError, match="2-D"):
        Clusterer(np.zeros((10, 2, 2)))
    with pytest.raises(InvalidInputError, match="at least 2 samples"):
        Clusterer(np.zeros((0, 3)))
    with pytest.raises(InvalidInputError, match="at least 2 samples"):
        Clusterer(np.zeros((1, 3)))
    with pytest.raises(InvalidInputError, match="at least 1 feature"):
        Clusterer(np.zeros((5, 0)))
    x = blobs_plus_far(0)
    x[3, 1] = np.nan
    with pytest.raises(InvalidInputError, match=r"NaN or infinite values in 1 of 103 rows \(first rows: 3\)"):
        Clusterer(x)
    with pytest.raises(InvalidInputError, match="numeric"):
        Clusterer(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(InvalidParameterError, match="knn must be one of"):
        Clusterer(np.zeros((5, 2)), knn="fast")
    with pytest.raises(ValueError):  # the error classes are ValueErrors too, as 0.61.0's were
        Clusterer(np.zeros((10, 2, 2)))


def test_last_merge_levels_errors(dask_client):
    c = Clusterer(blobs_plus_far(0), knn="exact")
    with pytest.raises(InvalidParameterError, match="must be a mapping"):
        c.find_outliers([(0, 1)])
    with pytest.raises(InvalidParameterError, match="every level must be an int, got 1.5"):
        c.find_outliers({0: 1.5})
    with pytest.raises(InvalidParameterError, match="every cluster id must be an int"):
        c.find_duplicates({"0": 1})
    with pytest.raises(InvalidParameterError, match="cluster ids are >= 0, got -2"):
        c.find_outliers({-2: 1})
    with pytest.raises(InvalidParameterError, match="cluster 0 has no state at level 9999"):
        c.find_duplicates({0: 9999})
    with pytest.raises(InvalidParameterError, match="cluster 500 has no state at level 0"):
        c.find_duplicates({500: 0})
    assert c.find_outliers({}) == ([], [])
    assert c.find_duplicates({}) == ([], [])


def test_dense_near_duplicates_use_the_radius_search(dask_client):
    """Rows whose 25 neighbours all lie within tau (a tight clump of 40) need the exact radius
    search to find every near pair; groups equal the dense definition."""
    from distdataeval.evaluators.clusterer import _knn_candidates

    rng = np.random.default_rng(12)
    base = rng.normal(size=(160, 2))
    x = np.concatenate([base, base[0] + rng.normal(scale=0.01, size=(40, 2))])
    c = Clusterer(x, knn="exact")
    oracle = DenseOracle(x)
    levels = c.last_good_merge_levels
    assert levels == oracle.last_good_merge_levels()
    stds = [oracle.levels[lv][k].std for k, lv in levels.items() if len(oracle.levels[lv][k].samples) >= oracle.min_size]
    tau = float(np.mean(stds))
    res = c.cluster_result
    saturated = _knn_candidates(res.k_neighbors, res.k_distances, 0, tau)[3]
    assert saturated.size >= 30
    assert c.find_duplicates(levels) == oracle.find_duplicates(levels)
    assert c.evaluate() == oracle.evaluate()


def test_builds_on_an_existing_cluster_result(dask_client):
    from distdataeval import cluster

    x = _datasets()["far_blobs_160x4"]
    cr = cluster(x, knn="exact")
    c = Clusterer(x, cluster_result=cr)
    assert c.cluster_result is cr
    assert c.evaluate() == DenseOracle(np.asarray(x, np.float64)).evaluate()
    with pytest.raises(InvalidParameterError, match="rows"):
        Clusterer(x[:-1], cluster_result=cr)
    with pytest.raises(InvalidParameterError, match="ClusterResult"):
        Clusterer(x, cluster_result={"clusters": cr.clusters})


def test_approx_mode_on_separated_blobs_matches_the_dense_oracle(dask_client):
    """knn="approx": the tree is cluster()'s own (no exact re-bridging); where the approximate
    graph finds every true neighbour, the outputs are 0.61.0's definitions all the same."""
    rng = np.random.default_rng(5)
    centres = rng.normal(0.0, 6.0, (4, 5))
    x = (centres[rng.integers(0, 4, 600)] + rng.normal(size=(600, 5))).astype(np.float32)
    c = Clusterer(x, knn="approx")
    res = c.cluster_result
    assert res.knn_method == "approx"
    assert res.knn_recall == pytest.approx(1.0)
    # the same single-linkage tree; approximate search measures distances in float32
    z = linkage(pdist(x.astype(np.float64)), "single")
    np.testing.assert_allclose(c._tree()[2], z[:, 2], rtol=2e-6)
    oracle = DenseOracle(x.astype(np.float64))
    assert c.last_good_merge_levels == oracle.last_good_merge_levels()
    assert c.evaluate() == oracle.evaluate()
