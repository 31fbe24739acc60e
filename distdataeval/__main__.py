"""``python -m distdataeval``: the same command line as ``distdataeval``."""

import sys

from distdataeval.cli import main

if __name__ == "__main__":
    sys.exit(main())
