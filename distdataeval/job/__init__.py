"""The batch job: profiles, the Dask cluster they start, rendered job scripts, the run itself."""
