"""Quantitative AU-expression knowledge (paper §3.1, Fig. 4).

Per dataset: M[e, a] = median of the AU intensity ``AUa_r`` over the kept frames of all clips
labelled e (17 AUs); K = sigmoid(M - (max M + min M) / 2); the AU28 column (OpenFace has no AU28
intensity) is the mean of all other entries of K, after the sigmoid (``knowledge_from_medians``).
Across datasets: C = sigmoid(sum_d K_d - S), S = 2.5 for the paper's four datasets. AUs an AU tool does
not measure (``audfer.au.sources``) are null in the frames table: their K column is marked unmeasured
(``KnowledgeResult.measured``) and filled like AU28, and ``combine_knowledge`` combines each AU over the
sources that measured it.

Kept frames: valid (``success == 1``), optionally above a confidence, optionally only frames
whose base-model probability for their own label exceeds θ (§3.1, Eq. 3). Zero policy for
intensities: ``keep`` (0 = inactive) or ``interpolate`` (the paper's "sample-wise linear
interpolation for 0 values", Eq. 1: per clip and AU, zeros are replaced by linear interpolation
over the frame index between the nearest non-zero values; edges take the nearest non-zero value;
an all-zero series stays zero).

The authors published only their final matrix (``paper_knowledge()``); it cannot be reproduced
exactly from the paper's text (its pre-sigmoid sum reaches 5.10 although four sigmoid outputs
sum to less than 4). In it AU28 is one constant: the mean of all other entries in pre-sigmoid space.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import polars as pl

from audfer.errors import InputError
from audfer.io import clip_labels_table, expression_matrix, expression_table, id_key_expr
from audfer.vocab import AUS, AUS_INTENSITY, EXPRESSIONS, INTENSITY_COLUMNS, expression_index

__all__ = [
    "extract_knowledge",
    "combine_knowledge",
    "paper_knowledge",
    "KnowledgeResult",
    "knowledge_from_medians",
    "interpolate_zeros",
    "ZERO_POLICIES",
    "DEFAULT_SHIFT",
    "knowledge_with_unmeasured",
    "AUTHOR_KNOWLEDGE",
    "BUILTIN_KNOWLEDGE",
    "authors_knowledge",
]

ZERO_POLICIES = ("keep", "interpolate")
DEFAULT_SHIFT = 2.5
_AU28 = AUS.index("AU28")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def paper_knowledge() -> np.ndarray:
    """The authors' matrix (7 x 18, label order x AU order), exactly as they trained with it."""
    data = json.loads(resources.files("audfer.resources").joinpath("official_constants.json").read_text())
    return np.asarray(data["knowledge_matrix"], dtype=np.float64)


#: The other matrices the authors' code trained with, by ``au.knowledge`` name: the code that used each
#: (Cross-Innovation-Lab/AU-DFER, ``AU_cri_set``; file @ commit) is in ``resources/authors_knowledge.json``.
#: ``authors-a``: an older matrix, the shipped one's rows to 0.995 correlation (AU28 a constant 0.291);
#: ``authors-a-permuted``: the same seven rows with four of them (Sad, Neutral, Surprise, Fear) moved one place;
#: ``authors-d``: a matrix that runs against the shipped one (Happy row correlation -0.81 over AU01..AU26, Happy/AU12
#: 0.004 against 0.93; AU28 and AU45 both 1.75); ``paper-happy-row``: the shipped matrix as the solver whose
#: ``line.argmax()`` over integer labels always gives 0 used it: every clip weighted by the Happy row.
AUTHOR_KNOWLEDGE = ("authors-a", "authors-a-permuted", "authors-d", "paper-happy-row")
#: Every ``au.knowledge`` value that is not a file.
BUILTIN_KNOWLEDGE = ("paper", "per-fold", "ones", *AUTHOR_KNOWLEDGE)


def authors_knowledge(name: str) -> tuple[np.ndarray, list[str]]:
    """One of ``AUTHOR_KNOWLEDGE`` as a 7 x 18 matrix (label order x AU order) and the code that used it
    (``file @ commit`` in Cross-Innovation-Lab/AU-DFER)."""
    data = json.loads(resources.files("audfer.resources").joinpath("authors_knowledge.json").read_text())
    if name == "paper-happy-row":
        return np.tile(paper_knowledge()[0], (len(EXPRESSIONS), 1)), [
            "M3DFEL_AU/solver_with_AU_weighted.py @ 694762ee0a862c6038d79e804180377308525a4e (AU_cri_set: "
            "emo = line.argmax() over integer labels, always 0)"
        ]
    if name == "authors-a":
        return np.asarray(data["A"]["rows"], dtype=np.float64), list(data["A"]["used_by"])
    if name == "authors-a-permuted":
        a = np.asarray(data["A"]["rows"], dtype=np.float64)
        moved = data["A-permuted"]["row_of"]
        rows = [a[EXPRESSIONS.index(moved.get(e, e))] for e in EXPRESSIONS]
        return np.stack(rows), list(data["A-permuted"]["used_by"])
    if name == "authors-d":
        return np.asarray(data["D"]["rows"], dtype=np.float64), list(data["D"]["used_by"])
    raise InputError(f"unknown knowledge preset {name!r}; expected one of {', '.join(AUTHOR_KNOWLEDGE)}")


