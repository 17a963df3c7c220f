"""§3.1 on the paper's source datasets, one call per dataset, and their combination.

``knowledge_for_dataset`` reads a dataset's folder of AU CSVs and its own label files
(its knowledge adapter, ``audfer.data.registry``), keeps the frames §3.1 keeps and returns K with counts of what was
used and dropped. ``parse_knowledge_config`` checks a config listing several datasets; ``audfer.tasks.prepare``
runs them, combines them (C = sigmoid(ΣK_d − S)) and writes each K with its provenance.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audfer.au.folder import read_au_dir
from audfer.au.sources import read_mapping_file
from audfer.au.tools import SourceChoices, is_au_tool_name
from audfer.data.registry import dataset, list_datasets, max_folds
from audfer.errors import AudferError, InputError
from audfer.io import read_csv_rows
from audfer.method.knowledge import DEFAULT_SHIFT, ZERO_POLICIES, KnowledgeResult, extract_knowledge
from audfer.provenance import read_provenance
from audfer.vocab import AUS


@dataclass
class DatasetSpec:
    """Where one dataset's AU tool output (any registered AU tool's CSVs) and labels are, and how to select frames."""

    #: a registered dataset with a knowledge adapter (``audfer.data.registry``; ``clips`` = any dataset with a
    #: clip_labels.csv), or ``package.module:name`` for one of your own
    name: str
    au_dir: str | Path
    labels: str | Path | None = None  #: clips: clip_labels.csv
    annotations: str | Path | None = None  #: affwild2: folder of ABAW expression .txt files
    root: str | Path | None = None  #: dfew / ferv39k / mafw: dataset root with the official split files
    fold: int = 1  #: dfew / mafw: which fold's training split
    include_test: bool = False  #: dfew / ferv39k / mafw: also use the test split (leaks test information!)
    calm: str = "drop"  #: ravdess: "drop" or "neutral"
    frame_probs: str | Path | None = None  #: clip_id,frame,p0..p6 from a base model (``audfer frame-probs``)
    theta: float | None = None
    #: or the base model itself: its frame probabilities are made first (``engine.frame_probs``, beside the K file)
    filter_checkpoint: str | Path | None = None
    filter_overrides: tuple[str, ...] = ()  #: key=value for the filter model's config (data.root, data.fold, ...)
    zeros: str = "keep"
    min_confidence: float | None = None
    label: str = field(default="")  #: display name (default: name)
    source: str = "auto"  #: AU tool of the CSVs: openface, pyfeat, libreface, table (with mapping) or auto
    mapping: str | Path | None = None  #: table: YAML naming each AU column (``au_sources.read_mapping_file``)
    allow_mixed: bool = False  #: accept a folder whose CSVs come from more than one AU tool

    def __post_init__(self) -> None:
        known = list_datasets(knowledge=True)
        if self.name not in known and ":" not in self.name:
            raise InputError(
                f"unknown dataset {self.name!r}; expected one of {', '.join(known)} or package.module:name"
            )
        decl = dataset(self.name)
        if decl.knowledge is None:
            raise InputError(f"dataset {self.name}: declares no knowledge adapter; K cannot be built from it")
        if decl.folds is not None and not 1 <= self.fold <= decl.folds:
            raise InputError(f"dataset {self.name}: fold {self.fold}; expected 1..{decl.folds}")
        if self.frame_probs is not None and self.filter_checkpoint is not None:
            raise InputError(
                f"dataset {self.name}: frame_probs and filter_checkpoint both given; the probabilities come from one"
            )
        if (self.frame_probs is not None or self.filter_checkpoint is not None) and self.theta is None:
            raise InputError(f"dataset {self.name}: frame probabilities need a threshold theta (§3.1, Eq. 3)")
        if self.theta is not None and self.frame_probs is None and self.filter_checkpoint is None:
            raise InputError(f"dataset {self.name}: theta needs frame_probs or filter_checkpoint (the base model)")
        self.filter_overrides = tuple(self.filter_overrides)
        if self.mapping is not None and self.source not in ("auto", "table"):
            raise InputError(f"an AU mapping (--mapping) is for source table, not {self.source}")
        self.label = self.label or self.name.rpartition(":")[2]  # a user's package.module:name is shown as name

    @property
    def split(self) -> str | None:
        """Which of the dataset's official splits the labels come from: ``train`` (or ``all`` with ``include_test``)
        for a dataset with splits (DFEW, FERV39k, MAFW); None for the others (clips, AffWild2, RAVDESS)."""
        if dataset(self.name).split is not None:
            return "all" if self.include_test else "train"
        return None

    @property
    def used_fold(self) -> int | None:
        """The fold whose split is used (for a dataset with folds: DFEW and MAFW have five); None for the others."""
        return self.fold if dataset(self.name).folds else None

    @property
    def source_path(self) -> str:
        """The label source in words: the labels file, the dataset root or the annotations folder."""
        return str(self.labels or self.root or self.annotations or self.au_dir)


def filter_model_overrides(spec: DatasetSpec) -> list[str]:
    """What the filter model's config is given to list this dataset's clips: the dataset root and fold the labels
    come from (a dataset with splits: DFEW, FERV39k, MAFW), then the spec's own ``filter_overrides``."""
    auto = []
    if spec.split is not None and spec.root is not None:
        auto.append(f"data.root={spec.root}")
    if spec.used_fold is not None:
        auto.append(f"data.fold={spec.fold}")
    return auto + list(spec.filter_overrides)


