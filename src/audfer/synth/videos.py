"""Videos of held-out synthetic persons, rendered for ``audfer predict`` (the demo's last step)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from audfer.errors import AudferError
from audfer.files import atomic_path, write_bytes, write_json
from audfer.synth.dataset import SynthConfig, render_clip
from audfer.vocab import EXPRESSIONS

__all__ = ["render_videos"]


def render_videos(
    synth_dir: Path, out: Path, *, frames: int | None = None, size: int = 128, fps: float = 25.0
) -> list[dict]:
    """One ``.mp4`` per expression: a test-fold person (fold 1) showing a clip's true expression, rendered at a
    higher frame rate and larger (so these are new videos of held-out persons, not training data), plus
    a strip of 4 frames as PNG. Returns ``[{video, strip, clip_id, true}]``.

    ``frames`` (default: twice the set's frames, 16 for the demo) spans the whole onset-apex-offset course, as a
    training clip does: ``audfer predict``'s default 16-frame window then sees what the model was trained on. (A
    longer video cut into 16-frame windows shows mostly onset or offset in each window, which a model trained on
    whole courses reads as Neutral.)"""
    import cv2

    meta = json.loads((synth_dir / "synth.json").read_text())
    base = SynthConfig(**{k: v for k, v in meta.items() if k in SynthConfig.__dataclass_fields__})
    frames = frames or 2 * base.frames
    cfg = replace(base, frames=frames, size=size)
    plan = pl.read_csv(synth_dir / "synth_meta.csv", glob=False, schema_overrides={"clip_id": pl.String})
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for e, name in enumerate(EXPRESSIONS):
        rows = plan.filter((pl.col("fold") == 1) & (pl.col("true_label") == e) & (pl.col("label") == e))
        if rows.height == 0:
            continue
        row = rows.row(0, named=True)
        index = int(row["clip_id"]) - 1
        clip, _, _ = render_clip(cfg, index, int(row["identity"]), e)
        video = out / f"{name.lower()}_{row['clip_id']}.mp4"
        # OpenCV's writer fails silently (a full disk, no encoder): the finished file is decoded back, frame by
        # frame, before it replaces anything
        with atomic_path(video, suffix=".mp4") as tmp:
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))  # type: ignore[attr-defined]
            for f in clip:
                writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            writer.release()
            cap = cv2.VideoCapture(str(tmp))
            n = 0
            while cap.grab():
                n += 1
            cap.release()
            if n != len(clip):
                kept = "the previous file is intact" if video.exists() else "nothing was written"
                raise AudferError(
                    f"{video}: the video writer produced {n} of {len(clip)} frames (a full disk?); {kept}"
                )
        strip = out / f"{video.stem}.png"
        pick = np.linspace(0, frames - 1, 4).round().astype(int)
        ok, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate(list(clip[pick]), axis=1), cv2.COLOR_RGB2BGR))
        if not ok:
            raise AudferError(f"{strip}: cannot encode the PNG")
        write_bytes(png.tobytes(), strip)
        made.append({"video": video, "strip": strip, "clip_id": row["clip_id"], "true": name})
    # what `audfer predict` reads to know these are rendered faces, not real ones (predictor.is_rendered)
    listing = {"rendered_by": "audfer synth", "videos": {m["video"].name: _sha256(m["video"]) for m in made}}
    write_json(listing, out / "rendered.json")
    return made


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
