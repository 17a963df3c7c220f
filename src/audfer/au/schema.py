"""The canonical frames table every AU reader produces (``docs/architecture.md``, "Canonical frames table").

``frame`` (int64, 1-based), ``timestamp``, ``confidence`` (float64), ``success`` (int8), ``face_id`` (int64), the 17
``AUxx_r`` intensities (float32) and the 18 ``AUxx_c`` presences (int8); one face per file. An AU the source tool
does not measure is null, never 0.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

__all__ = ["META_COLUMNS", "AU_COLUMNS", "CANONICAL_COLUMNS", "OpenFaceWarning", "canonical_schema"]

META_COLUMNS = ("frame", "timestamp", "confidence", "success", "face_id")
AU_COLUMNS = INTENSITY_COLUMNS + PRESENCE_COLUMNS
CANONICAL_COLUMNS = META_COLUMNS + AU_COLUMNS


class OpenFaceWarning(UserWarning):
    """A recoverable defect in an AU file (e.g. a cut-off last row that was dropped)."""


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
