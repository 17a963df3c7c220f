"""MAFW (Liu et al., ACM MM 2022): 5 official folds of single-labelled clips, 11 classes, or audfer's 7-class view
(``audfer.data.annotations``: the seven basic expressions by name, contempt ... disappointment left out).

Layout: ``<root>/split/single/no_caption/set_<fold>/{train,test}.txt`` (``00025.mp4 anger``), frame folders
``<root>/data/frames/<id>/`` or videos ``<root>/data/clips/<id>.mp4``. Clip id: the file stem, all-digit ids as
5-digit numbers as for DFEW."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audfer.data.registry import register_dataset
from audfer.data.sets import dfew
from audfer.data.sets._official import split_file_knowledge
from audfer.vocab import EXPRESSIONS, MAFW_CLASSES


def split(root: Path, d: Any, part: str) -> Any:
    """Fold ``d.fold``'s ``part`` split, 11 classes or the 7-class view (``d.classes``)."""
    from audfer.data.datasets import mafw_index

    return mafw_index(root, d.fold, part, classes=d.classes, on_missing=d.on_missing)


def _labels(root: Any, fold: int, part: str) -> Any:
    from audfer.data.annotations import mafw_labels

    return mafw_labels(root, fold, part)


MAFW = register_dataset(
    "mafw",
    split,
    folds=5,
    description="MAFW: 5 folds, 11 classes or our 7-class view",
    class_order={len(EXPRESSIONS): EXPRESSIONS, len(MAFW_CLASSES): tuple(c.capitalize() for c in MAFW_CLASSES)},
    clip_id=dfew.clip_id,
    knowledge=split_file_knowledge(_labels, "MAFW"),
)
