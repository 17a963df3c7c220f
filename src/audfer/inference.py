"""Video -> faces -> windows -> per-window expression and AU probabilities (``audfer predict``).

A pipeline of swappable stages with typed outputs (facetorch-style):

1. ``iter_frames``: frames (RGB) streamed by OpenCV (mp4 / avi / mov / mkv), read twice (detect, then crop);
2. ``HaarFaceDetector``: OpenCV's frontal-face Haar cascade, shipped inside opencv-python (nothing is
   downloaded); detection runs on a frame scaled to ``detect_width`` pixels for speed;
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

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models.base import DFERModel

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from .errors import AudferError, InputError, NoFaceError  # noqa: F401 - NoFaceError: part of this API
from .evaluation import class_names
from .vocab import AUS


class VideoWarning(UserWarning):
    """A video that decodes, but not as declared (e.g. cut off: fewer frames than its header says)."""


def _open(path: str | Path):
    import os

    path = Path(path)
    if not path.is_file():
        raise AudferError(f"{path}: video not found" + (" (it is a folder)" if path.is_dir() else ""))
    if path.stat().st_size == 0:
        raise AudferError(f"{path}: empty file; expected a video (mp4, avi, mov or mkv)")
    with open(path, "rb") as fh:
        head = fh.read(512)
    try:
        text = head.decode("utf-8")
        if text and all(c.isprintable() or c in "\r\n\t" for c in text):
            raise AudferError(f"{path}: a text file ({text.strip().splitlines()[0][:50]!r}...), not a video")
    except UnicodeDecodeError:
        pass
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own complaints never precede our message
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - builds without the logging module
        pass
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise AudferError(f"{path}: cannot open video (expected mp4, avi, mov or mkv readable by OpenCV)")
    return cap


def video_fps(path: str | Path) -> float:
    """Frames per second the video declares; 25 with a ``VideoWarning`` when it declares none (window times then
    assume 25 fps)."""
    import warnings

    import cv2

    cap = _open(path)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    if fps and fps > 0:
        return float(fps)
    warnings.warn(f"{path}: declares no frame rate; window times assume 25 fps", VideoWarning, stacklevel=2)
    return 25.0


def frame_times(stamps: list[float], fps: float) -> Callable[[int], float]:
    """Time (s) of frame ``t`` (``t == len(stamps)``: the end of the last frame). A constant-rate video (every step
    within 1 ms of ``1 / fps``): ``t / fps``. A variable-frame-rate one (phone recordings): the frames' own
    presentation times, from the first frame, so window times are where the frames really are."""
    steps = np.diff(np.asarray(stamps, np.float64))
    if len(stamps) < 2 or (steps <= 0).any() or np.abs(steps - 1.0 / fps).max() <= 1e-3:
        return lambda t: t / fps
    start, last = stamps[0], float(steps[-1])

    def at(t: int) -> float:
        return stamps[t] - start if t < len(stamps) else stamps[-1] - start + last

    return at


def iter_frames(
    path: str | Path, *, check_length: bool = False, times: list[float] | None = None
) -> Iterator[np.ndarray]:
    """Frames of a video (RGB uint8), streamed: a long video never sits in memory whole. ``check_length``:
    warn (``VideoWarning``) when clearly fewer frames decode than the file declares (< 95 %: a cut-off file).
    ``times``: each frame's presentation time (s) is appended to it (what a variable-frame-rate video needs)."""
    import warnings

    cap = _open(path)
    import cv2

    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    n = 0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            n += 1
            if times is not None:
                times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
            yield cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    if n == 0:
        raise AudferError(f"{path}: no decodable frame" + (f" (the file declares {declared})" if declared > 0 else ""))
    # container frame counts are estimates (real files read a few frames short of them): warn only on a clear gap
    if check_length and declared > 0 and n < 0.95 * declared:
        warnings.warn(
            f"{path}: read {n} of the {declared} frames the file declares (cut off or damaged?); predicting on "
            f"the {n} frames read",
            VideoWarning,
            stacklevel=2,
        )


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade. ``__call__(frame RGB) -> (N, 4) boxes x, y, w, h`` in frame pixels."""

    def __init__(
        self,
        *,
        detect_width: int = 320,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: float = 0.08,
        cascade: str = "haarcascade_frontalface_default.xml",
    ) -> None:
        import cv2

        path = Path(cv2.data.haarcascades) / cascade  # type: ignore[attr-defined]  # (not in opencv's stubs)
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise AudferError(f"{path}: Haar cascade not found; opencv-python-headless 4.x ships it (5.x does not)")
        self.detect_width, self.scale_factor, self.min_neighbors, self.min_size = (
            detect_width,
            scale_factor,
            min_neighbors,
            min_size,
        )

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        h, w = frame.shape[:2]
        scale = min(1.0, self.detect_width / w)
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        side = max(12, int(self.min_size * min(gray.shape)))
        found = self.cascade.detectMultiScale(gray, self.scale_factor, self.min_neighbors, minSize=(side, side))
        if len(found) == 0:
            return np.zeros((0, 4), np.float32)
        return np.asarray(found, np.float32) / scale


class FullFrameDetector:
    """``--face full``: every frame is the face (pre-cropped clips such as DFEW's, or rendered faces no detector
    knows). One box, the whole frame; a non-square frame is padded to a square by repeating its border."""

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        return np.array([[0.0, 0.0, w, h]], np.float32)


FACE_MODES = ("detect", "full")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def track_main_face(
    detections: list[np.ndarray], *, min_track: int = 5, max_gap: int = 5, min_iou: float = 0.3
) -> np.ndarray:
    """Per-frame box of the main face ``(T, 4)``, NaN where there is none (see the module doc)."""
    tracks: list[dict] = []
    for t, boxes in enumerate(detections):
        used = set()
        for tr in tracks:
            if t - tr["last"] > max_gap + 1:
                continue
            best, best_iou = None, min_iou
            for i, b in enumerate(boxes):
                if i not in used and (v := _iou(tr["boxes"][tr["last"]], b)) > best_iou:
                    best, best_iou = i, v
            if best is not None:
                used.add(best)
                tr["boxes"][t] = boxes[best]
                tr["last"] = t
        for i, b in enumerate(boxes):
            if i not in used:
                tracks.append({"boxes": {t: b}, "last": t})
    n = len(detections)
    out = np.full((n, 4), np.nan, np.float32)
    good = [tr for tr in tracks if len(tr["boxes"]) >= min_track]
    if not good:
        return out
    main = max(good, key=lambda tr: (len(tr["boxes"]), np.mean([b[2] * b[3] for b in tr["boxes"].values()])))
    times = np.array(sorted(main["boxes"]))
    boxes = np.stack([main["boxes"][t] for t in times])
    for t0, t1 in zip(times[:-1], times[1:]):  # bridge short gaps by interpolation
        if 1 < t1 - t0 <= max_gap + 1:
            for t in range(t0 + 1, t1):
                w = (t - t0) / (t1 - t0)
                out[t] = (1 - w) * main["boxes"][t0] + w * main["boxes"][t1]
    out[times] = boxes
    # light smoothing of the box over time (3-frame mean where neighbours exist)
    sm = out.copy()
    for t in range(1, n - 1):
        nb = out[t - 1 : t + 2]
        if not np.isnan(nb).any():
            sm[t] = nb.mean(axis=0)
    return sm


def crop_face(frame: np.ndarray, box: np.ndarray, size: int, margin: float = 0.25) -> np.ndarray:
    """A square face crop ``(size, size, 3)`` around ``box`` enlarged by ``margin``; the border is replicated."""
    import cv2

    h, w = frame.shape[:2]
    x, y, bw, bh = box
    side = max(bw, bh) * (1 + margin)
    cx, cy = x + bw / 2, y + bh / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    pad = max(0, -x0, -y0, x0 + s - w, y0 + s - h)
    src = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else frame
    crop = src[y0 + pad : y0 + pad + s, x0 + pad : x0 + pad + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_LINEAR)


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
    checkpoint: str | Path, model_name: str | None = None, *, trust_pickle: bool = False, **model_kwargs: Any
) -> DFERModel:
    """A model for inference: an audfer training checkpoint, or (with ``model_name``) any weights
    ``load_checkpoint`` understands (official layouts included). Read weights-only: a file that would run code
    when unpickled, or whose config names code to import, needs ``trust_pickle=True`` (docs/weights.md)."""
    from .models import create_model, load_checkpoint

    if model_name:
        model = create_model(model_name, **model_kwargs)
        load_checkpoint(model, checkpoint, trust_pickle=trust_pickle)
        return model.eval()
    from .engine.train import load_module

    return load_module(checkpoint, trust_pickle=trust_pickle).model.eval()


@torch.no_grad()
def predict_video(
    path: str | Path,
    model: DFERModel,
    *,
    window: int = 16,
    stride: int = 8,
    detector: Callable[[np.ndarray], np.ndarray] | None = None,
    margin: float = 0.25,
    batch_size: int = 8,
    min_track: int = 5,
    max_gap: int = 5,
    face: str = "detect",
) -> VideoResult:
    """Per-window predictions of ``model`` on a video: a ``VideoResult`` (windows table, face boxes, fps, summary).

    Columns: ``window, start_frame, end_frame`` (end exclusive), ``start_time, end_time`` (s),
    ``face_frames`` (frames of the window with the main face), ``has_face``, ``box_x, box_y, box_w,
    box_h`` (median face box of the window), one probability per expression, ``pred`` (class name),
    then ``AU01..AU45`` presence probabilities (when the model has an AU head). Windows without enough
    face frames keep nulls. Raises ``NoFaceError`` when the video has no face at all. The result also holds the
    per-frame face boxes ``(T, 4)`` (NaN = no face). ``face="full"``: no detection, the whole frame is the face
    (``FullFrameDetector``, no margin).
    """
    from .data.sampling import uniform_indices

    if face not in FACE_MODES:
        raise AudferError(f"face must be one of {', '.join(FACE_MODES)}, got {face!r}")
    if face == "full":
        detector, margin, min_track = FullFrameDetector(), 0.0, 1
    detect: Callable[[np.ndarray], np.ndarray] = detector or HaarFaceDetector()
    stamps: list[float] = []
    detections = [detect(f) for f in iter_frames(path, check_length=True, times=stamps)]  # pass 1: detect
    n_frames = len(detections)
    fps = video_fps(path)
    at = frame_times(stamps, fps)
    boxes = track_main_face(detections, min_track=min_track, max_gap=max_gap)
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


@dataclass(frozen=True)
class VideoResult:
    """What ``predict_video`` found in one video: the per-window table, the per-frame face boxes, the frame rate,
    and the video-level summary; it writes itself as JSON or CSV and draws itself onto the video."""

    path: str
    windows: pl.DataFrame  #: one row per window (see ``predict_video``)
    boxes: np.ndarray  #: (T, 4) x, y, w, h of the main face per frame; NaN where there is none
    fps: float

    @property
    def frames(self) -> int:
        """Frames decoded from the video."""
        return len(self.boxes)

    @property
    def frames_with_face(self) -> int:
        """Frames in which the main face was found."""
        return int((~np.isnan(self.boxes).any(axis=1)).sum())

    @property
    def summary(self) -> dict:
        """``summarize`` of the windows, plus ``fps``, ``frames`` and ``frames_with_face``."""
        return {
            **summarize(self.windows),
            "fps": self.fps,
            "frames": self.frames,
            "frames_with_face": self.frames_with_face,
        }

    def describe(self) -> str:
        """One line: the expression, its probability, and how many windows had a face."""
        s = self.summary
        return (
            f"{self.path}: {s['expression']} ({s['probabilities'][s['expression']]:.2f}); "
            f"{s['windows_with_face']}/{s['windows']} windows with a face"
        )

    def to_dict(self) -> dict:
        """``{"summary": ..., "windows": [row, ...]}``: the JSON record of this video."""
        return {"summary": self.summary, "windows": self.windows.to_dicts()}

    def table(self) -> pl.DataFrame:
        """The windows with a leading ``video`` column (rows of several videos concatenate into one CSV)."""
        return self.windows.select(pl.lit(self.path).alias("video"), pl.all())

    def annotate(self, out: str | Path) -> None:
        """The video with the face box and each window's expression drawn on it (``annotate_video``)."""
        annotate_video(self.path, out, self.windows, self.boxes, self.fps)

    @staticmethod
    def write(results: list[VideoResult], out: str | Path) -> None:
        """Several videos' results, atomically: ``.json`` (``{video: to_dict()}``) or ``.csv`` (all windows)."""
        import json

        from .io import atomic_path, write_csv

        out = Path(out)
        if out.suffix.lower() == ".csv":
            write_csv(pl.concat([r.table() for r in results], how="diagonal_relaxed"), out)
        elif out.suffix.lower() == ".json":
            with atomic_path(out) as tmp:
                tmp.write_text(
                    json.dumps({r.path: r.to_dict() for r in results}, indent=1, allow_nan=False, default=float) + "\n"
                )
        else:
            raise InputError(f"{out}: expected a .json or .csv file name")


