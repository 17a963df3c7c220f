"""OpenFace ingestion speed: `au-labels` cold and cached vs a plain pandas reader, one run.

Writes >= 200,000 frames of full-width (714-column) OpenFace 2.2 CSVs in a few hundred files,
then times, each in a fresh subprocess (so peak memory is per step):
  pandas  read_csv(skipinitialspace=True) keeping the AU columns, file by file (the baseline)
  cold    read_openface_dir (parallel) + Eq. 4 labels, empty cache
  cached  the same again, everything from the Parquet cache
Prints frames/s, the ratios to pandas and peak RSS per million frames.
Goal: cold >= 1.5x pandas, cached >= 10x, peak <= 2 GB per million frames.

    python benchmarks/bench_openface.py [--files 250 --frames 800]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _make(root: Path, files: int, frames: int) -> None:
    import numpy as np
    import polars as pl

    from audfer.openface_format import render_openface_csv
    from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

    root.mkdir(parents=True, exist_ok=True)
    templates = []
    for t in range(5):
        rng = np.random.default_rng(t)
        df = pl.DataFrame({
            "frame": np.arange(1, frames + 1), "timestamp": np.arange(frames) / 30, "confidence": rng.uniform(0.8, 1, frames),
            "success": (rng.random(frames) > 0.05).astype(int), "face_id": np.zeros(frames, dtype=int),
            **{c: rng.uniform(0, 5, frames) for c in INTENSITY_COLUMNS},
            **{c: rng.integers(0, 2, frames) for c in PRESENCE_COLUMNS},
        })
        templates.append(render_openface_csv(df, "2.2", full=True, seed=t))
    for i in range(files):
        (root / f"{i:05d}.csv").write_bytes(templates[i % len(templates)])


def _step(mode: str, root: str, cache: str) -> None:
    t0 = time.perf_counter()
    if mode == "pandas":
        import pandas as pd

        from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

        keep = ["frame", "success", "confidence", *INTENSITY_COLUMNS, *PRESENCE_COLUMNS]
        n = 0
        for p in sorted(Path(root).glob("*.csv")):
            df = pd.read_csv(p, skipinitialspace=True)
            df.columns = [c.strip() for c in df.columns]
            n += len(df[keep])
    else:
        from audfer.labels import video_au_labels
        from audfer.openface import read_openface_dir

        folder = read_openface_dir(root, cache_dir=cache)
        video_au_labels(folder.frames, folder.clips)
        n = folder.frames.height
    dt = time.perf_counter() - t0
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"frames": n, "seconds": dt, "peak_mb": peak / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=250)
    ap.add_argument("--frames", type=int, default=800)
    ap.add_argument("--step", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        _step(*args.step)
        return
    tmp = Path(tempfile.mkdtemp(prefix="audfer-bench-"))
    try:
        data, cache = tmp / "openface", tmp / "cache"
        _make(data, args.files, args.frames)
        size = sum(p.stat().st_size for p in data.iterdir()) / 1e9
        print(f"{args.files} files x {args.frames} frames x 714 columns ({size:.2f} GB)")
        res = {}
        for mode in ("pandas", "cold", "cached"):
            out = subprocess.run([sys.executable, __file__, "--step", mode, str(data), str(cache)],
                                 check=True, capture_output=True, text=True).stdout
            res[mode] = json.loads(out.strip().splitlines()[-1])
            r = res[mode]
            print(f"{mode:7s} {r['frames'] / r['seconds']:>12,.0f} frames/s  {r['seconds']:6.2f}s  "
                  f"peak {r['peak_mb']:.0f} MB ({r['peak_mb'] / (r['frames'] / 1e6) / 1024:.2f} GB per million frames)")
        base = res["pandas"]["frames"] / res["pandas"]["seconds"]
        for mode, goal in (("cold", 1.5), ("cached", 10.0)):
            ratio = res[mode]["frames"] / res[mode]["seconds"] / base
            print(f"{mode} / pandas = {ratio:.1f}x (goal >= {goal}x) {'OK' if ratio >= goal else 'BELOW GOAL'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
