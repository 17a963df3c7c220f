"""File formats: CSV tables written atomically (``audfer.files``), safe YAML, text checks, spreadsheet-saved CSVs,
repeated clips, frame-file order, the ``clip_labels.csv`` and 7 x 18 expression-by-AU table formats."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from audfer.errors import AudferError, InputError
from audfer.files import atomic_path, check_text_file, one_line, table_bytes
from audfer.vocab import AUS, EXPRESSIONS, expression_index


def write_csv(df: pl.DataFrame, path: str | os.PathLike, *, float_precision: int | None = None) -> None:
    """Write a polars table as CSV atomically."""
    with atomic_path(path) as tmp:
        df.write_csv(tmp, float_precision=float_precision)


def write_parquet(df: pl.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` as Parquet atomically (a crash never leaves a partial file)."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp)


def read_csv_table(path: str | os.PathLike, required: tuple[str, ...], *, what: str) -> pl.DataFrame:
    """Read a small CSV whose ``clip_id`` stays a string (``00001`` stays ``00001``); a binary file or a row with
    more fields than the header is an error naming the file (and the row). Spreadsheet artefacts are read as meant
    (``audfer.files.table_bytes``: UTF-16, ``sep=;`` line, CR-only line ends); a column named twice is an error.
    Row numbers for messages: ``read_csv_rows``."""
    return read_csv_rows(path, required, what=what)[0]


def read_csv_rows(path: str | os.PathLike, required: tuple[str, ...], *, what: str) -> tuple[pl.DataFrame, int]:
    """``read_csv_table`` and the file row of the table's first data row (2, or 3 below Excel's ``sep=`` line), so
    that messages name the rows of the file as the user sees it."""
    path = Path(path)
    if not path.is_file():
        raise AudferError(f"{path}: {what} file not found")
    check_text_file(path, f"a {what} CSV")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AudferError(f"{path}: cannot read {what} CSV ({exc.strerror})") from None
    raw, declared, skipped = table_bytes(path, raw, f"a {what} CSV")
    separator = declared or _separator(raw, required)
    header = header_names(raw, separator)
    check_unique_columns(path, header, 1 + skipped)
    try:
        df = pl.read_csv(io.BytesIO(raw), infer_schema=False, separator=separator, encoding="utf8-lossy", glob=False)
    except Exception as exc:  # polars raises several types for malformed CSV
        ragged = _ragged_row(raw, separator)
        if ragged is not None:
            raise AudferError(
                f"{path}: row {ragged[0] + skipped}: {ragged[1]} fields, the header has {ragged[2]}; cannot parse "
                f"{what} CSV"
            ) from None
        raise AudferError(f"{path}: cannot parse {what} CSV ({exc.__class__.__name__}: {one_line(exc)})") from None
    df = df.rename({c: c.strip().lstrip("\ufeff").strip() for c in df.columns})
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise AudferError(f"{path}: {what} is missing column(s) {', '.join(missing)}; expected {', '.join(required)}")
    if "clip_id" in df.columns:  # a spreadsheet turned the id 25 into 25.0: the id is 25
        df = df.with_columns(pl.col("clip_id").str.strip_chars().str.replace(r"^(\d+)\.0+$", "${1}"))
    return df, 2 + skipped


@contextlib.contextmanager
def rows_below(skipped: int) -> Iterator[None]:
    """Errors raised inside name the file's own rows when ``skipped`` lines (Excel's ``sep=`` line) came before the
    header: every ``row N`` / ``rows N and M`` of an ``AudferError`` message moves down by ``skipped``."""
    try:
        yield
    except AudferError as exc:
        if not skipped:
            raise
        shift = lambda m: f"{m.group(1)}{int(m.group(2)) + skipped}"  # noqa: E731
        text = re.sub(r"(\brows? |\band )(\d+)", shift, str(exc))
        raise type(exc)(text) if type(exc).__init__ is AudferError.__init__ else exc from None


def check_unique_columns(path: str | os.PathLike, names: list[str], row: int = 1) -> None:
    """A header naming one column twice (two ``label`` columns: which one is meant?) is an error naming it."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name in seen:
            raise AudferError(
                f"{path}: row {row}: column {name!r} appears twice (columns {seen[name]} and {i}); expected each "
                f"column once"
            )
        seen[name] = i