def knowledge_from_medians(medians: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """7 x 17 (or 7 x 18 with AU28) medians -> (M, K); see ``knowledge_with_unmeasured``."""
    m, k, _ = knowledge_with_unmeasured(medians)
    return m, k


def knowledge_with_unmeasured(medians: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Medians (7 x 17, or 7 x 18 with NaN columns for AUs no kept frame measured) -> (M, K, measured), K =
    sigmoid(M - (max M + min M) / 2) over the measured AUs; ``measured`` (18,) marks them.

    An unmeasured AU (always AU28, plus whatever the AU tool lacks, ``audfer.au.sources``) gets one constant: the mean of the other 7 x 17 entries of K, taken
    *after* this dataset's sigmoid. That is the rule the shipped matrix follows: combined over datasets
    (``combine_knowledge``, a sum before the outer sigmoid), it makes the final AU28 equal to the mean of
    all other entries in pre-sigmoid space, which the shipped matrix satisfies to 6e-12 (a mean of the
    medians before the sigmoid does not). M's AU28 column is the value that gives that K entry."""
    medians = np.asarray(medians, dtype=np.float64)
    if medians.shape[1] == len(AUS) - 1:
        medians = np.insert(medians, _AU28, np.nan, axis=1)
    measured = ~np.isnan(medians).all(axis=0)
    measured[_AU28] = False  # OpenFace has no AU28 intensity: always the paper's rule
    part = np.isnan(medians[:, measured]).any(axis=0)
    if part.any():
        au = np.asarray(AUS)[measured][part][0]
        e = EXPRESSIONS[int(np.flatnonzero(np.isnan(medians[:, AUS.index(au)]))[0])]
        raise InputError(
            f"§3.1: no kept frame measured {au} for expression {e} (its tool lacks {au}) while other "
            f"expressions have it; use one AU tool per dataset, or leave {au} out"
        )
    if not measured.any():
        raise InputError(
            "§3.1: no AU intensity was measured at all; K needs intensities (OpenFace AUxx_r, "
            "LibreFace au_n_intensity, or py-feat probabilities)"
        )
    seen = medians[:, measured]
    shift = (seen.max() + seen.min()) / 2.0
    k = np.full(medians.shape, np.nan)
    k[:, measured] = _sigmoid(seen - shift)
    fill = k[:, measured].mean()
    k[:, ~measured] = fill
    m = medians.copy()
    m[:, ~measured] = np.log(fill / (1.0 - fill)) + shift
    return m, k, measured


def interpolate_zeros(frames: pl.DataFrame) -> pl.DataFrame:
    """Eq. 1's zero interpolation, per ``clip_id`` over ``frame``, for every ``AUxx_r`` column."""

    def fill(col: str) -> pl.Expr:
        x = pl.when(pl.col(col) == 0).then(None).otherwise(pl.col(col))
        filled = x.interpolate_by("frame").forward_fill().backward_fill().over("clip_id").fill_null(0.0)
        # an unmeasured value (null: the AU tool lacks the AU) stays unknown, never becomes 0
        return pl.when(pl.col(col).is_null()).then(None).otherwise(filled).cast(pl.Float32).alias(col)

    return frames.sort(["clip_id", "frame"]).with_columns(fill(c) for c in INTENSITY_COLUMNS)


@dataclass
class KnowledgeResult:
    """A knowledge matrix and how it was obtained."""

    matrix: np.ndarray  #: K, 7 x 18 in (0, 1)
    medians: np.ndarray  #: M, 7 x 18 (unmeasured columns: the value giving the fill of K)
    frames_per_expression: np.ndarray  #: kept frames per expression
    clips_per_expression: np.ndarray  #: clips contributing at least one kept frame
    dropped: dict[str, int] = field(default_factory=dict)  #: frames left out, by reason
    clip_ids: list[str] = field(default_factory=list)  #: clips that contributed at least one kept frame
    measured: np.ndarray = field(
        default_factory=lambda: np.array([a != "AU28" for a in AUS])
    )  #: (18,) AUs with intensity
    au_source: dict[str, Any] | None = None  #: which AU tool(s) the frames came from and which AUs they lack
    #: the θ filter per expression (None without frame probabilities): clips/frames before it, kept, and dropped by why
    filter_report: dict[str, dict[str, int]] | None = None

    @property
    def unmeasured(self) -> list[str]:
        """AUs whose K column is the fill value (mean of the measured entries), not a measurement."""
        return [a for a, m in zip(AUS, self.measured) if not m]

    def table(self) -> pl.DataFrame:
        """K as a table: ``expression`` then one column per AU (the layout of ``K.csv``)."""
        return expression_table(self.matrix)

    def summary(self) -> str:
        """One line: clips and frames used per expression, and the frames dropped by reason."""
        used = ", ".join(
            f"{e} {int(c)} clips/{int(f)} frames"
            for e, c, f in zip(EXPRESSIONS, self.clips_per_expression, self.frames_per_expression)
        )
        dropped = ", ".join(f"{k} {v}" for k, v in self.dropped.items() if v) or "none"
        return f"used: {used}; frames dropped: {dropped}"


def extract_knowledge(
    frames: pl.DataFrame,
    labels: pl.DataFrame | str | os.PathLike[str] | None = None,
    *,
    zeros: str = "keep",
    frame_probs: pl.DataFrame | None = None,
    theta: float | None = None,
    min_confidence: float | None = None,
) -> KnowledgeResult:
    """§3.1 on one dataset.

    ``frames``: canonical OpenFace frames with ``clip_id``. Expression labels come either from
    ``labels`` (``clip_id, label``: clip-level; a table or a ``clip_labels.csv`` path, labels as indices or class
    names, ``audfer.io.clip_labels_table``) or from a ``label`` column of ``frames``
    (frame-level, e.g. AffWild2; null = unannotated). ``frame_probs`` (``clip_id, frame,
    p0..p6``) with ``theta`` keeps only frames whose probability for their own label is > θ.
    """
    if zeros not in ZERO_POLICIES:
        raise InputError(f"unknown zero policy {zeros!r}; expected keep or interpolate")
    dropped: dict[str, int] = {}
    report: dict[str, dict[str, int]] | None = None
    n0 = frames.height
    if labels is not None:
        table = clip_labels_table(labels).select(id_key_expr().alias("_key"), "label")
        data = (
            frames.drop("label", strict=False)
            .with_columns(id_key_expr().alias("_key"))
            .join(table, on="_key", how="inner")
            .drop("_key")
        )
        dropped["unlabelled clip"] = n0 - data.height
    elif "label" in frames.columns:
        data = frames.filter(pl.col("label").is_not_null())
        dropped["unannotated frame"] = n0 - data.height
        if not data.schema["label"].is_integer():  # class names (or "3.0") as a frame-level annotation may give them
            names = {v: expression_index(v, where="frames: column label") for v in data["label"].unique().to_list()}
            data = data.with_columns(pl.col("label").replace_strict(names, return_dtype=pl.Int8))
    else:
        raise InputError("extract_knowledge needs clip labels or a per-frame 'label' column")
    valid = pl.col("success") == 1
    if min_confidence is not None:
        valid = valid & (pl.col("confidence") >= min_confidence)
    n1 = data.height
    data = data.filter(valid)
    dropped["not valid (success/confidence)"] = n1 - data.height
    if zeros == "interpolate":
        data = interpolate_zeros(data)
    if frame_probs is not None:
        if theta is None:
            raise InputError("frame probabilities given without a threshold theta")
        pcols = [f"p{i}" for i in range(len(EXPRESSIONS))]
        missing = [c for c in ("clip_id", "frame", *pcols) if c not in frame_probs.columns]
        if missing:
            raise InputError(f"frame probabilities lack column(s) {', '.join(missing)}; expected clip_id,frame,p0..p6")
        probs = frame_probs.select(
            pl.col("clip_id").cast(pl.String),
            pl.col("frame").cast(pl.Int64),
            *[pl.col(c).cast(pl.Float64) for c in pcols],
        )
        # frame numbers are OpenFace's ``frame`` column (1-based): a row naming a frame OpenFace never wrote is an error
        unknown = probs.join(
            frames.select(pl.col("clip_id").cast(pl.String), pl.col("frame").cast(pl.Int64)),
            on=["clip_id", "frame"],
            how="anti",
        )
        if unknown.height:
            first = unknown.row(0, named=True)
            raise InputError(
                f"frame probabilities: {unknown.height} row(s) name frames that are not in the OpenFace table "
                f"(first: clip {first['clip_id']}, frame {first['frame']}); frame numbers must be OpenFace's "
                f"1-based frame column"
            )
        n2 = data.height
        before = data.select("clip_id", "label")
        data = data.join(probs, on=["clip_id", "frame"], how="inner")
        dropped["no frame probability"] = n2 - data.height
        n3 = data.height
        with_p = data.select("clip_id", "label")
        own = pl.concat_list(pcols).list.get(pl.col("label").cast(pl.Int64))
        data = data.filter(own > theta)
        dropped[f"p(label) <= {theta}"] = n3 - data.height
        report = _filter_report(before, with_p, data.select("clip_id", "label"))
    elif theta is not None:
        raise InputError("a threshold theta needs frame probabilities (--frame-probs)")

    stats = data.group_by("label").agg(
        pl.len().alias("frames"),
        pl.col("clip_id").n_unique().alias("clips"),
        *[pl.col(c).cast(pl.Float64).median().alias(c) for c in INTENSITY_COLUMNS],
    )
    k = len(EXPRESSIONS)
    med = np.full((k, len(AUS_INTENSITY)), np.nan)
    n_frames = np.zeros(k)
    n_clips = np.zeros(k)
    for rec in stats.iter_rows(named=True):
        i = int(rec["label"])
        med[i] = [rec[c] for c in INTENSITY_COLUMNS]
        n_frames[i], n_clips[i] = rec["frames"], rec["clips"]
    empty = [EXPRESSIONS[i] for i in range(k) if n_frames[i] == 0]
    if empty:
        raise InputError(
            f"no kept frame for expression(s) {', '.join(empty)}; cannot compute their medians "
            f"(frames dropped: {', '.join(f'{r} {n}' for r, n in dropped.items() if n) or 'none'})"
        )
    m, kmat, measured = knowledge_with_unmeasured(med)
    return KnowledgeResult(
        kmat,
        m,
        n_frames,
        n_clips,
        dropped,
        sorted(data["clip_id"].cast(pl.String).unique().to_list()),
        measured,
        filter_report=report if frame_probs is not None else None,
    )


def _filter_report(before: pl.DataFrame, with_p: pl.DataFrame, kept: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Per expression, what the θ filter of §3.1 did: valid frames (and their clips) before it, those without a
    frame probability, those at or below θ, what was kept, and the clips left with no frame at all."""

    def count(table: pl.DataFrame) -> dict[int, tuple[int, int]]:
        g = table.group_by("label").agg(pl.len().alias("f"), pl.col("clip_id").n_unique().alias("c"))
        return {int(r["label"]): (int(r["f"]), int(r["c"])) for r in g.iter_rows(named=True)}

    b, w, k = count(before), count(with_p), count(kept)
    out = {}
    for i, name in enumerate(EXPRESSIONS):
        fb, cb = b.get(i, (0, 0))
        fw, _ = w.get(i, (0, 0))
        fk, ck = k.get(i, (0, 0))
        out[name] = {
            "clips_before": cb,
            "frames_before": fb,
            "frames_without_probability": fb - fw,
            "frames_at_or_below_theta": fw - fk,
            "frames_kept": fk,
            "clips_kept": ck,
            "clips_dropped": cb - ck,
        }
    return out


def combine_knowledge(
    matrices: list[np.ndarray], shift: float | str = DEFAULT_SHIFT, measured: Sequence[np.ndarray | None] | None = None
) -> np.ndarray:
    """C = sigmoid(sum_d K_d - S) (§3.1). ``shift="auto"`` uses S = D / 2 (D datasets).

    ``measured`` (one (18,) bool per matrix, None = all measured) says which K columns each source
    measured. Each AU is then combined over the n_a sources that measured it, with the shift rescaled to
    them: C_a = sigmoid(sum_{d measured a} K_d,a - S * n_a / D) = sigmoid(n_a * (mean_a - S / D)); with
    every column measured this is the paper's formula. A column no source measured gets the paper's AU28
    rule: the sigmoid of the mean of all other pre-sigmoid entries (what summing the per-dataset fills
    gives, so ``combine_knowledge`` reproduces the shipped matrix's AU28)."""
    if not matrices:
        raise InputError("combine_knowledge needs at least one matrix")
    stack = np.stack([expression_matrix(m, what="knowledge matrix") for m in matrices])
    if stack.shape[1:] != (len(EXPRESSIONS), len(AUS)):
        raise InputError(f"knowledge matrices must be {len(EXPRESSIONS)}x{len(AUS)}, got {stack.shape[1:]}")
    if isinstance(shift, str):
        if shift != "auto":
            raise InputError(f"shift must be a number or 'auto', got {shift!r}")
        shift = len(matrices) / 2.0
    if measured is None or all(m is None for m in measured):
        return _sigmoid(stack.sum(axis=0) - float(shift))
    if len(measured) != len(matrices):
        raise InputError(f"combine_knowledge: {len(measured)} measured masks for {len(matrices)} matrices")
    mask = np.stack([np.ones(len(AUS), bool) if m is None else np.asarray(m, bool) for m in measured])
    n = mask.sum(axis=0)
    pre = (stack * mask[:, None, :]).sum(axis=0) - float(shift) * n / len(matrices)
    none = n == 0
    if none.all():
        raise InputError("combine_knowledge: no source measured any AU")
    pre[:, none] = pre[:, ~none].mean()
    return _sigmoid(pre)
