"""``python -m audfer.cli``: the ``audfer`` command."""

import sys

from audfer.cli import main

if __name__ == "__main__":
    sys.exit(main())
