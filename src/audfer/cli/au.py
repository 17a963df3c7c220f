"""``audfer au-labels``, ``pos-weights`` and ``knowledge``: the AU side of the method as files (``tasks.prepare``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audfer.cli.common import add_au_dir, add_reader_options, declared_choices, echo, number, ranged, reader_kwargs
from audfer.data.registry import list_datasets
from audfer.errors import AudferError
from audfer.evaluation.reports import plot_knowledge
from audfer.files import read_yaml
from audfer.tasks.au_labels import au_labels_file


def add_au_labels(sub: Any) -> None:
    """``audfer au-labels``."""
    p = sub.add_parser("au-labels", help="video-level AU labels from a folder of per-clip AU CSVs (Eq. 4)")
    p.add_argument(
        "au_dir",
        type=Path,
        help="folder with one AU CSV per clip (clip id = file stem), from any AU tool of --source",
    )
    p.add_argument("--out", type=Path, required=True, help="output CSV: clip_id,n_frames,n_valid,AU01..AU45")
    p.add_argument(
        "--min-confidence",
        type=ranged(float, 0, 1),
        default=None,
        help="also require confidence >= this for a valid frame",
    )
    add_reader_options(p)
    p.set_defaults(func=run_au_labels)


def run_au_labels(args: argparse.Namespace) -> None:
    """Write the labels and their provenance (from the labels cache when nothing changed); print the summary."""
    line = au_labels_file(
        args.au_dir,
        args.out,
        min_confidence=args.min_confidence,
        source=args.source,
        mapping=args.mapping,
        allow_mixed=args.allow_mixed,
        log=echo,
        **reader_kwargs(args),
    )
    echo(line)


def add_pos_weights(sub: Any) -> None:
    """``audfer pos-weights``."""
    p = sub.add_parser("pos-weights", help="positive-class weights for the AU loss (Eq. 6-8)")
    p.add_argument("--au-labels", type=Path, help="video_au_labels.csv from `audfer au-labels`")
    p.add_argument("--labels", type=Path, help="clip_labels.csv: clip_id,label (index 0..6 or class name)")
    p.add_argument("--strategy", choices=declared_choices("au.strategy", leave_out=("none",)), required=True)
    p.add_argument(
        "--minor", default=None, help="comma-separated minor classes (default: classes with <= 1/7 of the clips)"
    )
    p.add_argument(
        "--preset",
        choices=declared_choices("au.pos_weights", leave_out=("computed",)),
        default=None,
        help="the authors' hard-coded tables instead of counting (faithful reproduction; see docs)",
    )
    p.add_argument("--out", type=Path, required=True, help="output CSV: expression,AU01..AU45 (7 rows)")
    p.set_defaults(func=run_pos_weights)


def run_pos_weights(args: argparse.Namespace) -> None:
    """Write the table (counted, or a preset) and its provenance; print the summary."""
    from audfer.tasks.prepare import pos_weights_file, preset_pos_weights_file

    if args.preset:
        if args.au_labels or args.labels:
            raise AudferError("--preset takes no --au-labels/--labels: it uses the authors' published table")
        echo(preset_pos_weights_file(args.preset, args.strategy, args.out)[1])
        return
    if not (args.au_labels and args.labels):
        raise AudferError("pos-weights needs --au-labels and --labels (or --preset)")
    minor = [m for m in args.minor.split(",") if m.strip()] if args.minor else None
    echo(pos_weights_file(args.au_labels, args.labels, args.strategy, args.out, minor=minor)[1])


def _knowledge_dataset(value: str) -> str:
    """``--dataset``: a registered dataset K can be built from, or a user's ``package.module:name``."""
    if ":" in value or value in list_datasets(knowledge=True):
        return value
    raise argparse.ArgumentTypeError(
        f"invalid choice: {value!r} (choose from {', '.join(list_datasets(knowledge=True))} or package.module:name)"
    )


