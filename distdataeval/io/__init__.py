"""Opening and validating sources; (later) writing results. The only code that knows store paths."""

from distdataeval.io.source import HighDimensionWarning, Source, open_source

__all__ = ["HighDimensionWarning", "Source", "open_source"]
