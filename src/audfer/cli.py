"""The ``audfer`` command: thin wrappers over the library functions.

Bad input -> one line on stderr and exit status 2; outputs are written atomically.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

from .errors import AudferError


def _echo(msg: str) -> None:
    print(msg, file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error format: one line, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"audfer: error: {self.prog}: {message}\n")


def _ranged(kind, lo=None, hi=None, *, lo_open=False, hi_open=False):
    """An argparse ``type`` that parses ``kind`` (int or float) and checks its range, saying what is allowed."""
    lo_s = "" if lo is None else (f"({lo:g}" if lo_open else f"[{lo:g}")
    hi_s = "" if hi is None else (f"{hi:g})" if hi_open else f"{hi:g}]")
    noun = "an integer" if kind is int else "a number"
    if lo is not None and hi is not None:
        allowed = f"{noun} in {lo_s}, {hi_s}"
    elif lo is not None:
        allowed = f"{noun} {'>' if lo_open else '>='} {lo:g}"
    else:
        allowed = noun

    def parse(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        bad = (
            (kind is float and not math.isfinite(value))
            or (lo is not None and (value <= lo if lo_open else value < lo))
            or (hi is not None and (value >= hi if hi_open else value > hi))
        )
        if bad:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    return parse


def _int_list(text: str, flag: str, lo: int, hi: int | None = None) -> tuple[int, ...]:
    """``1,2,3`` -> (1, 2, 3): integers in range, no repeats, at least one."""
    parse = _ranged(int, lo, hi)
    try:
        values = tuple(parse(x.strip()) for x in text.split(",") if x.strip())
    except argparse.ArgumentTypeError as exc:
        raise AudferError(f"{flag}: {exc}") from None
    if not values:
        raise AudferError(f"{flag}: expected a comma-separated list of integers, got {text!r}")
    if len(set(values)) != len(values):
        raise AudferError(f"{flag}: {text!r} repeats a value")
    return values


def _declared_choices(dotted: str, leave_out: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The choices a config option declares (``audfer/options.py``): the CLI offers the same set."""
    from .options import choices_of

    return tuple(c for c in choices_of(dotted) if c not in leave_out)


def _declared_range(dotted: str) -> tuple[int, int | None]:
    """The integer range a config option declares (``data.fold``: 1..5)."""
    from .options import Num, check_of

    check = check_of(dotted)
    assert isinstance(check, Num) and check.integer and check.lo is not None, dotted
    return int(check.lo), None if check.hi is None else int(check.hi)


# ----------------------------------------------------------------------------- au-labels
def _add_au_labels(sub) -> None:
    p = sub.add_parser("au-labels", help="video-level AU labels from a folder of per-clip AU CSVs (Eq. 4)")
    p.add_argument(
        "openface_dir",
        type=Path,
        metavar="au_dir",
        help="folder with one AU CSV per clip (clip id = file stem): OpenFace, py-feat, LibreFace or a mapped table",
    )
    p.add_argument("--out", type=Path, required=True, help="output CSV: clip_id,n_frames,n_valid,AU01..AU45")
    p.add_argument(
        "--min-confidence",
        type=_ranged(float, 0, 1),
        default=None,
        help="also require confidence >= this for a valid frame",
    )
    _add_reader_options(p)
    p.set_defaults(func=_run_au_labels)


def _add_reader_options(p) -> None:
    from .au_sources import SOURCES

    p.add_argument(
        "--source",
        choices=("auto", *SOURCES),
        default="auto",
        help="AU tool that wrote the CSVs (default auto: recognised from each header; see docs/au-sources.md)",
    )
    p.add_argument("--mapping", type=Path, default=None, help="--source table: YAML naming each AU column and its kind")
    p.add_argument("--allow-mixed", action="store_true", help="accept a folder whose CSVs come from different AU tools")
    p.add_argument(
        "--face-id",
        type=_ranged(int, 0),
        default=None,
        help="face to keep in multi-face files (default: most successful frames)",
    )
    p.add_argument("--strict", action="store_true", help="raise on a cut-off last row instead of dropping it")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable CSVs (listed) instead of stopping")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the Parquet cache")
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="cache location (default $AUDFER_CACHE_DIR or ~/.cache/audfer)"
    )


