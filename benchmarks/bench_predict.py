"""End-to-end video inference speed (decode, Haar face detection and tracking, crop, windows, model) in
frames per second of video, for the demo's small model and each full-size base model (random weights:
speed does not depend on them). Goal: >= 30 fps for the small model on CPU.

    python benchmarks/bench_predict.py [--video ../shared/fixtures/video/single_face.mp4 --repeat 3 --full]
"""

from __future__ import annotations

import argparse
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
    det = HaarFaceDetector()
    decode = fps_of(args.video, lambda: [None for _ in iter_frames(args.video)], args.repeat)
    detect = fps_of(args.video, lambda: [det(f) for f in iter_frames(args.video)], args.repeat)
    print(f"  decode only:                {decode:7.1f} fps")
    print(f"  decode + face detection:    {detect:7.1f} fps")
    models = {
        "demo model (former_dfer_small 48 px, 8 frames)": create_model("former_dfer_small", img_size=48, num_frames=8)
    }
    if args.full:
        models.update({n: create_model(n) for n in ("m3dfel", "former_dfer", "mae_dfer")})
    for name, model in models.items():
        model.eval()
        rate = fps_of(
            args.video,
            lambda: predict_video(args.video, model, detector=det),
            max(1, args.repeat if "demo" in name else 1),
        )
        goal = "  (goal >= 30 fps)" if "demo" in name else ""
        print(f"  end to end, {name:<45s} {rate:7.1f} fps{goal}")


if __name__ == "__main__":
    main()
