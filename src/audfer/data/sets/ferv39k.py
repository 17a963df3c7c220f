"""FERV39k (Wang et al., CVPR 2022): one official train / test split (All_scenes).

Layout: ``<root>/4_setups/All_scenes/{train,test}_All.csv`` (``Scene/Emotion/ID Emotion``), frame folders
``<root>/2_ClipsforFaceCrop/<Scene>/<Emotion>/<ID>/``. Clip id: the listed path with ``/`` -> ``_``
(``Action_Happy_0267``), compared as written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audfer.data.registry import register_dataset
from audfer.data.sets._official import split_file_knowledge


def split(root: Path, d: Any, part: str) -> Any:
    """Its one official ``part`` split."""
    from audfer.data.datasets import ferv39k_index

    return ferv39k_index(root, part, on_missing=d.on_missing)


def _labels(root: Any, fold: int, part: str) -> Any:
    from audfer.data.annotations import ferv39k_labels

    return ferv39k_labels(root, part)


FERV39K = register_dataset(
    "ferv39k",
    split,
    folds=None,
    description="FERV39k: one official train / test split",
    knowledge=split_file_knowledge(_labels, "FERV39k"),
)