def add_knowledge(sub: Any) -> None:
    """``audfer knowledge``."""

    p = sub.add_parser("knowledge", help="AU-expression knowledge matrix K (paper §3.1)")
    p.add_argument(
        "--dataset",
        default="clips",
        type=_knowledge_dataset,
        metavar="{" + ",".join(list_datasets(knowledge=True)) + "}|package.module:name",
        help="how labels are read: a registered dataset's knowledge adapter (default clips: --labels "
        "clip_labels.csv), or your own dataset module (docs/datasets.md)",
    )
    add_au_dir(p)
    p.add_argument("--labels", type=Path, help="clips: clip_labels.csv (clip_id,label)")
    p.add_argument("--annotations", type=Path, help="affwild2: folder of ABAW expression annotation .txt files")
    p.add_argument("--root", type=Path, help="dfew/ferv39k/mafw: dataset root holding the official split files")
    p.add_argument("--fold", type=int, default=1, help="dfew/mafw: fold whose training split is used (default 1)")
    p.add_argument(
        "--include-test", action="store_true", help="dfew/ferv39k/mafw: also use test clips (leaks test information)"
    )
    p.add_argument(
        "--calm", choices=("drop", "neutral"), default="drop", help="ravdess: calm clips left out or counted as neutral"
    )
    p.add_argument(
        "--frame-probs", type=Path, help="base-model frame probabilities: clip_id,frame,p0..p6 (`audfer frame-probs`)"
    )
    p.add_argument(
        "--filter-checkpoint",
        help="or the base model (checkpoint or package): its frame probabilities are made first, beside --out "
        "(<out stem>.frame_probs.csv; resumed if interrupted)",
    )
    p.add_argument(
        "--filter-data",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="with --filter-checkpoint: overrides of the model's config (dfew/ferv39k/mafw get data.root and "
        "data.fold from --root/--fold)",
    )
    p.add_argument(
        "--theta",
        type=ranged(float, 0, 1, hi_open=True),
        default=None,
        help="keep frames whose probability of their label is > theta",
    )
    p.add_argument(
        "--zeros", choices=("keep", "interpolate"), default="keep", help="zero-intensity policy (default keep)"
    )
    p.add_argument("--min-confidence", type=ranged(float, 0, 1), default=None, help="also require confidence >= this")
    p.add_argument("--combine", type=Path, nargs="+", help="combine per-dataset K.csv files: sigmoid(sum K - S)")
    p.add_argument("--config", type=Path, help="YAML listing several datasets: run each and combine (the whole §3.1)")
    p.add_argument("--shift", default="2.5", help="S for --combine: a number (default 2.5) or 'auto' (= D/2)")
    p.add_argument("--heatmap", type=Path, default=None, help="also draw the matrix as a PNG heatmap (Fig. 4)")
    p.add_argument("--out", type=Path, help="output CSV: expression,AU01..AU45 (7 rows)")
    add_reader_options(p)
    p.set_defaults(func=run_knowledge)


def run_knowledge(args: argparse.Namespace) -> None:
    """One dataset, ``--combine`` or ``--config``: write K and its provenance (and the heatmap); print the summary."""
    from audfer.method.dataset_knowledge import DatasetSpec, parse_knowledge_config
    from audfer.tasks.prepare import combined_knowledge_file, knowledge_file, knowledge_from_config

    if args.config:
        config = read_yaml(args.config, "a knowledge config (YAML)")
        if isinstance(config, dict) and args.out:
            config["out"] = str(args.out.resolve())
        if isinstance(config, dict) and args.heatmap:
            config["heatmap"] = str(args.heatmap.resolve())
        knowledge_from_config(parse_knowledge_config(config, base=args.config.parent), log=echo)
        return
    if not args.out:
        raise AudferError("knowledge needs --out (or --config)")
    if args.combine:
        if args.au_dir or args.labels:
            raise AudferError("--combine takes K.csv files only, not --au-dir/--labels")
        shift = args.shift if args.shift == "auto" else number(args.shift, "--shift")
        combined, line = combined_knowledge_file(args.combine, args.out, shift=shift)
        matrix, unmeasured = combined.matrix, combined.unmeasured
    else:
        if not args.au_dir:
            raise AudferError("knowledge needs --au-dir (or --combine K1.csv K2.csv ..., or --config)")
        spec = DatasetSpec(
            args.dataset,
            args.au_dir,
            labels=args.labels,
            annotations=args.annotations,
            root=args.root,
            fold=args.fold,
            include_test=args.include_test,
            calm=args.calm,
            frame_probs=args.frame_probs,
            theta=args.theta,
            filter_checkpoint=args.filter_checkpoint,
            filter_overrides=tuple(args.filter_data),
            zeros=args.zeros,
            min_confidence=args.min_confidence,
            source=args.source,
            mapping=args.mapping,
            allow_mixed=args.allow_mixed,
        )
        result, line = knowledge_file(spec, args.out, log=echo, **reader_kwargs(args))
        matrix, unmeasured = result.matrix, result.unmeasured
    echo(line)
    if args.heatmap:
        plot_knowledge(matrix, args.heatmap, unmeasured=unmeasured)
        echo(f"wrote {args.heatmap}")
