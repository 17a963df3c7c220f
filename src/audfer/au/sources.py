"""Per-frame AU files from the tools people install, mapped onto OpenFace 2.2's 18 AUs.

Paper §3.1 and Eq. 4 need per-frame AUs of every clip: an intensity per AU (the medians of K) and a
presence per AU (the video-level label). OpenFace 2.2 gives both; other tools give other AU sets as
other quantities. This module is the one place that says, per tool, which OpenFace AU each column is
and what it measures (``MAPPINGS``, rendered for the docs by ``mapping_markdown``), and reads each
tool's file into the canonical frames table of ``audfer.au.openface.read_openface`` (``frame`` 1-based,
``timestamp``, ``confidence``, ``success``, ``face_id``, 17 ``AUxx_r``, 18 ``AUxx_c``).

**Unknown is not absent.** An AU a tool does not measure is *null* in the canonical table, never 0:
Eq. 4 then gives it an empty video label, the pos-weight counts (Eq. 6-8) leave it out, the AU loss
masks it per element, and §3.1 marks its K column as unmeasured.

How each quantity becomes what the method needs (rules, in order of preference):

- presence (Eq. 4): a ``presence`` column (0/1) as is; else a ``probability`` column, present when
  ``p >= 0.5``; else an ``intensity`` column, present when its value on the 0-5 scale is at least the
  column's threshold (default 2.0: DISFA's occurrence convention, intensity level B or higher, the data
  LibreFace's intensity model was trained on);
- intensity (§3.1): an ``intensity`` column rescaled to 0-5; else a ``probability`` column times 5
  (a documented stand-in: py-feat has no intensity output; K built from it measures how sure the
  detector is, on OpenFace's 0-5 range). A presence-only AU has no intensity. AU28 never has one
  (OpenFace has no AU28 intensity model; K's AU28 column follows the paper's rule, see ``knowledge``).

Frame numbers are made 1-based like OpenFace's (py-feat's and LibreFace's 0-based ``frame`` /
``frame_idx`` + 1), so frame-probability files and frame images line up with every source.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from audfer.au.openface import MAX_EXACT_INT, read_openface
from audfer.errors import AudferError, InputError
from audfer.files import check_text_file, one_line, read_yaml, table_bytes
from audfer.io import check_unique_columns, header_names, order_frames, rows_below
from audfer.vocab import AU_SOURCES, AUS, AUS_INTENSITY, INTENSITY_COLUMNS, PRESENCE_COLUMNS

__all__ = [
    "SOURCES",
    "KINDS",
    "AUColumn",
    "AUMapping",
    "AUAvailability",
    "MAPPINGS",
    "detect_source",
    "read_au_file",
    "read_mapping_file",
    "mapping_markdown",
    "PROBABILITY_THRESHOLD",
    "INTENSITY_THRESHOLD",
]

SOURCES = AU_SOURCES  #: the tools read here (``audfer.vocab.AU_SOURCES``)
KINDS = ("presence", "probability", "intensity")
PROBABILITY_THRESHOLD = 0.5
INTENSITY_THRESHOLD = 2.0  # on the 0-5 scale


@dataclass(frozen=True)
class AUColumn:
    """One column of a tool's file: which OpenFace AU it is and what it measures."""

    column: str
    au: str  #: one of ``vocab.AUS``
    kind: str  #: presence (0/1), probability ([0, 1]) or intensity ([0, scale])
    scale: float = 5.0  #: full scale of an intensity column (5 for 0-5, 1 for 0-1)
    threshold: float = INTENSITY_THRESHOLD  #: intensity -> presence, on the 0-5 scale

    def __post_init__(self) -> None:
        if self.au not in AUS:
            raise InputError(f"column {self.column!r}: {self.au!r} is not one of OpenFace's 18 AUs ({', '.join(AUS)})")
        if self.kind not in KINDS:
            raise InputError(f"column {self.column!r}: kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            raise InputError(f"column {self.column!r}: scale {self.scale!r}; expected a positive number (5 or 1)")
        if not (isinstance(self.threshold, (int, float)) and 0 < self.threshold <= 5):
            raise InputError(f"column {self.column!r}: threshold {self.threshold!r}; expected a number in (0, 5]")


@dataclass(frozen=True)
class AUAvailability:
    """Which of the 18 AUs a source gives as presence (Eq. 4) and as intensity (§3.1), and how."""

    sources: tuple[str, ...]
    presence: tuple[str, ...]
    intensity: tuple[str, ...]
    how: dict = field(default_factory=dict, compare=False, hash=False)  #: AU -> one line per quantity

    @property
    def missing_presence(self) -> tuple[str, ...]:
        """AUs with no presence rule in the source(s): masked in the presence targets, never taken as absent."""
        return tuple(a for a in AUS if a not in self.presence)

    @property
    def missing_intensity(self) -> tuple[str, ...]:
        """AUs with no intensity column in the source(s)."""
        return tuple(a for a in AUS if a not in self.intensity)

    def as_dict(self) -> dict:
        """The JSON form written to provenance sidecars and run records."""
        return {
            "sources": list(self.sources),
            "presence": list(self.presence),
            "intensity": list(self.intensity),
            "masked_aus": list(self.missing_presence),
            "unmeasured_intensity": list(self.missing_intensity),
        }

    @staticmethod
    def combine(parts: list[AUAvailability]) -> AUAvailability:
        """Several sources in one folder: an AU counts as given when every source gives it (the rest are
        null for some clips, which the per-element masks handle)."""
        if not parts:
            return AUAvailability((), (), ())
        pres = [a for a in AUS if all(a in p.presence for p in parts)]
        inten = [a for a in AUS if all(a in p.intensity for p in parts)]
        return AUAvailability(tuple(sorted({s for p in parts for s in p.sources})), tuple(pres), tuple(inten))


@dataclass(frozen=True)
class AUMapping:
    """A tool's columns and the meta columns (frame, time, confidence, success) of its per-frame file."""

    source: str
    columns: tuple[AUColumn, ...]
    frame: str | None = None  #: frame number column (None: row order)
    frame_base: int = 1  #: 0 when the tool counts frames from 0
    timestamp: str | None = None
    timestamp_scale: float = 1.0  #: multiply to get seconds (1e-3 for milliseconds)
    confidence: str | None = None
    success: str | None = None
    ignored: tuple[str, ...] = ()  #: AU columns of the tool that are not OpenFace AUs (documented, not read)

    def _by_au(self, au: str, kind: str) -> AUColumn | None:
        return next((c for c in self.columns if c.au == au and c.kind == kind), None)

    def presence_rule(self, au: str) -> tuple[AUColumn, str] | None:
        """How ``au``'s presence is read: ``(column, rule)`` from a presence, probability or intensity column (in that order of preference), or None when the tool does not give it."""
        for kind in ("presence", "probability", "intensity"):
            col = self._by_au(au, kind)
            if col is not None:
                if kind == "presence":
                    return col, f"`{col.column}` (0/1)"
                if kind == "probability":
                    return col, f"`{col.column}` >= {PROBABILITY_THRESHOLD:g}"
                return col, f"`{col.column}` >= {col.threshold * col.scale / 5:g} (0-{col.scale:g} scale)"
        return None

    def intensity_rule(self, au: str) -> tuple[AUColumn, str] | None:
        """``(column, rule)`` giving ``au``'s intensity on OpenFace's 0-5 scale, or None when the tool has none."""
        if au not in AUS_INTENSITY:
            return None
        col = self._by_au(au, "intensity")
        if col is not None:
            return col, f"`{col.column}`" + ("" if col.scale == 5 else f" x {5 / col.scale:g}")
        col = self._by_au(au, "probability")
        if col is not None:
            return col, f"5 x `{col.column}` (probability, no intensity)"
        return None

    def availability(self) -> AUAvailability:
        """Which of the 18 AUs this mapping gives, and how (``AUAvailability``)."""
        how = {}
        for a in AUS:
            p, i = self.presence_rule(a), self.intensity_rule(a)
            how[a] = {"presence": p[1] if p else None, "intensity": i[1] if i else None}
        return AUAvailability(
            (self.source,),
            tuple(a for a in AUS if self.presence_rule(a)),
            tuple(a for a in AUS if self.intensity_rule(a)),
            how,
        )


def _openface_mapping() -> AUMapping:
    cols = [AUColumn(c, c[:4], "intensity") for c in INTENSITY_COLUMNS] + [
        AUColumn(c, c[:4], "presence") for c in PRESENCE_COLUMNS
    ]
    return AUMapping(
        "openface", tuple(cols), frame="frame", timestamp="timestamp", confidence="confidence", success="success"
    )


_PYFEAT_AUS = tuple(a for a in AUS if a != "AU45")  # py-feat 2.x detects every OpenFace AU but the blink
_LIBREFACE_DETECT = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23)  # + 24, not an OpenFace AU
_LIBREFACE_INTENSITY = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)

