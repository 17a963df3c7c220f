"""``audfer study``: does the AU knowledge help, and when? A pre-declared grid of runs, paired by seed.

A study file (YAML, read safely; shipped ones in ``audfer/studies``) fixes the cells before anything runs::

    config: synthetic_small                 # the experiment config every run starts from
    overrides: [train.threads=1]            # key=value applied to every run
    synth: {clips: 1500, size: 48, ...}     # optional: render the built-in synthetic set with these settings first
    sizes: [0.1, 0.25, 0.5, 1.0]            # data.train_fraction: stratified, seeded, nested subsets
    lambdas: [0.25, 0.5]                    # au.lam of the AU runs (λ = 0 is the baseline, always run)
    variants: [paper, plain, k-no-pw]       # the AU loss: the paper's K x pos-weight (Eq. 9) | K = 1 | K, no pos-weight
    seeds: [0, 1, 2, 3, 4]                  # train.seed and data.subset_seed: at least 5 for a claim
    permutations: {0: [3, 0, ...], ...}     # variant shuffled: per seed, K's rows permuted (row i <- row p[i])
    contrasts: [[paper, shuffled]]          # optional: paired differences between two variants (a - b)

Every cell is an ordinary run folder (``<out>/size_<f>/baseline/seed_<s>``,
``<out>/size_<f>/<variant>/lambda_<l>/seed_<s>``), so an interrupted study is continued by running it again. Each AU
run is compared with the baseline of the same seed and subset (same initialisation, data order and clips): the paired
difference's mean ± std and Student-t 95 % interval (``evaluation.paired_differences``), for WAR, UAR and the mean
recall of the minor classes (§3.3: at most 1/7 of the training clips). Written: ``study.csv`` (every run),
``effects.csv`` (every cell's paired differences), ``contrasts.csv`` (each declared contrast between two variants,
paired by seed, size and λ), ``effect.png`` (the effect against training-set size, with
interval bands) and ``report.md``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audfer.config.load import load_config, parse_override, with_values
from audfer.engine.experiments import run_many
from audfer.engine.resolve import knowledge_for, split_index
from audfer.engine.runlock import run_lock
from audfer.errors import ConfigError
from audfer.evaluation.metrics import class_names
from audfer.evaluation.statistics import MIN_SEEDS_FOR_A_CLAIM, format_difference, paired_differences
from audfer.files import atomic_path, read_yaml, write_json
from audfer.hints import Log
from audfer.io import expression_table, write_csv
from audfer.method.labels import default_minor_classes
from audfer.provenance import read_provenance, write_provenance
from audfer.run_layout import RunLayout
from audfer.synth.dataset import SynthConfig, generate, synth_settings_differ
from audfer.trust import CODE_KEYS, check_stored_config, in_package

#: The AU-loss variants a study compares with the baseline: the overrides that make each.
VARIANTS: dict[str, dict[str, object]] = {
    "paper": {},  # the config's own K and pos-weights: Eq. 9 as the paper defines it
    "plain": {"au.knowledge": "ones"},  # K = 1: plain AU multitask with the same BCE and pos-weights
    "k-no-pw": {"au.pos_weights": "none"},  # the paper's K without positive-class weights
    # the config's K with its expression rows permuted (the seed's declared permutation): the same values, the
    # wrong knowledge; written to <out>/knowledge/K_shuffled_seed_<s>.csv (see ``shuffled_knowledge``)
    "shuffled": {},
}
VARIANT_LABEL = {
    "paper": "paper (K row x pos-weight, Eq. 9)",
    "plain": "plain AU multitask (K = 1)",
    "k-no-pw": "K without pos-weights",
    "shuffled": "K with its expression rows permuted (same values, wrong knowledge) x pos-weight",
}
_KEYS = {"config", "overrides", "synth", "sizes", "lambdas", "variants", "seeds", "title", "permutations", "contrasts"}


@dataclass(frozen=True)
class StudySpec:
    """The cells of a study (see the module docstring); ``source`` is the file it was read from."""

    config: str
    overrides: tuple[str, ...] = ()
    synth: dict[str, Any] | None = None
    sizes: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    lambdas: tuple[float, ...] = (0.1, 0.25, 0.5)
    variants: tuple[str, ...] = ("paper", "plain", "k-no-pw")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    title: str | None = None
    permutations: dict[int, tuple[int, ...]] = field(default_factory=dict)
    contrasts: tuple[tuple[str, str], ...] = ()
    source: str = field(default="", compare=False)

    @classmethod
    def read(cls, name_or_path: str | Path) -> StudySpec:
        """A study file, or the name of a shipped one (``au_effect``); every key and value checked, naming the file."""
        path = Path(name_or_path)
        if not path.is_file():
            shipped = resources.files("audfer") / "studies" / f"{name_or_path}.yaml"
            if not shipped.is_file():
                raise ConfigError(
                    f"{name_or_path}: no such study file, and no shipped study of that name "
                    f"({', '.join(shipped_studies())})"
                )
            path = Path(str(shipped))
        data = read_yaml(path, "a study file (YAML)", ConfigError)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping with config, sizes, lambdas, variants, seeds")
        unknown = set(data) - _KEYS
        if unknown:
            raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r}; expected {', '.join(sorted(_KEYS))}")
        if not isinstance(data.get("config"), str):
            raise ConfigError(f"{path}: config: expected the name or path of an experiment config")

        def items(key: str, kind: type, ok, want: str) -> tuple:
            values = data.get(key, getattr(cls, key))
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"{path}: {key}: expected a non-empty list of {want}")
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else kind) or not ok(v):
                    raise ConfigError(f"{path}: {key}: {v!r}; expected {want}")
            if len(set(values)) != len(values):
                raise ConfigError(f"{path}: {key}: a value is listed twice")
            return tuple(kind(v) for v in values)

        synth = data.get("synth")
        if synth is not None and not isinstance(synth, dict):
            raise ConfigError(f"{path}: synth: expected a mapping of SynthConfig settings (clips, size, ...)")
        overrides = data.get("overrides") or []
        if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
            raise ConfigError(f"{path}: overrides: expected a list of key=value strings")
        variants = items("variants", str, lambda v: v in VARIANTS, f"variants among {', '.join(VARIANTS)}")
        seeds = items("seeds", int, lambda v: v >= 0, "seeds >= 0")
        return cls(
            config=data["config"],
            overrides=tuple(overrides),
            synth=synth,
            sizes=items("sizes", float, lambda v: 0 < v <= 1, "shares of the training fold in (0, 1]"),
            lambdas=items("lambdas", float, lambda v: 0 < v <= 1, "λ values in (0, 1] (the baseline is always run)"),
            variants=variants,
            seeds=seeds,
            title=data.get("title"),
            permutations=_permutations(path, data.get("permutations"), variants, seeds),
            contrasts=_contrasts(path, data.get("contrasts"), variants),
            source=str(path),
        )


def _permutations(path: Path, value: object, variants: tuple, seeds: tuple) -> dict[int, tuple[int, ...]]:
    """``permutations``: for variant ``shuffled``, one permutation of the 7 expression rows per seed, none the
    identity (row i of the shuffled K is row p[i] of K)."""
    if "shuffled" not in variants:
        if value:
            raise ConfigError(f"{path}: permutations: only used by variant shuffled, which is not listed")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: permutations: variant shuffled needs a mapping seed -> permutation of 0..6")
    out: dict[int, tuple[int, ...]] = {}
    for seed in seeds:
        p = value.get(seed)
        if not isinstance(p, list) or sorted(p) != list(range(7)) or any(isinstance(v, bool) for v in p):
            raise ConfigError(f"{path}: permutations: seed {seed}: {p!r}; expected a permutation of 0..6")
        if p == list(range(7)):
            raise ConfigError(f"{path}: permutations: seed {seed}: the identity leaves K as it is")
        out[seed] = tuple(p)
    extra = set(value) - set(seeds)
    if extra:
        raise ConfigError(f"{path}: permutations: {sorted(map(str, extra))[0]} is not one of the seeds")
    return out


def _contrasts(path: Path, value: object, variants: tuple) -> tuple[tuple[str, str], ...]:
    """``contrasts``: pairs ``[a, b]`` of listed variants (``baseline`` allowed), compared as a - b."""
    if value is None:
        return ()
    arms = (*variants, "baseline")
    if not isinstance(value, list) or not all(
        isinstance(c, list) and len(c) == 2 and c[0] in arms and c[1] in arms and c[0] != c[1] for c in value
    ):
        raise ConfigError(f"{path}: contrasts: expected a list of pairs [a, b] of two different listed variants")
    return tuple((a, b) for a, b in value)


def shuffled_knowledge(k: np.ndarray, permutation: tuple[int, ...] | list[int]) -> np.ndarray:
    """K with its expression rows permuted: row i of the result is row ``permutation[i]`` of ``k`` (the same 7 x 18
    values, each expression given another expression's AU profile)."""
    return np.asarray(k)[list(permutation)]


def shipped_studies() -> list[str]:
    """Names of the study files shipped in ``audfer/studies``."""
    folder = resources.files("audfer") / "studies"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def run_study(
    spec: StudySpec,
    out: Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    jobs: int = 1,
    accept_changes: bool = False,
    log: Log = print,
) -> dict[str, Any]:
    """Run (or continue) every cell of ``spec`` under ``out`` and write the study's tables, figure and report;
    ``jobs`` and ``accept_changes`` as in every sweep (``run_many``)."""

    out = Path(out)
    with run_lock(out, log=log):
        return _run_study(spec, out, list(overrides), jobs=jobs, accept_changes=accept_changes, log=log)


def _check_taken_overrides(spec: StudySpec, overrides: list[str]) -> None:
    """A study file taken from a model package (or the Hub cache) is a stored config: its ``overrides`` naming code
    to import (``model.name=package.module:factory``, ``data.dataset=package.module:name``,
    ``data.au_source=package.module:tool``) are refused (``audfer.trust``) unless the user's own overrides
    set ``model.trust_pickle=true``."""
    if in_package(spec.source) is None:
        return
    trusted = any(parse_override(o) == (["model", "trust_pickle"], True) for o in overrides)
    for text in spec.overrides:
        keys, value = parse_override(text)
        if ".".join(keys) in CODE_KEYS:  # model.name, data.dataset, data.au_source
            check_stored_config({keys[0]: {keys[1]: value}}, spec.source, trusted=trusted, error=ConfigError)


def _run_study(
    spec: StudySpec, out: Path, overrides: list[str], *, jobs: int, accept_changes: bool, log: Log
) -> dict[str, Any]:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    extra = list(spec.overrides) + overrides
    _check_taken_overrides(spec, overrides)
    if spec.synth is not None:
        extra.append(f"data.root={_synth(spec.synth, RunLayout(out).study_synth, log)}")
    base = load_config(spec.config, extra)
    if base.au.strategy == "none":
        raise ConfigError(f"{spec.source}: the config's au.strategy is none; a study compares AU strategies with it")
    cells: list[tuple[float, str | None, float | None, int]] = []
    for seed in spec.seeds:  # seed by seed: a study stopped early has every arm of its first seeds
        for size in spec.sizes:
            cells.append((size, None, None, seed))
            cells += [(size, v, lam, seed) for v in spec.variants for lam in spec.lambdas]
    shuffled = _shuffled_files(base, spec, out) if "shuffled" in spec.variants else {}
    cfgs = []
    for size, variant, lam, seed in cells:
        values: dict[str, object] = {
            "data.train_fraction": size,
            "data.subset_seed": seed,
            "train.seed": seed,
            "train.progress": False,  # incidental: hundreds of progress bars say nothing
            "out": str(RunLayout(out).study_run(size, variant, lam, seed).root),
        }
        if variant is None:
            values["au.strategy"] = "none"
        else:
            values.update({"au.lam": lam, **VARIANTS[variant]})
            if variant == "shuffled":
                values["au.knowledge"] = str(shuffled[seed])
        cfgs.append(with_values(base, values, source=f"study {spec.source}"))
    log(
        f"study: {len(cfgs)} runs ({len(spec.sizes)} sizes x {len(spec.seeds)} seeds x (baseline + "
        f"{len(spec.variants)} variants x {len(spec.lambdas)} λ)) -> {out}"
    )
    minor = _minor_classes(base)
    done = run_many(cfgs, jobs=jobs, log=log, accept_changes=accept_changes)
    rows = []
    for (size, variant, lam, seed), cfg, m in zip(cells, cfgs, done):
        recall = m["per_class_recall"]
        rows.append(
            {
                "size": size,
                "variant": variant or "baseline",
                "lam": 0.0 if lam is None else lam,
                "seed": seed,
                "war": m["war"],
                "uar": m["uar"],
                "minor_recall": float(np.mean([recall[n] or 0.0 for n in minor])) if minor else None,
                **{f"recall_{k}": v for k, v in recall.items()},
                "run": str(cfg.run_dir.relative_to(out)),
            }
        )
    table = pl.DataFrame(rows)
    layout = RunLayout(out)
    write_csv(table, layout.study_csv)
    effects = _effects(table, spec)
    write_csv(pl.DataFrame(effects).drop("diffs_uar"), layout.effects_csv)
    contrasts = _contrast_rows(table, spec)
    if contrasts:
        write_csv(pl.DataFrame(contrasts).drop("diffs_uar"), layout.contrasts_csv)
    wall = time.perf_counter() - t0
    write_json(
        {"spec": asdict(spec), "minor_classes": minor, "seconds": wall, "effects": effects, "contrasts": contrasts},
        layout.study_json,
    )
    _plot(effects, spec, layout.figure("effect"))
    _report(out, spec, base, table, effects, wall, minor, contrasts)
    log(f"study report -> {layout.report} ({wall:.0f} s)")
    return {"runs": rows, "effects": effects, "contrasts": contrasts, "seconds": wall}


def _shuffled_files(base, spec: StudySpec, out: Path) -> dict[int, Path]:
    """Per seed, the config's K with the seed's declared row permutation, as a K.csv whose provenance sidecar
    carries the original K's clips (so the runs' test-leak check still sees them)."""

    src = base.au.knowledge
    if src in ("per-fold", "ones"):
        raise ConfigError(
            f"{spec.source}: variant shuffled permutes a fixed K; the config's au.knowledge={src} has none "
            "(use paper or a K.csv)"
        )
    k = knowledge_for(base)
    record = None if src == "paper" else read_provenance(src)
    files = {}
    for seed, perm in spec.permutations.items():
        path = RunLayout(out).shuffled_knowledge(seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(expression_table(shuffled_knowledge(k, perm)), path)
        write_provenance(
            path,
            what=f"K ({src}) with its expression rows permuted: row i <- row p[i], p = {list(perm)}",
            clip_ids=(record or {}).get("clip_ids") or [],
            dataset=(record or {}).get("dataset"),
            fold=(record or {}).get("fold"),
            split=(record or {}).get("split"),
            source=f"{spec.source}: permutations[{seed}] of au.knowledge={src}",
            extra={"permutation": list(perm)},
        )
        files[seed] = path
    return files


def _synth(settings: dict[str, Any], folder: Path, log: Log) -> Path:
    """The synthetic set of the study's ``synth`` settings (rendered once; an existing one with other settings is
    refused, never silently reused)."""

    try:
        cfg = SynthConfig(**settings)
    except TypeError as exc:
        raise ConfigError(f"study synth settings: {exc}") from None
    if (folder / "synth.json").is_file():
        differ = synth_settings_differ(folder, cfg)
        if differ:
            raise ConfigError(f"{folder}: rendered with other settings ({differ}); remove it or use another --out")
        return folder
    log(f"rendering the synthetic set ({cfg.clips} clips) -> {folder}")
    return generate(folder, cfg)


def _minor_classes(cfg) -> list[str]:
    """The minor classes of the whole training fold (§3.3: at most 1/7 of its clips), the same for every cell."""

    labels = split_index(cfg, "train").table["label"].to_numpy()
    names = class_names(cfg.num_classes)
    return [names[i] for i in default_minor_classes(np.bincount(labels, minlength=len(names)).astype(np.float64))]


def _effects(table: pl.DataFrame, spec: StudySpec) -> list[dict[str, Any]]:
    """Each AU cell's paired differences to the baseline of the same size and seed."""
    out = []
    for size in spec.sizes:
        base = table.filter((pl.col("size") == size) & (pl.col("variant") == "baseline")).sort("seed")
        for variant in spec.variants:
            for lam in spec.lambdas:
                cell = table.filter(
                    (pl.col("size") == size) & (pl.col("variant") == variant) & (pl.col("lam") == lam)
                ).sort("seed")
                row: dict[str, Any] = {"size": size, "variant": variant, "lam": lam, "seeds": cell.height}
                for metric in ("war", "uar", "minor_recall"):
                    a, b = base[metric].to_list(), cell[metric].to_list()
                    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
                    d = paired_differences([x for x, _ in pairs], [y for _, y in pairs])
                    row.update(
                        {
                            f"{metric}_base": float(np.mean([x for x, _ in pairs])) if pairs else None,
                            f"{metric}_cell": float(np.mean([y for _, y in pairs])) if pairs else None,
                            f"{metric}_mean": d["mean"],
                            f"{metric}_std": d["std"],
                            **_difference_fields(metric, d),  # the rest, after mean and std (the tables' order)
                        }
                    )
                    if metric == "uar":
                        row["diffs_uar"] = d["diffs"]
                out.append(row)
    return out


def _difference_fields(metric: str, d: dict[str, Any]) -> dict[str, Any]:
    """A paired difference (``statistics.paired_differences``) as a study table's columns for ``metric``."""
    return {
        f"{metric}_mean": d["mean"],
        f"{metric}_ci_low": None if d["ci"] is None else d["ci"][0],
        f"{metric}_ci_high": None if d["ci"] is None else d["ci"][1],
        f"{metric}_distinguishable": d["distinguishable"],
        f"{metric}_text": format_difference(d),
    }


def _contrast_rows(table: pl.DataFrame, spec: StudySpec) -> list[dict[str, Any]]:
    """Each declared contrast ``a - b``, paired by size, λ and seed (the baseline has one λ: 0)."""

    def arm(size: float, variant: str, lam: float) -> pl.DataFrame:
        if variant == "baseline":
            return table.filter((pl.col("size") == size) & (pl.col("variant") == "baseline")).sort("seed")
        return table.filter((pl.col("size") == size) & (pl.col("variant") == variant) & (pl.col("lam") == lam)).sort(
            "seed"
        )

    out = []
    for a, b in spec.contrasts:
        for size in spec.sizes:
            for lam in spec.lambdas:
                x, y = arm(size, a, lam), arm(size, b, lam)
                row: dict[str, Any] = {"size": size, "lam": lam, "a": a, "b": b}
                for metric in ("war", "uar", "minor_recall"):
                    xs = dict(zip(x["seed"].to_list(), x[metric].to_list()))
                    ys = dict(zip(y["seed"].to_list(), y[metric].to_list()))
                    seeds = [s for s in sorted(xs) if s in ys and xs[s] is not None and ys[s] is not None]
                    d = paired_differences([ys[s] for s in seeds], [xs[s] for s in seeds])
                    row.update({"seeds": len(seeds), **_difference_fields(metric, d)})
                    if metric == "uar":
                        row["diffs_uar"] = d["diffs"]
                out.append(row)
    return out


def _plot(effects: list[dict[str, Any]], spec: StudySpec, path: Path) -> None:
    """ΔWAR and ΔUAR against training-set size, one line per variant and λ, with the 95 % intervals as bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for ax, metric, name in ((axes[0], "war", "ΔWAR"), (axes[1], "uar", "ΔUAR")):
        for variant in spec.variants:
            for lam in spec.lambdas:
                rows = sorted(
                    (r for r in effects if r["variant"] == variant and r["lam"] == lam), key=lambda r: r["size"]
                )
                x = [100 * r["size"] for r in rows]
                y = [100 * r[f"{metric}_mean"] for r in rows]
                lo = [
                    100 * (r[f"{metric}_ci_low"] if r[f"{metric}_ci_low"] is not None else r[f"{metric}_mean"])
                    for r in rows
                ]
                hi = [
                    100 * (r[f"{metric}_ci_high"] if r[f"{metric}_ci_high"] is not None else r[f"{metric}_mean"])
                    for r in rows
                ]
                line = ax.plot(x, y, marker="o", label=f"{variant}, λ={lam:g}")[0]
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.12)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks([100 * s for s in spec.sizes], [f"{100 * s:g} %" for s in spec.sizes])
        ax.set_xlabel("labelled training clips (share of the fold)")
        ax.set_ylabel(f"{name} vs baseline (points)")
        ax.set_title(f"{name}: mean and 95 % interval over {len(spec.seeds)} seeds")
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _report(
    out: Path,
    spec: StudySpec,
    base,
    table: pl.DataFrame,
    effects: list[dict[str, Any]],
    wall: float,
    minor: list[str],
    contrasts: list[dict[str, Any]] | None = None,
) -> None:
    import platform

    baseline = table.filter(pl.col("variant") == "baseline")
    train_s = sum(
        json.loads(RunLayout(out / run).selection.read_text()).get("train_seconds") or 0.0
        for run in table["run"].to_list()
        if RunLayout(out / run).selection.is_file()
    )
    lines = [
        f"# {spec.title or 'AU-effect study'}",
        "",
        f"Study file `{spec.source}`; config `{spec.config}` (model `{base.model.name}`, dataset `{base.data.dataset}` "
        f"fold {base.data.fold}, {base.train.epochs} epochs, AU strategy `{base.au.strategy}`); overrides "
        f"{', '.join(f'`{o}`' for o in spec.overrides) or 'none'}"
        + (f"; synthetic set {json.dumps(spec.synth)}" if spec.synth else "")
        + ".",
        f"{table.height} runs: sizes {', '.join(f'{100 * s:g} %' for s in spec.sizes)} of the training fold; λ "
        f"{', '.join(f'{x:g}' for x in spec.lambdas)}; variants {', '.join(spec.variants)}; seeds "
        f"{', '.join(map(str, spec.seeds))}.",
        f"Measured on one machine ({platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} cores): the runs' training took {train_s:.0f} s summed; this invocation "
        f"{wall:.0f} s wall (runs finished by an earlier invocation are reused). Other CPUs give other digits within the seed "
        f"spread; an effect is called distinguishable from 0 only when its 95 % interval excludes 0 with at least "
        f"{MIN_SEEDS_FOR_A_CLAIM} seeds.",
        "",
        "Variants: " + "; ".join(f"`{v}` = {VARIANT_LABEL[v]}" for v in spec.variants) + ". Each AU run is paired "
        "with the baseline (λ = 0, CE only) of the same seed and the same training subset. Minor classes (at most "
        f"1/7 of the training fold, §3.3): {', '.join(minor) or 'none'}; their mean test recall is the last column.",
        "",
        "## Baseline (CE only)",
        "",
        "| training share | WAR | UAR | minor-class recall |",
        "|---|---|---|---|",
    ]
    for size in spec.sizes:
        b = baseline.filter(pl.col("size") == size)
        lines.append(f"| {100 * size:g} % | {_ms(b['war'])} | {_ms(b['uar'])} | {_ms(b['minor_recall'])} |")
    lines += [
        "",
        "## AU effect: paired difference to the baseline (points; mean ± std, 95 % CI, seeds)",
        "",
        "| training share | variant | λ | ΔWAR | ΔUAR | Δ minor-class recall |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {100 * r['size']:g} % | {r['variant']} | {r['lam']:g} | {r['war_text']} | {r['uar_text']} | "
        f"{r['minor_recall_text']} |"
        for r in effects
    ]
    if contrasts:
        lines += [
            "",
            "## Declared contrasts: paired difference a - b (points; mean ± std, 95 % CI, seeds)",
            "",
            "| training share | λ | a - b | ΔWAR | ΔUAR | Δ minor-class recall |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {100 * r['size']:g} % | {r['lam']:g} | {r['a']} - {r['b']} | {r['war_text']} | {r['uar_text']} | "
            f"{r['minor_recall_text']} |"
            for r in contrasts
        ]
    if spec.permutations:
        lines += [
            "",
            "Shuffled K (row i of K <- row p[i]), per seed: "
            + "; ".join(f"seed {s}: {list(p)}" for s, p in spec.permutations.items())
            + ".",
        ]
    claims = [r for r in effects if r["uar_distinguishable"] or r["war_distinguishable"]]
    judged = [r[f"{m}_distinguishable"] for r in effects for m in ("war", "uar", "minor_recall")]
    judged = [v for v in judged if v is not None]
    lines += [
        "",
        "## What the table says",
        "",
        f"{sum(judged)} of the {len(judged)} intervals above exclude 0. Each is a 95 % interval on its own (no "
        f"correction for the number of cells): by chance alone about {0.05 * len(judged):.1f} of {len(judged)} would "
        "exclude 0 even if the AU loss did nothing, so a single cell is weak evidence; a pattern across neighbouring "
        "sizes or λ is stronger.",
        "",
    ]
    if not claims:
        lines.append(
            "No cell's effect on WAR or UAR is distinguishable from 0: on this data and setting the AU loss "
            "neither clearly helps nor clearly hurts, at any training-set size."
        )
    for r in claims:
        for metric, name in (("war", "WAR"), ("uar", "UAR")):
            if r[f"{metric}_distinguishable"]:
                sign = "helps" if r[f"{metric}_mean"] > 0 else "hurts"
                lines.append(
                    f"- {r['variant']} at λ {r['lam']:g} with {100 * r['size']:g} % of the training clips "
                    f"{sign} {name}: {r[f'{metric}_text']}."
                )
    layout = RunLayout(out)
    lines += [
        "",
        f"![AU effect against training-set size]({layout.figure('effect').name})",
        "",
        f"Every run: `{layout.study_csv.name}`; every cell's differences: `{layout.effects_csv.name}`"
        + (f"; the contrasts: `{layout.contrasts_csv.name}`." if contrasts else "."),
    ]
    with atomic_path(layout.report) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _ms(col: pl.Series) -> str:
    vals = [v for v in col.to_list() if v is not None]
    if not vals:
        return "—"
    sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return f"{100 * float(np.mean(vals)):.2f} ± {100 * sd:.2f}"
