"""OpenFace ingestion speed, measured as a user meets it: whole processes, start-up and imports included, one run.

Writes 200,000 frames of full-width (714-column) OpenFace 2.2 CSVs (200 files x 1,000 frames), then times, each a
fresh process (wall time from spawn to exit; peak resident memory of the process and its workers):
  cat     `cat` over the same files into /dev/null: reading the bytes, the floor no parser beats
  pandas  a script: import pandas, read_csv(skipinitialspace=True, usecols=<the 40 columns audfer parses>) file by
          file (the baseline)
  cold    `audfer au-labels DIR --out labels.csv` (every check of the reader, Eq. 4, the provenance), cache emptied
  cached  the same command again: everything from the Parquet cache
  1 file  `audfer au-labels` on a folder holding one of the files: the peak memory a folder's peak is bounded by
The files were just written, so every step reads them from the page cache (as a second run over a dataset does).
Prints frames/s, the ratios to pandas and the peaks. Goal: cold >= 2.5x pandas, cached >= 20x.

    python benchmarks/bench_openface.py [--files 200 --frames 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _make(root: Path, files: int, frames: int) -> None:
    from audfer.synth.openface_writer import random_frames, render_openface_csv

    root.mkdir(parents=True, exist_ok=True)
    templates = [render_openface_csv(random_frames(frames, t), "2.2", full=True, seed=t) for t in range(5)]
    for i in range(files):
        (root / f"{i:05d}.csv").write_bytes(templates[i % len(templates)])


PANDAS = """
import sys
from pathlib import Path

import pandas as pd

from audfer.vocab import INTENSITY_COLUMNS, PRESENCE_COLUMNS

keep = ["frame", "success", "confidence", *INTENSITY_COLUMNS, *PRESENCE_COLUMNS]
n = 0
for p in sorted(Path(sys.argv[1]).glob("*.csv")):
    n += len(pd.read_csv(p, skipinitialspace=True, usecols=keep))  # OpenFace 2.2 writes ", " between fields
print(n)
"""


def _run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of ``cmd`` with its workers (GNU time's %M where it exists: a forked child's
    own rusage would start at this process's size)."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").is_file() else None)
    wrapped = [gnu_time, "-f", "PEAK_KB %M", *cmd] if gnu_time else cmd
    t0 = time.perf_counter()
    proc = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{err}")
    peaks = [int(line.split()[1]) for line in err.splitlines() if line.startswith("PEAK_KB ")]
    return dt, (peaks[-1] if peaks else usage.ru_maxrss) / 1024


def _time_only(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--frames", type=int, default=1000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="audfer-bench-"))
    try:
        data, cache = tmp / "openface", tmp / "cache"
        # written by a child process, so that this one stays small (its size is not any step's memory)
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from bench_openface import _make; "
        code += f"from pathlib import Path; _make(Path({str(data)!r}), {args.files}, {args.frames})"
        subprocess.run([sys.executable, "-c", code], check=True)
        size = sum(p.stat().st_size for p in data.iterdir()) / 1e9
        print(f"{args.files} files x {args.frames} frames x 714 columns ({size:.2f} GB)")
        frames = args.files * args.frames
        one = tmp / "one"
        one.mkdir()
        shutil.copy(next(iter(sorted(data.iterdir()))), one)
        audfer = [sys.executable, "-m", "audfer", "au-labels"]
        steps = {
            "cat": ["cat", *sorted(str(p) for p in data.iterdir())],
            "pandas": [sys.executable, "-c", PANDAS, str(data)],
            "cold": [*audfer, str(data), "--out", str(tmp / "a.csv"), "--cache-dir", str(cache)],
            "cached": [*audfer, str(data), "--out", str(tmp / "b.csv"), "--cache-dir", str(cache)],
            "1 file": [*audfer, str(one), "--out", str(tmp / "c.csv"), "--cache-dir", str(tmp / "cache1")],
        }
        res = {}
        for mode, cmd in steps.items():
            if mode == "cold":
                shutil.rmtree(cache, ignore_errors=True)  # cold: nothing cached
            if mode == "cat":
                subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)  # only the time
            res[mode] = _run(cmd) if mode != "cat" else (_time_only(cmd), 0.0)
            n = args.frames if mode == "1 file" else frames
            dt, peak = res[mode]
            print(f"{mode:7s} {n / dt:>12,.0f} frames/s  {dt:6.2f} s" + (f"  peak {peak:6.0f} MB" if peak else ""))
        base = res["pandas"][0]
        print(f"cat (the floor) / pandas = {base / res['cat'][0]:.1f}x")
        for mode, goal in (("cold", 2.5), ("cached", 20.0)):
            ratio = base / res[mode][0]
            print(f"{mode} / pandas = {ratio:.1f}x (goal >= {goal}x) {'OK' if ratio >= goal else 'BELOW GOAL'}")
        bound = res["cold"][1] / res["1 file"][1]
        print(
            f"peak of the folder / peak of one file = {bound:.2f} (goal <= 1.5: memory follows a file, not the folder)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
