"""End-to-end video inference speed (decode, face detection and tracking, crop, windows, model) in frames per second of
video, every figure against its baseline measured in the same run:

- detection on every frame (the baseline) against detection on every 4th frame with tracking between (the
  default, ``predict_video(detect_every=4)``), with the demo's small model; goal >= 2x;
- full-size models in float32 (the baseline) against ``precision="bfloat16"``; goal: M3DFEL >= 25 fps on 2 cores;
- start-up (a fresh ``audfer predict --help`` process: interpreter and imports) reported separately.

Random weights: speed does not depend on them.

    python benchmarks/bench_predict.py [--video ../shared/fixtures/video/single_face.mp4 --repeat 3 --full]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from audfer.models import create_model
from audfer.predict.faces import HaarFaceDetector
from audfer.predict.predictor import predict_video
from audfer.predict.video import iter_frames

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "video" / "single_face.mp4"


def fps_of(video: Path, fn, repeat: int) -> float:
    n = sum(1 for _ in iter_frames(video))
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return n * repeat / (time.perf_counter() - t0)


def startup_seconds(repeat: int = 3) -> float:
    """Median wall time of a fresh ``audfer predict --help`` process."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "audfer", "predict", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="also the three full-size base models (slow on CPU)")
    args = ap.parse_args()
    if not args.video.is_file():
        raise SystemExit(
            f"{args.video}: video not found (pass --video; the default is the shared fixtures' single_face.mp4)"
        )
    print(f"{args.video.name}, torch threads {torch.get_num_threads()}, window 16 / stride 8")
    print(f"  start-up (fresh `audfer predict --help`): {startup_seconds():.2f} s")
    det = HaarFaceDetector()
    decode = fps_of(args.video, lambda: [None for _ in iter_frames(args.video)], args.repeat)
    detect = fps_of(args.video, lambda: [det(f) for f in iter_frames(args.video)], args.repeat)
    print(f"  decode only:                {decode:7.1f} fps")
    print(f"  decode + detection on every frame: {detect:7.1f} fps")
    demo = create_model("former_dfer_small", img_size=48, num_frames=8).eval()
    every = fps_of(args.video, lambda: predict_video(args.video, demo, detector=det, detect_every=1), args.repeat)
    keyed = fps_of(args.video, lambda: predict_video(args.video, demo, detector=det), args.repeat)
    print(
        f"  demo model end to end: detection on every frame {every:7.1f} fps; every 4th + tracking {keyed:7.1f} fps "
        f"-> {keyed / every:.2f}x (goal >= 2x)"
    )
    if args.full:
        for name in ("m3dfel", "former_dfer", "mae_dfer"):
            model = create_model(name).eval()
            f32 = fps_of(args.video, lambda: predict_video(args.video, model, detector=det), 1)
            bf16 = fps_of(args.video, lambda: predict_video(args.video, model, detector=det, precision="bfloat16"), 1)
            goal = " (goal >= 25 fps)" if name == "m3dfel" else ""
            print(f"  {name:<12s} float32 {f32:6.1f} fps; bfloat16 {bf16:6.1f} fps -> {bf16 / f32:.2f}x{goal}")


if __name__ == "__main__":
    main()