#: The documented mapping of every built-in source (``table`` comes from the user's mapping file).
MAPPINGS: dict[str, AUMapping] = {
    "openface": _openface_mapping(),
    # py-feat 2.x Detector output: 20 AU presence probabilities AU01..AU43 (no AU45), 0-based `frame`,
    # `FaceScore`, face box; one row per face per frame (py-feat's README and its test data).
    "pyfeat": AUMapping(
        "pyfeat",
        tuple(AUColumn(a, a, "probability") for a in _PYFEAT_AUS),
        frame="frame",
        frame_base=0,
        timestamp="approx_time",
        confidence="FaceScore",
        ignored=("AU11", "AU24", "AU43"),
    ),
    # LibreFace (pip package, libreface/AU_Recognition/inference.py format_output_video): `au_<n>` 0/1 detections
    # of BP4D's 12 AUs, `au_<n>_intensity` 0-5 regressions of DISFA's 12 AUs; `frame_idx` 0-based,
    # `frame_time_in_ms` (libreface/utils.py get_frames_from_video_*).
    "libreface": AUMapping(
        "libreface",
        tuple(AUColumn(f"au_{n}", f"AU{n:02d}", "presence") for n in _LIBREFACE_DETECT)
        + tuple(AUColumn(f"au_{n}_intensity", f"AU{n:02d}", "intensity") for n in _LIBREFACE_INTENSITY),
        frame="frame_idx",
        frame_base=0,
        timestamp="frame_time_in_ms",
        timestamp_scale=1e-3,
        ignored=("au_24",),
    ),
}


