"""A config resolved into what a run is made of: the split indexes (validation carved from the training fold, the
training subset of ``data.train_fraction``), the video AU labels and their source, K (``au.knowledge``), the
pos-weights (``au.pos_weights``, Eq. 6-8), and the checks that none of them was computed from the run's test clips."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from audfer.au.folder import read_au_dir
from audfer.au.sources import read_mapping_file
from audfer.config.schema import Config
from audfer.data.annotations import keyed
from audfer.data.datasets import (
    ClipIndex,
    au_targets_for,
)
from audfer.data.registry import dataset
from audfer.errors import AudferError, InputError
from audfer.io import read_csv_table, read_expression_table
from audfer.method.knowledge import (
    AUTHOR_KNOWLEDGE,
    BUILTIN_KNOWLEDGE,
    authors_knowledge,
    extract_knowledge,
    paper_knowledge,
)
from audfer.method.labels import official_pos_weights, pos_weights, read_au_labels, video_au_labels
from audfer.provenance import read_provenance, sidecar
from audfer.vocab import AUS


def split_index(cfg: Config, split: str) -> ClipIndex:
    """The official ``train`` or ``test`` split of the configured dataset; an empty split is an error saying which
    split of which dataset at which root, and how many clips were listed and missing."""
    index = _dataset_split(cfg, split)
    if len(index) == 0:
        d = cfg.data
        fold = f" fold {d.fold}" if dataset(d.dataset).folds else ""
        raise AudferError(
            f"{d.dataset}{fold} {split} split at {d.root}: no clip to use ({len(index.skipped)} listed, "
            f"{len(index.skipped)} missing on disk{', e.g. ' + ', '.join(index.skipped[:3]) if index.skipped else ''}"
            f"); check data.root, data.frames and the split files"
        )
    return index


def _dataset_split(cfg: Config, split: str) -> ClipIndex:
    d = cfg.data
    decl = dataset(d.dataset)
    hint = decl.root_hint
    if d.root is None:
        raise AudferError(f"config: data.root is not set: pass data.root=PATH, the {d.dataset} dataset folder{hint}")
    root = Path(d.root)
    if not root.is_dir():
        where = "" if root.is_absolute() else f" (relative to the current folder {Path.cwd()})"
        raise AudferError(f"data.root: {root} is not a folder{where}; pass data.root=PATH{hint}")
    assert decl.split is not None  # the config refuses a dataset without splits
    return decl.split(root, d, split)


def identities_for(cfg: Config) -> dict[str, str] | None:
    """``clip_id -> identity`` from ``data.identities`` (a CSV ``clip_id,identity``), or a synthetic set's
    ``synth_meta.csv``; None when the dataset has none (subsets are then drawn clip by clip)."""

    d = cfg.data
    path = Path(d.identities) if d.identities else None
    if path is None and d.dataset == "synthetic" and d.root and (Path(d.root) / "synth_meta.csv").is_file():
        path = Path(d.root) / "synth_meta.csv"
    if path is None:
        return None
    table = keyed(read_csv_table(path, ("clip_id", "identity"), what="identities").select("clip_id", "identity"))
    return dict(zip(table["clip_id"].to_list(), table["identity"].to_list()))


def training_subset(
    index: ClipIndex, fraction: float, seed: int, identities: dict[str, str] | None = None
) -> ClipIndex:
    """A stratified, seeded, nested share of a training split (``data.train_fraction``).

    Each class keeps ``ceil(fraction * n_class)`` clips (at least one). Clips are ranked once per ``seed`` by a
    random key of their identity (then of the clip), independently of ``fraction``, and each class takes its first
    ranks: so the subset at 10 % lies inside the one at 25 %, and an identity's clips enter together (a smaller
    subset has fewer people, not fewer clips of everyone), except where a class's quota cuts an identity."""
    import math

    ids = keyed(index.table.select("clip_id"))["clip_id"].to_list()
    labels = index.table["label"].to_numpy()
    rng = np.random.default_rng([seed, 25])
    clip_key = rng.random(len(ids))
    groups = [identities.get(c, f"clip:{c}") if identities else f"clip:{c}" for c in ids]
    uniq = sorted(set(map(str, groups)))
    group_key = dict(zip(uniq, rng.random(len(uniq))))
    order = sorted(range(len(ids)), key=lambda i: (group_key[str(groups[i])], clip_key[i]))
    keep = np.zeros(len(ids), bool)
    for c in np.unique(labels):
        members = [i for i in order if labels[i] == c]
        keep[members[: max(1, math.ceil(fraction * len(members)))]] = True
    return ClipIndex(index.table.filter(pl.Series(keep)), list(index.skipped))


