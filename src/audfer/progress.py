"""Progress of long commands (DESIGN: long work shows progress): tqdm bars on stderr only, and only when stderr is a
terminal and the user did not pass ``--quiet``; stdout and every written file are the same either way (tested with a
pseudo-terminal in ``tests/test_progress.py``). One helper for every command: ``bar(...)`` returns a tqdm bar that
is disabled when progress is off (its ``update`` then costs nothing), usable as a context manager or wrapped around
an iterable."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

_quiet = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress bars for the rest of this process."""
    global _quiet
    _quiet = bool(quiet)


def enabled() -> bool:
    """Whether bars are drawn: stderr is a terminal and ``--quiet`` was not given."""
    if _quiet:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it") -> Any:
    """A tqdm progress bar on stderr (``desc``: what is counted, e.g. ``runs``; tqdm shows the rate and the time
    left), disabled when ``enabled()`` is false. Left on screen when finished only if it took a while."""
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not enabled(),
        leave=False,
        dynamic_ncols=True,
    )
