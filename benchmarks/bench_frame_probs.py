"""Cost of ``audfer frame-probs`` (§3.1 Eq. 3 pseudo-labels) per frame, against the same model's clip-level evaluation.

Renders a small synthetic set (or uses ``--root``, a folder written by ``audfer synth``), writes a checkpoint of the
``synthetic_small`` model (untrained: the cost does not depend on the weights), then times on the test split:

1. ``evaluate_checkpoint``: one window per clip (what ``audfer evaluate`` does);
2. ``frame_probabilities`` with stride 1 (one window per frame) and with ``--stride`` (default 4).

Each is the median of ``--repeat`` timings (a fresh output each time, so nothing is resumed); one CPU thread.

    python benchmarks/bench_frame_probs.py [--clips 200 --frames 16 --stride 4 --repeat 3 --device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from audfer.config import load_config
from audfer.engine.evaluate import evaluate_checkpoint
from audfer.engine.frame_probs import frame_probabilities
from audfer.engine.module import AUDFERModule
from audfer.engine.resolve import split_index
from audfer.method.knowledge import paper_knowledge
from audfer.synth.dataset import SynthConfig, generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=None, help="an `audfer synth` folder (default: render one)")
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--stride", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = args.root or generate(
            work / "synth", SynthConfig(clips=args.clips, size=48, frames=args.frames, seed=0), workers=1
        )
        cfg = load_config("synthetic_small", [f"data.root={root}", "data.cache=null", "train.threads=1"])
        module = AUDFERModule.from_config(cfg, paper_knowledge().tolist(), None, 1)
        ck = work / "model.ckpt"
        hp = {"cfg": cfg.to_dict(), "knowledge": paper_knowledge().tolist(), "pos_weight": None, "steps_per_epoch": 1}
        torch.save({"state_dict": module.state_dict(), "hyper_parameters": hp}, ck)
        test = split_index(cfg, "test")
        quiet = lambda m: None  # noqa: E731

        def timed(fn) -> float:
            fn(0)  # warm-up (imports, first decode)
            times = []
            for i in range(1, args.repeat + 1):
                t0 = time.perf_counter()
                fn(i)
                times.append(time.perf_counter() - t0)
            return statistics.median(times)

        clip_s = timed(
            lambda i: evaluate_checkpoint(ck, split="test", out=work / f"ev{i}", device=args.device, log=quiet)
        )
        frames = {}

        def probs(i: int, stride: int) -> None:
            res = frame_probabilities(
                ck, out=work / f"p{stride}_{i}.csv", split="test", stride=stride, device=args.device, log=quiet
            )
            frames[stride] = res["frames_this_call"]

        one_s = timed(lambda i: probs(i, 1))
        strided_s = timed(lambda i: probs(i, args.stride))
        n, f = len(test), frames[1]
        print(f"test split: {n} clips, {f} frames ({f / n:.1f} a clip); model {cfg.model.name}, device {args.device}")
        print(
            f"clip-level evaluation:        {clip_s:7.2f} s  {1000 * clip_s / n:7.2f} ms/clip  {1000 * clip_s / f:6.2f} ms/frame"
        )
        print(
            f"frame-probs, stride 1:        {one_s:7.2f} s  {1000 * one_s / n:7.2f} ms/clip  {1000 * one_s / f:6.2f} "
            f"ms/frame  ({one_s / clip_s:.1f}x the evaluation)"
        )
        print(
            f"frame-probs, stride {args.stride}:        {strided_s:7.2f} s  {1000 * strided_s / n:7.2f} ms/clip  "
            f"{1000 * strided_s / f:6.2f} ms/frame  ({strided_s / clip_s:.1f}x the evaluation)"
        )


if __name__ == "__main__":
    main()