def header_names(raw: bytes, separator: str) -> list[str]:
    """The header's column names as the reader will see them (quotes and spaces removed)."""
    import csv

    first = raw.split(b"\n", 1)[0].decode("utf-8", "replace")
    row = next(csv.reader([first.rstrip("\r")], delimiter=separator), [])
    return [c.strip().lstrip("\ufeff").strip() for c in row]


def _separator(raw: bytes, required: tuple[str, ...]) -> str:
    """``,`` unless the header only splits into the required columns with ``;`` or a tab (spreadsheets in locales
    whose decimal mark is a comma save CSV with semicolons)."""
    header = raw.split(b"\n", 1)[0].decode("utf-8", "replace")
    for sep in (",", ";", "\t"):
        names = {c.strip().strip('"').strip() for c in header.split(sep)}
        if all(r in names for r in required):
            return sep
    return ","


def _ragged_row(raw: bytes, separator: str = ",") -> tuple[int, int, int] | None:
    """(row, fields, header fields) of the first data row whose field count differs from the header's (1-based
    rows, the header is row 1; quoted fields respected), or None."""
    import csv

    rows = csv.reader(io.StringIO(raw.decode("utf-8", "replace"), newline=""), delimiter=separator)
    header = next(rows, None)
    if header is None:
        return None
    for row, fields in enumerate(rows, start=2):
        if fields and len(fields) != len(header):
            return row, len(fields), len(header)
    return None


def id_key(clip_id: str) -> str:
    """One clip id as ``data.annotations.clip_key`` writes it (an all-digit id with 5 digits, ``25`` -> ``00025``;
    any other id as written): two rows whose keys are equal name the same clip."""
    text = clip_id.strip()
    return f"{int(text):05d}" if text.isascii() and text.isdigit() else text


def id_key_expr(column: str = "clip_id") -> pl.Expr:
    """``id_key`` as a polars expression over a string column (tables of clip ids joined by the clip they name)."""
    col = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(col.str.contains(r"^[0-9]+$")).then(col.str.strip_chars_start("0").str.zfill(5)).otherwise(col)


def unique_clip_rows(
    path: str | os.PathLike, ids: list[str], rows: list[int], labels: list[int] | None = None, *, what: str
) -> list[int]:
    """Positions of ``ids`` to keep, each clip once (ids compared by ``id_key``). A clip listed twice with two
    labels is an error naming both rows; with the same label (or, without ``labels``, as identical rows given
    by the caller) the repeat is dropped with a warning naming the rows: it stays usable, counted once."""
    import warnings

    first: dict[str, int] = {}
    keep: list[int] = []
    repeats: list[str] = []
    for i, cid in enumerate(ids):
        key = id_key(cid)
        j = first.get(key)
        if j is None:
            first[key] = i
            keep.append(i)
            continue
        if labels is None or labels[i] != labels[j]:
            name = lambda k: EXPRESSIONS[k] if k < len(EXPRESSIONS) else str(k)  # noqa: E731 - MAFW's 11 classes
            detail = "appears twice" if labels is None else f"has two labels ({name(labels[j])} and {name(labels[i])})"
            raise AudferError(f"{path}: rows {rows[j]} and {rows[i]}: clip {cid!r} {detail} in the {what}")
        repeats.append(f"{cid!r} (rows {rows[j]} and {rows[i]})")
    if repeats:
        warnings.warn(
            f"{path}: {len(repeats)} clip(s) listed twice with the same label, counted once: "
            + ", ".join(repeats[:5])
            + (" ..." if len(repeats) > 5 else ""),
            UserWarning,
            stacklevel=3,
        )
    return keep