def _reader_kwargs(args) -> dict:
    return {
        "face_id": args.face_id,
        "strict": args.strict,
        "on_error": "skip" if args.skip_bad else "raise",
        "cache": not args.no_cache,
        "cache_dir": args.cache_dir,
    }


def _check_mapping_args(args) -> None:
    if args.mapping is not None and args.source not in ("auto", "table"):
        raise AudferError(f"--mapping is for --source table, not --source {args.source}")


def _read_folder(args, reduce=None):
    from .au_sources import read_mapping_file
    from .openface import read_au_dir

    _check_mapping_args(args)
    mapping = read_mapping_file(args.mapping) if args.mapping is not None else None
    folder = read_au_dir(
        args.openface_dir,
        source=args.source,
        mapping=mapping,
        allow_mixed=args.allow_mixed,
        reduce=reduce,
        **_reader_kwargs(args),
    )
    for clip, reason in folder.skipped:
        _echo(f"skipped {clip}: {reason}")
    return folder


def _source_line(avail: dict | None) -> str:
    if not avail:
        return "AU source unknown"
    return f"AU source {'+'.join(avail['sources'])}; unknown (masked) AUs: {', '.join(avail['masked_aus']) or 'none'}"


def _run_au_labels(args) -> None:
    from .io import write_csv
    from .labels import video_au_labels, with_clips
    from .provenance import write_provenance
    from .vocab import AUS

    # Eq. 4 per chunk of files as they are read: the folder's frames are never held whole (peak memory follows a
    # chunk of files; benchmarks/bench_scale.py)
    folder = _read_folder(args, reduce=lambda frames: video_au_labels(frames, min_confidence=args.min_confidence))
    table = with_clips(folder.reduced if folder.reduced is not None else video_au_labels(folder.frames), folder.clips)
    write_csv(table, args.out)
    avail = folder.availability.as_dict()
    known = {a: int(table[a].is_not_null().sum()) for a in AUS}
    write_provenance(
        args.out,
        what="video AU labels",
        clip_ids=table["clip_id"].to_list(),
        source=str(args.openface_dir),
        extra={
            "au_source": {
                **avail,
                "clips_per_source": {s: list(folder.sources.values()).count(s) for s in avail["sources"]},
            },
            "known_labels_per_au": known,
        },
    )
    empty = table.filter(table["n_valid"] == 0)["clip_id"].to_list()
    _echo(
        f"wrote {args.out}: {table.height} clips, {folder.n_frames} frames "
        f"({folder.from_cache} clips from cache); {_source_line(avail)}; {len(empty)} clip(s) without a valid frame "
        f"keep empty AU labels" + (f": {', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''}" if empty else "")
    )


# ----------------------------------------------------------------------------- pos-weights
def _add_pos_weights(sub) -> None:
    p = sub.add_parser("pos-weights", help="positive-class weights for the AU loss (Eq. 6-8)")
    p.add_argument("--au-labels", type=Path, help="video_au_labels.csv from `audfer au-labels`")
    p.add_argument("--labels", type=Path, help="clip_labels.csv: clip_id,label (index 0..6 or class name)")
    p.add_argument("--strategy", choices=_declared_choices("au.strategy", leave_out=("none",)), required=True)
    p.add_argument(
        "--minor", default=None, help="comma-separated minor classes (default: classes with <= 1/7 of the clips)"
    )
    p.add_argument(
        "--preset",
        choices=_declared_choices("au.pos_weights", leave_out=("computed",)),
        default=None,
        help="the authors' hard-coded tables instead of counting (faithful reproduction; see docs)",
    )
    p.add_argument("--out", type=Path, required=True, help="output CSV: expression,AU01..AU45 (7 rows)")
    p.set_defaults(func=_run_pos_weights)


