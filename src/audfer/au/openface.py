"""Reading OpenFace 2.x CSV output into one canonical frames table (input of paper §3.1).

``read_openface`` accepts every layout OpenFace actually writes: FeatureExtraction 2.2
(``", "`` header, ``",  "`` rows), current source builds (plain ``,``), Windows 2.0.x files
(CRLF, ``frame`` always 0), pre-2.0 files without ``face_id``, FaceLandmarkVidMulti output
(``face_id`` = tracker slot), ``-aus``-only runs and FaceLandmarkImg output (``face`` column).

The canonical table has ``frame, timestamp, confidence, success, face_id``, the 17 ``AUxx_r``
intensities (float32) and the 18 ``AUxx_c`` presences (int8), sorted by frame, for one face.

Face choice when a file holds several ``face_id`` values: the face with the most successful
frames (ties: the smallest id), or the one asked for with ``face_id=``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import polars as pl

from audfer.au.schema import AU_COLUMNS, note
from audfer.errors import AudferError, InputError
from audfer.files import table_bytes
from audfer.io import check_unique_columns, rows_below
from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

__all__ = ["read_openface"]


def _bad_cell(path: Path, lines: list[bytes], names: list[str], wanted: list[str]) -> AudferError:
    """Locate the first cell that prevents parsing (slow path, only run after a failure)."""
    index = {n: i for i, n in enumerate(names)}
    for row, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split(b",")
        if len(fields) != len(names):
            return AudferError(f"{path}: row {row}: {len(fields)} fields; the header has {len(names)}")
        for col in wanted:
            cell = fields[index[col]]
            try:
                float(cell)
            except ValueError:
                text = cell.decode("utf-8", "replace")
                return AudferError(f"{path}: row {row}, column {col}: {text!r} is not a number")
    return AudferError(f"{path}: cannot parse the file as OpenFace CSV")


def _parse_fast(raw: bytes, header: bytes, names: list[str], wanted: list[str]) -> pl.DataFrame | None:
    """The common case in one pass: polars reads only the wanted columns (by position) as numbers (its
    float parser skips the separator spaces of OpenFace 2.2). ``None`` when anything looks off (an empty
    cell, text, a ragged or blank row): the careful path then finds and names it."""
    index = [names.index(c) for c in wanted]
    raw_names = header.rstrip(b"\r").decode("utf-8", "replace").split(",")
    try:
        df = pl.read_csv(
            io.BytesIO(raw),
            columns=index,
            schema_overrides={raw_names[i]: pl.Float64 for i in index},
            infer_schema=False,
        )
    except Exception:
        return None
    if [c.strip(" \t\r") for c in df.columns] != [raw_names[i].strip(" \t\r") for i in index]:
        return None
    if any(df.null_count().row(0)) or any(t != pl.Float64 for t in df.dtypes):
        return None
    df.columns = wanted
    return df


def _parse_careful(path: Path, raw: bytes, names: list[str], wanted: list[str]) -> pl.DataFrame:
    """Whitespace removed everywhere, then parsed; on failure the first offending row/cell is named."""
    clean = raw.replace(b"\r", b"").replace(b" ", b"").replace(b"\t", b"")
    lines = clean.split(b"\n")
    body = b",".join(n.encode() for n in names) + clean[len(lines[0]) :]
    try:
        df = pl.read_csv(
            io.BytesIO(body), columns=wanted, schema_overrides={c: pl.Float64 for c in wanted}, infer_schema=False
        )
    except Exception:
        raise _bad_cell(path, lines, names, wanted) from None
    nulls = [c for c in wanted if df[c].null_count()]
    if nulls:
        row = int(df.with_row_index().filter(pl.col(nulls[0]).is_null())["index"][0]) + 2
        raise InputError(f"{path}: row {row}, column {nulls[0]}: empty cell; expected a number")
    return df


#: The largest integer a float64 holds exactly (2**53 - 1): frame numbers and face ids beyond it (an int64 overflow
#: included) cannot be told apart, so they are refused, naming the cell, before any integer conversion.
MAX_EXACT_INT = 2**53 - 1


def _first_bad_value(path: Path, df: pl.DataFrame, wanted: list[str]) -> AudferError | None:
    """The first bad value, named by file, row and column, or ``None``: non-finite values, intensities outside
    [0, 5], frame numbers and face ids that are negative, fractional or too large for an exact integer
    (``MAX_EXACT_INT``: every int64 overflow), repeated frames (per face), 0/1 columns with other values.
    Vectorised over the whole table (numpy), so checking costs microseconds per file."""
    if not df.height:
        return None
    values = df.select(wanted).to_numpy()
    col = {c: values[:, i] for i, c in enumerate(wanted)}

    def first(mask) -> int | None:
        return int(mask.argmax()) if mask.any() else None

    for c in wanted:
        if (r := first(~np.isfinite(col[c]))) is not None:
            return AudferError(f"{path}: row {r + 2}, column {c}: {float(col[c][r])!r}; expected a finite number")
    for c in INTENSITY_COLUMNS:
        if (r := first((col[c] < 0) | (col[c] > 5))) is not None:
            return AudferError(
                f"{path}: row {r + 2}, column {c}: {float(col[c][r])!r}; expected an intensity in [0, 5]"
            )
    for c, what in (("frame", "a frame number"), ("face_id", "a face id")):
        if c in col and (r := first((col[c] < 0) | (col[c] != np.floor(col[c])) | (col[c] > MAX_EXACT_INT))):
            return AudferError(
                f"{path}: row {r + 2}, column {c}: {float(col[c][r])!r}; expected {what} (an integer from 0 to "
                f"{MAX_EXACT_INT})"
            )
    if "frame" in col:
        frame = col["frame"]
        if frame.max() > 0:  # Windows 2.0.x writes frame 0 everywhere: numbered from timestamps later
            keys = np.stack([frame, col["face_id"]], axis=1) if "face_id" in col else frame[:, None]
            _, firsts = np.unique(keys, axis=0, return_index=True)
            repeat = np.ones(len(frame), bool)
            repeat[firsts] = False
            if (r := first(repeat)) is not None:
                return AudferError(
                    f"{path}: row {r + 2}, column frame: frame {int(frame[r])} appears twice"
                    f"{' for the same face_id' if 'face_id' in col else ''}; expected one row per frame"
                )
    for c in ("success", *PRESENCE_COLUMNS):
        if c in col and (r := first((col[c] != 0) & (col[c] != 1))) is not None:
            return AudferError(f"{path}: row {r + 2}, column {c}: {float(col[c][r])!r}; expected 0 or 1")
    return None


def read_openface(
    path: str | os.PathLike,
    *,
    face_id: int | None = None,
    strict: bool = False,
) -> pl.DataFrame:
    """Read one OpenFace CSV into the canonical frames table (see module docstring).

    A last row cut off mid-line (no final newline, too few fields) is dropped with an
    ``OpenFaceWarning``; ``strict=True`` raises instead. Missing AU columns, a non-numeric
    cell, a presence that is not 0/1 or an absent requested face raise ``AudferError``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read OpenFace CSV ({exc.strerror})") from None
    # a byte-order mark (files saved by Excel/Notepad; UTF-16 decoded), CR-only line ends, Excel's ``sep=,`` line
    raw, _, skipped = table_bytes(path, raw, "an OpenFace CSV")
    with rows_below(skipped):
        return _read_openface_bytes(path, raw, face_id=face_id, strict=strict)