def mapping_markdown() -> str:
    """The per-source AU table of ``docs/au-sources.md`` (a test keeps the two identical)."""
    names = ("openface", "pyfeat", "libreface")
    avail = {n: MAPPINGS[n].availability() for n in names}
    lines = [
        "| AU | " + " | ".join(f"{n}: presence (Eq. 4) | {n}: intensity (§3.1)" for n in names) + " |",
        "|---|" + "---|---|" * len(names),
    ]
    for a in AUS:
        cells = []
        for n in names:
            h = avail[n].how[a]
            cells += [h["presence"] or "— (unknown)", h["intensity"] or "— (unknown)"]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- detection

_LIBREFACE_COLUMN = re.compile(r"^au_\d+(_intensity)?$")


def _header(path: Path) -> list[str]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise InputError(f"{path}: cannot read AU file ({exc.strerror})") from None
    # as a spreadsheet saved it (UTF-16, ``sep=`` line, CR-only line ends): the header the readers will see
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader says it once
        try:
            head, sep, _ = table_bytes(path, head, "an AU CSV")
        except AudferError:
            sep = None  # not text: the reader names the problem
    first = head.split(b"\n", 1)[0]
    text = first.decode("utf-8", "replace").lstrip("\ufeff").replace("\r", "").replace("\n", "")
    return [c.strip().strip('"') for c in text.split(sep or ",")]


def detect_source(path: str | os.PathLike, header: list[str] | None = None) -> str:
    """``openface``, ``pyfeat`` or ``libreface`` from a file's header; an unknown header is an error."""
    path = Path(path)
    names = header if header is not None else _header(path)
    have = set(names)
    if {"AU01_r", "AU01_c"} & have or any(c.endswith("_c") and c[:2] == "AU" for c in have):
        return "openface"
    if "AU01" in have and ({"FaceScore", "input", "FaceRectX"} & have):
        return "pyfeat"
    if any(_LIBREFACE_COLUMN.match(c) for c in have):
        return "libreface"
    check_text_file(path, "an AU CSV (a binary file in the AU folder?)")  # a binary file: say so, not its bytes
    shown = one_line(", ".join(names[:8]) + (", ..." if len(names) > 8 else ""), 120)
    raise InputError(
        f"{path}: unrecognised AU file header ({shown}); expected OpenFace 2.x (AU01_r ... AU45_c), py-feat "
        f"(AU01 ... AU43 with FaceScore/input), LibreFace (au_1 ..., au_1_intensity ...), or use --source table "
        f"with --mapping for any other per-frame table"
    )


