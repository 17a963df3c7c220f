"""Any dataset whose clip labels are a ``clip_labels.csv`` (``clip_id,label``, label 0..6 or a class name;
``audfer.io.read_clip_labels``), for §3.1's K only (``audfer knowledge --labels``). Clip id: the AU file's stem,
compared as written."""

from __future__ import annotations

from typing import Any

from audfer.data.registry import KnowledgeLabels, register_dataset, required


def knowledge(spec: Any, frames: Any, clips: list[str]) -> KnowledgeLabels:
    """Labels from ``spec.labels``."""
    from audfer.io import read_clip_labels

    return KnowledgeLabels(frames, read_clip_labels(required(spec, "labels", "--labels clip_labels.csv")))


CLIPS = register_dataset("clips", description="any clips with a clip_labels.csv (K only)", knowledge=knowledge)