def filter_facts(spec: DatasetSpec, result: KnowledgeResult) -> tuple[dict[str, Any] | None, list[str]]:
    """``(facts, clips)`` for K's sidecar: the θ filter (probability file, θ, the model that made it and the clips it
    was trained on, what it kept and dropped per expression), and those training clips, which join K's clips so that
    a run refuses a K whose filter model saw its test clips (``engine.resolve.check_no_test_clips``)."""
    if spec.frame_probs is None:
        return None, []
    record = read_provenance(spec.frame_probs)
    made = (record or {}).get("frame_probs") or {}
    trained = [str(c) for c in (record or {}).get("clip_ids") or []]
    known = record is not None and made.get("trained_on_known", True) is not False
    if not known:
        import warnings

        warnings.warn(
            f"{spec.frame_probs}: the clips the filter model was trained on are unknown (no provenance sidecar from "
            "`audfer frame-probs`); the test-leak check of this K cannot cover the filter model",
            UserWarning,
            stacklevel=2,
        )
    facts = {
        "file": str(spec.frame_probs),
        "theta": spec.theta,
        "checkpoint": made.get("checkpoint") or (record or {}).get("source"),
        "model_trained_on_clips": len(trained) if known else None,
        "model_trained_on_sha256": (record or {}).get("clip_ids_sha256") if known else None,
        "made_with": {k: made.get(k) for k in ("dataset", "fold", "split", "window", "stride")} if made else None,
        "per_expression": result.filter_report,
    }
    return facts, trained


def filter_lines(report: dict[str, dict[str, int]] | None, theta: float | None) -> list[str]:
    """The θ filter per expression in words: clips and frames kept, and dropped by why."""
    if not report:
        return []
    lines = [f"θ filter (keep frames with p(own label) > {theta}), per expression:"]
    for name, r in report.items():
        lines.append(
            f"  {name}: kept {r['clips_kept']}/{r['clips_before']} clips, {r['frames_kept']}/{r['frames_before']} "
            f"frames; dropped {r['frames_at_or_below_theta']} frames at or below θ, {r['frames_without_probability']} "
            f"without a probability; {r['clips_dropped']} clips lost every frame"
        )
    return lines


