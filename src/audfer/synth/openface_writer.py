"""Writing OpenFace-format CSVs, in each layout real OpenFace builds produce.

Used by the synthetic dataset (its per-clip AU ground truth is written as OpenFace 2.2 output
so the real reader and knowledge pipeline run on it unchanged), by benchmarks and by tests.

Styles (see ``read_openface`` for the reader side):
- ``"2.2"``: OpenFace 2.2 FeatureExtraction; header joined by ``", "``; in rows the non-AU
  fields are followed by ``",  "`` and AU fields joined by ``", "``; AU_c as ``1.00``.
- ``"plain"``: current source builds: ``,`` everywhere, AU_c as ``1.0``.
- ``"windows"``: Windows 2.0.x: ``", "`` everywhere, CRLF, ``frame`` 0 on every row.
- ``"legacy"``: pre-2.0: no ``face_id``, CRLF, ``", "`` header, bare ``,`` rows, AU_c as ``0/1``.
- ``"aus"``: an ``-aus``-only run: the 5 leading columns and the 35 AU columns only.
- ``"img"``: FaceLandmarkImg: header starts ``face, confidence`` (no frame/timestamp/success).
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl

from audfer.errors import ConfigError
from audfer.files import atomic_path
from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

STYLES = ("2.2", "plain", "windows", "legacy", "aus", "img")


def full_header() -> list[str]:
    """The 714 columns of OpenFace 2.2 FeatureExtraction, in order."""
    cols = ["frame", "face_id", "timestamp", "confidence", "success"]
    cols += [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"] + ["gaze_angle_x", "gaze_angle_y"]
    cols += [f"eye_lmk_{a}_{i}" for a in ("x", "y", "X", "Y", "Z") for i in range(56)]
    cols += [f"pose_{a}" for a in ("Tx", "Ty", "Tz", "Rx", "Ry", "Rz")]
    cols += [f"{a}_{i}" for a in ("x", "y", "X", "Y", "Z") for i in range(68)]
    cols += ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty"] + [f"p_{i}" for i in range(34)]
    return cols + list(INTENSITY_COLUMNS) + list(PRESENCE_COLUMNS)


def random_frames(frames: int, seed: int, *, decimals: int | None = None) -> pl.DataFrame:
    """A clip of ``frames`` random OpenFace frames (30 fps, 95 % successful, confidence 0.8-1, intensities uniform on
    0-5, rounded to ``decimals`` when given, presences 0/1) for ``render_openface_csv``: the benchmarks' input."""
    rng = np.random.default_rng(seed)  # drawn in this order: confidence, success, intensities, presences
    confidence = rng.uniform(0.8, 1, frames)
    success = (rng.random(frames) > 0.05).astype(int)
    intensities = {c: rng.uniform(0, 5, frames) for c in INTENSITY_COLUMNS}
    if decimals is not None:
        intensities = {c: v.round(decimals) for c, v in intensities.items()}
    presences = {c: rng.integers(0, 2, frames) for c in PRESENCE_COLUMNS}
    return pl.DataFrame(
        {
            "frame": np.arange(1, frames + 1),
            "timestamp": np.arange(frames) / 30,
            "confidence": confidence,
            "success": success,
            "face_id": np.zeros(frames, dtype=int),
            **intensities,
            **presences,
        }
    )


def render_openface_csv(frames: pl.DataFrame, style: str = "2.2", *, full: bool = True, seed: int = 0) -> bytes:
    """Render canonical frames (``frame, timestamp, confidence, success, face_id``, AU columns)
    as the bytes of an OpenFace CSV. Non-AU feature columns (``full=True``) get seeded
    plausible values: they are not used by audfer but make files realistic in size."""
    if style not in STYLES:
        raise ConfigError(f"unknown OpenFace style {style!r}; expected one of {STYLES}")
    n = frames.height
    lead = ["frame", "face_id", "timestamp", "confidence", "success"]
    if style == "legacy":
        lead = ["frame", "timestamp", "confidence", "success"]
    elif style == "img":
        lead = ["face", "confidence"]
    extra = [c for c in full_header()[5:-35]] if full and style not in ("aus", "img") else []
    au_r = frames.select(INTENSITY_COLUMNS).to_numpy().astype(np.float64)
    au_c = frames.select(PRESENCE_COLUMNS).to_numpy().astype(np.int64)

    cols: list[list[str]] = []
    for name in lead:
        src = "face_id" if name == "face" else name
        if src == "frame" and style == "windows":
            cols.append(["0"] * n)
        elif src in ("frame", "face_id", "success"):
            cols.append([str(int(v)) for v in frames[src].to_list()])
        else:
            cols.append([f"{v:.3f}" if style != "legacy" else f"{v:g}" for v in frames[src].to_list()])
    if extra:
        rng = np.random.default_rng(seed)
        vals = rng.normal(0.0, 50.0, size=(n, len(extra)))
        cols += [[f"{v:.3f}" for v in vals[:, j]] for j in range(len(extra))]
    rfmt = "{:.2f}" if style != "legacy" else "{:g}"
    cols += [[rfmt.format(v) for v in au_r[:, j]] for j in range(au_r.shape[1])]
    cfmt = {
        "2.2": "{:.2f}",
        "windows": "{:.2f}",
        "plain": "{:.1f}",
        "aus": "{:.2f}",
        "img": "{:.2f}",
        "legacy": "{:d}",
    }[style]
    cols += [[cfmt.format(float(v) if style != "legacy" else int(v)) for v in au_c[:, j]] for j in range(au_c.shape[1])]

    header = lead + extra + list(INTENSITY_COLUMNS) + list(PRESENCE_COLUMNS)
    n_lead = len(lead) + len(extra)
    eol = "\r\n" if style in ("windows", "legacy") else "\n"
    hsep = "," if style == "plain" else ", "
    lines = [hsep.join(header)]
    for i in range(n):
        row = [c[i] for c in cols]
        if style in ("2.2", "aus", "img"):
            lines.append(",  ".join(row[:n_lead]) + ", " + ", ".join(row[n_lead:]))
        elif style == "windows":
            lines.append(", ".join(row))
        else:
            lines.append(",".join(row))
    return (eol.join(lines) + eol).encode()


def write_openface_csv(
    path: str | os.PathLike, frames: pl.DataFrame, style: str = "2.2", *, full: bool = True, seed: int = 0
) -> None:
    """Write ``render_openface_csv`` output atomically."""
    data = render_openface_csv(frames, style, full=full, seed=seed)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