def summarize(table: pl.DataFrame) -> dict:
    """The video's expression: window probabilities averaged, weighted by their face frames."""
    from .vocab import EXPRESSIONS

    names = [
        c
        for c in table.columns
        if c in EXPRESSIONS or c.lower() in ("contempt", "anxiety", "helplessness", "disappointment")
    ]
    ok = table.filter(pl.col("has_face"))
    w = ok["face_frames"].to_numpy().astype(np.float64)
    p = ok.select(names).to_numpy().astype(np.float64)
    mean = (p * w[:, None]).sum(0) / w.sum()
    out = {
        "expression": names[int(mean.argmax())],
        "probabilities": {n: float(v) for n, v in zip(names, mean)},
        "windows": table.height,
        "windows_with_face": ok.height,
    }
    if "AU01" in table.columns:
        a = ok.select(list(AUS)).to_numpy().astype(np.float64)
        out["au_probabilities"] = {n: float(v) for n, v in zip(AUS, (a * w[:, None]).sum(0) / w.sum())}
    return out


def annotate_video(path: str | Path, out: str | Path, table: pl.DataFrame, boxes: np.ndarray, fps: float) -> None:
    """Write the video with the face box and the current window's expression (mp4v codec), atomically."""
    import cv2

    from .io import atomic_path

    label: dict[int, str] = {}
    for r in table.iter_rows(named=True):  # later windows overwrite the overlap: each frame shows its newest window
        if r["pred"]:
            for t in range(r["start_frame"], r["end_frame"]):
                label[t] = f"{r['pred']} {r[r['pred']]:.2f}"
    writer = None
    with atomic_path(out, suffix=Path(out).suffix or ".mp4") as tmp:
        for t, frame in enumerate(iter_frames(path)):
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))  # type: ignore[attr-defined]
                if not writer.isOpened():
                    raise AudferError(f"{out}: cannot write video (OpenCV mp4v writer unavailable)")
            img = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            if t < len(boxes) and not np.isnan(boxes[t]).any():
                x, y, bw, bh = boxes[t].astype(int)
                cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 200, 0), 2)
                cv2.putText(
                    img,
                    label.get(t, ""),
                    (x, max(15, y - 6)),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.6,
                    (0, 200, 0),
                    2,
                    cv2.LINE_AA,
                )
            else:
                cv2.putText(img, "no face", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2, cv2.LINE_AA)
            writer.write(img)
        if writer is not None:
            writer.release()
