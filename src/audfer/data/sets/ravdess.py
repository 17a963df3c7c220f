"""RAVDESS (Livingstone & Russo, 2018), for §3.1's K only: the label is the file name's third field
(``03-01-05-01-02-01-12``: 05 = angry; ``audfer.data.annotations.ravdess_labels``); calm clips are left out, or
counted as neutral (``--calm neutral``). Clip id: the file stem."""

from __future__ import annotations

from typing import Any

from audfer.data.registry import KnowledgeLabels, register_dataset


def knowledge(spec: Any, frames: Any, clips: list[str]) -> KnowledgeLabels:
    """Labels from the AU files' names."""
    from audfer.data.annotations import ravdess_labels

    labels, calm = ravdess_labels(clips, calm=spec.calm)
    return KnowledgeLabels(frames, labels, {"clips left out: calm": len(calm)})


RAVDESS = register_dataset("ravdess", description="RAVDESS: labels from file names (K only)", knowledge=knowledge)
