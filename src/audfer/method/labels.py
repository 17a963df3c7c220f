"""Video-level AU labels (paper Eq. 4) and positive-class weights (Eq. 6-8).

Eq. 4: a clip's label for AU a is 1 iff ``AUa_c == 1`` on at least half of its valid frames
(``success == 1``, optionally ``confidence >= min_confidence``). The authors' loaders vote over
different frames per model and turn "no AU data" into "all AUs present"; here every clip votes
over all its valid frames and a clip without a valid frame keeps *missing* labels (null).

Eq. 6-8: ``pw = (c - p) / p`` with c clips and p positive clips, counted per AU over the clips whose
label for that AU is known (an AU the clip's tool does not measure is left out, never counted as 0). ``global`` uses all clips (one row repeated for every class), ``distinct``
each class's clips, ``minor`` 1.0 for the major classes and the per-class row for the minor
ones; a class is major when it holds more than 1/K of the counted clips (paper §3.3).

Degenerate counts never give inf, NaN or an unbounded weight, and no weight jumps when one clip turns positive. Rules
(the cells they set are listed in ``PosWeights.filled`` and in the pos-weight file's provenance):

- a class/AU cell (``distinct``, ``minor``) is ``(c - p) / p`` with ``p`` clamped to at least 1, capped at
  ``CELL_CAP`` (5) times the AU's ``global`` weight: one rule for p = 0 and p = 1, which therefore give the same
  weight, ``min(c - 1, 5 g)``. Without the cap a DFEW-sized Neutral cell (c = 2,135) would weigh 2,134 at one
  positive clip and the AU's global weight (133) at none; with it, 665 at both. The factor 5 leaves every cell of the
  authors' own DFEW and FERV39k tables (at most 4.8 times their global row) as it is;
- an AU with no positive clip in the whole split gets 1.0: every target of that AU is 0, mixed or not, so its weight
  multiplies nothing (the loss is the same for any value);
- an always-positive AU gets ``1 / (c - 1)`` (p clamped to ``c - 1``); a class with fewer than 2 counted clips
  gets 1.0.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import polars as pl

from audfer.errors import InputError
from audfer.io import (
    as_table,
    clip_labels_table,
    expression_table,
    id_key_expr,
    read_csv_rows,
    unique_clip_rows,
)
from audfer.vocab import AUS, EXPRESSIONS, PRESENCE_COLUMNS, STRATEGIES, expression_index

__all__ = [
    "video_au_labels",
    "pos_weights",
    "PosWeights",
    "official_pos_weights",
    "STRATEGIES",
    "default_minor_classes",
    "read_au_labels",
    "au_labels_table",
]


def video_au_labels(
    frames: pl.DataFrame | pl.LazyFrame,
    clips: list[str] | None = None,
    *,
    min_confidence: float | None = None,
) -> pl.DataFrame:
    """Eq. 4 over a frames table with ``clip_id`` (from ``read_openface_dir``).

    Returns ``clip_id, n_frames, n_valid, AU01..AU45`` (int8), one row per clip, sorted by ``clip_id``.
    A cell is null (unknown) when no valid frame measured that AU: the clip has no valid frame, or its AU
    source lacks the AU (``audfer.au.sources``). ``clips`` adds clips that have no rows at all. A ``LazyFrame``
    (a scan of the AU cache) is aggregated by polars' streaming engine, never held whole
    (``read_au_dir(reduce=...)``)."""
    frames = frames.lazy()
    valid = pl.col("success") == 1
    if min_confidence is not None:
        valid = valid & (pl.col("confidence") >= min_confidence)
    if min_confidence is not None and frames.select(pl.col("confidence").null_count()).collect().item():
        raise InputError(
            "--min-confidence: the AU source gives no face confidence for some frames "
            "(e.g. LibreFace writes none); leave the option out"
        )
    agg = [pl.len().cast(pl.Int64).alias("n_frames"), valid.cast(pl.Int64).sum().alias("n_valid")]
    agg += [(pl.col(c).cast(pl.Int64) * valid.cast(pl.Int64)).sum().alias(au) for c, au in zip(PRESENCE_COLUMNS, AUS)]
    # per AU, the valid frames that measured it: a null presence (a tool without that AU) is unknown, not 0
    agg += [
        (valid & pl.col(c).is_not_null()).cast(pl.Int64).sum().alias(f"_n_{au}") for c, au in zip(PRESENCE_COLUMNS, AUS)
    ]
    lazy = frames.group_by("clip_id").agg(agg)
    # "at least half": 2 * positives >= n (valid frames measuring the AU), exact in integers
    out = (
        lazy.with_columns(
            pl.when(pl.col(f"_n_{au}") > 0)
            .then((2 * pl.col(au) >= pl.col(f"_n_{au}")).cast(pl.Int8))
            .otherwise(None)
            .alias(au)
            for au in AUS
        )
        .select("clip_id", "n_frames", "n_valid", *AUS)
        .collect(engine="streaming")
    )
    return with_clips(out, clips or [])


def with_clips(labels: pl.DataFrame, clips: list[str]) -> pl.DataFrame:
    """``labels`` (``video_au_labels``' table, possibly from several chunks) with a row for every clip of ``clips``
    that has none (no frame at all: ``n_frames`` 0, every AU unknown), sorted by ``clip_id``."""
    absent = sorted(set(clips) - set(labels["clip_id"].to_list()))
    if absent:
        empty = pl.DataFrame(
            {"clip_id": absent, "n_frames": [0] * len(absent), "n_valid": [0] * len(absent)},
            schema={"clip_id": pl.String, "n_frames": pl.Int64, "n_valid": pl.Int64},
        ).with_columns(pl.lit(None, dtype=pl.Int8).alias(au) for au in AUS)
        labels = pl.concat([labels.select("clip_id", "n_frames", "n_valid", *AUS), empty])
    return labels.select("clip_id", "n_frames", "n_valid", *AUS).sort("clip_id")


def read_au_labels(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read ``video_au_labels.csv``: AU cells must be 0, 1 or empty (missing)."""
    df, first = read_csv_rows(path, ("clip_id", *AUS), what="video AU labels")
    if df.height == 0:
        raise InputError(f"{path}: no clip rows (only a header); expected one row of AU labels per clip")
    unique_clip_rows(path, df["clip_id"].to_list(), list(range(first, df.height + first)), what="video AU labels")
    for au in AUS:
        bad = df.with_row_index().filter(pl.col(au).is_not_null() & ~pl.col(au).str.strip_chars().is_in(["0", "1", ""]))
        if bad.height:
            raise InputError(
                f"{path}: row {int(bad['index'][0]) + first}, column {au}: {bad[au][0]!r}; expected 0, 1 or empty"
            )
    return df.select(
        pl.col("clip_id").str.strip_chars(),
        *[pl.col(au).str.strip_chars().replace("", None).cast(pl.Int8) for au in AUS],
    )


def au_labels_table(au_labels: object, *, what: str = "video AU labels") -> pl.DataFrame:
    """Video AU labels in every form audfer writes -> ``clip_id`` (str) and ``AU01..AU45`` (int8, null = unknown), as
    ``read_au_labels`` returns them: the path of a ``video_au_labels.csv`` (``audfer au-labels``), or a table (polars
    or pandas: ``video_au_labels``' result, a CSV read as it comes) whose AU cells are 0, 1 or empty."""
    if isinstance(au_labels, (str, os.PathLike)):
        return read_au_labels(au_labels)
    df = as_table(au_labels, what=what)
    missing = [c for c in ("clip_id", *AUS) if c not in df.columns]
    if missing:
        raise InputError(
            f"{what}: no column {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}; expected clip_id and "
            f"{AUS[0]}..{AUS[-1]} (`audfer au-labels` writes them)"
        )
    cols = []
    for au in AUS:
        text = df[au].cast(pl.String).str.strip_chars()
        ok = text.is_null() | text.is_in(["", "0", "1", "0.0", "1.0"])
        if not ok.all():
            row = int((~ok).arg_max() or 0)
            raise InputError(f"{what}: row {row}, column {au}: {df[au][row]!r}; expected 0, 1 or empty")
        cols.append(text.replace("", None).cast(pl.Float64).cast(pl.Int8).alias(au))
    return pl.DataFrame([df["clip_id"].cast(pl.String).str.strip_chars().alias("clip_id"), *cols])


def default_minor_classes(class_counts: np.ndarray) -> tuple[int, ...]:
    """Classes with at most 1/K of the clips (paper §3.3: major = more than one K-th)."""
    counts = np.asarray(class_counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return ()
    return tuple(int(i) for i in np.flatnonzero(counts / total <= 1.0 / len(counts)))


#: A class/AU cell's pos-weight is at most this many times the AU's global weight (module docstring).
CELL_CAP = 5.0


def _ratio(c: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(c - p) / p with p clamped into [1, c - 1]; 1.0 where c < 2 (see module docstring)."""
    c = np.broadcast_to(np.asarray(c, dtype=np.float64), np.shape(p))
    p = np.asarray(p, dtype=np.float64)
    ok = c >= 2
    pc = np.clip(p, 1.0, np.maximum(c - 1.0, 1.0))
    return np.where(ok, (c - pc) / pc, 1.0)


@dataclass
class PosWeights:
    """Positive-class weights (Eq. 6-8) and the counts they came from."""

    values: np.ndarray  #: 7 x 18, row = expression (label order)
    strategy: str
    minor: tuple[int, ...]  #: minor classes (indices) used by "minor"
    class_counts: np.ndarray = field(repr=False)  #: clips per class with valid AU labels
    positive_counts: np.ndarray = field(repr=False)  #: 7 x 18 positive clips
    n_missing_au: int = 0  #: labelled clips without valid AU labels (not counted)
    n_unlabelled: int = 0  #: clips with AU labels but no expression label (not counted)
    clip_ids: list[str] = field(default_factory=list, repr=False)  #: the clips counted
    known_counts: np.ndarray | None = field(default=None, repr=False)  #: 7 x 18 clips whose label for the AU is known
    filled: list[str] = field(default_factory=list)  #: cells set by a rule for degenerate counts (module docstring)

    @property
    def global_row(self) -> np.ndarray:
        """Eq. 6: one positive-class weight per AU over all clips, (clips - positives) / positives over the clips whose
        label is known (``_ratio``; 1.0 for an AU without any positive clip)."""
        c = self.known_counts.sum(axis=0) if self.known_counts is not None else self.class_counts.sum()
        p = self.positive_counts.sum(axis=0)
        return np.where((p == 0) & (c >= 2), 1.0, _ratio(c, p))

    @property
    def unknown_aus(self) -> list[str]:
        """AUs no counted clip has a label for (their weights are 1.0 and the AU loss masks them)."""
        if self.known_counts is None:
            return []
        return [a for a, n in zip(AUS, self.known_counts.sum(axis=0)) if n == 0]

    def table(self) -> pl.DataFrame:
        """The weights as a table: ``expression`` then one column per AU."""
        return expression_table(self.values)


def pos_weights(
    au_labels: pl.DataFrame | str | os.PathLike[str],
    clip_labels: pl.DataFrame | str | os.PathLike[str],
    strategy: str = "global",
    *,
    minor: list[int | str] | None = None,
) -> PosWeights:
    """Eq. 6 (global), 7 (distinct) or 8 (minor) from video AU labels and clip labels.

    Both come in any form audfer writes: ``au_labels`` a ``video_au_labels.csv`` path or table
    (``au_labels_table``), ``clip_labels`` a ``clip_labels.csv`` path or table with labels as indices or class names
    (``audfer.io.clip_labels_table``). Clip ids match as ``read_clip_labels`` matches them (``25`` is ``00025``)."""
    if strategy not in STRATEGIES:
        raise InputError(f"unknown pos-weight strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    clip_labels = clip_labels_table(clip_labels).with_columns(_key=id_key_expr())
    au_labels = au_labels_table(au_labels).with_columns(_key=id_key_expr())
    joined = clip_labels.select("clip_id", "_key", "label").join(au_labels.select("_key", *AUS), on="_key", how="left")
    has_any = pl.any_horizontal(pl.col(au).is_not_null() for au in AUS)
    n_missing = joined.filter(~has_any).height
    n_unlabelled = au_labels.join(clip_labels, on="_key", how="anti").height
    counted = joined.filter(has_any)
    y = counted["label"].to_numpy().astype(np.int64)
    raw = counted.select(AUS).to_numpy().astype(np.float64)  # NaN = unknown (a tool without that AU)
    known = ~np.isnan(raw)
    k = len(EXPRESSIONS)
    class_counts = np.bincount(y, minlength=k).astype(np.float64)
    known_counts = np.zeros((k, len(AUS)))
    np.add.at(known_counts, y, known.astype(np.float64))
    positives = np.zeros((k, len(AUS)))
    np.add.at(positives, y, np.nan_to_num(raw, nan=0.0))
    minor_idx = (
        tuple(sorted({expression_index(m, where="minor class") for m in minor}))
        if minor is not None
        else default_minor_classes(class_counts)
    )
    c_all, p_all = known_counts.sum(axis=0), positives.sum(axis=0)
    global_row = np.where((p_all == 0) & (c_all >= 2), 1.0, _ratio(c_all, p_all))
    filled = [f"{au}: no positive clip in the split, 1.0" for au, c, p in zip(AUS, c_all, p_all) if c >= 2 and p == 0]
    if strategy == "global":
        values = np.tile(global_row, (k, 1))
    else:
        raw = _ratio(known_counts, positives)
        cap = CELL_CAP * np.broadcast_to(global_row[None, :], raw.shape)
        capped = (raw > cap) & (known_counts >= 2) & (p_all[None, :] > 0)
        values = np.where(capped, cap, raw)
        values = np.where((p_all[None, :] == 0) & (known_counts >= 2), 1.0, values)  # the AU is never positive
        rows = range(k) if strategy == "distinct" else minor_idx
        filled += [
            f"{EXPRESSIONS[i]}/{au}: {int(positives[i, j])} positive of {int(known_counts[i, j])} clips, "
            f"(c - p) / p = {raw[i, j]:.4g} capped at {CELL_CAP:g} x the AU's global weight {global_row[j]:.4g} "
            f"= {cap[i, j]:.4g}"
            for i in rows
            for j, au in enumerate(AUS)
            if capped[i, j]
        ]
        if strategy == "minor":
            major = [i for i in range(k) if i not in minor_idx]
            values[major] = 1.0
    return PosWeights(
        values,
        strategy,
        minor_idx,
        class_counts,
        positives,
        n_missing,
        n_unlabelled,
        counted["clip_id"].cast(pl.String).to_list(),
        known_counts,
        filled,
    )


# The authors' hard-coded tables, for a faithful reproduction of their runs.
OFFICIAL_MINOR = (4, 5, 6)  # Surprise, Disgust, Fear


def official_pos_weights(dataset: str, strategy: str) -> np.ndarray:
    """The authors' pos_weight tables (``dfew`` or ``ferv39k``) laid out as 7 x 18.

    Known defects, kept as published: they were computed from frame counts, not the clip
    counts of Eq. 6-8; FERV39K's global row is a copy of its Surprise row; its counts appear to
    include the test split. The official "minor" Fear rows were copy-paste errors; this preset
    uses the published Fear row, which is what Eq. 8 asks for.
    """
    data = json.loads(resources.files("audfer.resources").joinpath("official_constants.json").read_text())
    key = dataset.strip().upper().replace("-", "")
    if key not in data["pos_weight"]:
        raise InputError(f"no official pos-weight preset for {dataset!r}; expected dfew or ferv39k")
    if strategy not in STRATEGIES:
        raise InputError(f"unknown pos-weight strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    table = data["pos_weight"][key]
    if strategy == "global":
        return np.tile(np.asarray(table["global"], dtype=np.float64), (len(EXPRESSIONS), 1))
    values = np.asarray(table["per_expression"], dtype=np.float64)
    if strategy == "minor":
        values[[i for i in range(len(EXPRESSIONS)) if i not in OFFICIAL_MINOR]] = 1.0
    return values
