"""Faces in frames: the detector (``make_detector``: BlazeFace full-range by default, ``predict/blazeface.py``;
OpenCV's Haar cascade, shipped inside opencv-python; the whole frame as the face; or any callable), the main-face
track over a video, and the square crop around a box."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from audfer.errors import AudferError


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
#: ``make_detector`` names (``audfer predict --detector``); the first is the default.
DETECTORS = ("blazeface", "haar", "full")


def make_detector(
    detector: str | Callable[[np.ndarray], np.ndarray] | None = None, weights: str | Path | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The face detector ``frame RGB -> (N, 4) boxes x, y, w, h``: a callable is used as it is; ``"blazeface"``
    (default) is ``BlazeFaceDetector`` with ``weights`` (a path; else the installed, cached or downloaded file,
    ``blazeface.blazeface_weights``); where those weights cannot be had, one warning says how to get them and
    the Haar cascade is used. ``"haar"``: ``HaarFaceDetector``; ``"full"``: ``FullFrameDetector``."""
    if callable(detector):
        return detector
    name = detector or DETECTORS[0]
    if name not in DETECTORS:
        raise AudferError(f"detector must be one of {', '.join(DETECTORS)} or a callable, got {name!r}")
    if name == "haar":
        return HaarFaceDetector()
    if name == "full":
        return FullFrameDetector()
    from audfer.predict.blazeface import HOW_TO_GET, BlazeFaceDetector, WeightsUnavailable

    try:
        return BlazeFaceDetector(weights)
    except WeightsUnavailable as exc:
        import warnings

        warnings.warn(f"{exc}; using the Haar cascade instead. To get BlazeFace: {HOW_TO_GET}", stacklevel=2)
        return HaarFaceDetector()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _agree(a: np.ndarray, b: np.ndarray, min_iou: float) -> bool:
    """Two frames' detections tell the same story: both empty, or the largest face of each has a match in the other."""
    if len(a) == 0 or len(b) == 0:
        return len(a) == len(b)
    big_a, big_b = a[np.argmax(a[:, 2] * a[:, 3])], b[np.argmax(b[:, 2] * b[:, 3])]
    return max(_iou(big_a, x) for x in b) >= min_iou and max(_iou(big_b, x) for x in a) >= min_iou


def detect_faces(
    frames: Iterable[np.ndarray], detect: Callable[[np.ndarray], np.ndarray], *, every: int = 1, min_iou: float = 0.5
) -> tuple[list[np.ndarray], list[int], int]:
    """Run ``detect`` on every ``every``-th frame and the last one (keyframes); where two consecutive keyframes
    disagree (a face appears, leaves, or moves too far: ``_agree``), also on every frame between them, so fast
    changes are seen as with ``every=1``. Frames between agreeing keyframes are tracked by interpolation
    (``track_main_face``). Returns the detections, the frames they are on (ascending) and the frame count. At most
    ``every - 1`` frames are held."""
    if every < 1:
        raise AudferError(f"detect every must be >= 1, got {every}")
    detections: list[np.ndarray] = []
    times: list[int] = []
    held: list[tuple[int, np.ndarray]] = []
    n = 0
    for t, frame in enumerate(frames):
        n = t + 1
        if t % every:
            held.append((t, frame))
            continue
        _keyframe(t, detect(frame), held, detections, times, detect, min_iou)
        held = []
    if held:  # the tail: its last frame is a keyframe too
        t, frame = held.pop()
        _keyframe(t, detect(frame), held, detections, times, detect, min_iou)
    return detections, times, n


def _keyframe(
    t: int,
    found: np.ndarray,
    held: list[tuple[int, np.ndarray]],
    detections: list[np.ndarray],
    times: list[int],
    detect: Callable[[np.ndarray], np.ndarray],
    min_iou: float,
) -> None:
    if held and detections and not _agree(detections[-1], found, min_iou):
        for s, frame in held:  # keyframes disagree: look at every frame between them
            detections.append(detect(frame))
            times.append(s)
    detections.append(found)
    times.append(t)


def track_main_face(
    detections: list[np.ndarray],
    *,
    min_track: int = 5,
    max_gap: int = 5,
    min_iou: float = 0.3,
    times: Sequence[int] | None = None,
    n_frames: int | None = None,
    every: int = 1,
) -> np.ndarray:
    """Per-frame box of the main face ``(T, 4)``, NaN where there is none (see the module doc).

    ``detections[i]`` are the boxes found on frame ``times[i]`` (default: every frame, ``times = 0..T-1``) of a video
    of ``n_frames``; with detection on every ``every``-th frame (``detect_faces``), a track needs ``min_track /
    every`` detections, gaps between detections are bridged up to ``max_gap + every`` frames and the frames between
    two detections take the interpolated box, so the track spans what every-frame detection would."""
    times = list(range(len(detections))) if times is None else list(times)
    n = len(detections) if n_frames is None else n_frames
    tracks: list[dict] = []
    for t, boxes in zip(times, detections):
        used = set()
        for tr in tracks:
            if t - tr["last"] > max_gap + every:
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
    out = np.full((n, 4), np.nan, np.float32)
    need = max(1, -(-min_track // every))
    good = [tr for tr in tracks if len(tr["boxes"]) >= need]
    if not good:
        return out
    main = max(good, key=lambda tr: (len(tr["boxes"]), np.mean([b[2] * b[3] for b in tr["boxes"].values()])))
    seen = np.array(sorted(main["boxes"]))
    boxes = np.stack([main["boxes"][t] for t in seen])
    for t0, t1 in zip(seen[:-1], seen[1:]):  # bridge gaps by interpolation
        if 1 < t1 - t0 <= max_gap + every:
            for t in range(t0 + 1, t1):
                w = (t - t0) / (t1 - t0)
                out[t] = (1 - w) * main["boxes"][t0] + w * main["boxes"][t1]
    out[seen] = boxes
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
