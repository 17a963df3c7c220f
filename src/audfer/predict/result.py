"""What prediction found in one video (``VideoResult``): the windows table, face boxes, frame rate, the video-level
summary, its JSON / CSV writers (to a file or standard output), the annotated video and the timeline plot."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from audfer.errors import AudferError, InputError
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

    def annotate(self, out: str | Path, log: Callable[[str], None] | None = None) -> str:
        """The video with the face box, each window's expression and, beside it, the expression and AU probabilities
        (``annotate_video``); returns the codec used."""
        return annotate_video(self.path, out, self.windows, self.boxes, self.fps, log=log)

    def check_finite(self) -> None:
        """``AudferError`` naming the first window whose probabilities are not finite numbers (NaN or infinite, e.g.
        from broken weights): such numbers are never written."""
        values = self.windows.select(pl.col(pl.Float32)).drop("box_x", "box_y", "box_w", "box_h", strict=False)
        bad = ~np.isfinite(values.to_numpy().astype(np.float64)) & values.select(pl.all().is_not_null()).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad.any(axis=1))[0])
            r = self.windows.row(i, named=True)
            cols = [c for c, b in zip(values.columns, bad[i]) if b]
            raise AudferError(
                f"{self.path}: window {r['window']} (frames {r['start_frame']}-{r['end_frame'] - 1}): the model gave "
                f"{values[cols[0]][i]} for {', '.join(cols[:3])}{' ...' if len(cols) > 3 else ''} (not a probability; "
                "broken weights?); nothing written"
            )

    def plot(self, out: str | Path) -> None:
        """A timeline of the video (PNG, SVG or PDF by ``out``'s ending), atomically: the expression probabilities of
        each window over time (at the window's middle), and the AU probabilities as a heat map (windows without a face
        left blank)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(out)
        t = ((self.windows["start_time"] + self.windows["end_time"]) / 2).to_numpy()
        names = [c for c in self.windows.columns if c in summarize_names(self.windows.columns)]
        aus = [a for a in AUS if a in self.windows.columns]
        fig, axes = plt.subplots(
            2 if aus else 1, 1, figsize=(10, 6 if aus else 3.2), sharex=True, squeeze=False, constrained_layout=True
        )
        ax = axes[0, 0]
        for n in names:
            ax.plot(t, self.windows[n].to_numpy().astype(float), label=n, marker=".", lw=1.2)
        ax.set_ylim(0, 1)
        ax.set_ylabel("expression probability")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        ax.set_title(f"{Path(self.path).name}: {self.summary['expression']} (per window)", fontsize=10)
        if aus:
            a = self.windows.select(aus).to_numpy().astype(float).T
            edges = np.concatenate(
                [[self.windows["start_time"][0]], (t[1:] + t[:-1]) / 2, [self.windows["end_time"][-1]]]
            )
            mesh = axes[1, 0].pcolormesh(
                edges, np.arange(len(aus) + 1), np.ma.masked_invalid(a), vmin=0, vmax=1, cmap="viridis"
            )
            axes[1, 0].set_yticks(np.arange(len(aus)) + 0.5, aus, fontsize=7)
            axes[1, 0].invert_yaxis()
            fig.colorbar(mesh, ax=axes[1, 0], label="AU probability", pad=0.01)
        axes[-1, 0].set_xlabel("time (s)")
        try:
            with atomic_path(out, suffix=out.suffix or ".png") as tmp:
                fig.savefig(tmp, format=out.suffix.lstrip(".").lower() or "png", dpi=110)
        finally:
            plt.close(fig)

    @staticmethod
    def write(results: list[VideoResult], out: str | Path, fmt: str | None = None) -> None:
        """Several videos' results, atomically: ``.json`` (``{video: to_dict()}``) or ``.csv`` (all windows); ``out``
        ``-`` is standard output (``fmt``: ``json``, the default, or ``csv``). Probabilities that are not finite are
        refused before anything is written (``check_finite``)."""
        import json

        for r in results:
            r.check_finite()
        kind = fmt or ("json" if str(out) == "-" else Path(out).suffix.lower().lstrip("."))
        if kind not in ("json", "csv"):
            raise InputError(f"{out}: expected a .json or .csv file name")
        if kind == "csv":
            table = pl.concat([r.table() for r in results], how="diagonal_relaxed")
            if str(out) == "-":
                sys.stdout.write(table.write_csv())
            else:
                write_csv(table, Path(out))
            return
        text = json.dumps({r.path: r.to_dict() for r in results}, indent=1, allow_nan=False, default=float) + "\n"
        if str(out) == "-":
            sys.stdout.write(text)
        else:
            with atomic_path(Path(out)) as tmp:
                tmp.write_text(text)


def summarize_names(columns: list[str]) -> list[str]:
    """The expression columns of a windows table (the 7 basic ones, MAFW's four more)."""
    return [
        c for c in columns if c in EXPRESSIONS or c.lower() in ("contempt", "anxiety", "helplessness", "disappointment")
    ]


def summarize(table: pl.DataFrame) -> dict:
    """The video's expression: window probabilities averaged, weighted by their face frames."""

    names = summarize_names(table.columns)
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
