"""Tree stage: spanning tree -> linkage tree -> condensed tree -> EOM clusters -> labels.

DataEval's HDBSCAN (vendored fast_hdbscan 0.2.2 semantics, ``allow_single_cluster=True``)
rebuilt on numba kernels of our own; O(n) memory, no recursion.
"""

from distdataeval.tree.hdbscan import (
    condensed_tree_to_labels,
    condensed_tree_to_membership,
    condensed_tree_to_stability,
    hdbscan_from_mst,
    linkage_to_condensed_tree,
    mst_to_linkage_tree,
    select_clusters_eom,
)
from distdataeval.tree.records import CondensedTree, HdbscanTree, LinkageTree

__all__ = [
    "CondensedTree",
    "HdbscanTree",
    "LinkageTree",
    "condensed_tree_to_labels",
    "condensed_tree_to_membership",
    "condensed_tree_to_stability",
    "hdbscan_from_mst",
    "linkage_to_condensed_tree",
    "mst_to_linkage_tree",
    "select_clusters_eom",
]
