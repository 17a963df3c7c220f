"""Video -> faces -> windows -> per-window expression and AU probabilities (``audfer predict``).

A pipeline of swappable stages with typed outputs (facetorch-style):

1. ``iter_frames``: frames (RGB) streamed by OpenCV (mp4 / avi / mov / mkv), read twice (detect, then crop);
2. the face detector (``faces.make_detector``): BlazeFace full-range by default (``predict/blazeface.py``), OpenCV's
   Haar cascade (``--detector haar``), or any callable ``frame -> (N, 4) boxes``;
3. ``track_main_face``: detections linked into tracks by overlap; the main face is the track with the
   most frames (ties: larger faces). Isolated false hits (a track shorter than ``min_track`` frames)
   are not faces. Gaps of up to ``max_gap`` frames inside the main track are bridged by interpolating
   the box; other frames are flagged as having no face;
4. ``crop_faces``: a square box around the face enlarged by ``margin``, padded at the image border,
   resized to the model's input size;
5. windows of ``window`` frames every ``stride`` frames; each window samples the model's frame count
   from its face frames (uniformly) and needs at least half its frames with a face, otherwise it is
   flagged and gets no prediction;
6. the model: softmax over expressions, sigmoid over the 18 AU logits (AU head).

A video where no face is found raises ``NoFaceError`` (the CLI: a clear message, exit status 2),
never an invented prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch

from audfer.data.sampling import uniform_indices
from audfer.errors import AudferError, NoFaceError
from audfer.evaluation.metrics import class_names
from audfer.models import create_model, load_checkpoint
from audfer.predict.faces import (
    FACE_MODES,
    FullFrameDetector,
    crop_face,
    detect_faces,
    make_detector,
    track_main_face,
)
from audfer.predict.result import VideoResult
from audfer.predict.video import frame_times, iter_frames, video_fps
from audfer.vocab import AUS
from audfer.weights.package import read_stored_run

if TYPE_CHECKING:
    from audfer.models.base import DFERModel


def windows(n: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges; the last window is aligned to the video end; a short video is one window."""
    if window < 1 or stride < 1:
        raise AudferError(f"--window and --stride must be positive, got {window} and {stride}")
    if n <= window:
        return [(0, n)]
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] + window < n:
        starts.append(n - window)
    return [(s, s + window) for s in starts]


def load_predictor(
    checkpoint: str | Path,
    model_name: str | None = None,
    *,
    trust_pickle: bool = False,
    revision: str | None = None,
    **model_kwargs: Any,
) -> DFERModel:
    """A model for inference: a model package (folder, or Hub id ``org/name`` at ``revision``), an audfer training
    checkpoint, or (with ``model_name``) any weights ``load_checkpoint`` understands (official layouts included).
    Packages hold no pickle; checkpoints are read weights-only: a file that would run code when unpickled, or whose
    config names code to import, needs ``trust_pickle=True`` (docs/weights.md)."""

    if model_name:
        model = create_model(model_name, **model_kwargs)
        load_checkpoint(model, checkpoint, trust_pickle=trust_pickle, revision=revision)
        return model.eval()
    return read_stored_run(checkpoint, revision=revision, trust_pickle=trust_pickle).build_model()


#: ``predict_video(precision=...)``: the model's arithmetic.
PRECISIONS = ("float32", "bfloat16")


