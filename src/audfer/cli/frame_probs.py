"""``audfer frame-probs``: a base model's per-frame expression probabilities (§3.1, Eq. 3) for the θ filter."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audfer.cli.common import add_trust, echo, ranged


def add_frame_probs(sub: Any) -> None:
    """``audfer frame-probs``."""
    p = sub.add_parser(
        "frame-probs",
        help="a base model's expression probabilities for every frame of a dataset (§3.1 Eq. 3): clip_id,frame,p0..p6",
    )
    p.add_argument(
        "checkpoint", help="audfer checkpoint, model package folder or Hub id org/name (with --model: released weights)"
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.root=... data.fold=2")
    p.add_argument("--split", default="train", choices=("train", "test", "all"), help="which clips (default train)")
    p.add_argument("--out", type=Path, required=True, help="output CSV: clip_id,frame,p0..p6 (frame: OpenFace's)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument(
        "--stride",
        type=ranged(int, 1),
        default=1,
        help="compute every N-th frame (and the last); the others copy the nearest computed frame (default 1)",
    )
    p.add_argument(
        "--window", type=ranged(int, 1), default=None, help="frames in a frame's window (default: the model's)"
    )
    p.add_argument("--batch-size", type=ranged(int, 1), default=64, help="windows per forward pass (default 64)")
    p.add_argument("--model", default=None, help="released base-model weights: the registered model name")
    p.add_argument("--config", default=None, help="with --model: the experiment config naming dataset and sampling")
    p.add_argument("--revision", default=None, help="a Hub id's revision")
    add_trust(p)
    p.set_defaults(func=run_frame_probs)


def run_frame_probs(args: argparse.Namespace) -> None:
    """Write the table (resuming an interrupted call) and its provenance."""
    from audfer.engine.frame_probs import frame_probabilities

    frame_probabilities(
        args.checkpoint,
        args.overrides,
        out=args.out,
        split=args.split,
        device=args.device,
        stride=args.stride,
        window=args.window,
        batch_size=args.batch_size,
        model_name=args.model,
        config=args.config,
        trust_pickle=args.trust_pickle,
        revision=args.revision,
        log=echo,
    )