def _run_pos_weights(args) -> None:
    from .io import expression_table, read_clip_labels, write_csv
    from .labels import official_pos_weights, pos_weights, read_au_labels
    from .vocab import EXPRESSIONS

    if args.preset:
        if args.au_labels or args.labels:
            raise AudferError("--preset takes no --au-labels/--labels: it uses the authors' published table")
        write_csv(expression_table(official_pos_weights(args.preset, args.strategy)), args.out)
        _echo(f"wrote {args.out}: official {args.preset} {args.strategy} table")
        return
    if not (args.au_labels and args.labels):
        raise AudferError("pos-weights needs --au-labels and --labels (or --preset)")
    minor = [m for m in args.minor.split(",") if m.strip()] if args.minor else None
    au, clips = read_au_labels(args.au_labels), read_clip_labels(args.labels)
    pw = pos_weights(au, clips, args.strategy, minor=minor)
    if clips.height and not pw.clip_ids:
        raise AudferError(
            f"{args.labels}: no clip id has known AU labels in {args.au_labels} (labels e.g. "
            f"{', '.join(clips['clip_id'].head(3).to_list())}; AU labels e.g. "
            f"{', '.join(au['clip_id'].head(3).to_list()) or '-'}): the two files do not describe the same clips"
        )
    write_csv(pw.table(), args.out)
    from .provenance import write_provenance

    write_provenance(
        args.out,
        what="pos-weights",
        clip_ids=pw.clip_ids,
        source=str(args.labels),
        extra={"unknown_aus": pw.unknown_aus, "filled_cells": pw.filled},
    )
    _echo(
        f"wrote {args.out}: {args.strategy} from {int(pw.class_counts.sum())} clips; {len(pw.filled)} cell(s) without "
        f"a positive clip set by the bounded rule (listed in the provenance); AUs without any known label "
        f"(weight 1.0, masked in the loss): {', '.join(pw.unknown_aus) or 'none'}; minor classes "
        f"{', '.join(EXPRESSIONS[i] for i in pw.minor) or 'none'}; not counted: {pw.n_missing_au} labelled clip(s) "
        f"without valid AU labels, {pw.n_unlabelled} AU-labelled clip(s) without an expression label"
    )


# ----------------------------------------------------------------------------- knowledge
def _add_knowledge(sub) -> None:
    p = sub.add_parser("knowledge", help="AU-expression knowledge matrix K (paper §3.1)")
    p.add_argument(
        "--dataset",
        default="clips",
        choices=("clips", "affwild2", "ravdess", "dfew", "ferv39k", "mafw"),
        help="how labels are read (default clips: --labels clip_labels.csv)",
    )
    p.add_argument(
        "--openface-dir",
        "--au-dir",
        dest="openface_dir",
        type=Path,
        help="folder of per-clip AU CSVs (OpenFace, py-feat, LibreFace or a mapped table; see --source)",
    )
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
    p.add_argument("--frame-probs", type=Path, help="base-model frame probabilities: clip_id,frame,p0..p6")
    p.add_argument(
        "--theta",
        type=_ranged(float, 0, 1, hi_open=True),
        default=None,
        help="keep frames whose probability of their label is > theta",
    )
    p.add_argument(
        "--zeros", choices=("keep", "interpolate"), default="keep", help="zero-intensity policy (default keep)"
    )
    p.add_argument("--min-confidence", type=_ranged(float, 0, 1), default=None, help="also require confidence >= this")
    p.add_argument("--combine", type=Path, nargs="+", help="combine per-dataset K.csv files: sigmoid(sum K - S)")
    p.add_argument("--config", type=Path, help="YAML listing several datasets: run each and combine (the whole §3.1)")
    p.add_argument("--shift", default="2.5", help="S for --combine: a number (default 2.5) or 'auto' (= D/2)")
    p.add_argument("--heatmap", type=Path, default=None, help="also draw the matrix as a PNG heatmap (Fig. 4)")
    p.add_argument("--out", type=Path, help="output CSV: expression,AU01..AU45 (7 rows)")
    _add_reader_options(p)
    p.set_defaults(func=_run_knowledge)