@torch.no_grad()
def predict_video(
    path: str | Path,
    model: DFERModel,
    *,
    window: int = 16,
    stride: int = 8,
    detector: str | Callable[[np.ndarray], np.ndarray] | None = None,
    detector_weights: str | Path | None = None,
    margin: float = 0.25,
    batch_size: int = 8,
    min_track: int = 5,
    max_gap: int = 5,
    face: str = "detect",
    detect_every: int = 4,
    precision: str = "float32",
) -> VideoResult:
    """Per-window predictions of ``model`` on a video: a ``VideoResult`` (windows table, face boxes, fps, summary).

    Columns: ``window, start_frame, end_frame`` (end exclusive), ``start_time, end_time`` (s),
    ``face_frames`` (frames of the window with the main face), ``has_face``, ``box_x, box_y, box_w,
    box_h`` (median face box of the window), one probability per expression, ``pred`` (class name),
    then ``AU01..AU45`` presence probabilities (when the model has an AU head). Windows without enough
    face frames keep nulls. Raises ``NoFaceError`` when the video has no face at all. The result also holds the
    per-frame face boxes ``(T, 4)`` (NaN = no face). ``face="full"``: no detection, the whole frame is the face
    (``FullFrameDetector``, no margin). ``detect_every``: the detector runs on every n-th frame (and between two that
    disagree; ``faces.detect_faces``), boxes in between are interpolated; 1 detects on every frame. ``precision``:
    ``float32``, or ``bfloat16`` (autocast; on CPUs with bf16 instructions and on GPUs about twice as fast; full-size
    M3DFEL's probabilities stay within 0.01 of float32, tested; check your own model the same way). ``detector``:
    ``blazeface`` (default), ``haar``, ``full`` or a callable (``faces.make_detector``; ``detector_weights``: the
    BlazeFace file).
    """

    if face not in FACE_MODES:
        raise AudferError(f"face must be one of {', '.join(FACE_MODES)}, got {face!r}")
    if face == "full" or detector == "full":
        face, detector, margin, min_track = "full", FullFrameDetector(), 0.0, 1
    detect = make_detector(detector, detector_weights)
    if precision not in PRECISIONS:
        raise AudferError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    stamps: list[float] = []
    every = 1 if face == "full" else detect_every
    frames = iter_frames(path, check_length=True, times=stamps)
    detections, seen, n_frames = detect_faces(frames, detect, every=every)  # pass 1: detect
    fps = video_fps(path)
    at = frame_times(stamps, fps)
    boxes = track_main_face(
        detections, min_track=min_track, max_gap=max_gap, times=seen, n_frames=n_frames, every=every
    )
    has_face = ~np.isnan(boxes).any(axis=1)
    if not has_face.any():
        raise NoFaceError(f"{path}: no face found in {n_frames} frames")
    spec = model.input_spec
    crops = np.zeros((n_frames, spec.size, spec.size, 3), np.uint8)
    for t, frame in enumerate(iter_frames(path)):  # pass 2: crop the main face (small, so kept)
        if t < n_frames and has_face[t]:
            crops[t] = crop_face(frame, boxes[t], spec.size, margin)
    mean = torch.tensor(spec.mean).view(1, 1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 1, 3, 1, 1)
    names = class_names(model.model_config["num_classes"] if hasattr(model, "model_config") else 7)
    rows, clips = [], []
    for i, (s, e) in enumerate(windows(n_frames, window, stride)):
        face_idx = np.flatnonzero(has_face[s:e]) + s
        ok = len(face_idx) * 2 >= (e - s)
        box = np.median(boxes[face_idx], axis=0) if len(face_idx) else np.full(4, np.nan)
        rows.append(
            {
                "window": i,
                "start_frame": s,
                "end_frame": e,
                "start_time": round(at(s), 3),
                "end_time": round(at(e), 3),
                "face_frames": len(face_idx),
                "has_face": ok,
                "box_x": float(box[0]),
                "box_y": float(box[1]),
                "box_w": float(box[2]),
                "box_h": float(box[3]),
            }
        )
        if ok:
            pick = face_idx[uniform_indices(len(face_idx), spec.frames)]
            clips.append((i, crops[pick]))
    probs = np.full((len(rows), len(names)), np.nan, np.float32)
    au = np.full((len(rows), len(AUS)), np.nan, np.float32)
    has_au = False
    device = next(model.parameters()).device
    for b in range(0, len(clips), batch_size):
        part = clips[b : b + batch_size]
        x = torch.from_numpy(np.stack([c for _, c in part])).permute(0, 1, 4, 2, 3).float().div_(255)
        x = ((x - mean) / std).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            out = model(x)
        idx = [i for i, _ in part]
        probs[idx] = out.logits.float().softmax(1).cpu().numpy()
        if out.au_logits is not None:
            has_au = True
            au[idx] = out.au_logits.float().sigmoid().cpu().numpy()
    table = pl.DataFrame(rows).with_columns(pl.col("box_x", "box_y", "box_w", "box_h").fill_nan(None))
    valid = ~np.isnan(probs[:, 0])
    table = table.with_columns(
        [pl.Series(n, probs[:, j], dtype=pl.Float32).fill_nan(None) for j, n in enumerate(names)]
    )
    table = table.with_columns(
        pl.Series("pred", [names[int(p.argmax())] if v else None for p, v in zip(probs, valid)], dtype=pl.String)
    )
    if has_au:
        table = table.with_columns([pl.Series(a, au[:, j], dtype=pl.Float32).fill_nan(None) for j, a in enumerate(AUS)])
    return VideoResult(str(path), table, boxes, fps)


def predict_videos(
    videos: list[str | Path],
    model: DFERModel,
    out: str | Path,
    *,
    annotate: str | Path | None = None,
    log: Callable[[str], None] = print,
    **options: Any,
) -> list[VideoResult]:
    """``predict_video`` over several videos, written together to ``out`` (``.json`` or ``.csv``).

    A video without a face is reported and skipped when there are several (the others are still written, then
    ``AudferError`` names the faceless ones); a single video without a face raises ``NoFaceError``. ``annotate``:
    the annotated video's path for one video, a folder (``<stem>_annotated.mp4``) for several. ``options`` go to
    ``predict_video``."""
    out = Path(out)
    if out.suffix.lower() not in (".json", ".csv"):
        raise AudferError(f"--out {out}: expected a .json or .csv file name")
    if getattr(model, "au_head", None) is None:
        log("AU probabilities: not available (this model has no AU head); expression probabilities only")
    if options.get("face", "detect") != "full" and options.get("detector") != "full":  # loaded (and warned) once
        options["detector"] = make_detector(options.get("detector"), options.pop("detector_weights", None))
    results, failed = [], []
    for video in videos:
        try:
            result = predict_video(video, model, **options)
        except NoFaceError as exc:
            if len(videos) == 1:
                raise
            log(f"audfer: error: {exc}")
            failed.append(str(video))
            continue
        results.append(result)
        log(result.describe())
        if annotate is not None:
            result.annotate(annotate if len(videos) == 1 else Path(annotate) / f"{Path(video).stem}_annotated.mp4")
    if results:
        VideoResult.write(results, out)
        log(f"wrote {out}")
    if failed:
        raise AudferError(
            f"{len(failed)} of {len(videos)} video(s) without a face, no prediction for them: {', '.join(failed)}"
        )
    return results
