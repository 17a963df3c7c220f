"""Peak memory of ``audfer predict`` against video length, measured in one run (issue 36: memory follows the clip, not
the video).

Videos: synthetic, 25 fps, ``--size`` px square frames of noise with a bright moving square, 1 and 10 minutes long
(written with OpenCV's mp4v). Each is predicted in a fresh process (``predict_video`` with ``face="full"``, the default
16-frame windows every 8 frames) by ``former_dfer_small`` at ``--crop`` px crops (``img_size``), one thread; the
process's peak resident set (``ru_maxrss``) is reported with the time taken. For comparison the script prints the size
of the ``n_frames x crop x crop x 3`` array of face crops the former implementation held for the whole video. Goal:
the 10-minute peak within a few percent of the 1-minute peak.

    python benchmarks/bench_predict_memory.py [--minutes 1 10 --size 64 --crop 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import resource, sys, time, torch
from audfer.models import create_model
from audfer.predict.predictor import predict_video
torch.manual_seed(0); torch.set_num_threads(1)
model = create_model("former_dfer_small", img_size=int(sys.argv[2])).eval()
start = time.perf_counter()
result = predict_video(sys.argv[1], model, face="full")
print(result.frames, result.windows.height, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_video(path: Path, frames: int, size: int, fps: float = 25.0) -> None:
    import cv2

    rng = np.random.default_rng(0)
    noise = [rng.integers(40, 90, (size, size, 3), dtype=np.uint8) for _ in range(16)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))  # type: ignore[attr-defined]
    side = size // 3
    for t in range(frames):
        img = noise[t % 16].copy()
        x = (t * 2) % (size - side)
        img[side : 2 * side, x : x + side] = 230
        writer.write(img)
    writer.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--size", type=int, default=64, help="video frame size (px)")
    parser.add_argument("--crop", type=int, default=64, help="model input size (px)")
    args = parser.parse_args()
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            frames = int(round(minutes * 60 * 25))
            video = Path(tmp) / f"{minutes:g}min.mp4"
            write_video(video, frames, args.size)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(video), str(args.crop)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            ).stdout.split()
            n, windows, seconds, kb = int(out[0]), int(out[1]), float(out[2]), int(out[3])
            peaks[minutes] = kb
            former = n * args.crop * args.crop * 3 / 2**20
            print(
                f"{minutes:g} min ({n} frames, {windows} windows): peak RSS {kb / 1024:.1f} MiB, {seconds:.1f} s "
                f"({n / seconds:.0f} frames/s); the former whole-video crop array alone: {former:.0f} MiB"
            )
        short, long = min(peaks), max(peaks)
        print(f"peak RSS {long:g} min / {short:g} min: {peaks[long] / peaks[short]:.3f} (goal <= 1.03)")


if __name__ == "__main__":
    main()