def read_clip_labels(path: str | os.PathLike) -> pl.DataFrame:
    """Read ``clip_id,label`` (label as index 0..6 or class name) -> ``clip_id`` (str), ``label`` (int8)."""
    path = Path(path)
    df, first = read_csv_rows(path, ("clip_id", "label"), what="clip labels")
    if df.height == 0:
        raise AudferError(f"{path}: no clip rows (only a header); expected clip_id,label rows")
    ids = df["clip_id"].str.strip_chars()
    labels = []
    for row, value in enumerate(df["label"].to_list(), start=first):
        if value is None:
            raise AudferError(f"{path}: row {row}, column label: empty; expected 0..6 or an expression name")
        labels.append(expression_index(value, where=f"{path}: row {row}, column label"))
    id_list = ids.to_list()
    for row, cid in enumerate(id_list, start=first):
        if cid is None or cid == "":
            raise AudferError(f"{path}: row {row}, column clip_id: empty; expected a clip id")
    keep = unique_clip_rows(path, id_list, list(range(first, len(id_list) + first)), labels, what="clip labels")
    return pl.DataFrame(
        {"clip_id": [id_list[i] for i in keep], "label": pl.Series([labels[i] for i in keep], dtype=pl.Int8)}
    )


def as_table(value: object, *, what: str) -> pl.DataFrame:
    """A polars table, or a pandas one converted (``pl.from_pandas``); anything else is an error naming ``what``."""
    if isinstance(value, pl.DataFrame):
        return value
    if isinstance(value, pl.LazyFrame):
        return value.collect()
    if type(value).__module__.startswith("pandas"):
        try:
            return pl.from_pandas(value)
        except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many kinds; one line instead
            raise InputError(f"{what}: cannot read this pandas table ({one_line(str(exc))})") from None
    raise InputError(f"{what}: expected a table (polars or pandas) or a CSV path, got {type(value).__name__}")


def clip_labels_table(labels: object, *, what: str = "clip labels") -> pl.DataFrame:
    """Clip labels in every form audfer writes or reads -> ``clip_id`` (str), ``label`` (int8), as
    ``read_clip_labels`` returns them: a ``clip_labels.csv`` path (spreadsheet forms included), or a table (polars or
    pandas) with ``clip_id`` and ``label`` columns, labels as indices (3, "3", 3.0) or class names (``audfer synth``
    writes names; any common spelling). A bad cell is an error naming its row (counted from 0) and value."""
    if isinstance(labels, (str, os.PathLike)):
        return read_clip_labels(labels)
    df = as_table(labels, what=what)
    missing = [c for c in ("clip_id", "label") if c not in df.columns]
    if missing:
        raise InputError(
            f"{what}: no column {', '.join(missing)} (columns: {', '.join(df.columns) or 'none'}); expected clip_id "
            f"and label (an index 0..6 or an expression name)"
        )
    raw_ids = df["clip_id"].cast(pl.String).to_list()
    ids = [None if c is None else c.strip() for c in raw_ids]
    index: dict[object, int] = {}
    labels_out: list[int] = []
    for row, (cid, value) in enumerate(zip(ids, df["label"].to_list())):
        if not cid:
            raise InputError(f"{what}: row {row}, column clip_id: empty; expected a clip id")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise InputError(f"{what}: row {row}, column label: empty; expected 0..6 or an expression name")
        key = (type(value), value)
        if key not in index:
            index[key] = expression_index(value, where=f"{what}: row {row}, column label")
        labels_out.append(index[key])
    keep = unique_clip_rows(what, ids, list(range(len(ids))), labels_out, what="clip labels")  # type: ignore[arg-type]
    return pl.DataFrame(
        {"clip_id": [ids[i] for i in keep], "label": pl.Series([labels_out[i] for i in keep], dtype=pl.Int8)}
    )


