"""Sweeps over runs: ``run_cv`` (the 5 folds, mean ± std) and ``run_ablation`` (Table 3's baseline / global /
distinct / minor over seeds, and Fig. 5's λ sweep), each ending in ``report.md`` with figures.

Every run is an ordinary run folder (``train``), so a sweep interrupted half-way is continued by
running it again: finished runs (with ``eval/metrics.json``) are reused, an unfinished one resumes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from audfer.config.load import with_values
from audfer.config.schema import Config
from audfer.engine.resolve import describe_au_labels, knowledge_for, split_index
from audfer.engine.runfolder import SELECTION_NOTE, has_checkpoint
from audfer.engine.runlock import run_lock
from audfer.engine.train import train
from audfer.errors import ConfigError
from audfer.evaluation.metrics import class_names
from audfer.evaluation.reports import (
    plot_confusions,
    plot_curves,
    plot_knowledge,
    plot_lambda,
    plot_tsne,
    pm,
    results_table,
)
from audfer.evaluation.statistics import MIN_SEEDS_FOR_A_CLAIM, aggregate, format_difference, paired_differences
from audfer.files import atomic_path, read_yaml, write_json
from audfer.hints import Log
from audfer.io import write_csv
from audfer.progress import bar
from audfer.run_layout import RunLayout, features_file, metrics_file, predictions_file

STRATEGY_LABEL = {
    "none": "baseline (CE only)",
    "global": "+AU global",
    "distinct": "+AU distinct",
    "minor": "+AU minor",
}


def _variant(cfg: Config, out: Path, source: str, values: dict[str, object]) -> Config:
    """One run of a sweep: ``values`` (dotted keys, ``{"data.fold": 2}``) and its run folder through
    ``config.with_values``, the one override mechanism, so a sweep's values are checked like any override."""
    return with_values(cfg, {**values, "out": str(out)}, source=source)


def run_once(cfg: Config, *, log: Log = print, accept_changes: bool = False) -> dict:
    """Train + evaluate one run folder, reusing a finished one and resuming an unfinished one."""
    out = cfg.run_dir
    metrics = metrics_file(RunLayout(out).evaluation)
    if not metrics.is_file():
        train(cfg, resume=has_checkpoint(out), log=log, accept_changes=accept_changes)
    return json.loads(metrics.read_text())


_CHILD = {"in_run": False, "orphaned": False}


def _stop_with_parent(parent: int) -> None:
    """Worker initialiser of ``run_many``: when the parent process is gone (killed, its terminal closed), the worker
    sends itself SIGTERM, so a run in progress stops at its next step boundary with its finished epochs saved
    (``--resume`` continues it), and then exits instead of waiting as an orphan for work nobody will send."""
    import os
    import signal
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        _CHILD["orphaned"] = True
        if not _CHILD["in_run"]:
            os._exit(143)
        os.kill(os.getpid(), signal.SIGTERM)  # the run stops at its next step; _run_in_child then exits

    threading.Thread(target=watch, name="audfer-parent-watch", daemon=True).start()


def _run_in_child(cfg: Config, accept_changes: bool) -> tuple[dict, list[str]]:
    """One run in a worker process of ``run_many``: its metrics and the log lines it wrote."""
    import os

    lines: list[str] = []
    _CHILD["in_run"] = True
    try:
        return run_once(cfg, log=lines.append, accept_changes=accept_changes), lines
    finally:
        _CHILD["in_run"] = False
        if _CHILD["orphaned"]:
            os._exit(143)


def run_many(cfgs: list[Config], *, jobs: int = 1, log: Log = print, accept_changes: bool = False) -> list[dict]:
    """``run_once`` for each config, in order; ``jobs`` > 1 runs that many side by side in spawned processes.

    Side by side pays on a CPU where one small model cannot keep every core busy (the demo's runs:
    ``benchmarks/bench_train_throughput.py``). Results do not depend
    on ``jobs`` as long as each run's thread count is fixed (``train.threads``): CPU kernels round
    differently with a different number of threads, so ``jobs`` > 1 needs ``train.threads`` set in every
    config (tested: the same metrics with ``jobs`` 1 and 2). A run's log lines appear when it finishes."""
    with bar(total=len(cfgs), desc="runs", unit="run") as shown:  # runs done of N, time left (stderr, a terminal)
        return _run_many(cfgs, jobs, log, accept_changes, shown.update)