def knowledge_for_dataset(spec: DatasetSpec, **reader_options: Any) -> tuple[KnowledgeResult, dict[str, int]]:
    """K for one dataset and a count of clips/frames used and left out, by reason.

    ``reader_options`` go to ``read_au_dir`` (face_id, strict, on_error, cache, cache_dir). The returned
    K's ``measured`` marks the AUs whose intensity the source(s) measured; the rest are filled (§3.1, AU28 rule)."""

    mapping = read_mapping_file(spec.mapping) if spec.mapping is not None else None
    folder = read_au_dir(
        spec.au_dir, source=spec.source, mapping=mapping, allow_mixed=spec.allow_mixed, **reader_options
    )
    frames = folder.frames
    counts: dict[str, int] = {"AU clips": len(folder.clips), "AU frames": frames.height}
    if folder.skipped:
        counts["unreadable AU CSVs skipped"] = len(folder.skipped)
    decl = dataset(spec.name)
    assert decl.knowledge is not None  # DatasetSpec checked it
    if decl.clip_id is not None:  # the dataset's clip-id rule on the AU files' stems
        frames = frames.with_columns(decl.clip_id("clip_id"))
    got = decl.knowledge(spec, frames, folder.clips)  # the dataset's labels (its module in audfer.data.sets)
    frames, labels = got.frames, got.labels
    counts.update(got.counts)
    if labels is not None:
        have = set(frames["clip_id"].unique().to_list())
        counts["labelled clips without AU CSV"] = labels.filter(~pl.col("clip_id").is_in(list(have))).height
        counts["AU clips without label"] = len(have - set(labels["clip_id"].to_list()))
        if labels.height and have and not have & set(labels["clip_id"].to_list()):
            raise InputError(
                f"dataset {spec.name}: no labelled clip has an AU CSV in {spec.au_dir} (labels e.g. "
                f"{', '.join(labels['clip_id'].head(3).to_list())}; CSV clip ids e.g. {', '.join(sorted(have)[:3])}); "
                f"the labels and the AU folder do not describe the same clips"
            )
    probs = None
    if spec.frame_probs is not None:
        probs, first = read_csv_rows(
            spec.frame_probs, ("clip_id", "frame", *[f"p{i}" for i in range(7)]), what="frame probabilities"
        )
        probs = _checked_frame_probs(spec.frame_probs, probs, first)
        if decl.clip_id is not None:
            probs = probs.with_columns(decl.clip_id("clip_id"))
    result = extract_knowledge(
        frames, labels, zeros=spec.zeros, frame_probs=probs, theta=spec.theta, min_confidence=spec.min_confidence
    )
    counts.update({f"frames dropped: {k}": v for k, v in result.dropped.items()})
    counts["clips used"] = int(result.clips_per_expression.sum())
    counts["frames used"] = int(result.frames_per_expression.sum())
    result.au_source = {**folder.availability.as_dict(), "unmeasured_aus": result.unmeasured}
    return result, counts


def measured_from_sidecar(path: str | Path) -> np.ndarray | None:
    """(18,) bool measured mask of a K.csv from its provenance sidecar; None when it records none (then
    every column counts as measured, as in the paper's combination)."""
    import numpy as np

    record = read_provenance(path)
    if record is None or not isinstance(record.get("unmeasured_aus"), list):
        return None
    bad = [a for a in record["unmeasured_aus"] if a not in AUS]
    if bad:
        raise InputError(f"{path}: provenance lists unknown AU(s) {', '.join(map(str, bad))} as unmeasured")
    return np.array([a not in record["unmeasured_aus"] for a in AUS])


def _bad(where: str, key: str, value, want: str) -> AudferError:
    return AudferError(f"knowledge config: {where}{key} = {value!r}; expected {want}")


def _check_config_values(config: dict) -> None:
    """Types and ranges of the top-level keys (``out: null`` would otherwise write files named ``None``)."""
    import math

    extra = set(config) - {"datasets", "shift", "out", "heatmap"}
    if extra:
        raise InputError(
            f"knowledge config: unknown key(s) {', '.join(sorted(extra))}; expected datasets, shift, out, heatmap"
        )
    if "out" in config and not (isinstance(config["out"], str) and config["out"].strip()):
        raise _bad("", "out", config["out"], "a CSV file name (default K.csv)")
    if (
        "heatmap" in config
        and config["heatmap"] is not None
        and not (isinstance(config["heatmap"], str) and config["heatmap"].strip())
    ):
        raise _bad("", "heatmap", config["heatmap"], "a PNG file name or null")
    shift = config.get("shift", DEFAULT_SHIFT)
    if not (
        shift == "auto" or (isinstance(shift, (int, float)) and not isinstance(shift, bool) and math.isfinite(shift))
    ):
        raise _bad("", "shift", shift, "a number or 'auto'")


def _check_entry_values(i: int, entry: dict) -> None:

    where = f"dataset {i}: "
    folds = max_folds()
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    checks = {
        "fold": (
            lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= folds,
            f"an integer 1..{folds}",
        ),
        "theta": (lambda v: v is None or (number(v) and 0 <= v < 1), "a probability in [0, 1) or null"),
        "min_confidence": (lambda v: v is None or (number(v) and 0 <= v <= 1), "a confidence in [0, 1] or null"),
        "zeros": (lambda v: v in ZERO_POLICIES, " or ".join(ZERO_POLICIES)),
        "calm": (lambda v: v in ("drop", "neutral"), "drop or neutral"),
        "include_test": (lambda v: isinstance(v, bool), "true or false"),
        "allow_mixed": (lambda v: isinstance(v, bool), "true or false"),
        "source": (is_au_tool_name, ", ".join(SourceChoices()) + " or package.module:attribute"),
        "label": (lambda v: isinstance(v, str), "a display name"),
    }
    for key, (ok, want) in checks.items():
        if key in entry and not ok(entry[key]):
            raise _bad(where, key, entry[key], want)
    for key in ("au_dir", "labels", "annotations", "root", "frame_probs", "mapping", "filter_checkpoint"):
        v = entry.get(key)
        if v is not None and not (isinstance(v, str) and v.strip()):
            raise _bad(where, key, v, "a path")
    fo = entry.get("filter_overrides", [])
    if not isinstance(fo, list) or not all(isinstance(o, str) and "=" in o for o in fo):
        raise _bad(where, "filter_overrides", fo, "a list of key=value strings")
    if entry.get("au_dir") is None:
        raise _bad(where, "au_dir", entry.get("au_dir"), "the folder of per-clip AU CSVs")


