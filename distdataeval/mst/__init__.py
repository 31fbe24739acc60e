"""mst stage."""