def _run_knowledge(args) -> None:
    from .io import expression_table, read_expression_table, write_csv
    from .knowledge import combine_knowledge
    from .knowledge_datasets import DatasetSpec, knowledge_for_dataset, knowledge_from_config, knowledge_provenance
    from .vocab import AUS

    if args.config:
        from .io import read_yaml

        config = read_yaml(args.config, "a knowledge config (YAML)")
        if isinstance(config, dict) and args.out:
            config["out"] = str(args.out.resolve())
        if isinstance(config, dict) and args.heatmap:
            config["heatmap"] = str(args.heatmap.resolve())
        knowledge_from_config(config, base=args.config.parent, log=_echo)
        return
    if not args.out:
        raise AudferError("knowledge needs --out (or --config)")
    if args.combine:
        if args.openface_dir or args.labels:
            raise AudferError("--combine takes K.csv files only, not --openface-dir/--labels")
        from .knowledge_datasets import measured_from_sidecar

        shift = args.shift if args.shift == "auto" else _number(args.shift, "--shift")
        measured = [measured_from_sidecar(p) for p in args.combine]
        matrix = combine_knowledge(
            [read_expression_table(p, what="knowledge matrix") for p in args.combine], shift, measured
        )
        write_csv(expression_table(matrix), args.out)
        unmeasured = [a for i, a in enumerate(AUS) if not any(m is None or m[i] for m in measured)]
        partial = [
            f"{a} ({sum(m is None or m[i] for m in measured)}/{len(measured)})"
            for i, a in enumerate(AUS)
            if not all(m is None or m[i] for m in measured)
        ]
        _echo(
            f"wrote {args.out}: combined {len(args.combine)} matrices with shift {shift}; AUs measured by only some "
            f"sources (combined over those, shift rescaled): {', '.join(partial) or 'none'}"
        )
    else:
        if not args.openface_dir:
            raise AudferError("knowledge needs --openface-dir (or --combine K1.csv K2.csv ..., or --config)")
        spec = DatasetSpec(
            args.dataset,
            args.openface_dir,
            labels=args.labels,
            annotations=args.annotations,
            root=args.root,
            fold=args.fold,
            include_test=args.include_test,
            calm=args.calm,
            frame_probs=args.frame_probs,
            theta=args.theta,
            zeros=args.zeros,
            min_confidence=args.min_confidence,
        )
        _check_mapping_args(args)
        spec.source, spec.mapping, spec.allow_mixed = args.source, args.mapping, args.allow_mixed
        result, counts = knowledge_for_dataset(spec, **_reader_kwargs(args))
        matrix, unmeasured = result.matrix, result.unmeasured
        write_csv(result.table(), args.out)
        from .provenance import write_provenance

        split = None if args.dataset in ("clips", "affwild2", "ravdess") else ("all" if args.include_test else "train")
        write_provenance(
            args.out,
            what="knowledge",
            clip_ids=result.clip_ids,
            dataset=args.dataset,
            fold=args.fold if args.dataset in ("dfew", "mafw") else None,
            split=split,
            source=str(args.labels or args.root or args.annotations or args.openface_dir),
            extra=knowledge_provenance(result),
        )
        _echo(
            f"wrote {args.out}: "
            + "; ".join(f"{k} {v}" for k, v in counts.items())
            + f"; {_source_line(result.au_source)}; K columns not measured (filled with the mean, §3.1 AU28 rule): "
            f"{', '.join(result.unmeasured)}"
        )
    if args.heatmap:
        from .reports import plot_knowledge

        plot_knowledge(matrix, args.heatmap, unmeasured=unmeasured)
        _echo(f"wrote {args.heatmap}")


