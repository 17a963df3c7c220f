"""§3.1 on the paper's source datasets, one call per dataset, and their combination.

``knowledge_for_dataset`` reads a dataset's OpenFace folder and its own label files
(``audfer.data.annotations``), keeps the frames §3.1 keeps and returns K with counts of what was
used and dropped. ``knowledge_from_config`` runs several datasets and combines them
(C = sigmoid(ΣK_d − S)), writing each K, the combined K and its Fig. 4 heatmap.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import polars as pl

from .data.annotations import affwild2_frame_labels, clip_key, dfew_labels, ferv39k_labels, mafw_labels, ravdess_labels
from .errors import AudferError
from .io import expression_table, read_clip_labels, read_csv_table, write_csv
from .knowledge import DEFAULT_SHIFT, KnowledgeResult, combine_knowledge, extract_knowledge
from .openface import read_au_dir
from .provenance import write_provenance
from .vocab import AUS

DATASETS = ("clips", "affwild2", "ravdess", "dfew", "ferv39k", "mafw")


@dataclass
class DatasetSpec:
    """Where one dataset's OpenFace output and labels are, and how to select frames."""

    name: str  #: one of DATASETS (``clips`` = any dataset with a clip_labels.csv)
    openface_dir: str | Path
    labels: str | Path | None = None  #: clips: clip_labels.csv
    annotations: str | Path | None = None  #: affwild2: folder of ABAW expression .txt files
    root: str | Path | None = None  #: dfew / ferv39k / mafw: dataset root with the official split files
    fold: int = 1  #: dfew / mafw: which fold's training split
    include_test: bool = False  #: dfew / ferv39k / mafw: also use the test split (leaks test information!)
    calm: str = "drop"  #: ravdess: "drop" or "neutral"
    frame_probs: str | Path | None = None  #: clip_id,frame,p0..p6 from a base model
    theta: float | None = None
    zeros: str = "keep"
    min_confidence: float | None = None
    label: str = field(default="")  #: display name (default: name)
    source: str = "auto"  #: AU tool of the CSVs: openface, pyfeat, libreface, table (with mapping) or auto
    mapping: str | Path | None = None  #: table: YAML naming each AU column (``au_sources.read_mapping_file``)
    allow_mixed: bool = False  #: accept a folder whose CSVs come from more than one AU tool

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise AudferError(f"unknown dataset {self.name!r}; expected one of {', '.join(DATASETS)}")
        self.label = self.label or self.name


def _need(spec: DatasetSpec, attr: str, flag: str):
    value = getattr(spec, attr)
    if value is None:
        raise AudferError(f"dataset {spec.name}: needs {flag}")
    return value


def knowledge_for_dataset(spec: DatasetSpec, **reader_options) -> tuple[KnowledgeResult, dict[str, int]]:
    """K for one dataset and a count of clips/frames used and left out, by reason.

    ``reader_options`` go to ``read_au_dir`` (face_id, strict, on_error, cache, cache_dir). The returned
    K's ``measured`` marks the AUs whose intensity the source(s) measured; the rest are filled (§3.1, AU28 rule)."""
    from .au_sources import read_mapping_file

    mapping = read_mapping_file(spec.mapping) if spec.mapping is not None else None
    folder = read_au_dir(spec.openface_dir, source=spec.source, mapping=mapping, allow_mixed=spec.allow_mixed,
                         **reader_options)
    frames = folder.frames
    counts: dict[str, int] = {"OpenFace clips": len(folder.clips), "OpenFace frames": frames.height}
    if folder.skipped:
        counts["unreadable OpenFace CSVs skipped"] = len(folder.skipped)
    labels = None
    split = "all" if spec.include_test else "train"
    if spec.name == "clips":
        labels = read_clip_labels(_need(spec, "labels", "--labels clip_labels.csv"))
    elif spec.name == "dfew":
        labels = dfew_labels(_need(spec, "root", "--root <DFEW root>"), spec.fold, split)
        frames = frames.with_columns(clip_key())
    elif spec.name == "mafw":
        labels = mafw_labels(_need(spec, "root", "--root <MAFW root>"), spec.fold, split)
        frames = frames.with_columns(clip_key())
    elif spec.name == "ferv39k":
        labels = ferv39k_labels(_need(spec, "root", "--root <FERV39k root>"), split)
    elif spec.name == "ravdess":
        labels, calm = ravdess_labels(folder.clips, calm=spec.calm)
        counts["clips left out: calm"] = len(calm)
    elif spec.name == "affwild2":
        frame_labels, left_out = affwild2_frame_labels(_need(spec, "annotations", "--annotations <folder>"))
        n = frames.height
        frames = frames.join(frame_labels, on=["clip_id", "frame"], how="inner")
        counts.update({f"frames left out: {k}": v for k, v in left_out.items()})
        counts["OpenFace frames without annotation"] = n - frames.height
        missing = set(frame_labels["clip_id"].unique().to_list()) - set(folder.clips)
        counts["annotated videos without OpenFace CSV"] = len(missing)
    if labels is not None:
        have = set(frames["clip_id"].unique().to_list())
        counts["labelled clips without OpenFace CSV"] = labels.filter(~pl.col("clip_id").is_in(list(have))).height
        counts["OpenFace clips without label"] = len(have - set(labels["clip_id"].to_list()))
    probs = None
    if spec.frame_probs is not None:
        probs = read_csv_table(spec.frame_probs, ("clip_id", "frame", *[f"p{i}" for i in range(7)]), what="frame probabilities")
        try:
            probs = probs.with_columns(pl.col("frame").cast(pl.Int64), *[pl.col(f"p{i}").cast(pl.Float64) for i in range(7)])
        except pl.exceptions.PolarsError:
            raise AudferError(f"{spec.frame_probs}: frame must be an integer and p0..p6 numbers") from None
        if spec.name in ("dfew", "mafw"):
            probs = probs.with_columns(clip_key())
    result = extract_knowledge(frames, labels, zeros=spec.zeros, frame_probs=probs, theta=spec.theta,
                               min_confidence=spec.min_confidence)
    counts.update({f"frames dropped: {k}": v for k, v in result.dropped.items()})
    counts["clips used"] = int(result.clips_per_expression.sum())
    counts["frames used"] = int(result.frames_per_expression.sum())
    result.au_source = {**folder.availability.as_dict(), "unmeasured_aus": result.unmeasured}
    return result, counts


