"""Evaluators built on cluster(): duplicates, outliers, prioritize, label errors, the legacy Clusterer."""
