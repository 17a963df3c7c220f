"""The generic reader of a mapped AU tool's per-frame file (``AUTool.read``): the table as text, every AU cell
checked (number, range, no partial rows), presence and intensity by the rules of ``audfer.au.mapping``, frames
numbered from 1, the tool's quirks through its hooks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from audfer.au.mapping import PROBABILITY_THRESHOLD, AUColumn, AUMapping
from audfer.au.openface import MAX_EXACT_INT
from audfer.errors import InputError
from audfer.files import table_bytes
from audfer.io import check_unique_columns, header_names
from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

if TYPE_CHECKING:
    from audfer.au.tools.base import AUTool

__all__ = ["read_raw", "numbers", "read_mapped"]


# ----------------------------------------------------------------------------------------------- readers


def read_raw(path: Path) -> tuple[pl.DataFrame, int]:
    """The table as text columns and the number of lines before its header (Excel's ``sep=`` line)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read AU file ({exc.strerror})") from None
    raw, sep, skipped = table_bytes(path, raw, "a per-frame AU table")
    if not raw.strip():
        raise InputError(f"{path}: empty file; expected a per-frame AU table with a header row")
    check_unique_columns(path, header_names(raw, sep or ","), 1 + skipped)
    try:
        df = pl.read_csv(raw, infer_schema=False, truncate_ragged_lines=False, separator=sep or ",")
    except Exception as exc:  # polars raises several types for malformed CSV
        raise InputError(f"{path}: cannot parse as CSV ({str(exc).splitlines()[0]})") from None
    return df.rename({c: c.strip() for c in df.columns}), skipped


def numbers(path: Path, df: pl.DataFrame, col: str) -> np.ndarray:
    """A column as float64 (NaN for empty/'nan' cells); text is an error naming row and column."""
    values = df[col].str.strip_chars()
    parsed = values.cast(pl.Float64, strict=False)
    bad = df.with_row_index().filter(
        parsed.is_null()
        & values.is_not_null()
        & (values != "")
        & ~values.str.to_lowercase().is_in(["nan", "na", "none"])
    )
    if bad.height:
        raise InputError(f"{path}: row {int(bad['index'][0]) + 2}, column {col}: {bad[col][0]!r} is not a number")
    out = parsed.to_numpy().astype(np.float64)
    inf = np.flatnonzero(np.isinf(out))
    if inf.size:
        raise InputError(
            f"{path}: row {int(inf[0]) + 2}, column {col}: {df[col][int(inf[0])]!r}; expected a finite number"
        )
    return out


def _check_range(path: Path, col: AUColumn, values: np.ndarray) -> None:
    hi = {"presence": 1.0, "probability": 1.0, "intensity": col.scale}[col.kind]
    ok = np.isnan(values) | ((values >= 0) & (values <= hi))
    if col.kind == "presence":
        ok &= np.isnan(values) | np.isin(values, (0.0, 1.0))
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        want = "0 or 1" if col.kind == "presence" else f"a {col.kind} in [0, {hi:g}]"
        raise InputError(f"{path}: row {r + 2}, column {col.column}: {values[r]:g}; expected {want}")


def _frame_numbers(path: Path, df: pl.DataFrame, tool: AUTool, mapping: AUMapping) -> np.ndarray:
    n = df.height
    own = tool.frame_numbers(path, df, mapping)  # a tool's own numbering (py-feat on a folder of images)
    if own is not None:
        return own
    if mapping.frame is None or mapping.frame not in df.columns:
        if mapping.frame is not None and tool.needs_mapping:
            raise InputError(f"{path}: no column {mapping.frame!r} (the mapping's frame column)")
        return np.arange(1, n + 1, dtype=np.int64)
    raw = numbers(path, df, mapping.frame)
    bad = np.flatnonzero(np.isnan(raw) | (raw < 0) | (raw != np.round(raw)) | (raw > MAX_EXACT_INT))
    if bad.size:
        r = int(bad[0])
        raise InputError(
            f"{path}: row {r + 2}, column {mapping.frame}: {df[mapping.frame][r]!r}; expected a frame "
            f"number (an integer from {mapping.frame_base} to {MAX_EXACT_INT})"
        )
    return raw.astype(np.int64) + (1 - mapping.frame_base)


def read_mapped(path: Path, df: pl.DataFrame, tool: AUTool, mapping: AUMapping) -> pl.DataFrame:
    """A tool's table (text columns, ``read_raw``) -> the canonical frames table, by ``mapping`` and the tool's hooks
    (``AUTool.frame_numbers``, ``AUTool.keep_one_face``); a ``needs_mapping`` tool's file must hold every column its
    mapping names."""
    source = tool.name
    missing = [c.column for c in mapping.columns if c.column not in df.columns]
    if missing:
        hint = tool.expected or "the mapping"
        raise InputError(f"{path}: missing AU column(s) {', '.join(missing)} ({source}: expected {hint})")
    for meta in ("confidence", "success", "timestamp"):
        name = getattr(mapping, meta)
        if tool.needs_mapping and name is not None and name not in df.columns:
            raise InputError(f"{path}: no column {name!r} (the mapping's {meta} column)")
    if df.height == 0:
        raise InputError(f"{path}: no rows; expected one row per frame")

    values = {c.column: numbers(path, df, c.column) for c in mapping.columns}
    block = np.stack(list(values.values()), axis=1)
    empty_row = np.isnan(block).all(axis=1)
    partial = np.isnan(block).any(axis=1) & ~empty_row
    if partial.any():
        r = int(np.flatnonzero(partial)[0])
        col = next(c for c, v in values.items() if np.isnan(v[r]))
        raise InputError(f"{path}: row {r + 2}, column {col}: empty or NaN while the row's other AU cells are filled")
    for c in mapping.columns:
        _check_range(path, c, values[c.column])

    frame = _frame_numbers(path, df, tool, mapping)
    n = df.height
    conf = numbers(path, df, mapping.confidence) if mapping.confidence in df.columns else np.full(n, np.nan)
    if mapping.success is not None and mapping.success in df.columns:
        success = numbers(path, df, mapping.success)
        if not np.isin(success, (0.0, 1.0)).all():
            r = int(np.flatnonzero(~np.isin(success, (0.0, 1.0)))[0])
            raise InputError(
                f"{path}: row {r + 2}, column {mapping.success}: {df[mapping.success][r]!r}; expected 0 or 1"
            )
        success = (success == 1) & ~empty_row
    else:
        success = ~empty_row
    with np.errstate(over="ignore"):  # an overflow is named just below
        ts = (
            numbers(path, df, mapping.timestamp) * mapping.timestamp_scale
            if mapping.timestamp in df.columns
            else np.full(n, np.nan)
        )
    if np.isinf(ts).any():  # finite, but not once scaled to seconds
        r = int(np.flatnonzero(np.isinf(ts))[0])
        raise InputError(
            f"{path}: row {r + 2}, column {mapping.timestamp}: {df[str(mapping.timestamp)][r]!r} times "
            f"timestamp_scale {mapping.timestamp_scale:g} overflows; expected a time that fits a float64"
        )

    order = np.arange(n)
    if len(np.unique(frame)) != n:
        kept = tool.keep_one_face(path, df, frame, conf)  # several faces per frame: the tool's rule, or an error
        if kept is None:
            _, first = np.unique(frame, return_index=True)
            rows = sorted(set(range(n)) - set(first.tolist()))
            raise InputError(
                f"{path}: row {rows[0] + 2}: frame {frame[rows[0]] - (1 - mapping.frame_base)} appears "
                f"twice; expected one row per frame"
            )
        order = kept
    frame, conf, success, ts = frame[order], conf[order], success[order], ts[order]
    values = {k: v[order] for k, v in values.items()}
    ok = success.astype(bool)

    data: dict[str, object] = {
        "frame": pl.Series(frame, dtype=pl.Int64),
        "timestamp": pl.Series(ts, dtype=pl.Float64, nan_to_null=True),
        "confidence": pl.Series(conf, dtype=pl.Float64, nan_to_null=True),
        "success": pl.Series(ok.astype(np.int8), dtype=pl.Int8),
        "face_id": pl.Series(np.zeros(len(frame), np.int64), dtype=pl.Int64),
    }
    for col in INTENSITY_COLUMNS:
        rule = mapping.intensity_rule(col[:4])
        if rule is None:
            data[col] = pl.Series([None] * len(frame), dtype=pl.Float32)
            continue
        c = rule[0]
        v = values[c.column] * (5.0 if c.kind == "probability" else 5.0 / c.scale)
        data[col] = pl.Series(np.where(ok, v, np.nan).astype(np.float32), dtype=pl.Float32, nan_to_null=True)
    for col in PRESENCE_COLUMNS:
        rule = mapping.presence_rule(col[:4])
        if rule is None:
            data[col] = pl.Series([None] * len(frame), dtype=pl.Int8)
            continue
        c = rule[0]
        v = values[c.column]
        if c.kind == "presence":
            p = v
        elif c.kind == "probability":
            p = (v >= PROBABILITY_THRESHOLD).astype(np.float64)
        else:
            p = (v * 5.0 / c.scale >= c.threshold).astype(np.float64)
        p = np.where(ok, p, np.nan)
        data[col] = pl.Series(p, dtype=pl.Float64, nan_to_null=True).cast(pl.Int8)
    out = pl.DataFrame(data)
    return out.sort("frame", maintain_order=True)
