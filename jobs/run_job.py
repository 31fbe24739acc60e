#!/usr/bin/env python
"""Entry point of the batch job for schedulers and containers: ``python jobs/run_job.py run
--profile conf/<name>.yaml --input <store[/array]> --output <store> [--set key=value ...]``.

The arguments are those of ``distdataeval run`` (without the leading ``run``, it is added).
"""

import sys

from distdataeval.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0] != "run":
        argv = ["run", *argv]
    sys.exit(main(argv))