def _read_openface_bytes(path: Path, raw: bytes, *, face_id: int | None, strict: bool) -> pl.DataFrame:
    head_end = raw.find(b"\n")
    header = raw if head_end < 0 else raw[:head_end]
    # Values are numbers: every space, tab and CR is a separator artefact of some OpenFace build.
    names = header.replace(b"\r", b"").replace(b" ", b"").replace(b"\t", b"").decode("utf-8", "replace").split(",")
    if names == [""]:
        raise InputError(f"{path}: empty file; expected an OpenFace CSV with a header row")
    check_unique_columns(path, names)
    if "face" in names and "frame" not in names:  # FaceLandmarkImg: one row per detected face
        names = ["face_id" if n == "face" else n for n in names]
    missing = [c for c in AU_COLUMNS if c not in names]
    if missing:
        hint = " (a landmarks-only run? rerun OpenFace with -aus)" if len(missing) == len(AU_COLUMNS) else ""
        raise InputError(f"{path}: missing AU column(s) {', '.join(missing)}{hint}")
    if "confidence" not in names:
        raise InputError(f"{path}: missing column confidence; is this an OpenFace CSV?")

    last_start = raw.rfind(b"\n") + 1
    if not raw.endswith(b"\n") and last_start > 0 and raw[last_start:].strip():
        n_fields = raw.count(b",", last_start) + 1
        if n_fields < len(names):
            row = raw.count(b"\n", 0, last_start) + 1
            msg = f"{path}: row {row} is cut off ({n_fields} of {len(names)} fields)"
            if strict:
                raise InputError(msg)
            note(msg + "; dropped it")
            raw = raw[:last_start]

    wanted = [c for c in ("frame", "face_id", "timestamp", "confidence", "success") if c in names] + list(AU_COLUMNS)
    df = _parse_fast(raw, header, names, wanted)
    if df is None:  # blank lines, ragged rows, empty cells or text: the careful path names the cell
        df = _parse_careful(path, raw, names, wanted)
    problem = _first_bad_value(path, df, wanted)
    if problem:
        raise problem

    n = df.height
    exprs: list[pl.Expr] = []
    if "frame" in df.columns:
        frame = pl.col("frame").cast(pl.Int64)
        if n > 1 and df["frame"].max() == 0:  # Windows 2.0.x: frame is 0 on every row
            if "timestamp" in df.columns and df["timestamp"].n_unique() > 1:
                frame = pl.col("timestamp").rank("dense").cast(pl.Int64)
            else:
                frame = pl.int_range(1, n + 1, dtype=pl.Int64)
        exprs.append(frame.alias("frame"))
    else:  # FaceLandmarkImg: a single image
        exprs.append(pl.lit(1, dtype=pl.Int64).alias("frame"))
    exprs.append(pl.col("timestamp") if "timestamp" in df.columns else pl.lit(0.0).alias("timestamp"))
    exprs.append(pl.col("confidence"))
    exprs.append(
        pl.col("success").cast(pl.Int8) if "success" in df.columns else pl.lit(1, dtype=pl.Int8).alias("success")
    )
    exprs.append(
        pl.col("face_id").cast(pl.Int64) if "face_id" in df.columns else pl.lit(0, dtype=pl.Int64).alias("face_id")
    )
    exprs += [pl.col(c).cast(pl.Float32) for c in INTENSITY_COLUMNS]
    exprs += [pl.col(c).cast(pl.Int8) for c in PRESENCE_COLUMNS]
    out = df.select(exprs)

    faces = out["face_id"].unique()
    if face_id is not None:
        if face_id not in faces.to_list():
            raise InputError(f"{path}: face_id {face_id} not found; the file has {sorted(faces.to_list())}")
        out = out.filter(pl.col("face_id") == face_id)
    elif len(faces) > 1:
        best = (
            out.group_by("face_id")
            .agg(pl.col("success").cast(pl.Int64).sum().alias("ok"))
            .sort(["ok", "face_id"], descending=[True, False])["face_id"][0]
        )
        out = out.filter(pl.col("face_id") == best)
    return out.sort("frame", maintain_order=True)
