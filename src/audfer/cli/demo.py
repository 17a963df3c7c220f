"""``audfer demo`` and ``audfer synth``: the whole method on the built-in synthetic data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audfer.cli.common import echo, int_list, ranged
from audfer.errors import AudferError


def add_demo(sub: Any) -> None:
    """``audfer demo``."""
    p = sub.add_parser(
        "demo",
        help="the whole method on built-in synthetic data: K, pos-weights, training with/without AU loss, report",
    )
    p.add_argument("--out", type=Path, default=Path("."), help="output folder (default: the current folder)")
    p.add_argument(
        "--clips", type=ranged(int, 70, 100000), default=1500, help="synthetic clips (default 1500; 70..100000)"
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    p.add_argument(
        "--epochs",
        type=ranged(int, 1, 10000),
        default=None,
        help="training epochs (default: the synthetic_small config's)",
    )
    p.add_argument("--seed", type=ranged(int, 0), default=0, help="seed of the synthetic data")
    p.add_argument(
        "--no-videos", action="store_true", help="skip rendering videos and running `audfer predict` on them"
    )
    p.add_argument(
        "--jobs",
        type=ranged(int, 1, 64),
        default=None,
        help="training runs side by side (default: one per CPU core, at most 8); results do not depend on it",
    )
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> None:
    """The demo into ``--out``."""
    from audfer.tasks.demo import run_demo

    if args.clips < 35:
        raise AudferError(f"--clips must be at least 35 (every expression in every fold), got {args.clips}")
    seeds = int_list(args.seeds, "--seeds", 0)
    run_demo(
        args.out,
        clips=args.clips,
        seeds=seeds or (0,),
        epochs=args.epochs,
        seed=args.seed,
        videos=not args.no_videos,
        jobs=args.jobs,
        log=echo,
    )


def add_synth(sub: Any) -> None:
    """``audfer synth``."""
    p = sub.add_parser("synth", help="render the built-in synthetic AU face-video dataset (DFEW layout)")
    p.add_argument("--out", type=Path, required=True, help="output folder (refused if it exists and is not empty)")
    p.add_argument("--clips", type=ranged(int, 1), default=2000, help="number of clips (default 2000)")
    p.add_argument("--seed", type=ranged(int, 0), default=0, help="same seed -> byte-identical output")
    p.add_argument("--size", type=int, default=112, help="frame side in pixels (default 112)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument(
        "--label-noise", type=float, default=0.1, help="share of deliberately wrong expression labels (default 0.1)"
    )
    p.add_argument(
        "--workers", type=ranged(int, 1, 256), default=None, help="processes (default: all cores, at most 8)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out folder once the new one is complete"
    )
    p.add_argument("--preview", action="store_true", help="also write preview.png: a few clips per expression")
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> None:
    """Render the synthetic dataset."""
    from audfer.synth.dataset import SynthConfig, generate

    cfg = SynthConfig(
        clips=args.clips, seed=args.seed, size=args.size, frames=args.frames, label_noise=args.label_noise
    )
    generate(args.out, cfg, workers=args.workers, overwrite=args.overwrite, preview=args.preview, log=echo)
