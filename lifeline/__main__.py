"""`python -m lifeline`."""

import sys

from lifeline.cli import main

# The guard matters: the backlog's reading processes (forkserver) import
# the parent's main module, and must not run a second lifeline.
if __name__ == "__main__":
    sys.exit(main())
