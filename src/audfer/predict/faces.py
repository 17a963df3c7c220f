"""Faces in frames: OpenCV's Haar detector (shipped inside opencv-python), the whole frame as the face, the main-face
track over a video, and the square crop around a box."""

from __future__ import annotations

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
