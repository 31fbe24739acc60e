"""knn stage."""
