"""Type aliases shared by audfer's public functions."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

#: Where progress lines go (``print``, a list's ``append``, the CLI's stderr echo).
Log = Callable[[str], object]

#: A file or folder given as text or a path.
PathLike = str | os.PathLike[str] | Path
