"""What prediction found in one video (``VideoResult``): the windows table, face boxes, frame rate, the video-level
summary, and its JSON / CSV writers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from audfer.errors import InputError
from audfer.files import atomic_path
from audfer.io import write_csv
from audfer.predict.video import annotate_video
from audfer.vocab import AUS, EXPRESSIONS


@dataclass(frozen=True)
class VideoResult:
    """What ``predict_video`` found in one video: the per-window table, the per-frame face boxes, the frame rate,
    and the video-level summary; it writes itself as JSON or CSV and draws itself onto the video."""

    path: str
    windows: pl.DataFrame  #: one row per window (see ``predict_video``)
    boxes: np.ndarray  #: (T, 4) x, y, w, h of the main face per frame; NaN where there is none
    fps: float

    @property
    def frames(self) -> int:
        """Frames decoded from the video."""
        return len(self.boxes)

    @property
    def frames_with_face(self) -> int:
        """Frames in which the main face was found."""
        return int((~np.isnan(self.boxes).any(axis=1)).sum())

    @property
    def summary(self) -> dict:
        """``summarize`` of the windows, plus ``fps``, ``frames`` and ``frames_with_face``."""
        return {
            **summarize(self.windows),
            "fps": self.fps,
            "frames": self.frames,
            "frames_with_face": self.frames_with_face,
        }

    def describe(self) -> str:
        """One line: the expression, its probability, and how many windows had a face."""
        s = self.summary
        return (
            f"{self.path}: {s['expression']} ({s['probabilities'][s['expression']]:.2f}); "
            f"{s['windows_with_face']}/{s['windows']} windows with a face"
        )

    def to_dict(self) -> dict:
        """``{"summary": ..., "windows": [row, ...]}``: the JSON record of this video."""
        return {"summary": self.summary, "windows": self.windows.to_dicts()}

    def table(self) -> pl.DataFrame:
        """The windows with a leading ``video`` column (rows of several videos concatenate into one CSV)."""
        return self.windows.select(pl.lit(self.path).alias("video"), pl.all())

    def annotate(self, out: str | Path) -> None:
        """The video with the face box and each window's expression drawn on it (``annotate_video``)."""
        annotate_video(self.path, out, self.windows, self.boxes, self.fps)

    @staticmethod
    def write(results: list[VideoResult], out: str | Path) -> None:
        """Several videos' results, atomically: ``.json`` (``{video: to_dict()}``) or ``.csv`` (all windows)."""
        import json

        out = Path(out)
        if out.suffix.lower() == ".csv":
            write_csv(pl.concat([r.table() for r in results], how="diagonal_relaxed"), out)
        elif out.suffix.lower() == ".json":
            with atomic_path(out) as tmp:
                tmp.write_text(
                    json.dumps({r.path: r.to_dict() for r in results}, indent=1, allow_nan=False, default=float) + "\n"
                )
        else:
            raise InputError(f"{out}: expected a .json or .csv file name")


def summarize(table: pl.DataFrame) -> dict:
    """The video's expression: window probabilities averaged, weighted by their face frames."""

    names = [
        c
        for c in table.columns
        if c in EXPRESSIONS or c.lower() in ("contempt", "anxiety", "helplessness", "disappointment")
    ]
    ok = table.filter(pl.col("has_face"))
    w = ok["face_frames"].to_numpy().astype(np.float64)
    p = ok.select(names).to_numpy().astype(np.float64)
    mean = (p * w[:, None]).sum(0) / w.sum()
    out = {
        "expression": names[int(mean.argmax())],
        "probabilities": {n: float(v) for n, v in zip(names, mean)},
        "windows": table.height,
        "windows_with_face": ok.height,
    }
    if "AU01" in table.columns:
        a = ok.select(list(AUS)).to_numpy().astype(np.float64)
        out["au_probabilities"] = {n: float(v) for n, v in zip(AUS, (a * w[:, None]).sum(0) / w.sum())}
    return out