def _number(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AudferError(f"{flag}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise AudferError(f"{flag}: expected a finite number, got {text!r}")
    return value


# ----------------------------------------------------------------------------- demo
def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole method on built-in synthetic data: K, pos-weights, training with/without AU loss, report",
    )
    p.add_argument("--out", type=Path, default=Path("."), help="output folder (default: the current folder)")
    p.add_argument(
        "--clips", type=_ranged(int, 70, 100000), default=1500, help="synthetic clips (default 1500; 70..100000)"
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    p.add_argument(
        "--epochs",
        type=_ranged(int, 1, 10000),
        default=None,
        help="training epochs (default: the synthetic_small config's)",
    )
    p.add_argument("--seed", type=_ranged(int, 0), default=0, help="seed of the synthetic data")
    p.add_argument(
        "--no-videos", action="store_true", help="skip rendering videos and running `audfer predict` on them"
    )
    p.add_argument(
        "--jobs",
        type=_ranged(int, 1, 64),
        default=None,
        help="training runs side by side (default: one per CPU core, at most 8); results do not depend on it",
    )
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> None:
    from .demo import run_demo

    if args.clips < 35:
        raise AudferError(f"--clips must be at least 35 (every expression in every fold), got {args.clips}")
    seeds = _int_list(args.seeds, "--seeds", 0)
    run_demo(
        args.out,
        clips=args.clips,
        seeds=seeds or (0,),
        epochs=args.epochs,
        seed=args.seed,
        videos=not args.no_videos,
        jobs=args.jobs,
        log=_echo,
    )


# ----------------------------------------------------------------------------- synth
def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="render the built-in synthetic AU face-video dataset (DFEW layout)")
    p.add_argument("--out", type=Path, required=True, help="output folder (refused if it exists and is not empty)")
    p.add_argument("--clips", type=_ranged(int, 1), default=2000, help="number of clips (default 2000)")
    p.add_argument("--seed", type=_ranged(int, 0), default=0, help="same seed -> byte-identical output")
    p.add_argument("--size", type=int, default=112, help="frame side in pixels (default 112)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument(
        "--label-noise", type=float, default=0.1, help="share of deliberately wrong expression labels (default 0.1)"
    )
    p.add_argument(
        "--workers", type=_ranged(int, 1, 256), default=None, help="processes (default: all cores, at most 8)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out folder once the new one is complete"
    )
    p.add_argument("--preview", action="store_true", help="also write preview.png: a few clips per expression")
    p.set_defaults(func=_run_synth)


def _run_synth(args) -> None:
    from .synth.dataset import SynthConfig, generate

    cfg = SynthConfig(
        clips=args.clips, seed=args.seed, size=args.size, frames=args.frames, label_noise=args.label_noise
    )
    generate(args.out, cfg, workers=args.workers, overwrite=args.overwrite, preview=args.preview, log=_echo)


# ----------------------------------------------------------------------------- train / evaluate / cv / ablate
def _add_config_args(p) -> None:
    p.add_argument("config", help="experiment YAML, or a shipped config name (see `audfer train --list`)")
    p.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides with dotted keys, e.g. au.lam=0.5 train.devices=2 (every key: `audfer config`)",
    )


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model (with or without the AU loss) as an experiment config says")
    p.add_argument("config", nargs="?", help="experiment YAML, or a shipped config name")
    p.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides with dotted keys, e.g. au.lam=0.5 train.devices=2 (every key: `audfer config`)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run from its checkpoints/last.ckpt")
    p.add_argument(
        "--accept-changes",
        action="store_true",
        help="with --resume: continue with changed result-affecting settings (recorded in changes.json)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check and print the run's plan (clips, AU coverage, steps, lr, init, augmentation) to plan.json; no training",
    )
    p.add_argument("--list", action="store_true", help="list the shipped configs and exit")
    p.set_defaults(func=_run_train)


def _run_train(args) -> None:
    from .engine import load_config, train

    if args.list or not args.config:
        from .engine.config import describe_shipped

        print(describe_shipped())
        return
    if args.dry_run:
        from .engine.train import plan

        plan(load_config(args.config, args.overrides), log=_echo)
        return
    if args.accept_changes and not args.resume:
        raise AudferError("--accept-changes goes with --resume")
    train(load_config(args.config, args.overrides), resume=args.resume, accept_changes=args.accept_changes, log=_echo)


