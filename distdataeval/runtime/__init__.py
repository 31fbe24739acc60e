"""Where work runs: the Dask client, thread caps per worker."""

from distdataeval.runtime.client import active_client, close_local_cluster, local_client
from distdataeval.runtime.threads import limit_threads

__all__ = ["active_client", "close_local_cluster", "local_client", "limit_threads"]