def expression_matrix(value: object, *, what: str) -> np.ndarray:
    """A 7 x 18 expression-by-AU table in every form audfer writes -> an array in label order: an array or nested
    list, the result objects that carry one (``PosWeights.values``, ``KnowledgeResult.matrix``), a table with an
    ``expression`` column (``PosWeights.table()``, a read ``K.csv``) or the path of such a CSV (``read_expression_table``;
    ``what`` is ``knowledge matrix`` or ``pos-weight table``)."""
    if isinstance(value, (str, os.PathLike)):
        return read_expression_table(value, what=what)
    table = isinstance(value, pl.DataFrame) or type(value).__module__.startswith("pandas")
    for attr in ("values", "matrix") if not table else ():  # PosWeights, KnowledgeResult
        inner = getattr(value, attr, None)
        if isinstance(inner, np.ndarray):
            value = inner
            break
    if table:
        df = as_table(value, what=what)
        if "expression" in df.columns:
            missing = [a for a in AUS if a not in df.columns]
            if missing or df.height != len(EXPRESSIONS):
                raise InputError(
                    f"{what}: expected {len(EXPRESSIONS)} rows (one per expression) and columns expression, "
                    f"AU01..AU45; got {df.height} rows{', without ' + ', '.join(missing[:3]) if missing else ''}"
                )
            order = [expression_index(e, where=f"{what}: column expression") for e in df["expression"].to_list()]
            if sorted(order) != list(range(len(EXPRESSIONS))):
                raise InputError(f"{what}: column expression must name each of {', '.join(EXPRESSIONS)} once")
            out = np.empty((len(EXPRESSIONS), len(AUS)))
            try:
                out[order] = df.select(AUS).cast(pl.Float64).to_numpy()
            except pl.exceptions.PolarsError as exc:
                raise InputError(f"{what}: AU columns must hold numbers ({one_line(str(exc))})") from None
            return out
        value = df.to_numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}: expected numbers, a 7 x 18 table or its CSV path ({one_line(str(exc))})") from None


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
    df, first = read_csv_rows(path, ("expression", *AUS), what=what)
    if df.height != len(EXPRESSIONS):
        raise AudferError(f"{path}: {what} has {df.height} rows; expected {len(EXPRESSIONS)} (one per expression)")
    out = np.full((len(EXPRESSIONS), len(AUS)), np.nan)
    for row, rec in enumerate(df.iter_rows(named=True), start=first):
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


_NUMBER = re.compile(r"\d+")


def order_frames(files: list[Path], folder: Path | str = "") -> list[Path]:
    """Frame files in temporal order: by the numbers in their names, never as text.

    Every naming in use sorts right: ``1.jpg ... 16.jpg`` (DFEW ``clip_224x224_16f``, where text order
    would give 1, 10, 11, ..., 16, 2, ...), ``00001.jpg``, ``00001_00001.jpg``, ``img_00012.png``. The
    names' non-digit skeleton (``#.jpg``, ``img_#.png``) must be one pattern: a folder mixing patterns
    (``1.jpg`` beside ``img_2.jpg``, or ``.jpg`` beside ``.png``) or numbering one frame twice (``1.jpg``
    and ``01.jpg``) has no defined order and is an error. Gaps in the numbering (``1, 2, 4``) are
    reported with a warning: frames are missing, the order is still right.
    """
    if len(files) <= 1:
        return list(files)
    patterns: dict[str, Path] = {}
    numbered = []
    for f in files:
        patterns.setdefault(_NUMBER.sub("#", f.stem) + f.suffix.lower(), f)
        numbered.append((tuple(int(n) for n in _NUMBER.findall(f.stem)), f))
    if len(patterns) > 1:
        shown = ", ".join(f"{p.name} ({pat})" for pat, p in list(patterns.items())[:3])
        raise InputError(
            f"{folder}: frame files follow {len(patterns)} naming patterns ({shown}); cannot tell their temporal order"
        )
    numbered.sort(key=lambda kf: kf[0])
    numbers = [k for k, _ in numbered]
    for a, b in zip(numbered, numbered[1:]):
        if a[0] == b[0]:
            raise InputError(f"{folder}: {a[1].name} and {b[1].name} carry the same frame number")
    if numbers[0]:
        last = [k[-1] for k in numbers]
        if all(k[:-1] == numbers[0][:-1] for k in numbers):
            steps = np.diff(last)
            if (steps != 1).any():
                missing = int((steps - 1).sum())
                warnings.warn(
                    f"{folder}: frame numbering has gaps ({missing} frame number(s) missing between "
                    f"{last[0]} and {last[-1]}); frames are used in numeric order",
                    UserWarning,
                    stacklevel=3,
                )
    return [f for _, f in numbered]