def _run_many(cfgs: list[Config], jobs: int, log: Log, accept_changes: bool, done) -> list[dict]:
    if jobs <= 1 or len(cfgs) <= 1:
        out = []
        for c in cfgs:
            out.append(run_once(c, log=log, accept_changes=accept_changes))
            done()
        return out
    for c in cfgs:
        if not c.train.threads:
            raise ConfigError(
                f"config: running {jobs} runs side by side needs train.threads set (e.g. train.threads=1): the "
                f"number of CPU threads changes the rounding of the results"
            )
        if c.train.devices > 1 or c.train.num_nodes > 1:
            raise ConfigError(
                "config: runs side by side (jobs > 1) cannot also use several devices (train.devices > 1) or "
                "nodes (train.num_nodes > 1)"
            )
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: list[dict | None] = [None] * len(cfgs)
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(cfgs)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_stop_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = {pool.submit(_run_in_child, c, accept_changes): i for i, c in enumerate(cfgs)}
        for future in as_completed(futures):
            metrics, lines = future.result()
            for line in lines:
                log(line)
            results[futures[future]] = metrics
            done()
    return results  # type: ignore[return-value]


def epoch_curves(out: Path) -> dict[str, np.ndarray]:
    """Per-epoch curves from a run's CSV log, named for what they show: the training CE; the training AU loss only
    where the run trained one (``au.strategy`` not none, λ > 0: a baseline's logged zeros are no curve); WAR / UAR of
    the split the selection watched (``best-val``: the validation split carved from the training fold; ``best-test``:
    the test split), when there is one."""
    run = RunLayout(out)
    path = run.log_csv
    if not path.is_file():
        return {}
    df = pl.read_csv(path, glob=False)
    stored = read_yaml(run.config, "the run's config (YAML)") if run.config.is_file() else None
    au = (stored or {}).get("au") or {} if isinstance(stored, dict) else {}
    trains_au = au.get("strategy", "distinct") != "none" and float(au.get("lam", 1.0) or 0) > 0
    selection = ((stored or {}).get("train") or {}).get("selection") if isinstance(stored, dict) else None
    watched = {"best-test": "test"}.get(str(selection), "validation")
    curves = {}
    for col, name in (
        ("train/ce", "train CE"),
        ("train/au", "train AU loss" if trains_au else None),
        ("val/war", f"{watched} WAR (watched)"),
        ("val/uar", f"{watched} UAR (watched)"),
    ):
        if name and col in df.columns:
            per = df.filter(pl.col(col).is_not_null()).group_by("epoch").agg(pl.col(col).last()).sort("epoch")
            if per.height:
                curves[name] = per[col].to_numpy()
    return curves


def _mean_confusion(runs: dict[str, dict]) -> np.ndarray:
    return np.mean([np.asarray(r["confusion"]) for r in runs.values()], axis=0)


def _features(out: Path):
    folder = RunLayout(out).evaluation
    preds = pl.read_csv(predictions_file(folder), glob=False, schema_overrides={"clip_id": pl.String})
    return np.load(features_file(folder)), preds["label"].to_numpy()


def _au_label_lines(metrics) -> list[str]:
    """The AU-label source line(s) of a report: one per distinct description among the runs."""

    seen = sorted(
        {
            describe_au_labels(m["selection"]["au_labels"])
            for m in metrics
            if isinstance(m.get("selection"), dict) and m["selection"].get("au_labels")
        }
    )
    return [f"{line[0].upper()}{line[1:]}." for line in seen]


def _write_report(out: Path, lines: list[str]) -> None:
    with atomic_path(RunLayout(out).report) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def run_cv(
    cfg: Config,
    *,
    folds: Sequence[int] = (1, 2, 3, 4, 5),
    log: Log = print,
    accept_changes: bool = False,
    jobs: int = 1,
) -> dict:
    """Train and evaluate each fold; ``cv.json`` / ``cv.csv`` / ``report.md`` with mean ± std over folds.
    The base folder is locked while it runs (``runlock``); ``jobs``: folds side by side (``run_many``)."""

    with run_lock(cfg.run_dir, log=log):
        return _run_cv(cfg, folds=folds, log=log, accept_changes=accept_changes, jobs=jobs)