def _add_config(sub) -> None:
    p = sub.add_parser(
        "config",
        help="every config option with its default and meaning; or a config as it will run (merged and checked)",
    )
    p.add_argument("config", nargs="?", help="experiment YAML or shipped config name (omit: the defaults, commented)")
    p.add_argument("overrides", nargs="*", help="key=value overrides with dotted keys, e.g. au.lam=0.5")
    p.add_argument("--markdown", action="store_true", help="the option reference as Markdown (docs/config.md)")
    p.set_defaults(func=_run_config)


def _run_config(args) -> None:
    from .engine.config import defaults_yaml, dump_config, load_config, reference_markdown

    if args.markdown:
        if args.config:
            raise AudferError("--markdown prints the option reference; it takes no config")
        sys.stdout.write(reference_markdown())
    elif args.config:
        sys.stdout.write(dump_config(load_config(args.config, args.overrides)))
    else:
        sys.stdout.write(defaults_yaml())


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics.json + predictions.csv of a checkpoint on a split")
    p.add_argument("checkpoint", type=Path)
    p.add_argument(
        "--data", nargs="*", default=[], metavar="KEY=VALUE", help="data overrides, e.g. data.root=... data.fold=2"
    )
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/eval-<split>)")
    _add_trust(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> None:
    from .engine import evaluate_checkpoint

    evaluate_checkpoint(
        args.checkpoint,
        overrides=args.data,
        split=args.split,
        out=args.out,
        log=_echo,
        trust_pickle=args.trust_pickle,
    )


def _add_sweep_args(p) -> None:
    """What every sweep (cv, ablate, study) takes: --jobs and --accept-changes."""
    p.add_argument(
        "--jobs",
        type=_ranged(int, 1, 64),
        default=1,
        help="runs side by side in separate processes (needs train.threads set, "
        "e.g. train.threads=1: results then do not depend on --jobs)",
    )
    p.add_argument(
        "--accept-changes",
        action="store_true",
        help="unfinished runs resume even with changed result-affecting settings (recorded in changes.json)",
    )


def _add_cv(sub) -> None:
    p = sub.add_parser("cv", help="train and evaluate every fold; mean ± std report")
    _add_config_args(p)
    p.add_argument("--folds", default="1,2,3,4,5", help="comma-separated folds (default 1..5)")
    _add_sweep_args(p)
    p.set_defaults(func=_run_cv)


def _run_cv(args) -> None:
    from .engine import load_config
    from .engine.experiments import run_cv

    folds = _int_list(args.folds, "--folds", *_declared_range("data.fold"))
    run_cv(
        load_config(args.config, args.overrides),
        folds=folds,
        log=_echo,
        accept_changes=args.accept_changes,
        jobs=args.jobs,
    )


def _add_ablate(sub) -> None:
    p = sub.add_parser("ablate", help="Table 3 (baseline/global/distinct/minor over seeds) and the λ sweep (Fig. 5)")
    _add_config_args(p)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--lambdas", default="0.1,0.25,0.5,0.75", help="λ values of the sweep ('' to skip it)")
    p.add_argument(
        "--strategies",
        default=",".join(_declared_choices("au.strategy")),
        help=f"strategies of Table 3, comma-separated among {', '.join(_declared_choices('au.strategy'))} "
        "(default: all; none is the CE baseline)",
    )
    _add_sweep_args(p)
    p.set_defaults(func=_run_ablate)


def _run_ablate(args) -> None:
    from .engine import load_config
    from .engine.experiments import run_ablation
    from .options import check_of

    seeds = _int_list(args.seeds, "--seeds", *_declared_range("train.seed"))
    lams = tuple(_number(s, "--lambdas") for s in args.lambdas.split(",") if s.strip())
    lam = check_of("au.lam")
    if any(not lam.ok(x) for x in lams):
        raise AudferError(f"--lambdas: each value must be {lam.want} (au.lam), got {args.lambdas}")
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    allowed = _declared_choices("au.strategy")
    if not strategies or any(s not in allowed for s in strategies) or len(set(strategies)) != len(strategies):
        raise AudferError(f"--strategies: expected distinct values among {', '.join(allowed)}, got {args.strategies!r}")
    run_ablation(
        load_config(args.config, args.overrides),
        seeds=seeds,
        strategies=strategies,
        lams=lams,
        log=_echo,
        accept_changes=args.accept_changes,
        jobs=args.jobs,
    )


def _add_study(sub) -> None:
    p = sub.add_parser(
        "study",
        help="a pre-declared AU-effect study: training-set size x λ x AU-loss variant x seeds, paired differences",
    )
    p.add_argument("study", nargs="?", help="study YAML or shipped study name (au_effect); see docs/study.md")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every run (e.g. data.root=...)")
    p.add_argument("--out", type=Path, help="study folder (runs, study.csv, effects.csv, effect.png, report.md)")
    _add_sweep_args(p)
    p.add_argument("--list", action="store_true", help="list the shipped studies and exit")
    p.set_defaults(func=_run_study)


def _run_study(args) -> None:
    from .engine.study import StudySpec, run_study, shipped_studies

    if args.list or not args.study:
        print("\n".join(shipped_studies()))
        return
    if args.out is None:
        raise AudferError("study needs --out (the study folder)")
    run_study(
        StudySpec.read(args.study),
        args.out,
        args.overrides,
        jobs=args.jobs,
        accept_changes=args.accept_changes,
        log=_echo,
    )


# ----------------------------------------------------------------------------- predict / export
def _add_model_source(p) -> None:
    p.add_argument(
        "--checkpoint", type=Path, required=True, help="audfer checkpoint (e.g. model.ckpt from `audfer demo`)"
    )
    p.add_argument(
        "--model", default=None, help="with weights that are not an audfer checkpoint: the registered model name"
    )
    _add_trust(p)


def _add_trust(p) -> None:
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="the checkpoint is trusted: it may unpickle any object and its config may name code to import "
        "(never for files from strangers; docs/weights.md)",
    )


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict", help="per-window expression and AU probabilities of videos (face tracked with OpenCV)"
    )
    p.add_argument("videos", nargs="+", type=Path, help="mp4 / avi / mov / mkv files")
    _add_model_source(p)
    p.add_argument(
        "--window", type=_ranged(int, 1, 4096), default=16, help="window length in video frames (default 16)"
    )
    p.add_argument("--stride", type=_ranged(int, 1, 4096), default=8, help="frames between window starts (default 8)")
    p.add_argument(
        "--margin", type=_ranged(float, 0, 2), default=0.25, help="face box enlargement before cropping (default 0.25)"
    )
    p.add_argument(
        "--face",
        choices=("detect", "full"),
        default="detect",
        help="detect: track the main face with OpenCV (default); full: the whole frame is the face "
        "(pre-cropped clips such as DFEW's)",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="results .json (per video: summary + windows) or .csv (windows)"
    )
    p.add_argument(
        "--annotate",
        type=Path,
        default=None,
        help="write the video with box and label (a .mp4 path for one video, a folder for several)",
    )
    p.set_defaults(func=_run_predict)