def carve_validation(index: ClipIndex, share: float, seed: int) -> tuple[ClipIndex, ClipIndex]:
    """Seeded stratified hold-out of ``share`` of each class (at least one clip of any class with >= 2)."""
    rng = np.random.default_rng([seed, 7])
    labels = index.table["label"].to_numpy()
    val = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        k = max(1, int(round(share * len(members))))
        val[rng.choice(members, size=min(k, len(members) - 1), replace=False)] = True
    keep = pl.Series(val)
    return ClipIndex(index.table.filter(~keep), []), ClipIndex(index.table.filter(keep), [])


def au_labels_for(cfg: Config) -> pl.DataFrame | None:
    """Video AU labels (Eq. 4) from ``data.au_labels``, or built from a folder of AU CSVs (cached)."""
    return au_labels_with_source(cfg)[0]


def au_labels_with_source(cfg: Config) -> tuple[pl.DataFrame | None, dict | None]:
    """``au_labels_for`` and where the labels came from: the AU tool(s) and the AUs they lack (masked in the
    loss, ``audfer.au.sources``). A ``data.au_labels`` CSV is described by its provenance sidecar (written by
    ``audfer au-labels``); without one the AUs whose cells are all empty are reported as unknown."""

    d = cfg.data
    rule = dataset(d.dataset).clip_id  # the dataset's clip-id rule on the AU files' stems
    if d.au_labels:
        labels = read_au_labels(d.au_labels)
        labels = labels if rule is None else labels.with_columns(rule("clip_id"))
        record = read_provenance(d.au_labels) or {}
        info = dict(record.get("au_source") or {"sources": ["unknown (no provenance sidecar)"]})
        info["masked_aus"] = [
            a for a in AUS if a in info.get("masked_aus", []) or labels[a].null_count() == labels.height
        ]
        return labels, {"file": str(d.au_labels), **info}
    folder = _au_folder(cfg)
    if folder is None:
        if cfg.au.strategy != "none":
            raise AudferError(
                "config: the AU loss needs video AU labels: set data.au_labels (a CSV from `audfer au-labels`) "
                "or data.au_dir (a folder of per-clip AU CSVs)"
            )
        return None, None
    mapping = read_mapping_file(d.au_mapping) if d.au_mapping else None
    of = read_au_dir(folder, source=d.au_source, mapping=mapping, allow_mixed=d.au_allow_mixed)
    info = {
        "folder": str(folder),
        **of.availability.as_dict(),
        "clips_per_source": {s: list(of.sources.values()).count(s) for s in sorted(set(of.sources.values()))},
    }
    labels = video_au_labels(of.frames, of.clips)
    return (labels if rule is None else labels.with_columns(rule("clip_id"))), info


def _au_folder(cfg: Config) -> Path | None:
    d = cfg.data
    au_dir = dataset(d.dataset).au_dir
    if d.au_dir is None and au_dir is not None and d.root:
        return Path(d.root) / au_dir
    return None if d.au_dir is None else Path(d.au_dir)


def knowledge_for(cfg: Config, train: ClipIndex | None = None) -> np.ndarray:
    """K: ``paper`` (the shipped matrix), a K.csv, or ``per-fold``: §3.1 on this fold's training clips only
    (their per-frame AUs from ``data.au_dir``; labels from the training split)."""

    src = cfg.au.knowledge
    if src == "paper":
        return paper_knowledge()
    if src in AUTHOR_KNOWLEDGE:  # the other matrices of the authors' code, by name
        return authors_knowledge(src)[0]
    if src == "ones":  # plain AU multitask: every AU weighs the same for every expression
        return np.ones((7, len(AUS)))
    if src == "per-fold":
        folder = _au_folder(cfg)
        if folder is None or train is None:
            raise AudferError("config: au.knowledge=per-fold needs data.au_dir (the folder of per-clip AU CSVs)")

        d = cfg.data
        mapping = read_mapping_file(d.au_mapping) if d.au_mapping else None
        frames = read_au_dir(folder, source=d.au_source, mapping=mapping, allow_mixed=d.au_allow_mixed).frames
        rule = dataset(d.dataset).clip_id  # the dataset's clip-id rule, then the common one
        frames = keyed(frames if rule is None else frames.with_columns(rule("clip_id")))
        return extract_knowledge(frames, keyed(train.table.select("clip_id", "label"))).matrix
    return read_expression_table(src, what="knowledge matrix")


