"""Small file helpers: atomic writes and the 7 x 18 expression-by-AU table format.

Every output is written to a temporary file in the destination folder and renamed into
place, so an interrupted or failing step never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from .errors import AudferError
from .vocab import AUS, EXPRESSIONS, expression_index


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_target(path: str | os.PathLike) -> Path:
    """Where writing ``path`` really lands: a symlink is followed to its target (so the link stays a link and
    the file it points to is replaced); a folder, a device, a FIFO or a socket at the path is an error naming
    the user's path."""
    import stat

    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise AudferError(f"{path}: cannot write here ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudferError(f"{path}: is a folder; expected a file path to write")
    if not stat.S_ISREG(st.st_mode):
        raise AudferError(f"{path}: is not a regular file (a device, FIFO or socket); refusing to replace it")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``'s target; rename it onto the target only on success.

    Through a symlink the target file is replaced (in the target's folder, so the rename stays atomic) and
    the link is kept; a folder or a device at ``path`` is refused. The new file gets the usual permissions
    (0666 minus the umask, or the mode of the file it replaces), not ``mkstemp``'s 0600. Errors name
    ``path``, never the temporary file."""
    user = Path(path)
    target = output_target(user)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix or target.suffix or ".tmp", dir=target.parent
        )
    except OSError as exc:
        raise AudferError(f"{user}: cannot write here ({exc.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            mode = os.stat(target).st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
            os.chmod(tmp_path, mode)
            os.replace(tmp_path, target)
        except OSError as exc:
            raise AudferError(f"{user}: cannot write here ({exc.strerror})") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_csv(df: pl.DataFrame, path: str | os.PathLike, *, float_precision: int | None = None) -> None:
    """Write a polars table as CSV atomically."""
    with atomic_path(path) as tmp:
        df.write_csv(tmp, float_precision=float_precision)


def write_parquet(df: pl.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` as Parquet atomically (a crash never leaves a partial file)."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp)


def write_json(obj: object, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON atomically (a crash never leaves a partial file)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_csv_table(path: str | os.PathLike, required: tuple[str, ...], *, what: str) -> pl.DataFrame:
    """Read a small CSV whose ``clip_id`` stays a string (``00001`` stays ``00001``)."""
    path = Path(path)
    if not path.is_file():
        raise AudferError(f"{path}: {what} file not found")
    try:
        df = pl.read_csv(path, infer_schema=False, glob=False)
    except Exception as exc:  # polars raises several types for malformed CSV
        raise AudferError(
            f"{path}: cannot parse {what} CSV ({exc.__class__.__name__}: {str(exc).splitlines()[0]})"
        ) from None
    df = df.rename({c: c.strip() for c in df.columns})
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise AudferError(f"{path}: {what} is missing column(s) {', '.join(missing)}; expected {', '.join(required)}")
    return df


def read_clip_labels(path: str | os.PathLike) -> pl.DataFrame:
    """Read ``clip_id,label`` (label as index 0..6 or class name) -> ``clip_id`` (str), ``label`` (int8)."""
    path = Path(path)
    df = read_csv_table(path, ("clip_id", "label"), what="clip labels")
    ids = df["clip_id"].str.strip_chars()
    labels = []
    for row, value in enumerate(df["label"].to_list(), start=2):
        if value is None:
            raise AudferError(f"{path}: row {row}, column label: empty; expected 0..6 or an expression name")
        labels.append(expression_index(value, where=f"{path}: row {row}, column label"))
    seen: dict[str, tuple[int, int]] = {}
    for row, (cid, lab) in enumerate(zip(ids.to_list(), labels), start=2):
        if cid is None or cid == "":
            raise AudferError(f"{path}: row {row}, column clip_id: empty; expected a clip id")
        if cid in seen:
            first_row, first_label = seen[cid]
            if first_label != lab:
                raise AudferError(
                    f"{path}: rows {first_row} and {row}: clip_id {cid!r} has conflicting labels "
                    f"({EXPRESSIONS[first_label]} and {EXPRESSIONS[lab]})"
                )
            raise AudferError(f"{path}: rows {first_row} and {row}: clip_id {cid!r} appears more than once")
        seen[cid] = (row, lab)
    return pl.DataFrame({"clip_id": ids, "label": pl.Series(labels, dtype=pl.Int8)})


def expression_table(values: np.ndarray, columns: tuple[str, ...] = AUS) -> pl.DataFrame:
    """A 7 x len(columns) array -> table ``expression, AU01..AU45`` in label order."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(EXPRESSIONS), len(columns)):
        raise AudferError(f"expected a {len(EXPRESSIONS)}x{len(columns)} table, got shape {values.shape}")
    data: dict[str, object] = {"expression": list(EXPRESSIONS)}
    for j, col in enumerate(columns):
        data[col] = values[:, j]
    return pl.DataFrame(data)


#: Allowed values per table kind: (low, high), both open. K is a sigmoid output (§3.1); pos-weights are (c-p)/p > 0.
TABLE_RANGES = {"knowledge matrix": (0.0, 1.0), "pos-weight table": (0.0, math.inf)}


def read_expression_table(path: str | os.PathLike, *, what: str = "table") -> np.ndarray:
    """Read a 7 x 18 ``expression,AU01..AU45`` CSV (K.csv, pw.csv) into an array in label order; values outside
    ``TABLE_RANGES[what]`` (K in (0, 1), pos-weights > 0) are an error naming row and column."""
    path = Path(path)
    df = read_csv_table(path, ("expression", *AUS), what=what)
    if df.height != len(EXPRESSIONS):
        raise AudferError(f"{path}: {what} has {df.height} rows; expected {len(EXPRESSIONS)} (one per expression)")
    out = np.full((len(EXPRESSIONS), len(AUS)), np.nan)
    for row, rec in enumerate(df.iter_rows(named=True), start=2):
        idx = expression_index(rec["expression"], where=f"{path}: row {row}, column expression")
        if not np.isnan(out[idx, 0]):
            raise AudferError(f"{path}: row {row}: expression {EXPRESSIONS[idx]} appears twice")
        for j, au in enumerate(AUS):
            cell = rec[au]
            try:
                val = float(cell)
            except (TypeError, ValueError):
                raise AudferError(f"{path}: row {row}, column {au}: {cell!r} is not a number") from None
            if not math.isfinite(val):
                raise AudferError(f"{path}: row {row}, column {au}: {cell!r} is not a finite number")
            lo, hi = TABLE_RANGES.get(what, (-math.inf, math.inf))
            if not lo < val < hi:
                want = f"a value in ({lo:g}, {hi:g})" if math.isfinite(hi) else f"a value > {lo:g}"
                raise AudferError(f"{path}: row {row}, column {au}: {cell!r}; a {what} holds {want}")
            out[idx, j] = val
    return out