def _run_predict(args) -> None:
    from .inference import NoFaceError, VideoResult, load_predictor, predict_video

    if args.out.suffix.lower() not in (".json", ".csv"):
        raise AudferError(f"--out {args.out}: expected a .json or .csv file name")
    model = load_predictor(args.checkpoint, args.model, trust_pickle=args.trust_pickle)
    results, failed = [], []
    for video in args.videos:
        try:
            result = predict_video(
                video, model, window=args.window, stride=args.stride, margin=args.margin, face=args.face
            )
        except NoFaceError as exc:
            if len(args.videos) == 1:
                raise
            _echo(f"audfer: error: {exc}")
            failed.append(str(video))
            continue
        results.append(result)
        _echo(result.describe())
        if args.annotate:
            result.annotate(
                args.annotate if len(args.videos) == 1 else args.annotate / f"{Path(video).stem}_annotated.mp4"
            )
    if results:
        VideoResult.write(results, args.out)
        _echo(f"wrote {args.out}")
    if failed:
        raise AudferError(
            f"{len(failed)} of {len(args.videos)} video(s) without a face, no prediction for them: {', '.join(failed)}"
        )


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (both heads) and check it against PyTorch")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--onnx", type=Path, required=True, help="output .onnx file")
    p.add_argument(
        "--model", default=None, help="with weights that are not an audfer checkpoint: the registered model name"
    )
    p.add_argument("--opset", type=_ranged(int, 11, 23), default=17, help="ONNX opset (11..23, default 17)")
    _add_trust(p)
    p.set_defaults(func=_run_export)


