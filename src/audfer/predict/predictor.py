"""Video -> faces -> windows -> per-window expression and AU probabilities (``audfer predict``).

A pipeline of swappable stages with typed outputs (facetorch-style):

1. ``iter_frames``: frames (RGB) streamed by OpenCV (mp4 / avi / mov / mkv / webm) in two passes: the first detects,
   the second crops, and each pass decodes every frame once;
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

Memory follows the clip, not the video: the second pass crops only the frames a window samples, keeps a crop only
while a window that samples it is still open, and sends full windows to the model in batches of ``batch_size`` (what
stays per frame is its face box, 16 bytes). A video where no face is found raises ``NoFaceError`` (the CLI: a clear
message, exit status 2), never an invented prediction; so does a video too short to hold a face track, and a window
whose probabilities are not finite numbers is an ``AudferError``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch

from audfer import progress as progress_bars
from audfer.data.sampling import uniform_indices
from audfer.errors import AudferError, InputError, NoFaceError
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
from audfer.predict.video import (
    CODEC_NAMES,
    VIDEO_CODECS,
    VIDEO_SUFFIXES,
    _open,
    annotated_suffix,
    check_video,
    distinct_names,
    find_videos,
    frame_times,
    iter_frames,
    video_fps,
)
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
    config names code to import, needs ``trust_pickle=True`` (docs/weights.md). A bar on stderr shows the loading
    (``audfer.progress``: a terminal, no ``--quiet``)."""

    with progress_bars.bar(total=1, desc=f"loading {Path(str(checkpoint)).name}", unit="model") as shown:
        if model_name:
            model = create_model(model_name, **model_kwargs)
            load_checkpoint(model, checkpoint, trust_pickle=trust_pickle, revision=revision)
            shown.update()
            return model.eval()
        stored = read_stored_run(checkpoint, revision=revision, trust_pickle=trust_pickle)
        model = stored.build_model()
        shown.update()
    data = stored.cfg.get("data") if isinstance(stored.cfg, dict) else None
    # a plain attribute (not a tensor or a module): what predict_videos tells users about
    object.__setattr__(model, "trained_on", data.get("dataset") if isinstance(data, dict) else None)
    return model


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX tiles), where CPU bfloat16 pays off."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


#: ``predict_video(precision=...)``: the model's arithmetic.
PRECISIONS = ("float32", "bfloat16")


