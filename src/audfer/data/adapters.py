"""The built-in dataset adapters (``audfer.data.registry`` names them and loads this module on first use): DFEW, the synthetic set in DFEW's layout, FERV39k, MAFW
and generic list files, each listing its official split of a fold with the readers of ``audfer.data.datasets``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audfer.data.datasets import ClipIndex, dfew_index, ferv39k_index, list_index, mafw_index
from audfer.errors import InputError


def _synthetic_frames(root: Path) -> str:
    meta = root / "synth.json"
    if not meta.is_file():
        raise InputError(f"{meta}: not found; data.root must be a folder written by `audfer synth`")
    return Path(json.loads(meta.read_text())["frames_dir"]).name


def dfew_split(root: Path, d: Any, split: str) -> ClipIndex:
    """DFEW: fold ``d.fold``'s official split (EmoLabel_DataSplit), frame folders under ``Clip/<d.frames>``."""
    return dfew_index(root, d.fold, split, frames=d.frames or "clip_224x224", on_missing=d.on_missing)


def synthetic_split(root: Path, d: Any, split: str) -> ClipIndex:
    """``audfer synth`` output: DFEW's layout, identity-disjoint folds, its frame folder named in ``synth.json``."""
    return dfew_index(root, d.fold, split, frames=d.frames or _synthetic_frames(root), on_missing=d.on_missing)


def ferv39k_split(root: Path, d: Any, split: str) -> ClipIndex:
    """FERV39k: its one official train / test split."""
    return ferv39k_index(root, split, on_missing=d.on_missing)


def mafw_split(root: Path, d: Any, split: str) -> ClipIndex:
    """MAFW: fold ``d.fold``'s split, 11 classes or our 7-class view (``d.classes``)."""
    return mafw_index(root, d.fold, split, classes=d.classes, on_missing=d.on_missing)


def list_split(root: Path, d: Any, split: str) -> ClipIndex:
    """Any dataset as list files (``d.train_list`` / ``d.test_list``: clip dir, optional frame count, label)."""
    lst = d.train_list if split == "train" else d.test_list
    if lst is None:
        raise InputError(f"config: data.{split}_list is not set (dataset: list)")
    return list_index(lst, root, num_classes=d.classes, class_order=d.class_order, on_missing=d.on_missing)
