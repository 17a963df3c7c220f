"""Clip loading speed, measured in one run on the same JPEG folders.

Clips: rendered by ``audfer synth`` at 224 px (DFEW's ``clip_224x224`` frame size); each load samples
16 frames and delivers a uint8 ``(16, 3, 112, 112)`` tensor (the training resolution of M3DFEL and
Former-DFER).

1. PIL per frame, like the official loaders: ``Image.open(f).convert("RGB")``, resize, to tensor.
2. audfer cold: ``ClipDataset`` without a cache (OpenCV, JPEG decoded at reduced DCT scale). Goal >= 1.5x (1).
3. audfer cache fill: the first epoch with a ``ClipCache`` (decodes every frame of each clip once).
4. audfer cached: later epochs from the cache. Goal >= 10x (1). Every read takes the clip's key first: one ``stat``
   per frame file (``ClipCache.key``), so frames rewritten in place are never served stale; its cost is printed.

    python benchmarks/bench_clip_cache.py [--clips 48 --frames 48 --epochs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from audfer.data.cache import ClipCache
from audfer.data.datasets import ClipDataset, ClipIndex, frame_paths
from audfer.data.sampling import sample_indices
from audfer.data.transforms import Resize
from audfer.synth.dataset import SynthConfig, generate

SIZE = 112


def pil_clip(folder: Path, indices: np.ndarray) -> torch.Tensor:
    from PIL import Image

    files = sorted(folder.iterdir())
    frames = []
    for i in indices:
        img = Image.open(files[i]).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
        frames.append(torch.from_numpy(np.array(img)).permute(2, 0, 1))
    return torch.stack(frames)


def rate(fn, n: int, epochs: int) -> float:
    t0 = time.perf_counter()
    for epoch in range(epochs):
        for i in range(n):
            fn(epoch, i)
    return n * epochs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=48)
    ap.add_argument("--frames", type=int, default=48, help="frames per clip on disk (16 are sampled per load)")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "synth", SynthConfig(clips=args.clips, frames=args.frames, size=224, seed=0))
        folders = sorted((root / "Clip" / "clip_224x224").iterdir())
        import polars as pl

        index = ClipIndex(
            pl.DataFrame(
                {
                    "clip_id": [f.name for f in folders],
                    "label": pl.Series([0] * len(folders), dtype=pl.Int8),
                    "path": [str(f) for f in folders],
                }
            ),
            skipped=[],
        )
        n = len(folders)
        lengths = [len(frame_paths(f)) for f in folders]

        def pil(epoch, i):
            rng = np.random.default_rng([0, epoch, i])
            pil_clip(folders[i], sample_indices("m3dfel", lengths[i], 16, rng))

        cold = ClipDataset(index, Resize(SIZE), num_frames=16, sampling="m3dfel", train=True, decode_size=SIZE)
        cache = ClipCache(Path(tmp) / "cache", SIZE)
        cached = ClipDataset(index, Resize(SIZE), num_frames=16, sampling="m3dfel", train=True, cache=cache)

        def run(ds):
            def fn(epoch, i):
                ds.set_epoch(epoch)
                ds[i]

            return fn

        r_pil = rate(pil, n, args.epochs)
        r_cold = rate(run(cold), n, args.epochs)
        r_fill = rate(run(cached), n, 1)
        r_cache = rate(run(cached), n, args.epochs)
        assert cache.misses == n, cache
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            for f in folders:
                cache.key(f)
        key_us = (time.perf_counter() - t0) / (n * args.epochs) * 1e6
        sample = cached[0][0]
        assert sample.shape == (16, 3, SIZE, SIZE) and sample.dtype == torch.uint8
    print(
        f"{n} clips of {args.frames} JPEG frames at 224 px -> 16 x 3 x {SIZE} x {SIZE} uint8, 1 thread, {args.epochs} epochs"
    )
    print(f"  PIL per frame (official style): {r_pil:8.1f} clips/s")
    print(f"  audfer cold (no cache):         {r_cold:8.1f} clips/s   {r_cold / r_pil:5.2f}x  (goal >= 1.5x)")
    print(f"  audfer cache fill (epoch 1):    {r_fill:8.1f} clips/s   {r_fill / r_pil:5.2f}x")
    print(f"  audfer cached (later epochs):   {r_cache:8.1f} clips/s   {r_cache / r_pil:5.2f}x  (goal >= 10x)")
    print(f"    of which the cache key ({args.frames} stats): {key_us:6.0f} us a clip")


if __name__ == "__main__":
    main()