def _frames(path: str | Path, what: str, bar: bool, total: int | None = None, **kwargs: Any) -> Iterator[np.ndarray]:
    """``iter_frames`` with a bar of frames (``audfer.progress.bar``: stderr, a terminal, no ``--quiet``) when
    ``bar``."""
    frames = iter_frames(path, **kwargs)
    if not bar or not progress_bars.enabled():
        return frames
    if total is None:
        import cv2

        cap = _open(path)
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
        cap.release()
    return iter(progress_bars.bar(frames, total=total, desc=f"{Path(path).name}: {what}", unit="frame"))


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
    progress: bool = False,
) -> VideoResult:
    """Per-window predictions of ``model`` on a video: a ``VideoResult`` (windows table, face boxes, fps, summary).

    Columns: ``window, start_frame, end_frame`` (end exclusive), ``start_time, end_time`` (s),
    ``face_frames`` (frames of the window with the main face), ``has_face``, ``box_x, box_y, box_w,
    box_h`` (median face box of the window), one probability per expression, ``pred`` (class name),
    then ``AU01..AU45`` presence probabilities (when the model has an AU head). Windows without enough
    face frames keep nulls. Raises ``NoFaceError`` when the video has no face at all, or is shorter than a face track
    (``min_track`` frames). The result also holds the per-frame face boxes ``(T, 4)`` (NaN = no face).
    ``face="full"``: no detection, the whole frame is the face (``FullFrameDetector``, no margin). ``detect_every``:
    the detector runs on every n-th frame (and between two that disagree; ``faces.detect_faces``), boxes in between
    are interpolated; 1 detects on every frame. ``precision``: ``float32``, or ``bfloat16`` (autocast; on CPUs with
    bf16 instructions and on GPUs about twice as fast; full-size M3DFEL's probabilities stay within 0.01 of float32,
    tested; check your own model the same way). Memory does not grow with the video (module doc). ``progress``: tqdm
    bars of frames on stderr. Probabilities that are not finite numbers raise ``AudferError`` naming the window. ``detector``:
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
    if precision == "bfloat16" and next(model.parameters()).device.type == "cpu" and not cpu_has_bf16():
        warnings.warn(
            "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): bfloat16 is emulated here and runs much "
            "slower than float32 (full-size M3DFEL: minutes a window); use float32 on this machine",
            stacklevel=2,
        )
    stamps: list[float] = []
    every = 1 if face == "full" else detect_every
    frames = _frames(path, "faces", progress, check_length=True, times=stamps)
    detections, seen, n_frames = detect_faces(frames, detect, every=every)  # pass 1: detect
    spec = model.input_spec
    if n_frames < min_track:
        raise NoFaceError(
            f"{path}: too short to find a face: {n_frames} frame(s), a face track needs at least {min_track} "
            f"(the model reads {spec.frames} per window; --face full takes every frame as the face)"
        )
    fps = video_fps(path)
    at = frame_times(stamps, fps)
    del stamps
    boxes = track_main_face(
        detections, min_track=min_track, max_gap=max_gap, times=seen, n_frames=n_frames, every=every
    )
    del detections, seen
    has_face = ~np.isnan(boxes).any(axis=1)
    if not has_face.any():
        raise NoFaceError(f"{path}: no face found in {n_frames} frames")
    names = class_names(model.model_config["num_classes"] if hasattr(model, "model_config") else 7)
    spans = windows(n_frames, window, stride)
    rows: list[dict] = []
    probs = np.full((len(spans), len(names)), np.nan, np.float32)
    au = np.full((len(spans), len(AUS)), np.nan, np.float32)
    has_au = False
    device = next(model.parameters()).device
    mean = torch.tensor(spec.mean).view(1, 1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 1, 3, 1, 1)

    def run(batch: list[tuple[int, np.ndarray]]) -> None:
        nonlocal has_au
        x = torch.from_numpy(np.stack([c for _, c in batch])).permute(0, 1, 4, 2, 3).float().div_(255)
        x = ((x - mean) / std).to(device)
        try:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                out = model(x)
        except RuntimeError as exc:  # e.g. oneDNN's CPU LSTM: no kernel for autocast's mixed input (M3DFEL avoids it)
            if precision != "bfloat16":
                raise
            raise AudferError(
                f"{path}: the model cannot run in bfloat16 on {device.type} ({str(exc).splitlines()[0]}); "
                "use precision float32 (--precision float32)"
            ) from None
        idx = [i for i, _ in batch]
        p = out.logits.float().softmax(1).cpu().numpy()
        a = out.au_logits.float().sigmoid().cpu().numpy() if out.au_logits is not None else None
        for k, i in enumerate(idx):  # a number that is not a probability is never passed on
            if not np.isfinite(p[k]).all() or (a is not None and not np.isfinite(a[k]).all()):
                s, e = spans[i]
                raise AudferError(
                    f"{path}: window {i} (frames {s}-{e - 1}): the model gave probabilities that are not finite "
                    "(NaN or infinite; broken weights?); nothing written"
                )
        probs[idx] = p
        if a is not None:
            has_au = True
            au[idx] = a

    # pass 2: crop the frames the open windows sample; a window goes to the model once its last frame is read
    open_windows: list[tuple[int, np.ndarray]] = []  # (window, the frames it samples), in start order
    crops: dict[int, np.ndarray] = {}
    batch: list[tuple[int, np.ndarray]] = []
    nxt, t = 0, -1
    for t, frame in enumerate(_frames(path, "windows", progress, total=n_frames)):
        if t >= n_frames:
            break
        while nxt < len(spans) and spans[nxt][0] <= t:  # windows starting here: their row and sampled frames
            s, e = spans[nxt]
            face_idx = np.flatnonzero(has_face[s:e]) + s
            ok = len(face_idx) * 2 >= (e - s)
            box = np.median(boxes[face_idx], axis=0) if len(face_idx) else np.full(4, np.nan)
            rows.append(
                {
                    "window": nxt,
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
                open_windows.append((nxt, face_idx[uniform_indices(len(face_idx), spec.frames)]))
            nxt += 1
        if has_face[t] and any(t in pick for _, pick in open_windows):
            crops[t] = crop_face(frame, boxes[t], spec.size, margin)
        while open_windows and spans[open_windows[0][0]][1] == t + 1:
            i, pick = open_windows.pop(0)
            batch.append((i, np.stack([crops[f] for f in pick])))
        keep = min(int(pick.min()) for _, pick in open_windows) if open_windows else t + 1  # the rest is dropped
        for f in [f for f in crops if f < keep]:
            del crops[f]
        if len(batch) >= batch_size:
            run(batch)
            batch = []
    if open_windows or nxt < len(spans):
        raise AudferError(
            f"{path}: {t + 1} frames on the second read, {n_frames} on the first (was the file changed meanwhile?)"
        )
    if batch:
        run(batch)
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


#: File endings of ``predict_videos(plot=...)``.
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def output_paths(
    videos: list[Path], target: str | Path | None, suffixes: tuple[str, ...], default: str, flag: str, kind: str
) -> list[Path] | None:
    """Where each video's own output goes: ``target`` itself for one video when it ends in one of ``suffixes``,
    else ``target`` is a folder holding ``<name>_<kind><default>`` per video (names distinct: ``distinct_names``).
    Several videos and a file name ending in ``suffixes`` (or a video ending) is an ``InputError``: a folder is
    needed."""
    if target is None:
        return None
    target = Path(target)
    suffix = target.suffix.lower()
    if len(videos) == 1 and suffix in suffixes and not target.is_dir():
        return [target]
    if len(videos) > 1 and suffix in (*suffixes, *VIDEO_SUFFIXES) and not target.is_dir():
        raise InputError(
            f"{flag} {target}: with {len(videos)} videos, {flag} names a folder (one file per video), "
            f"not a {suffix} file"
        )
    if suffix and not target.is_dir():
        raise InputError(f"{flag} {target}: expected a file ending in {', '.join(suffixes)}, or a folder")
    if target.exists() and not target.is_dir():
        raise InputError(f"{flag} {target}: exists and is not a folder")
    return [target / f"{name}_{kind}{default}" for name in distinct_names(videos)]


def predict_videos(
    videos: Sequence[str | Path],
    model: DFERModel,
    out: str | Path,
    *,
    annotate: str | Path | None = None,
    plot: str | Path | None = None,
    fmt: str | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    **options: Any,
) -> list[VideoResult]:
    """``predict_video`` over several videos, written together to ``out`` (``.json`` or ``.csv``; ``-``: standard
    output, as ``fmt``, default JSON).

    ``videos`` may name folders (searched for videos) and glob patterns (``find_videos``); every video is checked
    (``check_video``) before the first is predicted. A video without a face is reported and skipped when there are
    several (the others are still written, then ``AudferError`` names the faceless ones); a single video without a
    face raises ``NoFaceError``. ``annotate`` / ``plot``: for one video a file path (a video ending / ``.png``,
    ``.svg``, ``.pdf``) or a folder; for several, a folder with one ``<name>_annotated.mp4`` (``.webm`` where OpenCV
    cannot write H.264) / ``<name>_timeline.png`` per video, names distinct (``output_paths``). A model trained only
    on synthetic faces (``trained_on``, set by ``load_predictor``) says so once. ``progress``: tqdm bars on stderr
    (videos, and frames of each pass). ``options`` go to ``predict_video``."""
    paths = find_videos(videos)
    if not paths:
        raise InputError("no video given")
    if str(out) != "-" and Path(out).suffix.lower() not in (".json", ".csv"):
        raise AudferError(f"--out {out}: expected a .json or .csv file name (or - for standard output)")
    annotated = output_paths(paths, annotate, tuple(VIDEO_CODECS), annotated_suffix(), "--annotate", "annotated")
    plots = output_paths(paths, plot, PLOT_SUFFIXES, ".png", "--plot", "timeline")
    for video in paths:
        check_video(video)
    if annotated is not None and annotated[0].suffix == ".webm" and annotated[0] != Path(annotate or ""):
        log(
            "--annotate: this OpenCV has no H.264 encoder; the annotated videos are VP8 .webm files (browsers play them)"
        )
    if getattr(model, "au_head", None) is None:
        log("AU probabilities: not available (this model has no AU head); expression probabilities only")
    if getattr(model, "trained_on", None) == "synthetic":
        real = [v for v in paths if not is_rendered(v)]
        if real:
            log(
                f"warning: this model was trained only on audfer's synthetic faces (data.dataset: synthetic); on real "
                f"videos such as {real[0]} its predictions do not mean much"
            )
    if options.get("face", "detect") != "full" and options.get("detector") != "full":  # loaded (and warned) once
        options["detector"] = make_detector(options.get("detector"), options.pop("detector_weights", None))
    results, failed = [], []
    bar = progress_bars.bar(total=len(paths), desc="videos", unit="video") if progress and len(paths) > 1 else None
    try:
        for k, video in enumerate(paths):
            try:
                result = predict_video(video, model, progress=progress, **options)
            except NoFaceError as exc:
                if len(paths) == 1:
                    raise
                log(f"audfer: error: {exc}")
                failed.append(str(video))
                continue
            finally:
                if bar is not None:
                    bar.update(1)
            results.append(result)
            log(result.describe())
            if annotated is not None:
                codec = result.annotate(annotated[k], log=log if k == 0 else None)
                log(f"wrote {annotated[k]} ({CODEC_NAMES.get(codec, codec)})")
            if plots is not None:
                result.plot(plots[k])
                log(f"wrote {plots[k]}")
    finally:
        if bar is not None:
            bar.close()
    if results:
        VideoResult.write(results, out, fmt)
        if str(out) != "-":
            log(f"wrote {out}")
    if failed:
        raise AudferError(
            f"{len(failed)} of {len(paths)} video(s) without a face, no prediction for them: {', '.join(failed)}"
        )
    return results


def is_rendered(video: str | Path) -> bool:
    """Whether ``video`` is one ``audfer synth`` rendered: listed, with its SHA-256, in the ``rendered.json`` its
    folder holds (``synth.videos.render_videos``)."""
    import hashlib
    import json

    video = Path(video)
    listing = video.parent / "rendered.json"
    try:
        digest = json.loads(listing.read_text()).get("videos", {}).get(video.name)
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(digest, str):
        return False
    return hashlib.sha256(video.read_bytes()).hexdigest() == digest
