"""Numba kernels of the tree stage: linkage, condensing, stability, EOM, labels, membership.

These kernels trust their inputs: the public wrappers in :mod:`distdataeval.tree.hdbscan`
validate shapes, dtypes and ranges and convert to contiguous int64 / float64 arrays first.
Every loop that runs per point or per edge lives here, and none recurses, so the cluster tree
may be arbitrarily deep. No kernel uses ``fastmath``: the kernels either do integer work or
must keep IEEE semantics for ``inf`` (duplicate points merge at distance 0, i.e. lambda = inf).

Node ids follow the single-linkage convention: points are 0..n-1, the linkage node made by
row t is n + t, the root is 2n - 2. Condensed-tree clusters are n (root), n+1, n+2, ...
"""

from __future__ import annotations

import numpy as np
from numba import njit

# --------------------------------------------------------------------------- union-find


@njit(cache=True)
def _find(parent, x):
    """Representative of x, with path halving."""
    while parent[x] != x:
        grand = parent[parent[x]]
        parent[x] = grand
        x = grand
    return x


@njit(cache=True)
def _union(parent, set_size, ra, rb):
    """Join the sets of representatives ra != rb by size; return the new representative."""
    if set_size[ra] < set_size[rb]:
        ra, rb = rb, ra
    parent[rb] = ra
    set_size[ra] += set_size[rb]
    return ra


# --------------------------------------------------------------------------- linkage


@njit(cache=True)
def linkage_from_edges(sources, targets, weights, n_points):
    """Single-linkage merge rows from weight-sorted spanning-tree edges.

    Row t is (max(ta, tb), min(ta, tb), w_t, |ta| + |tb|) where ta, tb are the linkage nodes
    that currently hold the two endpoints; the merge creates node n + t.

    Returns
    -------
    left, right : int64 (n-1,)
    distance : float64 (n-1,)
    size : int64 (n-1,)
    bad_edge : int
        -1 on success, else the index of the first edge whose endpoints were already joined
        (the edges do not form a tree); the outputs are then incomplete.
    """
    n_edges = n_points - 1
    left = np.empty(n_edges, dtype=np.int64)
    right = np.empty(n_edges, dtype=np.int64)
    distance = np.empty(n_edges, dtype=np.float64)
    size = np.empty(n_edges, dtype=np.int64)

    # Union-find over the points only; each representative remembers which linkage node
    # (top) its set currently is. The union-find's own choice of representative is free.
    parent = np.arange(n_points, dtype=np.int64)
    set_size = np.ones(n_points, dtype=np.int64)
    top = np.arange(n_points, dtype=np.int64)

    for t in range(n_edges):
        ra = _find(parent, sources[t])
        rb = _find(parent, targets[t])
        if ra == rb:
            return left, right, distance, size, t
        ta = top[ra]
        tb = top[rb]
        if ta > tb:
            left[t] = ta
            right[t] = tb
        else:
            left[t] = tb
            right[t] = ta
        distance[t] = weights[t]
        size[t] = set_size[ra] + set_size[rb]
        r = _union(parent, set_size, ra, rb)
        top[r] = n_points + t
    return left, right, distance, size, -1


# --------------------------------------------------------------------------- condensing


@njit(cache=True)
def _lambda(d):
    if d > 0.0:
        return 1.0 / d
    return np.inf


@njit(cache=True)
def _node_size(node, n_points, size):
    if node < n_points:
        return 1
    return size[node - n_points]


@njit(cache=True)
def _drop_branch(
    branch, cluster, lam, left, right, n_points, queue, start, parents, children, lambdas,
    sizes, idx,
):
    """Every point under linkage node ``branch`` falls out of ``cluster`` at ``lam``.

    Points are written in breadth-first order of the branch (level by level, left before
    right). ``queue[start:]`` is scratch space for the branch's internal nodes.
    Returns the next free row index.
    """
    if branch < n_points:
        parents[idx] = cluster
        children[idx] = branch
        lambdas[idx] = lam
        sizes[idx] = 1
        return idx + 1
    head = start
    tail = start
    queue[tail] = branch
    tail += 1
    while head < tail:
        node = queue[head]
        head += 1
        t = node - n_points
        for k in range(2):
            sub = left[t] if k == 0 else right[t]
            if sub < n_points:
                parents[idx] = cluster
                children[idx] = sub
                lambdas[idx] = lam
                sizes[idx] = 1
                idx += 1
            else:
                queue[tail] = sub
                tail += 1
    return idx