# ----------------------------------------------------------------------------------------------- mapping files

_MAPPING_KEYS = {"frame", "frame_base", "timestamp", "timestamp_scale", "confidence", "success", "aus"}
_COLUMN_KEYS = {"column", "au", "kind", "scale", "threshold"}


def read_mapping_file(path: str | os.PathLike) -> AUMapping:
    """A generic table's mapping (YAML; see ``docs/au-sources.md``)::

    frame: frame_no          # optional (default: row order); frame_base: 0 if it counts from 0
    confidence: face_conf    # optional; success: ok (0/1), optional; timestamp: t (seconds), optional
    aus:
      - {column: brow_inner, au: AU01, kind: intensity, scale: 5}
      - {column: smile_p, au: AU12, kind: probability}
      - {column: blink, au: AU45, kind: presence}
    """
    path = Path(path)
    data = read_yaml(path, "an AU mapping file (YAML)", InputError)
    if not isinstance(data, dict) or not isinstance(data.get("aus"), list) or not data["aus"]:
        raise InputError(f"{path}: an AU mapping needs a non-empty 'aus' list of {{column, au, kind}} entries")
    unknown = set(data) - _MAPPING_KEYS
    if unknown:
        raise InputError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_MAPPING_KEYS))}"
        )
    cols = []
    for i, entry in enumerate(data["aus"], start=1):
        if not isinstance(entry, dict) or not {"column", "au", "kind"} <= set(entry):
            raise InputError(f"{path}: aus entry {i}: expected a mapping with column, au and kind")
        bad = set(entry) - _COLUMN_KEYS
        if bad:
            raise InputError(f"{path}: aus entry {i}: unknown key(s) {', '.join(sorted(bad))}")
        try:
            cols.append(
                AUColumn(
                    str(entry["column"]),
                    str(entry["au"]).upper(),
                    str(entry["kind"]),
                    entry.get("scale", 5.0),
                    entry.get("threshold", INTENSITY_THRESHOLD),
                )
            )
        except AudferError as exc:
            raise InputError(f"{path}: aus entry {i}: {exc}") from None
    seen: dict[tuple[str, str], str] = {}
    for c in cols:
        key = (c.au, c.kind)
        if key in seen:
            raise InputError(f"{path}: {c.au} is mapped twice as {c.kind} ({seen[key]} and {c.column})")
        seen[key] = c.column
    base = data.get("frame_base", 1)
    if base not in (0, 1):
        raise InputError(f"{path}: frame_base {base!r}; expected 0 or 1")
    scale = data.get("timestamp_scale", 1.0)
    if not isinstance(scale, (int, float)) or not scale > 0:
        raise InputError(f"{path}: timestamp_scale {scale!r}; expected a positive number")
    meta = {
        k: (str(data[k]) if data.get(k) is not None else None) for k in ("frame", "timestamp", "confidence", "success")
    }
    return AUMapping(
        "table",
        tuple(cols),
        frame=meta["frame"],
        frame_base=base,
        timestamp=meta["timestamp"],
        timestamp_scale=float(scale),
        confidence=meta["confidence"],
        success=meta["success"],
    )


# ----------------------------------------------------------------------------------------------- readers


def _read_raw(path: Path) -> tuple[pl.DataFrame, int]:
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


def _numbers(path: Path, df: pl.DataFrame, col: str) -> np.ndarray:
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


def _frame_numbers(path: Path, df: pl.DataFrame, mapping: AUMapping) -> np.ndarray:
    n = df.height
    if mapping.source == "pyfeat" and "input" in df.columns:
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
    if mapping.frame is None or mapping.frame not in df.columns:
        if mapping.frame is not None and mapping.source == "table":
            raise InputError(f"{path}: no column {mapping.frame!r} (the mapping's frame column)")
        return np.arange(1, n + 1, dtype=np.int64)
    raw = _numbers(path, df, mapping.frame)
    bad = np.flatnonzero(np.isnan(raw) | (raw < 0) | (raw != np.round(raw)) | (raw > MAX_EXACT_INT))
    if bad.size:
        r = int(bad[0])
        raise InputError(
            f"{path}: row {r + 2}, column {mapping.frame}: {df[mapping.frame][r]!r}; expected a frame "
            f"number (an integer from {mapping.frame_base} to {MAX_EXACT_INT})"
        )
    return raw.astype(np.int64) + (1 - mapping.frame_base)


