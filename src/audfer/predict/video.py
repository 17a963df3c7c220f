"""Video files as frames: OpenCV decoding (streamed, rotation applied), per-frame presentation times, and writing an
annotated copy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl

from audfer.errors import AudferError
from audfer.files import atomic_path


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


def annotate_video(path: str | Path, out: str | Path, table: pl.DataFrame, boxes: np.ndarray, fps: float) -> None:
    """Write the video with the face box and the current window's expression (mp4v codec), atomically."""
    import cv2

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
