"""Video files as frames: OpenCV decoding (streamed, rotation applied), per-frame presentation times, finding and
checking the videos a command is given, and writing an annotated copy (a codec browsers play where OpenCV has one,
checked after writing)."""

from __future__ import annotations

import contextlib
import functools
import glob
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import polars as pl

from audfer.errors import AudferError, InputError
from audfer.files import atomic_path
from audfer.vocab import AUS

#: File name endings taken as videos when a folder or a glob is given to ``predict``.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


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


def find_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """The videos named by ``inputs``: files as given, folders searched recursively for video files (``VIDEO_SUFFIXES``,
    hidden files skipped, sorted), and glob patterns (``*``, ``?``, ``[``; ``**`` spans folders) the shell did not
    expand. A folder or a pattern with no video is an ``InputError``; a video named twice is kept once."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            hits = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
            if not hits:
                raise InputError(f"{path}: a folder without videos ({', '.join(VIDEO_SUFFIXES)})")
            found += hits
        elif not path.exists() and glob.has_magic(str(item)):
            hits = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
            if not hits:
                raise InputError(f"{item}: no file matches this pattern")
            found += hits
        else:
            found.append(path)
    seen: set[Path] = set()
    unique = []
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def check_video(path: str | Path) -> None:
    """``path`` exists and is a video OpenCV decodes (its first frame read), or one ``AudferError`` naming it."""
    cap = _open(path)
    try:
        ok = cap.grab()
    finally:
        cap.release()
    if not ok:
        raise AudferError(f"{path}: no decodable frame; expected a video (mp4, avi, mov, mkv or webm)")


def distinct_names(paths: list[Path]) -> list[str]:
    """A file-name stem per video for its own outputs (annotated video, plot), distinct across ``paths``: the video's
    stem, or where two share it, its path below the folder they share (``a/x.mp4``, ``b/x.mp4`` -> ``a__x``,
    ``b__x``), with the extension where only that differs (``x.mp4``, ``x.mov`` -> ``x_mp4``, ``x_mov``)."""
    import os

    names = [p.stem for p in paths]
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        groups.setdefault(n, []).append(i)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        full = [paths[i].resolve() for i in idx]
        base = Path(os.path.commonpath([str(f.parent) for f in full]))
        rel = [f.relative_to(base) for f in full]
        stems = ["__".join(r.with_suffix("").parts) for r in rel]
        if len(set(stems)) < len(stems):  # same place, different extensions
            stems = [f"{s}_{r.suffix.lstrip('.').lower()}" for s, r in zip(stems, rel)]
        for i, s in zip(idx, stems):
            names[i] = s
    if len(set(names)) < len(names):  # a derived name equal to another video's own stem
        names = [f"{n}_{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    return names


#: Codecs by output file ending, first choice first: H.264 (``avc1``) where OpenCV's FFmpeg has an encoder for it
#: (the opencv-python wheels do not), else MPEG-4 Part 2 (``mp4v``: plays in VLC and most desktop players, not in
#: browsers); ``.webm``: VP8, which browsers play (encodes several times slower than ``mp4v``).
VIDEO_CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("avc1", "mp4v"),
    ".m4v": ("avc1", "mp4v"),
    ".mov": ("avc1", "mp4v"),
    ".mkv": ("avc1", "VP80"),
    ".webm": ("VP80",),
    ".avi": ("MJPG",),
}
CODEC_NAMES = {"avc1": "H.264", "mp4v": "MPEG-4 Part 2 (mp4v)", "VP80": "VP8", "MJPG": "Motion JPEG"}
BROWSER_CODECS = ("avc1", "VP80")


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 sent to the null device for a moment: FFmpeg inside OpenCV prints its codec-tag notes
    ("tag 'VP80' is not supported with codec id ...; fallback ...") there directly, past OpenCV's log level."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.lru_cache(maxsize=None)
def encoder_available(fourcc: str, suffix: str = ".mp4") -> bool:
    """Whether this OpenCV can write ``fourcc`` into a ``suffix`` file (a tiny file written to a temporary folder)."""
    import os
    import tempfile

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    with tempfile.TemporaryDirectory() as tmp, _native_stderr_silenced():
        writer = cv2.VideoWriter(str(Path(tmp) / f"probe{suffix}"), cv2.VideoWriter_fourcc(*fourcc), 25.0, (64, 64))  # type: ignore[attr-defined]
        ok = writer.isOpened()
        writer.release()
    return bool(ok)


def annotated_suffix() -> str:
    """The ending of annotated videos named by audfer (``--annotate FOLDER``): ``.mp4`` where H.264 can be written,
    else ``.webm`` (VP8), so that the files play in a browser either way."""
    return ".mp4" if encoder_available("avc1", ".mp4") else ".webm"


def _labels(table: pl.DataFrame) -> tuple[dict[int, int], list[dict]]:
    """Each frame's window (later windows overwrite the overlap: a frame shows its newest window) and the rows."""
    rows = table.to_dicts()
    frame_window: dict[int, int] = {}
    for i, r in enumerate(rows):
        if r["pred"]:
            for t in range(r["start_frame"], r["end_frame"]):
                frame_window[t] = i
    return frame_window, rows