def read_au_file(
    path: str | os.PathLike,
    source: str = "auto",
    *,
    mapping: AUMapping | None = None,
    face_id: int | None = None,
    strict: bool = False,
) -> tuple[pl.DataFrame, str]:
    """One clip's per-frame AU file -> (canonical frames table, source name).

    ``source``: one of ``SOURCES`` or ``auto`` (the header decides; with a ``mapping``, ``table``).
    A row whose AU cells are all empty (py-feat/LibreFace: no face found) is a failed frame
    (``success = 0``); an empty cell beside filled ones, text, inf, or a value outside its kind's range
    is an error naming file, row and column. Several faces in one frame (py-feat writes one row per
    face): the largest face box is kept (ties: the higher ``FaceScore``)."""
    path = Path(path)
    if source not in (*SOURCES, "auto"):
        raise InputError(f"unknown AU source {source!r}; expected one of {', '.join(SOURCES)} or auto")
    if source == "auto":
        source = "table" if mapping is not None else detect_source(path)
    if source == "openface":
        return read_openface(path, face_id=face_id, strict=strict), "openface"
    if source == "table":
        if mapping is None:
            raise InputError(f"{path}: --source table needs --mapping (a YAML file naming each AU column)")
    else:
        mapping = MAPPINGS[source]
    df, skipped = _read_raw(path)
    with rows_below(skipped):
        return _read_table(path, df, source, mapping), source


def _read_table(path: Path, df: pl.DataFrame, source: str, mapping: AUMapping) -> pl.DataFrame:
    missing = [c.column for c in mapping.columns if c.column not in df.columns]
    if missing:
        hint = {"pyfeat": "py-feat 2.x Detector output", "libreface": "LibreFace video output"}.get(
            source, "the mapping"
        )
        raise InputError(f"{path}: missing AU column(s) {', '.join(missing)} ({source}: expected {hint})")
    for meta in ("confidence", "success", "timestamp"):
        name = getattr(mapping, meta)
        if source == "table" and name is not None and name not in df.columns:
            raise InputError(f"{path}: no column {name!r} (the mapping's {meta} column)")
    if df.height == 0:
        raise InputError(f"{path}: no rows; expected one row per frame")

    values = {c.column: _numbers(path, df, c.column) for c in mapping.columns}
    block = np.stack(list(values.values()), axis=1)
    empty_row = np.isnan(block).all(axis=1)
    partial = np.isnan(block).any(axis=1) & ~empty_row
    if partial.any():
        r = int(np.flatnonzero(partial)[0])
        col = next(c for c, v in values.items() if np.isnan(v[r]))
        raise InputError(f"{path}: row {r + 2}, column {col}: empty or NaN while the row's other AU cells are filled")
    for c in mapping.columns:
        _check_range(path, c, values[c.column])

    frame = _frame_numbers(path, df, mapping)
    n = df.height
    conf = _numbers(path, df, mapping.confidence) if mapping.confidence in df.columns else np.full(n, np.nan)
    if mapping.success is not None and mapping.success in df.columns:
        success = _numbers(path, df, mapping.success)
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
            _numbers(path, df, mapping.timestamp) * mapping.timestamp_scale
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
        if source != "pyfeat":
            _, first = np.unique(frame, return_index=True)
            rows = sorted(set(range(n)) - set(first.tolist()))
            raise InputError(
                f"{path}: row {rows[0] + 2}: frame {frame[rows[0]] - (1 - mapping.frame_base)} appears "
                f"twice; expected one row per frame"
            )
        area = np.ones(n)
        if {"FaceRectWidth", "FaceRectHeight"} <= set(df.columns):
            area = np.nan_to_num(_numbers(path, df, "FaceRectWidth") * _numbers(path, df, "FaceRectHeight"), nan=-1.0)
        keyconf = np.nan_to_num(conf, nan=-1.0)
        order = np.lexsort((-keyconf, -area, frame))  # per frame: largest box, then highest score first
        _, first = np.unique(frame[order], return_index=True)
        order = order[first]
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