def _checked_frame_probs(path, probs: pl.DataFrame, first: int = 2) -> pl.DataFrame:
    """``clip_id,frame,p0..p6``: integer frames, probabilities in [0, 1] (no NaN), one row per (clip, frame);
    anything else is an error naming the row and column (``first``: the file row of the first data row)."""
    pcols = [f"p{i}" for i in range(7)]
    probs = probs.with_row_index("_row")
    frame = probs["frame"].str.strip_chars().cast(pl.Int64, strict=False)
    bad = probs.filter(frame.is_null())
    if bad.height:
        raise InputError(
            f"{path}: row {int(bad['_row'][0]) + first}, column frame: {bad['frame'][0]!r}; expected an integer frame number"
        )
    out = probs.with_columns(frame.alias("frame"))
    for c in pcols:
        v = out[c].str.strip_chars().cast(pl.Float64, strict=False)
        bad = out.filter(v.is_null() | v.is_nan() | (v < 0) | (v > 1))
        if bad.height:
            raise InputError(
                f"{path}: row {int(bad['_row'][0]) + first}, column {c}: {bad[c][0]!r}; expected a probability in [0, 1]"
            )
        out = out.with_columns(v.alias(c))
    dup = out.filter(pl.struct("clip_id", "frame").is_duplicated())
    if dup.height:
        raise InputError(
            f"{path}: rows {int(dup['_row'][0]) + first} and {int(dup['_row'][1]) + first}: clip {dup['clip_id'][0]} frame "
            f"{int(dup['frame'][0])} appears twice; expected one row per frame"
        )
    return out.drop("_row")


@dataclass(frozen=True)
class KnowledgeConfig:
    """A checked knowledge config (``audfer knowledge --config``): the datasets, the shift S, where the combined K
    and its heatmap go (paths resolved against the config's folder)."""

    datasets: tuple[DatasetSpec, ...]
    shift: float | str
    out: Path
    heatmap: Path | None


def parse_knowledge_config(config: object, *, base: Path = Path(".")) -> KnowledgeConfig:
    """Check a knowledge config's YAML: keys ``datasets`` (list of ``DatasetSpec`` fields), ``shift`` (number or
    ``auto``), ``out`` (combined K.csv, default ``K.csv``), ``heatmap`` (PNG, optional). Relative paths are taken
    relative to ``base`` (the config file's folder); an error names the dataset entry and key."""
    if not isinstance(config, dict) or not isinstance(config.get("datasets"), list) or not config["datasets"]:
        raise InputError("knowledge config needs a non-empty 'datasets' list")
    _check_config_values(config)
    allowed = {f.name for f in fields(DatasetSpec)}
    specs = []
    for i, entry in enumerate(config["datasets"], start=1):
        if not isinstance(entry, dict) or "name" not in entry:
            raise InputError(f"knowledge config: dataset {i} needs a 'name'")
        if "openface_dir" in entry:  # the former key: any AU tool's CSVs are read
            if "au_dir" in entry:
                raise InputError(f"knowledge config: dataset {i}: openface_dir and au_dir both given; keep au_dir")
            warnings.warn(f"knowledge config: dataset {i}: openface_dir is deprecated; use au_dir", FutureWarning, 2)
            entry = {("au_dir" if k == "openface_dir" else k): v for k, v in entry.items()}
        unknown = set(entry) - allowed
        if unknown:
            raise InputError(f"knowledge config: dataset {i}: unknown key(s) {', '.join(sorted(unknown))}")
        _check_entry_values(i, entry)
        entry = {
            k: (
                base / v
                if k in ("au_dir", "labels", "annotations", "root", "frame_probs", "mapping", "filter_checkpoint")
                and v is not None
                else v
            )
            for k, v in entry.items()
        }
        specs.append(DatasetSpec(**entry))
    heatmap = config.get("heatmap")
    return KnowledgeConfig(
        tuple(specs),
        config.get("shift", DEFAULT_SHIFT),
        base / str(config.get("out", "K.csv")),
        base / heatmap if heatmap else None,
    )
