"""OpenFace ingestion speed: `au-labels` cold and cached vs a plain pandas reader, one run.

Writes 200,000 frames of full-width (714-column) OpenFace 2.2 CSVs (200 files x 1,000 frames),
then times, each in a fresh subprocess (so peak memory is per step):
  cat     `cat` over the same files into /dev/null: reading the bytes, the floor no parser beats
  pandas  read_csv(skipinitialspace=True, usecols=<the 40 columns audfer parses>), file by file (the baseline)
  cold    read_openface_dir (parallel, all checks of read_openface) + Eq. 4 labels, cache emptied first
  cached  the same again, everything from the Parquet cache
The files were just written, so every step reads them from the page cache (as a second run over a
dataset does); the `cat` line shows what that costs. Prints frames/s, the ratios to pandas and peak RSS
per million frames. Goal: cold >= 2x pandas, cached >= 10x, peak <= 2 GB per million frames.

    python benchmarks/bench_openface.py [--files 200 --frames 1000]
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

    from audfer.synth.openface_writer import render_openface_csv
    from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

    root.mkdir(parents=True, exist_ok=True)
    templates = []
    for t in range(5):
        rng = np.random.default_rng(t)
        df = pl.DataFrame(
            {
                "frame": np.arange(1, frames + 1),
                "timestamp": np.arange(frames) / 30,
                "confidence": rng.uniform(0.8, 1, frames),
                "success": (rng.random(frames) > 0.05).astype(int),
                "face_id": np.zeros(frames, dtype=int),
                **{c: rng.uniform(0, 5, frames) for c in INTENSITY_COLUMNS},
                **{c: rng.integers(0, 2, frames) for c in PRESENCE_COLUMNS},
            }
        )
        templates.append(render_openface_csv(df, "2.2", full=True, seed=t))
    for i in range(files):
        (root / f"{i:05d}.csv").write_bytes(templates[i % len(templates)])


def _step(mode: str, root: str, cache: str) -> None:
    t0 = time.perf_counter()
    if mode == "cat":
        files = sorted(str(p) for p in Path(root).glob("*.csv"))
        subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)
        dt = time.perf_counter() - t0
        n = sum(Path(p).read_bytes().count(b"\n") - 1 for p in files)  # rows (not timed)
        print(json.dumps({"frames": n, "seconds": dt, "peak_mb": 0.0}))
        return
    if mode == "pandas":
        import pandas as pd

        from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

        keep = ["frame", "success", "confidence", *INTENSITY_COLUMNS, *PRESENCE_COLUMNS]
        n = 0
        for p in sorted(Path(root).glob("*.csv")):
            # only the columns audfer parses (OpenFace 2.2 writes ", " between fields)
            df = pd.read_csv(p, skipinitialspace=True, usecols=keep)
            n += len(df)
    else:
        from audfer.au.folder import read_openface_dir
        from audfer.method.labels import video_au_labels

        folder = read_openface_dir(root, cache_dir=cache)
        video_au_labels(folder.frames, folder.clips)
        n = folder.frames.height
    dt = time.perf_counter() - t0
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    print(json.dumps({"frames": n, "seconds": dt, "peak_mb": peak / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--frames", type=int, default=1000)
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
        for mode in ("cat", "pandas", "cold", "cached"):
            if mode == "cold":
                shutil.rmtree(cache, ignore_errors=True)  # cold: nothing cached
            out = subprocess.run(
                [sys.executable, __file__, "--step", mode, str(data), str(cache)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            res[mode] = json.loads(out.strip().splitlines()[-1])
            r = res[mode]
            peak = (
                ""
                if mode == "cat"
                else (
                    f"  peak {r['peak_mb']:.0f} MB "
                    f"({r['peak_mb'] / (r['frames'] / 1e6) / 1024:.2f} GB per million frames)"
                )
            )
            print(f"{mode:7s} {r['frames'] / r['seconds']:>12,.0f} frames/s  {r['seconds']:6.2f}s{peak}")
        base = res["pandas"]["frames"] / res["pandas"]["seconds"]
        print(f"cat (the floor) / pandas = {res['pandas']['seconds'] / res['cat']['seconds']:.1f}x")
        for mode, goal in (("cold", 2.0), ("cached", 10.0)):
            ratio = res[mode]["frames"] / res[mode]["seconds"] / base
            print(f"{mode} / pandas = {ratio:.1f}x (goal >= {goal}x) {'OK' if ratio >= goal else 'BELOW GOAL'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