@njit(cache=True)
def condense(left, right, distance, size, min_cluster_size, max_cluster_size):
    """Condensed tree rows (parent, child, lambda, child_size) in breadth-first order.

    Walks the linkage tree breadth-first from the root 2n-2 and applies the six condensing
    cases of the spec in order. The root cluster is n; new clusters get n+1, n+2, ... in
    breadth-first order, left child before right child.

    Returns
    -------
    parent, child : int64 (m,)
    lambda_val : float64 (m,)
    child_size : int64 (m,)
    """
    n_edges = left.shape[0]
    n_points = n_edges + 1
    # Each point is a child once; the cluster tree is a full binary tree whose leaves hold
    # disjoint sets of >= min_cluster_size points, so it has at most 2 * (n // mcs) edges.
    capacity = n_points + 2 * (n_points // min_cluster_size)
    parents = np.empty(capacity, dtype=np.int64)
    children = np.empty(capacity, dtype=np.int64)
    lambdas = np.empty(capacity, dtype=np.float64)
    sizes = np.empty(capacity, dtype=np.int64)

    # label[t]: condensed cluster carried by linkage node n + t (set when it is enqueued).
    label = np.empty(n_edges, dtype=np.int64)
    # One buffer holds the main breadth-first queue (kept internal nodes) at [0, tail) and,
    # temporarily, the queue of a branch being dropped at [tail, ...). A dropped node never
    # enters the main queue, so both together never exceed n - 1 entries.
    queue = np.empty(n_edges, dtype=np.int64)
    head = 0
    tail = 0
    queue[tail] = 2 * n_points - 2
    tail += 1
    label[n_edges - 1] = n_points
    next_label = n_points + 1
    idx = 0

    while head < tail:
        node = queue[head]
        head += 1
        t = node - n_points
        cluster = label[t]
        lam = _lambda(distance[t])
        lnode = left[t]
        rnode = right[t]
        lsize = _node_size(lnode, n_points, size)
        rsize = _node_size(rnode, n_points, size)

        if lnode < n_points and rsize >= min_cluster_size:
            # 1. a single point leaves; R continues the cluster
            parents[idx] = cluster
            children[idx] = lnode
            lambdas[idx] = lam
            sizes[idx] = 1
            idx += 1
            label[rnode - n_points] = cluster
            queue[tail] = rnode
            tail += 1
        elif lsize < min_cluster_size and rsize >= min_cluster_size:
            # 2. the small L branch falls out; R continues
            idx = _drop_branch(lnode, cluster, lam, left, right, n_points, queue, tail,
                               parents, children, lambdas, sizes, idx)
            label[rnode - n_points] = cluster
            queue[tail] = rnode
            tail += 1
        elif lsize >= min_cluster_size and rsize < min_cluster_size:
            # 3. mirror of 2
            idx = _drop_branch(rnode, cluster, lam, left, right, n_points, queue, tail,
                               parents, children, lambdas, sizes, idx)
            label[lnode - n_points] = cluster
            queue[tail] = lnode
            tail += 1
        elif lsize < min_cluster_size and rsize < min_cluster_size:
            # 4. both sides fall out
            idx = _drop_branch(lnode, cluster, lam, left, right, n_points, queue, tail,
                               parents, children, lambdas, sizes, idx)
            idx = _drop_branch(rnode, cluster, lam, left, right, n_points, queue, tail,
                               parents, children, lambdas, sizes, idx)
        elif lsize > max_cluster_size and rsize > max_cluster_size:
            # 5. both too large to be clusters: both continue the cluster, no split recorded
            label[lnode - n_points] = cluster
            queue[tail] = lnode
            tail += 1
            label[rnode - n_points] = cluster
            queue[tail] = rnode
            tail += 1
        else:
            # 6. a true split: two clusters are born, L first
            parents[idx] = cluster
            children[idx] = next_label
            lambdas[idx] = lam
            sizes[idx] = lsize
            idx += 1
            label[lnode - n_points] = next_label
            queue[tail] = lnode
            tail += 1
            next_label += 1

            parents[idx] = cluster
            children[idx] = next_label
            lambdas[idx] = lam
            sizes[idx] = rsize
            idx += 1
            label[rnode - n_points] = next_label
            queue[tail] = rnode
            tail += 1
            next_label += 1

    return parents[:idx], children[:idx], lambdas[:idx], sizes[:idx]


# --------------------------------------------------------------------------- stability, EOM


@njit(cache=True)
def stability(parent, child, lambda_val, child_size, n_points, n_clusters):
    """Stability of every cluster, float64 (n_clusters,); entry k is cluster n + k.

    stab(c) = sum over rows with parent c of lambda * child_size - lambda_birth(c) * size(c),
    with no birth term for the root. Since the child sizes of c's rows add up to size(c),
    this is computed as the sum of the non-negative excesses (lambda - lambda_birth(c)) *
    child_size: the same number without cancellation, so a cluster whose points all leave
    at its birth lambda scores exactly 0 (an exact EOM tie stays exact), and a row at
    lambda = inf in a cluster born at inf adds 0 rather than inf - inf = NaN.
    """
    birth = np.zeros(n_clusters, dtype=np.float64)
    for i in range(parent.shape[0]):
        if child[i] >= n_points:
            birth[child[i] - n_points] = lambda_val[i]
    stab = np.zeros(n_clusters, dtype=np.float64)
    for i in range(parent.shape[0]):
        k = parent[i] - n_points
        lam = lambda_val[i]
        if lam != birth[k]:
            stab[k] += (lam - birth[k]) * child_size[i]
    return stab


@njit(cache=True)
def cluster_parents_and_sizes(parent, child, child_size, n_points, n_clusters):
    """Parent cluster (-1 for the root) and size of every cluster, int64 (n_clusters,) each.

    The root's size is n - 1, not n: DataEval's (fast_hdbscan's) EOM quirk, kept on purpose.
    """
    cparent = np.full(n_clusters, -1, dtype=np.int64)
    csize = np.empty(n_clusters, dtype=np.int64)
    csize[0] = n_points - 1
    for i in range(parent.shape[0]):
        c = child[i]
        if c >= n_points:
            cparent[c - n_points] = parent[i] - n_points
            csize[c - n_points] = child_size[i]
    return cparent, csize


@njit(cache=True)
def select_eom(stab, cparent, csize, max_cluster_size, allow_single_cluster):
    """Excess-of-mass selection without recursion; boolean (n_clusters,) mask.

    Children have larger ids than their parents, so walking ids downwards visits every
    cluster after all its descendants (a post-order). For cluster c:
    own = max(stab(c), 0), kids = sum of the values returned by c's
    children; if kids > own or size(c) > max_cluster_size, c returns kids and is not chosen,
    else c is chosen and returns own. A chosen cluster deselects all its descendants: a
    second walk, parents first, drops every cluster that has a chosen ancestor.
    """
    n_clusters = stab.shape[0]
    chosen = np.zeros(n_clusters, dtype=np.bool_)
    kids = np.zeros(n_clusters, dtype=np.float64)
    last = 0 if allow_single_cluster else 1
    for k in range(n_clusters - 1, last - 1, -1):
        own = stab[k] if stab[k] > 0.0 else 0.0
        if kids[k] > own or csize[k] > max_cluster_size:
            value = kids[k]
        else:
            chosen[k] = True
            value = own
        if k > 0:
            kids[cparent[k]] += value
    covered = np.zeros(n_clusters, dtype=np.bool_)
    for k in range(1, n_clusters):
        p = cparent[k]
        covered[k] = covered[p] or chosen[p]
        if covered[k]:
            chosen[k] = False
    return chosen


# --------------------------------------------------------------------------- labels, membership


@njit(cache=True)
def point_lambdas(child, lambda_val, n_points):
    """lambda at which each point falls out of the tree, float64 (n,) (NaN if absent)."""
    out = np.full(n_points, np.nan, dtype=np.float64)
    for i in range(child.shape[0]):
        if child[i] < n_points:
            out[child[i]] = lambda_val[i]
    return out


@njit(cache=True)
def labels_from_selection(parent, child, lambda_val, n_points, n_clusters, selected):
    """Raw HDBSCAN labels, int64 (n,): 0..K-1 in ascending selected id, -1 for noise.

    Union-find over the condensed rows: a row joins parent and child unless the child is a
    selected cluster. Each set's topmost cluster (its smallest cluster id, since children
    have larger ids) decides: a selected cluster gives its label; the root, when the root
    itself is selected (then the only selected cluster), gives label 0 to a point only if
    its own fall-out lambda >= the largest lambda among the root's direct rows; anything
    else is noise.
    """
    n_nodes = n_points + n_clusters
    label_of = np.full(n_clusters, -1, dtype=np.int64)
    for j in range(selected.shape[0]):
        label_of[selected[j] - n_points] = j
    root_selected = label_of[0] >= 0

    uf = np.arange(n_nodes, dtype=np.int64)
    set_size = np.ones(n_nodes, dtype=np.int64)
    # topmost cluster of each set, tracked at its representative (n_nodes = none yet)
    topc = np.full(n_nodes, n_nodes, dtype=np.int64)
    for c in range(n_points, n_nodes):
        topc[c] = c

    root_max_lambda = -np.inf
    for i in range(parent.shape[0]):
        p = parent[i]
        c = child[i]
        if p == n_points and lambda_val[i] > root_max_lambda:
            root_max_lambda = lambda_val[i]
        if c >= n_points and label_of[c - n_points] >= 0:
            continue
        rp = _find(uf, p)
        rc = _find(uf, c)
        if rp != rc:
            top = min(topc[rp], topc[rc])
            r = _union(uf, set_size, rp, rc)
            topc[r] = top

    own_lambda = point_lambdas(child, lambda_val, n_points)
    labels = np.full(n_points, -1, dtype=np.int64)
    for x in range(n_points):
        top = topc[_find(uf, x)]
        if top == n_nodes:
            continue
        if top == n_points:
            if root_selected and own_lambda[x] >= root_max_lambda:
                labels[x] = 0
        else:
            labels[x] = label_of[top - n_points]
    return labels


@njit(cache=True)
def membership_strengths(parent, child, child_size, lambda_val, n_points, selected, labels):
    """Membership strength of every point, float32 (n,).

    Noise gets 0. A point labelled with selected cluster c uses its own fall-out lambda
    (from whatever cluster it fell out of, c or a descendant of c) against
    lambda_max(c) = the largest lambda of c's direct point rows:
    1 if lambda_max(c) == 0 or the point's lambda is inf, else min(lambda_p, lambda_max)/lambda_max.
    """
    n_selected = selected.shape[0]
    n_nodes_max = 0
    for j in range(n_selected):
        if selected[j] > n_nodes_max:
            n_nodes_max = selected[j]
    # label index of each selected cluster (dense over ids up to the largest selected one)
    slot = np.full(n_nodes_max - n_points + 1 if n_selected > 0 else 0, -1, dtype=np.int64)
    for j in range(n_selected):
        slot[selected[j] - n_points] = j
    death = np.zeros(n_selected, dtype=np.float64)
    for i in range(parent.shape[0]):
        k = parent[i] - n_points
        if child_size[i] == 1 and k < slot.shape[0] and slot[k] >= 0:
            j = slot[k]
            if lambda_val[i] > death[j]:
                death[j] = lambda_val[i]

    out = np.zeros(labels.shape[0], dtype=np.float32)
    for i in range(child.shape[0]):
        x = child[i]
        if x >= n_points or labels[x] < 0:
            continue
        lam_max = death[labels[x]]
        lam = lambda_val[i]
        if lam_max == 0.0 or not np.isfinite(lam):
            out[x] = 1.0
        else:
            out[x] = min(lam, lam_max) / lam_max
    return out