def knowledge_provenance(result: KnowledgeResult) -> dict:
    """The sidecar facts of a K: its AU source(s) and the K columns that are fills, not measurements."""
    return {"au_source": result.au_source, "unmeasured_aus": result.unmeasured}


def measured_from_sidecar(path: str | Path):
    """(18,) bool measured mask of a K.csv from its provenance sidecar; None when it records none (then
    every column counts as measured, as in the paper's combination)."""
    import numpy as np

    from .provenance import read_provenance
    from .vocab import AUS

    record = read_provenance(path)
    if record is None or not isinstance(record.get("unmeasured_aus"), list):
        return None
    bad = [a for a in record["unmeasured_aus"] if a not in AUS]
    if bad:
        raise AudferError(f"{path}: provenance lists unknown AU(s) {', '.join(map(str, bad))} as unmeasured")
    return np.array([a not in record["unmeasured_aus"] for a in AUS])


def knowledge_from_config(config: dict, *, base: Path = Path("."), log=print) -> dict:
    """Run every dataset of ``config`` and combine: keys ``datasets`` (list of DatasetSpec fields),
    ``shift`` (number or ``auto``), ``out`` (combined K.csv), ``heatmap`` (PNG, optional).
    Relative paths are taken relative to ``base`` (the config file's folder)."""
    if not isinstance(config, dict) or not isinstance(config.get("datasets"), list) or not config["datasets"]:
        raise AudferError("knowledge config needs a non-empty 'datasets' list")
    allowed = {f.name for f in fields(DatasetSpec)}
    out = base / str(config.get("out", "K.csv"))
    matrices, results, measured = [], {}, []
    for i, entry in enumerate(config["datasets"], start=1):
        if not isinstance(entry, dict) or "name" not in entry:
            raise AudferError(f"knowledge config: dataset {i} needs a 'name'")
        unknown = set(entry) - allowed
        if unknown:
            raise AudferError(f"knowledge config: dataset {i}: unknown key(s) {', '.join(sorted(unknown))}")
        entry = {k: (base / v if k in ("openface_dir", "labels", "annotations", "root", "frame_probs", "mapping")
                     and v is not None else v)
                 for k, v in entry.items()}
        spec = DatasetSpec(**entry)
        result, counts = knowledge_for_dataset(spec)
        path = out.with_name(f"{out.stem}_{spec.label}{out.suffix}")
        write_csv(result.table(), path)
        write_provenance(path, what="knowledge", clip_ids=result.clip_ids, dataset=spec.name, extra=knowledge_provenance(result))
        log(f"{spec.label}: " + "; ".join(f"{k} {v}" for k, v in counts.items())
            + f"; unmeasured K columns {', '.join(result.unmeasured)} -> {path}")
        matrices.append(result.matrix)
        measured.append(result.measured)
        results[spec.label] = {"result": result, "counts": counts, "path": path}
    shift = config.get("shift", DEFAULT_SHIFT)
    combined = combine_knowledge(matrices, shift, measured)
    write_csv(expression_table(combined), out)
    never = [a for a, *ms in zip(AUS, *measured) if not any(ms)]
    write_provenance(out, what="knowledge", clip_ids=sorted({c for r in results.values() for c in r["result"].clip_ids}),
                     dataset="+".join(results), extra={"unmeasured_aus": never})
    log(f"combined {len(matrices)} dataset(s) with shift {shift} (per AU over the datasets that measured it; "
        f"measured by none: {', '.join(never) or 'none'}) -> {out}")
    if config.get("heatmap"):
        from .reports import plot_knowledge

        plot_knowledge(combined, base / str(config["heatmap"]), title=f"AU-expression knowledge ({', '.join(results)})",
                       unmeasured=never)
        log(f"heatmap -> {base / str(config['heatmap'])}")
    return {"combined": combined, "datasets": results}