def _run_cv(cfg: Config, *, folds, log, accept_changes: bool, jobs: int) -> dict:
    base = cfg.run_dir
    layout = RunLayout(base)
    done = run_many(
        [_variant(cfg, layout.fold(k).root, "cv", {"data.fold": k}) for k in folds],
        jobs=jobs,
        log=log,
        accept_changes=accept_changes,
    )
    runs = {f"fold {k}": m for k, m in zip(folds, done)}
    agg = aggregate(runs)
    names = class_names(len(next(iter(runs.values()))["per_class_recall"]))
    write_json({"aggregate": agg, "folds": runs}, layout.cv_json)
    table = pl.DataFrame(
        {
            "fold": list(runs),
            "war": [r["war"] for r in runs.values()],
            "uar": [r["uar"] for r in runs.values()],
            "macro_f1": [r["macro_f1"] for r in runs.values()],
            **{n: [r["per_class_recall"][n] for r in runs.values()] for n in names},
        }
    )
    write_csv(table, layout.cv_csv)
    sel = cfg.train.selection
    lines = [
        f"# {cfg.name}: {len(folds)}-fold cross-validation",
        "",
        f"Model `{cfg.model.name}` on `{cfg.data.dataset}`, AU strategy `{cfg.au.strategy}`, λ = {cfg.au.lam}.",
        f"Checkpoint selection: **{sel}** ({SELECTION_NOTE[sel]}). Initialisation: "
        f"{', '.join(sorted({r.get('init', 'unknown') for r in runs.values()}))}.",
        *_au_label_lines(runs.values()),
        "",
        "| fold | WAR | UAR | macro-F1 |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {f} | {100 * r['war']:.2f} | {100 * r['uar']:.2f} | {100 * r['macro_f1']:.2f} |" for f, r in runs.items()
    ]
    lines += [
        f"| mean ± std | {pm(agg['war'])} | {pm(agg['uar'])} | {pm(agg['macro_f1'])} |",
        "",
        "Per-class recall (%):",
        "",
    ]
    lines += results_table({cfg.name or "run": agg}, names)
    _write_report(base, lines)
    log(f"cross-validation: WAR {pm(agg['war'])}, UAR {pm(agg['uar'])} -> {layout.report}")
    return agg


def run_ablation(
    cfg: Config,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    strategies: Sequence[str] = ("none", "global", "distinct", "minor"),
    lams: Sequence[float] = (0.1, 0.25, 0.5, 0.75),
    title: str | None = None,
    intro: list[str] | None = None,
    log: Log = print,
    accept_changes: bool = False,
    jobs: int = 1,
) -> dict:
    """Table 3 (each strategy over ``seeds``) and Fig. 5 (λ sweep with the config's strategy), with figures.
    The base folder is locked while it runs (``runlock``); ``jobs``: runs side by side (``run_many``)."""

    with run_lock(cfg.run_dir, log=log):
        return _run_ablation(
            cfg,
            seeds=seeds,
            strategies=strategies,
            lams=lams,
            title=title,
            intro=intro,
            log=log,
            accept_changes=accept_changes,
            jobs=jobs,
        )


