"""What every AU tool's reader shares: per-frame AU files mapped onto OpenFace 2.2's 18 AUs.

Paper §3.1 and Eq. 4 need per-frame AUs of every clip: an intensity per AU (the medians of K) and a
presence per AU (the video-level label). OpenFace 2.2 gives both; other tools give other AU sets as
other quantities. Each tool is a plug-in of ``audfer.au.tools`` (one module per tool: its name, header
detection, its ``AUMapping`` saying which OpenFace AU each column is and what it measures, its quirks as hooks;
``audfer.au.sources`` reads a file through them); this module holds what they share: the mapping types, mapping
files (``read_mapping_file``) and the generic reader (``read_mapped``) that turns a mapped file into the canonical
frames table of ``audfer.au.openface.read_openface`` (``frame`` 1-based,
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
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from audfer.errors import AudferError, InputError
from audfer.files import read_yaml, table_bytes
from audfer.vocab import AUS, AUS_INTENSITY

__all__ = [
    "KINDS",
    "AUColumn",
    "AUMapping",
    "AUAvailability",
    "header_of",
    "read_mapping_file",
    "PROBABILITY_THRESHOLD",
    "INTENSITY_THRESHOLD",
]

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


# ----------------------------------------------------------------------------------------------- detection


def header_of(path: Path) -> list[str]:
    """A file's column names as the readers will see them (for ``AUTool.detect``)."""
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
