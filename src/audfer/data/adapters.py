"""The built-in dataset adapters (``audfer.data.registry``): DFEW, the synthetic set in DFEW's layout, FERV39k, MAFW
and generic list files, each listing its official split of a fold with the readers of ``audfer.data.datasets``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audfer.data.datasets import ClipIndex, dfew_index, ferv39k_index, list_index, mafw_index
from audfer.data.registry import register_dataset
from audfer.errors import InputError


def _synthetic_frames(root: Path) -> str:
    meta = root / "synth.json"
    if not meta.is_file():
        raise InputError(f"{meta}: not found; data.root must be a folder written by `audfer synth`")
    return Path(json.loads(meta.read_text())["frames_dir"]).name


def _list_split(root: Path, d: Any, split: str) -> ClipIndex:
    lst = d.train_list if split == "train" else d.test_list
    if lst is None:
        raise InputError(f"config: data.{split}_list is not set (dataset: list)")
    return list_index(lst, root, num_classes=d.classes, class_order=d.class_order, on_missing=d.on_missing)


register_dataset(
    "dfew",
    lambda root, d, split: dfew_index(root, d.fold, split, frames=d.frames or "clip_224x224", on_missing=d.on_missing),
    folds=5,
    description="DFEW: 5 folds (EmoLabel_DataSplit), frame folders under Clip/<frames>",
)
register_dataset(
    "synthetic",
    lambda root, d, split: dfew_index(
        root, d.fold, split, frames=d.frames or _synthetic_frames(root), on_missing=d.on_missing
    ),
    folds=5,
    description="`audfer synth` output: DFEW's layout, identity-disjoint folds",
)
register_dataset(
    "ferv39k",
    lambda root, d, split: ferv39k_index(root, split, on_missing=d.on_missing),
    description="FERV39k: one official train / test split",
)
register_dataset(
    "mafw",
    lambda root, d, split: mafw_index(root, d.fold, split, classes=d.classes, on_missing=d.on_missing),
    folds=5,
    description="MAFW: 5 folds, 11 classes or our 7-class view",
)
register_dataset("list", _list_split, description="any dataset as train / test list files (clip path, label)")