def _run_ablation(cfg: Config, *, seeds, strategies, lams, title, intro, log, accept_changes: bool, jobs: int) -> dict:

    base = cfg.run_dir
    layout = RunLayout(base)
    sweep_strategy = cfg.au.strategy if cfg.au.strategy != "none" else "distinct"
    plan = [
        (s, seed, _variant(cfg, layout.variant(s, seed=seed).root, "ablate", {"au.strategy": s, "train.seed": seed}))
        for s in strategies
        for seed in seeds
    ]
    plan += [
        (
            float(lam),
            seed,
            _variant(
                cfg,
                layout.lambda_run(lam, seed).root,
                "ablate (λ sweep)",
                {"au.strategy": sweep_strategy, "au.lam": float(lam), "train.seed": seed},
            ),
        )
        for lam in lams
        for seed in seeds
    ]
    done = run_many([c for *_, c in plan], jobs=jobs, log=log, accept_changes=accept_changes)
    results: dict[str, dict[str, dict]] = {s: {} for s in strategies}
    per_lam: dict[float, dict[str, dict]] = {float(lam): {} for lam in lams}
    for (key, seed, _), metrics in zip(plan, done):
        (per_lam if isinstance(key, float) else results)[key][f"seed {seed}"] = metrics
    sweep: dict[float, dict] = {lam: aggregate(runs) for lam, runs in per_lam.items()}
    aggs = {s: aggregate(r) for s, r in results.items()}
    names = class_names(len(next(iter(results[strategies[0]].values()))["per_class_recall"]))
    write_json(
        {"strategies": aggs, "lambda": {str(k): v for k, v in sweep.items()}, "runs": results}, layout.ablation_json
    )

    au_strategies = [s for s in strategies if s != "none"]
    best = max(au_strategies, key=lambda s: aggs[s]["uar"]["mean"]) if au_strategies else None
    figures = []
    train_split = split_index(cfg, "train") if cfg.au.knowledge == "per-fold" else None
    plot_knowledge(
        knowledge_for(cfg, train_split),
        layout.figure("knowledge"),
        title="AU-expression knowledge used by the AU loss (Fig. 4)",
    )
    figures.append(("Knowledge matrix (Fig. 4)", layout.figure("knowledge").name))
    if "none" in results and best:
        plot_confusions(
            {
                STRATEGY_LABEL["none"]: _mean_confusion(results["none"]),
                STRATEGY_LABEL[best]: _mean_confusion(results[best]),
            },
            names,
            layout.figure("confusion"),
            title=f"Normalised confusion, mean over {len(seeds)} seeds (Fig. 6)",
        )
        figures.append(("Confusion matrices, baseline vs AU (Fig. 6)", layout.figure("confusion").name))
        plot_tsne(
            {
                STRATEGY_LABEL["none"]: _features(layout.variant("none", seed=seeds[0]).root),
                STRATEGY_LABEL[best]: _features(layout.variant(best, seed=seeds[0]).root),
            },
            names,
            layout.figure("tsne"),
        )
        figures.append((f"t-SNE of pooled test features, seed {seeds[0]} (Fig. 8)", layout.figure("tsne").name))
    curves = {STRATEGY_LABEL[s]: epoch_curves(layout.variant(s, seed=seeds[0]).root) for s in strategies}
    if any(curves.values()):
        plot_curves(
            {k: v for k, v in curves.items() if v},
            layout.figure("curves"),
            title=f"Training curves, seed {seeds[0]} (Fig. 7)",
        )
        figures.append(("Training curves (Fig. 7)", layout.figure("curves").name))
    if sweep:
        ls = sorted(sweep)
        plot_lambda(
            ls,
            [sweep[x]["war"]["mean"] for x in ls],
            [sweep[x]["uar"]["mean"] for x in ls],
            layout.figure("lambda"),
            war_std=[sweep[x]["war"]["std"] for x in ls],
            uar_std=[sweep[x]["uar"]["std"] for x in ls],
        )
        figures.append((f"λ sweep with the {sweep_strategy} strategy (Fig. 5)", layout.figure("lambda").name))

    sel = cfg.train.selection
    init_note = ", ".join(sorted({r.get("init", "unknown") for per in results.values() for r in per.values()}))
    lines = (
        [f"# {title or f'{cfg.name}: AU-loss ablation'}", ""]
        + (intro or [])
        + [
            f"Model `{cfg.model.name}` on `{cfg.data.dataset}` fold {cfg.data.fold}; {len(seeds)} seeds "
            f"({', '.join(map(str, seeds))}); λ = {cfg.au.lam} for the strategies; {cfg.train.epochs} epochs.",
            f"Checkpoint selection: **{sel}** ({SELECTION_NOTE[sel]}). Initialisation: {init_note}. "
            "Values are mean ± std over seeds, in %.",
            *_au_label_lines(r for per in results.values() for r in per.values()),
            "",
            "## Positive-class weight strategies (Table 3 layout)",
            "",
        ]
    )
    lines += results_table({STRATEGY_LABEL[s]: aggs[s] for s in strategies}, names)
    if au_strategies:
        lines += ["", "| method | AU-head mean F1 (%) |", "|---|---|"]
        lines += [f"| {STRATEGY_LABEL[s]} | {pm(aggs[s].get('au_f1_mean'))} |" for s in au_strategies]
    counts = next(iter(results[strategies[0]].values()))["class_counts"]
    rare = sorted(counts, key=counts.get)[:2]
    lines += [
        "",
        f"Test clips per class: {', '.join(f'{n} {c}' for n, c in counts.items())}. Rarest: **{', '.join(rare)}** — "
        "their recall rests on a handful of clips and moves most between seeds.",
        f"Always predicting the test split's own most frequent class would score WAR "
        f"{100 * max(counts.values()) / sum(counts.values()):.2f} / UAR {100 / len(counts):.2f} (an upper bound of any "
        f"constant answer; one chosen from the training fold can score less).",
    ]
    if "none" in aggs and au_strategies:
        lines += [
            "",
            f"Each strategy against the baseline of the same seed (paired differences in points, mean ± std, Student-t "
            f"95 % interval; an effect is called distinguishable from 0 only with >= {MIN_SEEDS_FOR_A_CLAIM} seeds):",
            "",
        ]
        keys = [f"seed {seed}" for seed in seeds]

        def paired(s: str, get) -> str:
            return format_difference(
                paired_differences([get(results["none"][k]) for k in keys], [get(results[s][k]) for k in keys])
            )

        for s in au_strategies:
            rare_d = "; ".join(f"{n} {paired(s, lambda m, n=n: m['per_class_recall'][n] or 0.0)}" for n in rare)
            lines.append(
                f"- {STRATEGY_LABEL[s]}: WAR {paired(s, lambda m: m['war'])}; UAR {paired(s, lambda m: m['uar'])}; "
                f"rare classes: {rare_d}."
            )
    if sweep:
        lines += ["", f"## λ sweep ({sweep_strategy}, Fig. 5)", "", "| λ | WAR | UAR |", "|---|---|---|"]
        lines += [f"| {x:g} | {pm(sweep[x]['war'])} | {pm(sweep[x]['uar'])} |" for x in sorted(sweep)]
    lines += [""] + [f"## {cap}\n\n![{cap}]({f})\n" for cap, f in figures]
    _write_report(base, lines)
    log(f"ablation report -> {layout.report}")
    return {"strategies": aggs, "lambda": sweep}
