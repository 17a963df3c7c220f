"""Ingestion at scale: a folder of 20,000 AU files and one 1,000,000-row CSV, time and peak memory.

Each case runs `audfer au-labels` as a user would, in a fresh process (peak RSS is that process's own):
  folder   20,000 OpenFace 2.2 CSVs of 50 frames (the AU and meta columns OpenFace writes with -aus)
  one      one CSV of 1,000,000 frames, same layout
  cached   the folder again, from the Parquet cache
One file of the folder read alone gives the floor of peak memory (the process, its imports, one file). Prints
seconds, frames/s, peak RSS and its growth over that floor per million frames: what grows with the folder is the
frames table itself (the result, about 100 bytes a frame), never a copy of the CSV text.

    python benchmarks/bench_scale.py [--files 20000 --frames 50 --rows 1000000]
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


def _csv(frames: int, seed: int) -> bytes:
    from audfer.synth.openface_writer import random_frames, render_openface_csv

    return render_openface_csv(random_frames(frames, seed, decimals=2), "2.2", full=False, seed=seed)


def _step(folder: str, cache: str, out: str) -> None:
    from audfer.cli import main

    t0 = time.perf_counter()
    code = main(["au-labels", folder, "--out", out] + ([] if cache else ["--no-cache"]))
    dt = time.perf_counter() - t0
    # VmHWM is this process's own peak (ru_maxrss of a process forked from a large parent starts at the parent's size)
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    peak = max(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # reader processes, if any (KiB)
    print(json.dumps({"code": code, "seconds": dt, "peak_mb": peak / 1024}))


def _run(folder: Path, out: Path, cache: Path | None) -> dict:
    env_cache = str(cache) if cache else ""
    proc = subprocess.run(
        [sys.executable, __file__, "--step", str(folder), env_cache, str(out)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **({"AUDFER_CACHE_DIR": env_cache} if cache else {})},
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--step", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        _step(*args.step)
        return
    tmp = Path(tempfile.mkdtemp(prefix="audfer-scale-"))
    try:
        folder, one, single = tmp / "folder", tmp / "one", tmp / "single"
        for d in (folder, one, single):
            d.mkdir()
        templates = [_csv(args.frames, s) for s in range(8)]
        for i in range(args.files):
            (folder / f"{i:06d}.csv").write_bytes(templates[i % len(templates)])
        (one / "long.csv").write_bytes(_csv(args.rows, 0))
        (single / "000000.csv").write_bytes(templates[0])
        mb = lambda d: sum(p.stat().st_size for p in d.iterdir()) / 1e6  # noqa: E731
        print(
            f"folder: {args.files:,} files x {args.frames} frames ({mb(folder):.0f} MB); one: {args.rows:,} rows ({mb(one):.0f} MB)"
        )
        rows = [
            ("one file of the folder", single, None, args.frames),
            (f"folder of {args.files:,} files, cold", folder, tmp / "cache", args.files * args.frames),
            (f"folder of {args.files:,} files, cached", folder, tmp / "cache", args.files * args.frames),
            (f"one CSV of {args.rows:,} rows", one, None, args.rows),
        ]
        floor = None
        for name, path, cache, frames in rows:
            r = _run(path, tmp / "labels.csv", cache)
            floor = r["peak_mb"] if floor is None else floor  # the process itself: imports, one small file
            grow = r["peak_mb"] - floor
            print(
                f"{name:34s} {r['seconds']:7.2f} s  {frames / r['seconds']:>12,.0f} frames/s  peak {r['peak_mb']:6.0f} MB"
                + (
                    f"  (+{grow:,.0f} MB over one file: {grow / (frames / 1e6):,.0f} MB per million frames)"
                    if frames >= 1e5
                    else ""
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
