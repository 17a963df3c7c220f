"""AffWild2 (ABAW expression track), for §3.1's K only: frame-level labels, one ``.txt`` per video (class-name
header, then one integer per frame, -1 = none; ``audfer.data.annotations.affwild2_frame_labels``). Annotation line
i is frame i (OpenFace numbers frames from 1). Clip id: the file stem."""

from __future__ import annotations

from typing import Any

from audfer.data.registry import KnowledgeLabels, register_dataset, required


def knowledge(spec: Any, frames: Any, clips: list[str]) -> KnowledgeLabels:
    """The AU frames joined with their annotated labels (no clip-level table)."""
    from audfer.data.annotations import affwild2_frame_labels

    frame_labels, left_out = affwild2_frame_labels(required(spec, "annotations", "--annotations <folder>"))
    n = frames.height
    frames = frames.join(frame_labels, on=["clip_id", "frame"], how="inner")
    counts = {f"frames left out: {k}": v for k, v in left_out.items()}
    counts["AU frames without annotation"] = n - frames.height
    missing = set(frame_labels.get_column("clip_id").unique().to_list()) - set(clips)
    counts["annotated videos without AU CSV"] = len(missing)
    return KnowledgeLabels(frames, None, counts)


AFFWILD2 = register_dataset("affwild2", description="AffWild2 (ABAW): frame-level labels (K only)", knowledge=knowledge)
