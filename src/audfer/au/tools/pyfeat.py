"""py-feat 2.x ``Detector`` output (``fex.to_csv``): 20 AU presence probabilities ``AU01`` ... ``AU43`` (no AU45),
a 0-based ``frame``, ``FaceScore`` and the face box, one row per face per frame (py-feat's README and its test data,
cosanlab/py-feat ``feat/detector.py`` ``Detector.detect``).

Quirks, as hooks: a run on a folder of frame images writes ``frame`` 0 on every row and the image path in
``input`` (frames are then ordered by the image names); several faces in a frame keep the largest box (ties: the
higher ``FaceScore``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from audfer.au.mapping import AUColumn, AUMapping
from audfer.au.tools.base import AUTool, register_au_tool
from audfer.errors import InputError
from audfer.vocab import AUS

if TYPE_CHECKING:
    import polars as pl

_AUS = tuple(a for a in AUS if a != "AU45")  # py-feat 2.x detects every OpenFace AU but the blink


class PyFeat(AUTool):
    """py-feat 2.x Detector CSVs: AU probabilities, 0-based frames, one row per face."""

    name = "pyfeat"
    summary = "py-feat 2.x `Detector` output (`fex.to_csv`)"
    header_hint = "py-feat (AU01 ... AU43 with FaceScore/input)"
    expected = "py-feat 2.x Detector output"
    priority = 20
    mapping = AUMapping(
        "pyfeat",
        tuple(AUColumn(a, a, "probability") for a in _AUS),
        frame="frame",
        frame_base=0,
        timestamp="approx_time",
        confidence="FaceScore",
        ignored=("AU11", "AU24", "AU43"),
    )

    def detect(self, header: Sequence[str]) -> bool:
        have = set(header)
        return "AU01" in have and bool({"FaceScore", "input", "FaceRectX"} & have)

    def frame_numbers(self, path: Path, df: pl.DataFrame, mapping: AUMapping) -> np.ndarray | None:
        if "input" not in df.columns:
            return None
        from audfer.io import order_frames

        inputs = df["input"].to_list()
        distinct = list(dict.fromkeys(inputs))
        frames_vary = mapping.frame in df.columns and df[mapping.frame].n_unique() > 1
        if len(distinct) > 1 and not frames_vary:  # py-feat run on a folder of frame images: order by their names
            order = order_frames([Path(str(p)) for p in distinct], path)
            rank = {str(p): i + 1 for i, p in enumerate(order)}
            return np.array([rank[str(Path(str(p)))] for p in inputs], np.int64)
        if len(distinct) > 1:
            raise InputError(
                f"{path}: holds {len(distinct)} videos (input {distinct[0]!r}, {distinct[1]!r}, ...); "
                f"expected one py-feat CSV per clip"
            )
        return None

    def keep_one_face(self, path: Path, df: pl.DataFrame, frame: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        from audfer.au.reader import numbers

        area = np.ones(df.height)
        if {"FaceRectWidth", "FaceRectHeight"} <= set(df.columns):
            area = np.nan_to_num(numbers(path, df, "FaceRectWidth") * numbers(path, df, "FaceRectHeight"), nan=-1.0)
        keyconf = np.nan_to_num(confidence, nan=-1.0)
        order = np.lexsort((-keyconf, -area, frame))  # per frame: largest box, then highest score first
        _, first = np.unique(frame[order], return_index=True)
        return order[first]


register_au_tool(PyFeat)