def _panel(row: dict | None, names: list[str], height: int, width: int) -> np.ndarray:
    """The side panel of one window: its expression, the expression probabilities and the AU probabilities as bars."""
    import cv2

    panel = np.full((height, width, 3), 24, np.uint8)
    aus = [a for a in AUS if row is not None and row.get(a) is not None]
    lines = 2 + len(names) + (1 + len(aus) if aus else 0)
    lh = height / (lines + 1)
    scale = max(0.3, lh / 32)
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1
    pad = int(width * 0.04)
    bar_x0, bar_x1 = int(width * 0.42), int(width * 0.78)

    def text(y: float, s: str, color: tuple[int, int, int] = (230, 230, 230), x: int = pad) -> None:
        cv2.putText(panel, s, (x, int(y)), font, scale, color, thick, cv2.LINE_AA)

    y = lh
    if row is None:
        text(y, "no face", (0, 0, 255))
        return panel
    text(y, f"{row['pred']} {row[row['pred']]:.2f}", (0, 220, 0))
    y += lh

    def bars(items: list[tuple[str, float]], y: float) -> float:
        for name, p in items:
            y += lh
            text(y, name)
            top = int(y - lh * 0.6)
            cv2.rectangle(panel, (bar_x0, top), (bar_x1, int(y)), (70, 70, 70), -1)
            color = (0, 200, 0) if p >= 0.5 else (0, 140, 200)
            cv2.rectangle(panel, (bar_x0, top), (bar_x0 + int((bar_x1 - bar_x0) * p), int(y)), color, -1)
            text(y, f"{p:.2f}", x=bar_x1 + pad // 2)
        return y

    y = bars([(n[:9], float(row[n])) for n in names], y)
    if aus:
        y += lh
        bars([(a, float(row[a])) for a in aus], y)
    return panel


def annotate_video(
    path: str | Path,
    out: str | Path,
    table: pl.DataFrame,
    boxes: np.ndarray,
    fps: float,
    *,
    log: Callable[[str], None] | None = None,
) -> str:
    """Write the video with the face box and its window's expression on the face, and beside the frame a panel with
    the window's expression and AU probabilities; atomically. The codec follows ``out``'s ending (``VIDEO_CODECS``;
    ``log`` gets one line where the first choice is missing); frames under 360 px high are enlarged by a whole
    factor so the panel stays legible. The written file is checked before it replaces anything (video writers fail
    without raising, e.g. on a full disk): every frame must decode again, else ``AudferError`` and the earlier file
    stays. Returns the codec used (a fourcc)."""
    import cv2

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in VIDEO_CODECS:
        raise InputError(f"{out}: an annotated video needs one of the endings {', '.join(VIDEO_CODECS)}")
    names = [c for c in table.columns if c not in _NOT_CLASSES and c not in AUS]
    frame_window, rows = _labels(table)
    panels: dict[int | None, np.ndarray] = {}
    writer, codec, written = None, "", 0
    with atomic_path(out, suffix=suffix) as tmp:
        for t, frame in enumerate(iter_frames(path)):
            h, w = frame.shape[:2]
            k = max(1, -(-360 // h)) if h < 360 else 1
            if writer is None:
                size = (w * k + max(200, int(h * k * 0.6)), h * k)
                for codec in VIDEO_CODECS[suffix]:
                    with _native_stderr_silenced():
                        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), fps, size)  # type: ignore[attr-defined]
                    if writer.isOpened():
                        break
                if writer is None or not writer.isOpened():
                    raise AudferError(
                        f"{out}: cannot write video (no OpenCV encoder for {suffix}: tried {', '.join(VIDEO_CODECS[suffix])})"
                    )
                if codec != VIDEO_CODECS[suffix][0] and log is not None:
                    log(
                        f"{out}: written as {CODEC_NAMES[codec]}: this OpenCV has no {CODEC_NAMES[VIDEO_CODECS[suffix][0]]} "
                        "encoder"
                        + (
                            ""
                            if codec in BROWSER_CODECS
                            else "; browsers do not play it (name a .webm file for VP8, which they do)"
                        )
                    )
            img = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            if k > 1:
                img = cv2.resize(img, (w * k, h * k), interpolation=cv2.INTER_NEAREST)
            win = frame_window.get(t)
            if t < len(boxes) and not np.isnan(boxes[t]).any():
                x, y, bw, bh = (boxes[t] * k).astype(int)
                cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 200, 0), 2)
                if win is not None:
                    r = rows[win]
                    label = f"{r['pred']} {r[r['pred']]:.2f}"
                    cv2.putText(
                        img, label, (x, max(15, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 0), 2, cv2.LINE_AA
                    )
            else:
                win = None
                cv2.putText(img, "no face", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2, cv2.LINE_AA)
            if win not in panels:
                panels[win] = _panel(None if win is None else rows[win], names, h * k, size[0] - w * k)
            writer.write(np.concatenate([img, panels[win]], axis=1))
            written += 1
        if writer is not None:
            writer.release()
        _check_written(tmp, out, written, codec)
    return codec


#: Window-table columns that are not class probabilities.
_NOT_CLASSES = frozenset(
    {"video", "window", "start_frame", "end_frame", "start_time", "end_time", "face_frames", "has_face", "pred"}
    | {"box_x", "box_y", "box_w", "box_h"}
)


def _check_written(tmp: Path, out: Path, written: int, codec: str) -> None:
    """A video writer reports nothing when the disk fills: the file it wrote must hold every frame, decodable."""
    import cv2

    size = tmp.stat().st_size if tmp.exists() else 0
    decoded = 0
    if size:
        cap = cv2.VideoCapture(str(tmp))
        try:
            while cap.isOpened() and cap.grab():
                decoded += 1
        finally:
            cap.release()
    if decoded != written:
        kept = "the previous file is intact" if out.exists() else "nothing was written"
        raise AudferError(
            f"{out}: the video writer ({CODEC_NAMES.get(codec, codec)}) left {decoded} of {written} frames decodable "
            f"({size} bytes; disk full?); {kept}"
        )
