"""DFEW (Jiang et al., ACM MM 2020): 5 official folds of single-labelled clips.

Layout: ``<root>/EmoLabel_DataSplit/{train,test}(single-labeled)/set_<fold>.csv`` (``video_name,label``, labels
1..7 in audfer's order), frame folders ``<root>/Clip/<data.frames>/<id>/`` (``clip_224x224`` by default, or
``clip_224x224_16f``). Clip id: the 5-digit video number (``00025``); an AU tool's file ``25.csv`` or ``025.csv``
is the same clip (``audfer.data.annotations.clip_key``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audfer.data.registry import register_dataset
from audfer.data.sets._official import split_file_knowledge


def split(root: Path, d: Any, part: str) -> Any:
    """Fold ``d.fold``'s official ``part`` split, frame folders under ``Clip/<d.frames>``."""
    from audfer.data.datasets import dfew_index

    return dfew_index(root, d.fold, part, frames=d.frames or "clip_224x224", on_missing=d.on_missing)


def clip_id(col: str) -> Any:
    """All-digit ids as 5-digit numbers (``audfer.data.annotations.clip_key``)."""
    from audfer.data.annotations import clip_key

    return clip_key(col)


def _labels(root: Any, fold: int, part: str) -> Any:
    from audfer.data.annotations import dfew_labels

    return dfew_labels(root, fold, part)


DFEW = register_dataset(
    "dfew",
    split,
    folds=5,
    description="DFEW: 5 folds (EmoLabel_DataSplit), frame folders under Clip/<frames>",
    clip_id=clip_id,
    knowledge=split_file_knowledge(_labels, "DFEW"),
)
