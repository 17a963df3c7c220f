"""The canonical frames table every AU reader produces (``docs/architecture.md``, "Canonical frames table").

``frame`` (int64, 1-based), ``timestamp``, ``confidence`` (float64), ``success`` (int8), ``face_id`` (int64), the 17
``AUxx_r`` intensities (float32) and the 18 ``AUxx_c`` presences (int8); one face per file. An AU the source tool
does not measure is null, never 0.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import polars as pl

from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

__all__ = [
    "META_COLUMNS",
    "AU_COLUMNS",
    "CANONICAL_COLUMNS",
    "OpenFaceWarning",
    "canonical_schema",
    "note",
    "collecting_notes",
]

META_COLUMNS = ("frame", "timestamp", "confidence", "success", "face_id")
AU_COLUMNS = INTENSITY_COLUMNS + PRESENCE_COLUMNS
CANONICAL_COLUMNS = META_COLUMNS + AU_COLUMNS


class OpenFaceWarning(UserWarning):
    """A recoverable defect in an AU file (e.g. a cut-off last row that was dropped)."""


_NOTES = threading.local()


@contextlib.contextmanager
def collecting_notes() -> Iterator[list[str]]:
    """Collect the ``note``s of this thread (a folder reader's worker) in a list instead of warning: unlike
    ``warnings.catch_warnings``, safe when several threads read files at once."""
    previous = getattr(_NOTES, "sink", None)
    sink: list[str] = []
    _NOTES.sink = sink
    try:
        yield sink
    finally:
        _NOTES.sink = previous


def note(message: str) -> None:
    """A recoverable defect: collected when this thread collects (``collecting_notes``), else an ``OpenFaceWarning``."""
    sink = getattr(_NOTES, "sink", None)
    if sink is not None:
        sink.append(message)
    else:
        warnings.warn(message, OpenFaceWarning, stacklevel=3)


def canonical_schema() -> dict[str, Any]:
    """The columns and their polars dtypes (classes such as ``pl.Int64``, as polars takes them)."""
    schema: dict[str, Any] = {
        "frame": pl.Int64,
        "timestamp": pl.Float64,
        "confidence": pl.Float64,
        "success": pl.Int8,
        "face_id": pl.Int64,
    }
    schema.update({c: pl.Float32 for c in INTENSITY_COLUMNS})
    schema.update({c: pl.Int8 for c in PRESENCE_COLUMNS})
    return schema
