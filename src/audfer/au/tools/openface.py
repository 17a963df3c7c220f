"""OpenFace 2.x FeatureExtraction / FaceLandmarkVidMulti / FaceLandmarkImg CSVs: the paper's AU tool (§3.1), read
by its own reader (``audfer.au.openface.read_openface``: every layout OpenFace writes, face choice by ``face_id``).

Columns: 17 intensities ``AUxx_r`` (0-5) and 18 presences ``AUxx_c`` (0/1), OpenFace's ``Action Units`` wiki
page and ``lib/local/FaceAnalyser/src/FaceAnalyser.cpp`` of TadasBaltrusaitis/OpenFace."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from audfer.au.mapping import AUColumn, AUMapping
from audfer.au.tools.base import AUTool, register_au_tool
from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

if TYPE_CHECKING:
    import polars as pl


class OpenFace(AUTool):
    """OpenFace 2.x CSVs, read by ``read_openface`` (every layout; the face with the most successful frames)."""

    name = "openface"
    summary = "FeatureExtraction CSV (every 2.x layout)"
    header_hint = "OpenFace 2.x (AU01_r ... AU45_c)"
    expected = "OpenFace 2.x FeatureExtraction output"
    priority = 10  # its AUxx_c columns are its own; asked first
    mapping = AUMapping(
        "openface",
        tuple(AUColumn(c, c[:4], "intensity") for c in INTENSITY_COLUMNS)
        + tuple(AUColumn(c, c[:4], "presence") for c in PRESENCE_COLUMNS),
        frame="frame",
        timestamp="timestamp",
        confidence="confidence",
        success="success",
    )

    def detect(self, header: Sequence[str]) -> bool:
        have = set(header)
        return bool({"AU01_r", "AU01_c"} & have) or any(c.endswith("_c") and c[:2] == "AU" for c in have)

    def read(
        self, path: Path, *, mapping: AUMapping | None = None, face_id: int | None = None, strict: bool = False
    ) -> pl.DataFrame:
        from audfer.au.openface import read_openface

        return read_openface(path, face_id=face_id, strict=strict)


register_au_tool(OpenFace)
