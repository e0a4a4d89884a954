"""``python -m reactor``: see :func:`reactor.cli.main`."""

import sys

from reactor.cli import main

if __name__ == "__main__":
    sys.exit(main(prog=None))
