"""The synthetic set ``audfer synth`` renders (``audfer.synth``): DFEW's layout and label files, five
identity-disjoint folds, its frame folder named in ``<root>/synth.json``, its OpenFace CSVs in ``<root>/OpenFace``.
Clip ids and K's labels as DFEW's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audfer.data.registry import register_dataset
from audfer.data.sets import dfew
from audfer.errors import InputError


def _frames(root: Path) -> str:
    meta = root / "synth.json"
    if not meta.is_file():
        raise InputError(f"{meta}: not found; data.root must be a folder written by `audfer synth`")
    return Path(json.loads(meta.read_text())["frames_dir"]).name


def split(root: Path, d: Any, part: str) -> Any:
    """Fold ``d.fold``'s ``part`` split in DFEW's layout, frames in the folder ``synth.json`` names."""
    from audfer.data.datasets import dfew_index

    return dfew_index(root, d.fold, part, frames=d.frames or _frames(root), on_missing=d.on_missing)


SYNTHETIC = register_dataset(
    "synthetic",
    split,
    folds=5,
    description="`audfer synth` output: DFEW's layout, identity-disjoint folds",
    clip_id=dfew.clip_id,
    knowledge=dfew.DFEW.knowledge,
    au_dir="OpenFace",
    root_hint=" (no data yet? `audfer synth --out synth` renders the built-in synthetic set: then data.root=synth)",
)