def au_coverage(index: ClipIndex, au_labels: pl.DataFrame | None) -> dict:
    """Share of ``index``'s clips with AU labels, and a few unmatched ids from both sides (for messages)."""

    if au_labels is None:
        return {"clips": len(index), "with_au": 0, "share": 0.0, "unmatched_split": [], "unmatched_labels": []}
    _, mask, missing = au_targets_for(index, au_labels)
    ours = set(keyed(index.table.select("clip_id"))["clip_id"].to_list())
    theirs = keyed(au_labels.select("clip_id"))["clip_id"].to_list()
    anyk = np.asarray(mask.any(axis=1), bool)
    per_au = mask.mean(axis=0) if len(mask) else np.zeros(len(AUS))
    return {
        "clips": len(index),
        "with_au": int(anyk.sum()),
        "share": float(anyk.mean()) if len(anyk) else 0.0,
        "per_au": {a: round(float(v), 4) for a, v in zip(AUS, per_au)},
        "masked_aus": [a for a, v in zip(AUS, per_au) if v == 0],
        "unmatched_split": missing[:5],
        "unmatched_labels": [c for c in theirs if c not in ours][:5],
    }


def pos_weights_for(cfg: Config, train: ClipIndex, au_labels: pl.DataFrame | None) -> np.ndarray | None:
    """7 x 18 pos-weights: counted on the training clips (Eq. 6-8), an official preset, or a CSV."""

    a = cfg.au
    if a.strategy == "none":
        return None
    src = a.pos_weights
    if src == "none":
        return None
    if src == "computed":
        if au_labels is None:
            raise AudferError("config: au.pos_weights=computed needs video AU labels")

        return pos_weights(
            keyed(au_labels),
            keyed(train.table.select("clip_id", "label")),
            a.strategy,
            minor=None if a.minor is None else list(a.minor),
        ).values
    if src in ("dfew", "ferv39k"):
        return official_pos_weights(src, a.strategy)
    return read_expression_table(src, what="pos-weight table")


def au_label_summary(checks: dict) -> dict | None:
    """What a run's records say about its AU labels: source tool(s), masked AUs, coverage of the training clips."""
    if "au_coverage" not in checks:
        return None
    cov, src = checks["au_coverage"], checks.get("au_source") or {}
    masked = sorted(set(cov.get("masked_aus", [])) | set(src.get("masked_aus", [])), key=AUS.index)
    return {
        "sources": src.get("sources", []),
        "masked_aus": masked,
        "coverage": cov["share"],
        "clips_with_labels": cov["with_au"],
        "clips": cov["clips"],
        "per_au_coverage": cov.get("per_au", {}),
    }


def describe_au_labels(summary: dict | None) -> str:
    """One line for logs and reports."""
    if not summary:
        return "no AU labels"
    return (
        f"AU labels from {'+'.join(summary['sources']) or 'unknown'} on {summary['clips_with_labels']} of "
        f"{summary['clips']} training clips ({100 * summary['coverage']:.1f} %); masked (unknown, not absent): "
        f"{', '.join(summary['masked_aus']) or 'none'}"
    )


@dataclass
class Prepared:
    """Everything a run needs besides the model: indexes per split, AU labels, K and pos-weights, and what
    was checked about them (``checks``: AU-label coverage, provenance of K and pos-weights)."""

    train: ClipIndex
    val: ClipIndex | None
    test: ClipIndex
    au_labels: pl.DataFrame | None
    knowledge: np.ndarray
    pos_weight: np.ndarray | None
    checks: dict


