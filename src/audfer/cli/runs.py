"""``audfer train``, ``config``, ``evaluate``, ``cv``, ``ablate`` and ``study``: runs of the engine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from audfer.cli.common import (
    add_config_args,
    add_sweep_args,
    add_trust,
    declared_choices,
    declared_range,
    echo,
    int_list,
    number,
)
from audfer.cli.predict import checkpoint_in_run
from audfer.config.load import describe_shipped, dump_config, load_config
from audfer.config.render import defaults_yaml, reference_markdown
from audfer.config.schema import check_of
from audfer.errors import AudferError
from audfer.run_layout import RunLayout

_RUN = RunLayout(Path("<run>"))  # the run folder's layout, for the help texts


def add_train(sub: Any) -> None:
    """``audfer train``."""
    p = sub.add_parser("train", help="train a model (with or without the AU loss) as an experiment config says")
    p.add_argument("config", nargs="?", help="experiment YAML, or a shipped config name")
    p.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides with dotted keys, e.g. au.lam=0.5 train.devices=2 (every key: `audfer config`)",
    )
    p.add_argument("--resume", action="store_true", help=f"continue the run from its {_RUN.relative(_RUN.last)}")
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
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> None:
    """List the shipped configs, plan, or train."""

    if args.list or not args.config:
        print(describe_shipped())
        return
    if args.accept_changes and not args.resume:
        raise AudferError("--accept-changes goes with --resume")
    cfg = load_config(args.config, args.overrides)
    from audfer.engine.plan import plan
    from audfer.engine.train import train

    if args.dry_run:
        plan(cfg, log=echo)
        return
    train(cfg, resume=args.resume, accept_changes=args.accept_changes, log=echo)


def add_config(sub: Any) -> None:
    """``audfer config``."""
    p = sub.add_parser(
        "config",
        help="every config option with its default and meaning; or a config as it will run (merged and checked)",
    )
    p.add_argument("config", nargs="?", help="experiment YAML or shipped config name (omit: the defaults, commented)")
    p.add_argument("overrides", nargs="*", help="key=value overrides with dotted keys, e.g. au.lam=0.5")
    p.add_argument("--markdown", action="store_true", help="the option reference as Markdown (docs/config.md)")
    p.set_defaults(func=run_config)


def run_config(args: argparse.Namespace) -> None:
    """Print the defaults, the reference, or a merged config."""

    if args.markdown:
        if args.config:
            raise AudferError("--markdown prints the option reference; it takes no config")
        sys.stdout.write(reference_markdown())
    elif args.config:
        sys.stdout.write(dump_config(load_config(args.config, args.overrides)))
    else:
        sys.stdout.write(defaults_yaml())


def add_evaluate(sub: Any) -> None:
    """``audfer evaluate``."""
    p = sub.add_parser("evaluate", help="metrics.json + predictions.csv of a checkpoint on a split")
    p.add_argument(
        "checkpoint", type=Path, help="audfer checkpoint, model package folder or Hub id org/name[@revision]"
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="data overrides, e.g. data.root=... data.fold=2")
    p.add_argument("--data", nargs="*", default=[], metavar="KEY=VALUE", help="the same overrides, after a flag")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--out", type=Path, default=None, help=f"output folder (default: {_RUN.reevaluation('<split>')})")
    add_trust(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> None:
    """Evaluate a checkpoint on a split."""
    from audfer.engine.evaluate import evaluate_checkpoint

    evaluate_checkpoint(
        checkpoint_in_run(args.checkpoint),
        overrides=[*args.overrides, *args.data],
        split=args.split,
        out=args.out,
        log=echo,
        trust_pickle=args.trust_pickle,
    )


def add_cv(sub: Any) -> None:
    """``audfer cv``."""
    p = sub.add_parser("cv", help="train and evaluate every fold; mean ± std report")
    add_config_args(p)
    p.add_argument("--folds", default="1,2,3,4,5", help="comma-separated folds (default 1..5)")
    add_sweep_args(p)
    p.set_defaults(func=run_cv)


def run_cv(args: argparse.Namespace) -> None:
    """Every fold, then the mean ± std report."""

    folds = int_list(args.folds, "--folds", *declared_range("data.fold"))
    cfg = load_config(args.config, args.overrides)
    from audfer.engine.experiments import run_cv

    run_cv(cfg, folds=folds, log=echo, accept_changes=args.accept_changes, jobs=args.jobs)


def add_ablate(sub: Any) -> None:
    """``audfer ablate``."""
    p = sub.add_parser("ablate", help="Table 3 (baseline/global/distinct/minor over seeds) and the λ sweep (Fig. 5)")
    add_config_args(p)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--lambdas", default="0.1,0.25,0.5,0.75", help="λ values of the sweep ('' to skip it)")
    p.add_argument(
        "--strategies",
        default=",".join(declared_choices("au.strategy")),
        help=f"strategies of Table 3, comma-separated among {', '.join(declared_choices('au.strategy'))} "
        "(default: all; none is the CE baseline)",
    )
    add_sweep_args(p)
    p.set_defaults(func=run_ablate)


def run_ablate(args: argparse.Namespace) -> None:
    """Table 3 over seeds and the λ sweep."""

    seeds = int_list(args.seeds, "--seeds", *declared_range("train.seed"))
    lams = tuple(number(s, "--lambdas") for s in args.lambdas.split(",") if s.strip())
    lam = check_of("au.lam")
    if any(not lam.ok(x) for x in lams):
        raise AudferError(f"--lambdas: each value must be {lam.want} (au.lam), got {args.lambdas}")
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    allowed = declared_choices("au.strategy")
    if not strategies or any(s not in allowed for s in strategies) or len(set(strategies)) != len(strategies):
        raise AudferError(f"--strategies: expected distinct values among {', '.join(allowed)}, got {args.strategies!r}")
    cfg = load_config(args.config, args.overrides)
    from audfer.engine.experiments import run_ablation

    run_ablation(
        cfg,
        seeds=seeds,
        strategies=strategies,
        lams=lams,
        log=echo,
        accept_changes=args.accept_changes,
        jobs=args.jobs,
    )


def add_study(sub: Any) -> None:
    """``audfer study``."""
    p = sub.add_parser(
        "study",
        help="a pre-declared AU-effect study: training-set size x λ x AU-loss variant x seeds, paired differences",
    )
    p.add_argument("study", nargs="?", help="study YAML or shipped study name (au_effect); see docs/study.md")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every run (e.g. data.root=...)")
    p.add_argument("--out", type=Path, help="study folder (runs, study.csv, effects.csv, effect.png, report.md)")
    add_sweep_args(p)
    p.add_argument("--list", action="store_true", help="list the shipped studies and exit")
    p.set_defaults(func=run_study)


def run_study(args: argparse.Namespace) -> None:
    """List the shipped studies, or run one."""
    from audfer.engine.study import StudySpec, run_study, shipped_studies

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
        log=echo,
    )