def _run_export(args) -> None:
    from .export import export_onnx, onnx_parity
    from .inference import load_predictor

    model = load_predictor(args.checkpoint, args.model, trust_pickle=args.trust_pickle)
    export_onnx(model, args.onnx, opset=args.opset)
    diff = onnx_parity(model, args.onnx)
    _echo(
        f"wrote {args.onnx}; onnxruntime vs PyTorch max abs difference: "
        + ", ".join(f"{k} {v:.2e}" for k, v in diff.items())
    )
    if max(diff.values()) > 1e-4:
        raise AudferError(f"{args.onnx}: ONNX output differs from PyTorch by {max(diff.values()):.2e} (> 1e-4)")


# ----------------------------------------------------------------------------- models
def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the registered models with parameters and GMACs per clip")
    p.add_argument("names", nargs="*", help="models to measure (default: the three full-size base models)")
    p.set_defaults(func=_run_models)


def _run_models(args) -> None:
    from .models import create_model, list_models, model_entry
    from .models.complexity import clip_macs, count_parameters

    names = args.names or [n for n in list_models() if model_entry(n).official]
    for n in names:
        model_entry(n)  # unknown name -> clear error before any work
    print(
        f"{'model':18s} {'params':>12s} {'+AU head':>12s} {'GMACs':>8s} {'+AU head':>9s} {'AU cost':>9s}  paper Table 2"
    )
    for n in names:
        m = create_model(n)
        p0, p1 = count_parameters(m, au_head=False), count_parameters(m)
        g0, g1 = clip_macs(m, with_au_head=False), clip_macs(m)
        paper = type(m).paper_table2 if model_entry(n).official else None  # declared in the model's file
        note = f"{paper[0]:.2f} G ({paper[1]})" if paper else "-"
        print(f"{n:18s} {p0:>12,d} {p1:>12,d} {g0 / 1e9:>8.2f} {g1 / 1e9:>9.2f} {100 * (g1 - g0) / g0:>8.4f}%  {note}")
        print(f"{'':18s} input: {m.input_spec.describe()}; {model_entry(n).description}")
    others = [m for m in list_models() if m not in names]
    if others:
        print(f"also registered: {', '.join(others)}")


# ----------------------------------------------------------------------------- main
_COMMANDS = [
    _add_au_labels,
    _add_pos_weights,
    _add_knowledge,
    _add_synth,
    _add_train,
    _add_config,
    _add_evaluate,
    _add_cv,
    _add_ablate,
    _add_study,
    _add_predict,
    _add_export,
    _add_models,
    _add_demo,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``audfer`` argument parser with every subcommand."""
    from . import __version__

    parser = _Parser(prog="audfer", description="AU-enhanced dynamic facial expression recognition")
    parser.add_argument("--version", action="version", version=f"audfer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``audfer`` command; returns the exit status (0, 2 for bad input, 130/143 on a signal)."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.formatwarning = lambda m, c, *a, **k: f"warning: {m}\n"  # one line, no source echo
            args.func(args)
    except AudferError as exc:
        _echo(f"audfer: error: {exc}")
        return getattr(exc, "exit_code", 2)
    except OSError as exc:
        _echo(f"audfer: error: {exc.filename or ''}: {exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        _echo("audfer: interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