def prepare(cfg: Config) -> Prepared:
    """Split indexes, AU labels, K, pos-weights; refuses what would make the run silently wrong:

    - AU labels matching fewer than ``data.min_au_coverage`` of the training clips (ids are matched by
      ``audfer.data.annotations.clip_key``): an error showing unmatched ids from both sides;
    - a K.csv or pos-weight CSV whose provenance sidecar lists clips of this run's test split
      (``au.allow_test_overlap`` accepts it deliberately); the authors' FERV39k preset warns (its counts
      appear to include the test split)."""
    train = split_index(cfg, "train")
    if cfg.data.train_fraction < 1:
        train = training_subset(train, cfg.data.train_fraction, cfg.data.subset_seed, identities_for(cfg))
    test = split_index(cfg, "test")
    val = None
    if cfg.train.selection == "best-val":
        train, val = carve_validation(train, cfg.train.val_share, cfg.train.seed)
    a, d = cfg.au, cfg.data
    au, au_source = au_labels_with_source(cfg)
    checks: dict = {}
    if a.strategy != "none":
        cov = au_coverage(train, au)
        checks["au_coverage"] = cov
        checks["au_source"] = au_source
        if cov["share"] < d.min_au_coverage:
            raise AudferError(
                f"AU labels cover {cov['with_au']} of {cov['clips']} training clips ({100 * cov['share']:.1f} %, below "
                f"data.min_au_coverage={d.min_au_coverage}): split ids without AU labels e.g. "
                f"{', '.join(cov['unmatched_split']) or '-'}; AU-label ids not in the split e.g. "
                f"{', '.join(cov['unmatched_labels']) or '-'} (set data.min_au_coverage lower to train anyway)"
            )
    where = f"{d.dataset} fold {d.fold}"
    test_ids = test.table["clip_id"].to_list()
    if a.knowledge not in BUILTIN_KNOWLEDGE:
        checks["knowledge"] = check_no_test_clips(
            a.knowledge, "the knowledge matrix", test_ids, allow=a.allow_test_overlap, where=where
        )
    if a.strategy != "none" and a.pos_weights not in ("computed", "dfew", "ferv39k", "none"):
        checks["pos_weights"] = check_no_test_clips(
            a.pos_weights, "the pos-weight table", test_ids, allow=a.allow_test_overlap, where=where
        )
    if a.strategy != "none" and a.pos_weights == "ferv39k":
        import warnings

        warnings.warn(
            "au.pos_weights=ferv39k: the authors' FERV39k counts appear to include the test split",
            UserWarning,
            stacklevel=2,
        )
    return Prepared(train, val, test, au, knowledge_for(cfg, train), pos_weights_for(cfg, train, au), checks)


def check_no_test_clips(path: str | Path, what: str, test_ids: Iterable[object], *, allow: bool, where: str) -> dict:
    """Refuse ``path`` when its sidecar lists clips of the run's test split; returns what was found
    (``{"file", "provenance", "test_clips"}``) for the run's records."""
    record = read_provenance(path)
    info: dict[str, object] = {
        "file": str(path),
        "provenance": None if record is None else {k: v for k, v in record.items() if k != "clip_ids"},
        "test_clips": None,
    }
    if record is None:
        warnings.warn(
            f"{path}: {what} has no provenance sidecar ({sidecar(path).name}); cannot check that it was computed "
            f"without test clips",
            UserWarning,
            stacklevel=3,
        )
        return info
    blind = [i["file"] for i in record.get("inputs") or [] if isinstance(i, dict) and i.get("provenance") is None]
    if blind:
        warnings.warn(
            f"{path}: {what} was combined from file(s) without a provenance sidecar ({', '.join(blind)}); their clips "
            f"are unknown, so the check that it was computed without test clips covers only the other inputs",
            UserWarning,
            stacklevel=3,
        )
    used = set(keyed(pl.DataFrame({"clip_id": record["clip_ids"]}, schema={"clip_id": pl.String}))["clip_id"].to_list())
    test = keyed(pl.DataFrame({"clip_id": list(test_ids)}, schema={"clip_id": pl.String}))["clip_id"].to_list()
    overlap = sorted(used.intersection(test))
    info["test_clips"] = len(overlap)
    if overlap and not allow:
        raise InputError(
            f"{path}: {what} was computed from {len(overlap)} clip(s) of the {where} test split "
            f"(e.g. {', '.join(overlap[:5])}); use one computed on the training clips, or set "
            f"au.allow_test_overlap=true to accept the leak deliberately"
        )
    return info
