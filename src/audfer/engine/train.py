"""``train(cfg)`` and ``evaluate_checkpoint(ckpt)``: one run folder per experiment.

Run folder::

    config.yaml                 the resolved config (defaults + experiment + overrides)
    checkpoints/last.ckpt       written after every epoch (``--resume`` continues from it)
    checkpoints/best.ckpt       best-val / best-test selection only
    logs/metrics.csv            per-epoch losses, lr, validation WAR/UAR (TensorBoard too if asked)
    selection.json              which checkpoint was evaluated, by which rule, from which epoch
    eval/metrics.json, eval/predictions.csv, eval/features.npy   the selected checkpoint on the test split
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from audfer.hints import PathLike

if TYPE_CHECKING:
    from audfer.engine.module import AUDFERModule
    from audfer.models.base import DFERModel

import json
import logging
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from audfer.config.load import apply_overrides, dump_config, with_defaults, with_values
from audfer.config.schema import Config, TrainOptions, incidental_options
from audfer.data.datasets import read_frames
from audfer.engine.datamodule import (
    ClipDataModule,
    au_label_summary,
    crop_upsampling,
    describe_au_labels,
    prepare,
    sampling_kwargs,
    sampling_of,
    train_transform,
    views_at_test,
)
from audfer.engine.runlock import run_lock
from audfer.errors import AudferError, TrainingStopped
from audfer.hints import Log
from audfer.io import atomic_path, read_yaml, write_csv, write_json
from audfer.method.labels import official_pos_weights
from audfer.models import load_checkpoint
from audfer.models.checkpoint import read_checkpoint
from audfer.vocab import AUS, EXPRESSIONS
from audfer.weights.restore import check_state_fits, read_run_checkpoint

SELECTION_NOTE = {
    "last": "last epoch",
    "best-val": "best epoch on a validation split carved from the training fold",
    "best-test": "best epoch on the TEST split (what the published numbers did; optimistic)",
}


def _loggers(cfg: Config, out: Path):
    from lightning.pytorch.loggers import CSVLogger, Logger

    loggers: list[Logger] = []
    for kind in cfg.train.loggers or []:
        if kind == "csv":
            loggers.append(CSVLogger(str(out), name="logs", version=""))
        else:
            try:
                import tensorboard  # noqa: F401
                from lightning.pytorch.loggers import TensorBoardLogger
            except ImportError:
                raise AudferError(
                    "train.loggers has tensorboard but it is not installed: pip install 'audfer[tensorboard]'"
                ) from None
            loggers.append(TensorBoardLogger(str(out), name="tensorboard", version=""))
    return loggers or False


def initialise(model: DFERModel, cfg: Config, *, log: Log = print) -> dict:
    """``model.pretrained``: load it into ``model`` (any layout ``load_checkpoint`` reads) and say what happened.

    Returns the run's init record (``init.json``): ``init`` is ``"pretrained"`` or ``"from scratch"``,
    ``official_init`` what the official run started from (``model.official_init`` of the recipe), and the
    load report (loaded / re-initialised / unused keys). A recipe whose official run starts from
    pretrained weights warns when none is given: its numbers are then not comparable to the paper's."""

    m = cfg.model
    record: dict[str, Any] = {
        "init": "from scratch",
        "pretrained": None,
        "official_init": m.official_init,
        "load_report": None,
    }
    if m.pretrained:
        report = load_checkpoint(model, m.pretrained, trust_pickle=bool(m.trust_pickle))
        record.update(init="pretrained", pretrained=str(m.pretrained), load_report=report.as_dict())
        log(f"initialised from {m.pretrained}: {report.summary()}")
    elif m.official_init:
        msg = (
            f"WARNING: {cfg.model.name} trains FROM SCRATCH; the official run starts from {m.official_init} "
            f"(set model.pretrained=<file>, see docs/weights.md). Results will not be comparable to the paper's."
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
    return record


def init_label(record: dict | None) -> str:
    """``"pretrained (<file>)"``, ``"from scratch"`` or ``"from scratch (official: ...)"`` for reports."""
    if not record:
        return "unknown"
    if record["init"] == "pretrained":
        return f"pretrained ({Path(record['pretrained']).name})"
    return "from scratch" + (f" (official run: {record['official_init']})" if record.get("official_init") else "")


def steps_per_epoch(n_train: int, t: TrainOptions) -> int:
    """Optimiser steps per epoch: full batches per process (the last partial batch is dropped)."""
    per_process = -(-n_train // t.devices)
    steps = max(1, per_process // t.batch_size) if per_process > t.batch_size else 1
    return min(steps, int(t.limit_train_batches)) if t.limit_train_batches else steps


def _class_counts(index, num: int) -> dict[str, int]:
    from audfer.evaluation.metrics import class_names

    counts = np.bincount(index.table["label"].to_numpy(), minlength=num)
    return {n: int(c) for n, c in zip(class_names(num), counts)}


def plan(cfg: Config, *, log: Log = print) -> dict:
    """``audfer train ... --dry-run``: everything a run would do, checked, without training; written to
    ``<run folder>/plan.json`` and printed. Clips per split and class, AU-label coverage, steps per epoch,
    the learning rate at the first step / end of warm-up / mid-run / last step, the pretrained load
    report, the sampling and augmentation in effect, the selection rule."""
    from audfer.engine.module import AUDFERModule

    out = cfg.run_dir
    cfg = with_values(cfg, {"out": str(out)}, source="the run folder")
    t, o, d = cfg.train, cfg.optim, cfg.data
    prep = prepare(cfg)
    steps = steps_per_epoch(len(prep.train), t)
    module = AUDFERModule.from_config(
        cfg, prep.knowledge.tolist(), None if prep.pos_weight is None else prep.pos_weight.tolist(), steps
    )
    init = initialise(module.model, cfg, log=log)
    k = cfg.num_classes
    total, warm = t.epochs * steps, o.warmup_epochs * steps
    base = module.base_lr()

    points = {"first step": 0, "end of warm-up": max(warm - 1, 0), "mid-run": total // 2, "last step": total - 1}
    sampling = sampling_of(cfg)
    spec = module.model.input_spec
    transform = train_transform(cfg, spec)
    result: dict[str, Any] = {
        "config": cfg.name,
        "follows": cfg.follows or "not stated (a user's config)",
        "reproduced_bugs": list(d.reproduce_bugs),
        "run_folder": str(out),
        "model": cfg.model.name,
        "input": spec.describe(),
        "dataset": {"name": d.dataset, "root": d.root, "fold": d.fold},
        "clips": {
            "train": len(prep.train),
            "val": len(prep.val) if prep.val is not None else 0,
            "test": len(prep.test),
        },
        "clips_per_class": {
            "train": _class_counts(prep.train, k),
            "test": _class_counts(prep.test, k),
            **({"val": _class_counts(prep.val, k)} if prep.val is not None else {}),
        },
        "au": {
            "strategy": cfg.au.strategy,
            "lam": cfg.au.lam,
            "knowledge": cfg.au.knowledge,
            "pos_weights": cfg.au.pos_weights,
            **prep.checks,
        },
        "steps_per_epoch": steps,
        "total_steps": total,
        "warmup_steps": warm,
        "optimizer": {
            "name": o.name,
            "base_lr": base,
            "scheduler": o.scheduler,
            "weight_decay": o.weight_decay,
            "layer_decay": o.layer_decay,
            "label_smoothing": o.label_smoothing,
            "mixup": o.mixup,
            "cutmix": o.cutmix,
        },
        "lr": {name: {"step": s, "lr": module.lr_at(s)} for name, s in points.items()},
        "init": init,
        "init_label": init_label(init),
        "sampling": {
            "kind": sampling,
            "frames": spec.frames,
            "stride": sampling_kwargs(cfg, train=True).get("stride"),
            "test_views": views_at_test(cfg),
            "train": "random (per the recipe)",
            "test": "deterministic",
        },
        "augmentation": [type(step).__name__ + _describe(step) for step in transform.steps],
        "training_crops": _crop_report(cfg, spec, prep.train),
        "pos_weight_scale": _pos_weight_scale(cfg, prep.pos_weight),
        "selection": {"rule": t.selection, "note": SELECTION_NOTE[t.selection], "monitor": t.monitor},
        "precision": t.precision,
        "devices": t.devices,
        "batch_size": t.batch_size,
        "epochs": t.epochs,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(result, out / "plan.json")
    log(f"plan for {cfg.name} ({cfg.model.name}, {result['init_label']}) -> {out / 'plan.json'}")
    log(
        f"  clips: train {result['clips']['train']}, val {result['clips']['val']}, test {result['clips']['test']}; "
        f"train per class: {result['clips_per_class']['train']}"
    )
    if "au_coverage" in prep.checks:
        log(f"  {describe_au_labels(au_label_summary(prep.checks))}")
    log(
        f"  {steps} steps/epoch x {t.epochs} epochs = {total} steps; warm-up {warm} steps; lr "
        + ", ".join(f"{n} (step {v['step']}) {v['lr']:.3g}" for n, v in result["lr"].items())
    )
    log(
        f"  follows {result['follows']}"
        + (f"; REPRODUCES BUGS {result['reproduced_bugs']}" if d.reproduce_bugs else "")
    )
    log(f"  sampling {sampling}; augmentation: {', '.join(result['augmentation'])}")
    crops = result["training_crops"]
    if crops:
        log(
            f"  training crops from {crops['decoded'][0]}x{crops['decoded'][1]} frames (stored "
            f"{crops['stored'][0]}x{crops['stored'][1]}, decode {crops['decode']}): "
            f"{100 * crops['share_upsampled']:.0f} % enlarged to {spec.size} px"
        )
    scale = result["pos_weight_scale"]
    if scale:
        log(
            "  largest pos-weights: "
            + ", ".join(f"{c} {v:.3g}" for c, v in scale["largest"])
            + (
                f"; the authors' dfew table for {cfg.au.strategy}: largest {scale['authors_dfew_max']:.3g}, mean "
                f"{scale['authors_dfew_mean']:.3g} (ours: mean {scale['mean']:.3g})"
            )
        )
    log(f"  selection: {t.selection} ({SELECTION_NOTE[t.selection]})")
    return result


def _crop_report(cfg: Config, spec, index) -> dict[str, Any] | None:
    """``crop_upsampling`` for the first training clip's stored frame size (None without a readable clip)."""

    if not len(index):
        return None
    try:
        first = read_frames(index.table["path"][0], [0])
    except AudferError:
        return None
    return crop_upsampling(cfg, spec, (int(first.shape[1]), int(first.shape[2])))


def _pos_weight_scale(cfg: Config, table: np.ndarray | None) -> dict[str, Any] | None:
    """The run's five largest pos-weights (class/AU) and its mean next to the authors' DFEW table for the same
    strategy: the AU loss's scale is seen before a GPU run (video-level counts give rare AUs larger weights than the
    authors' frame-level tables)."""

    if table is None or cfg.au.strategy == "none" or table.shape[0] != len(EXPRESSIONS):
        return None
    flat = np.argsort(table, axis=None)[::-1][:5]
    largest = [(f"{EXPRESSIONS[i // len(AUS)]}/{AUS[i % len(AUS)]}", float(table.flat[i])) for i in flat]
    authors = official_pos_weights("dfew", cfg.au.strategy)
    return {
        "largest": largest,
        "mean": float(table.mean()),
        "authors_dfew_max": float(authors.max()),
        "authors_dfew_mean": float(authors.mean()),
    }


def _describe(step) -> str:
    fields = {k: v for k, v in vars(step).items() if isinstance(v, (int, float, str, tuple)) and not k.startswith("_")}
    return "(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")" if fields else ""


def config_changes(old: Config | dict, new: Config | dict) -> dict[str, tuple]:
    """``{"section.key": (old, new)}`` for every result-affecting setting that differs (the incidental ones left out);
    a config is a ``Config`` or its YAML form (a run folder's ``config.yaml``)."""
    old, new = (c.to_dict() if isinstance(c, Config) else c for c in (old, new))
    incidental = incidental_options()  # declared with each option (audfer/options.py)
    diff = {}
    for section in ("model", "data", "au", "optim", "train"):
        a, b = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(a) | set(b)):
            if f"{section}.{key}" not in incidental and a.get(key) != b.get(key):
                diff[f"{section}.{key}"] = (a.get(key), b.get(key))
    return diff


def _readable_checkpoint(path: Path, trust_pickle: bool = False) -> tuple[int | None, str | None]:
    """(epochs finished, None) for a complete training checkpoint, (None, why) otherwise; read weights-only
    (``read_checkpoint``), so a planted pickle is refused, not run."""

    if not path.is_file():
        return None, "missing"
    try:
        ck = read_checkpoint(path, trust_pickle=trust_pickle)
    except AudferError as exc:  # truncated zip, garbage, a pickle that imports code
        return None, f"unreadable ({str(exc).removeprefix(f'{path}: ')})"
    if not isinstance(ck, dict) or "state_dict" not in ck or "epoch" not in ck:
        return None, "not an audfer training checkpoint"
    return int(ck["epoch"]) + 1, None


def has_checkpoint(out: Path) -> bool:
    """Whether the run folder ``out`` has something ``train(resume=True)`` can continue from."""
    ckdir = Path(out) / "checkpoints"
    return (ckdir / "last.ckpt").is_file() or (ckdir / "previous.ckpt").is_file()


def resume_point(ckdir: Path, *, log: Log = print, trust_pickle: bool = False) -> tuple[Path, int]:
    """The checkpoint a resumed run starts from and its finished epochs: ``last.ckpt``, or, when it is truncated
    or corrupt (a crash while it was written), the previous good one (``previous.ckpt``), saying so."""
    last, prev = ckdir / "last.ckpt", ckdir / "previous.ckpt"
    epochs, why = _readable_checkpoint(last, trust_pickle)
    if epochs is not None:
        return last, epochs
    p_epochs, p_why = _readable_checkpoint(prev, trust_pickle)
    if p_epochs is not None:
        log(f"{last}: {why}; resuming from {prev.name} instead ({p_epochs} finished epoch(s))")
        return prev, p_epochs
    raise AudferError(f"{last}: {why}, and no good previous checkpoint ({prev.name}: {p_why}); nothing to resume from")


def _check_resume_settings(out: Path, cfg: Config, start_epoch: int, accept_changes: bool, log) -> None:

    old_file = out / "config.yaml"
    if not old_file.is_file():
        return
    stored = read_yaml(old_file, "the run's config (YAML)") or {}
    if not isinstance(stored, dict):
        raise AudferError(f"{old_file}: expected the run's config (a mapping of sections)")
    old = with_defaults(stored)  # a run folder from an older audfer: options it did not have take their defaults
    lacking = sorted(
        f"{sec}.{key}"
        for sec, keys in old.items()
        if isinstance(keys, dict)
        for key in keys
        if not isinstance(stored.get(sec), dict) or key not in stored[sec]
    )
    if lacking:
        log(
            f"{old_file}: written by an older audfer, without {len(lacking)} option(s) ({', '.join(lacking[:6])}"
            f"{' ...' if len(lacking) > 6 else ''}); their defaults are assumed for the finished epochs"
        )
    diff = config_changes(old, cfg)
    if not diff:
        return
    shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:8]) + (
        " ..." if len(diff) > 8 else ""
    )
    if not accept_changes:
        raise AudferError(
            f"{out}: --resume with {len(diff)} changed setting(s) that change the result ({shown}); "
            f"resume with the run's own settings, or pass --accept-changes to continue with the new ones "
            f"(the run folder records at which epoch they changed)"
        )
    record = json.loads((out / "changes.json").read_text()) if (out / "changes.json").is_file() else []
    record.append({"from_epoch": start_epoch + 1, "changes": {k: list(v) for k, v in diff.items()}})
    write_json(record, out / "changes.json")
    log(f"settings changed from epoch {start_epoch + 1} on (recorded in changes.json): {shown}")


def train(
    cfg: Config,
    *,
    resume: bool = False,
    accept_changes: bool = False,
    callbacks: Sequence[Callback] = (),
    log: Log = print,
    evaluate: bool = True,
) -> Path:
    """Train one run as configured, then evaluate the selected checkpoint on the test split.

    Safe to interrupt: ``last.ckpt`` is replaced only by a complete checkpoint (the one before is kept as
    ``previous.ckpt``), every finished epoch's metrics go to ``epochs.csv`` as it ends, SIGINT/SIGTERM stop
    at the next step boundary (``TrainingStopped``, exit 130/143) and ``resume=True`` continues from the
    last finished epoch, bit-identical to an uninterrupted run. The folder is locked while the run works
    (``runlock``); a resume with result-affecting settings changed refuses unless ``accept_changes``."""

    out = cfg.run_dir
    with run_lock(out, log=log):
        return _train_locked(
            cfg, resume=resume, accept_changes=accept_changes, callbacks=callbacks, log=log, evaluate=evaluate
        )


def _train_locked(cfg: Config, *, resume: bool, accept_changes: bool, callbacks, log, evaluate: bool) -> Path:

    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from audfer.engine.module import AUDFERModule

    out = cfg.run_dir
    cfg = with_values(cfg, {"out": str(out)}, source="the run folder")
    ckdir = out / "checkpoints"
    last = ckdir / "last.ckpt"
    if resume and not has_checkpoint(out):
        raise AudferError(f"{last}: nothing to resume from")
    if not resume and has_checkpoint(out):
        raise AudferError(
            f"{out}: run folder already has checkpoints; pass --resume to continue it or choose another out="
        )
    start = None
    if resume:
        start, done = resume_point(ckdir, log=log, trust_pickle=cfg.model.trust_pickle)
        _check_resume_settings(out, cfg, done, accept_changes, log)
    t = cfg.train
    if t.threads:
        torch.set_num_threads(int(t.threads))
    L.seed_everything(t.seed, workers=True, verbose=False)
    prep = prepare(cfg)
    steps = steps_per_epoch(len(prep.train), t)
    module = AUDFERModule.from_config(
        cfg, prep.knowledge.tolist(), None if prep.pos_weight is None else prep.pos_weight.tolist(), steps
    )
    datamodule = ClipDataModule(cfg, module.model.input_spec, prep)
    sel = t.selection
    watch = datamodule.watched
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text(dump_config(cfg))
    if not resume or not (out / "init.json").is_file():
        init = initialise(module.model, cfg, log=log)  # on resume the checkpoint restores the weights anyway
        write_json(init, out / "init.json")
    monitor = f"val/{t.monitor}"
    stopper = _StopOnSignal()
    cbs = [_EveryEpoch(ckdir, out / "epochs.csv"), stopper]
    best_cb = None
    if watch is not None:
        best_cb = ModelCheckpoint(
            dirpath=str(ckdir),
            filename="best",
            monitor=monitor,
            mode="max",
            save_top_k=1,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )
        cbs.append(best_cb)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):  # no "GPU available" banners per run
        logging.getLogger(name).setLevel(logging.WARNING)
    trainer = L.Trainer(
        max_epochs=t.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        precision=cast(Any, t.precision),  # one of Lightning's names: the config declares them
        callbacks=cbs + list(callbacks),
        logger=_loggers(cfg, out),
        default_root_dir=str(out),
        deterministic=t.deterministic,
        enable_progress_bar=t.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, steps)),
        limit_train_batches=t.limit_train_batches,
        use_distributed_sampler=False,  # our samplers shard themselves (engine.datamodule.EpochShuffle / ShardInOrder)
        enable_checkpointing=best_cb is not None,
        limit_val_batches=None if watch is not None else 0,  # selection "last" watches no split
    )
    t0 = time.perf_counter()
    log(
        f"training {cfg.model.name} on {cfg.data.dataset} ({len(prep.train)} train clips, AU strategy "
        f"{cfg.au.strategy}, λ={cfg.au.lam}, selection {sel}) -> {out}"
    )
    au_summary = au_label_summary(prep.checks)
    if au_summary is not None:
        log(f"  {describe_au_labels(au_summary)}")
    log_file = out / "logs" / "metrics.csv"
    earlier = log_file.read_bytes() if resume and log_file.is_file() else None
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, stopper.request)
    try:
        with warnings.catch_warnings():
            for text in (
                ".*LeafSpec.*",
                ".*exists and is not empty.*",
                ".*weights_only.*",
                ".*does not have many workers.*",
                ".*ambiguous collection.*",
                ".*overridden `transfer_batch_to_device`.*",  # ours (module.py) is the one meant to run
                ".*no `val_dataloader`.*",
            ):
                warnings.filterwarnings("ignore", message=text)
            trainer.fit(
                module,
                datamodule=datamodule,
                ckpt_path=str(start) if start is not None else None,
                weights_only=not cfg.model.trust_pickle,  # a resumed checkpoint is read like any other file
            )
    except (_Stop, SIGTERMException) as exc:  # Lightning raises its own at the step boundary on SIGTERM
        stop = exc if isinstance(exc, _Stop) else _Stop(signal.SIGTERM)
        raise TrainingStopped(
            f"stopped by {stop.name} after step {trainer.global_step} (epoch {trainer.current_epoch + 1}); "
            f"the {trainer.current_epoch} finished epoch(s) are in {last} and {out / 'epochs.csv'}; continue with --resume "
            f"(the unfinished epoch is redone from its start, so the result equals an uninterrupted run)",
            128 + stop.signum,
        ) from None
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)
        if earlier is not None and trainer.global_rank == 0:
            _keep_earlier_log(log_file, earlier)
    if trainer.interrupted:
        raise AudferError(f"training interrupted; finished epochs are in {last} (continue with --resume)")
    if trainer.global_rank != 0:
        return out
    chosen = last if best_cb is None else Path(best_cb.best_model_path)
    info = torch.load(chosen, map_location="cpu", weights_only=True)  # written by this run
    init = json.loads((out / "init.json").read_text())
    selection = {
        "rule": sel,
        "note": SELECTION_NOTE[sel],
        "checkpoint": str(chosen.relative_to(out)),
        "init": init_label(init),
        "epoch": int(info["epoch"]) + 1,
        "monitor": None if sel == "last" else monitor,
        "score": None if best_cb is None or best_cb.best_model_score is None else float(best_cb.best_model_score),
        "train_seconds": round(time.perf_counter() - t0, 1),
        "au_labels": au_summary,
        "follows": cfg.follows,
        "reproduced_bugs": list(cfg.data.reproduce_bugs),
        **best_epochs(out / "epochs.csv"),
    }
    write_json(selection, out / "selection.json")
    if evaluate:
        # the file this run just wrote from the user's own config (which may name the user's model factory)
        evaluate_checkpoint(chosen, out=out / "eval", log=log, trust_pickle=True)
    return out


def best_epochs(epochs_csv: Path) -> dict[str, Any]:
    """The epochs of the best watched WAR and of the best watched UAR, each with both metrics (TFace's M3DFEL
    reports the two bests separately, from possibly different epochs); ``{}`` when no split was watched. First
    epoch wins a tie."""
    import polars as pl

    if not epochs_csv.is_file():
        return {}
    rows = pl.read_csv(epochs_csv, glob=False)
    if not {"val/war", "val/uar"} <= set(rows.columns) or rows["val/war"].drop_nulls().len() == 0:
        return {}
    rows = rows.filter(pl.col("val/war").is_not_null())
    out = {}
    for name, col in (("best_war", "val/war"), ("best_uar", "val/uar")):
        best = rows[col].arg_max()
        assert best is not None  # the rows are not empty (checked above)
        row = rows.row(int(best), named=True)
        out[name] = {"epoch": int(row["epoch"]) + 1, "war": float(row["val/war"]), "uar": float(row["val/uar"])}
    return out


def _keep_earlier_log(log_file: Path, earlier: bytes) -> None:
    """Lightning's CSV logger starts a new file on resume: put the finished epochs' rows back in front."""
    import io

    import polars as pl

    old = pl.read_csv(io.BytesIO(earlier))
    new = pl.read_csv(log_file, glob=False) if log_file.is_file() else old.clear()
    first = new["epoch"].min() if new.height else None
    if first is not None:
        old = old.filter(pl.col("epoch") < first)
    merged = pl.concat([old, new], how="diagonal_relaxed")
    write_csv(merged.select(sorted(merged.columns, key=lambda c: (c not in ("epoch", "step"), c))), log_file)


class _EveryEpoch(Callback):
    """At the end of every training epoch: a complete checkpoint replaces ``last.ckpt`` (written beside it
    first; the one it replaces is kept as ``previous.ckpt``), and the epoch's metrics are added to
    ``epochs.csv``, a log that no later run truncates (a rerun epoch replaces only its own row)."""

    def __init__(self, ckdir: Path, epochs_csv: Path) -> None:
        self.ckdir, self.epochs_csv = ckdir, epochs_csv

    def on_train_epoch_end(self, trainer, pl_module):
        last = self.ckdir / "last.ckpt"
        broken = [n for n, p in pl_module.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
        if broken:  # the epoch's last update left non-finite weights: never save them as last.ckpt
            raise AudferError(
                f"training diverged: {len(broken)} weight tensor(s) are not finite after epoch "
                f"{trainer.current_epoch + 1} (e.g. {broken[0]}); lower optim.lr; {last} was not replaced"
            )
        partial = self.ckdir / ".last.ckpt.partial"
        try:
            trainer.save_checkpoint(str(partial))
        except OSError as exc:  # a full disk: the previous checkpoint stays as it was
            if partial.exists():
                partial.unlink()
            raise AudferError(
                f"{last}: cannot write the checkpoint of epoch {trainer.current_epoch + 1} ({exc.strerror or exc}); "
                f"the previous {last.name} is intact"
            ) from None
        if not trainer.is_global_zero:
            return
        if last.is_file():
            os.replace(last, self.ckdir / "previous.ckpt")
        os.replace(partial, last)
        self._log_epoch(trainer)

    def _log_epoch(self, trainer) -> None:
        import polars as pl

        row: dict[str, float] = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step)}
        for k, v in sorted(trainer.callback_metrics.items()):
            try:
                row[k] = float(v)
            except (TypeError, ValueError):
                continue
        old = pl.read_csv(self.epochs_csv, glob=False) if self.epochs_csv.is_file() else pl.DataFrame()
        if old.height:
            old = old.filter(pl.col("epoch") < row["epoch"])
        write_csv(pl.concat([old, pl.DataFrame([row])], how="diagonal_relaxed"), self.epochs_csv)


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        self.signum, self.name = signum, signal.Signals(signum).name


class _StopOnSignal(Callback):
    """SIGINT/SIGTERM set a flag; the next training step boundary raises ``_Stop`` (no partial-epoch checkpoint
    is written, so ``last.ckpt`` stays the last finished epoch and resume is exact)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum, frame) -> None:
        self.signum = signum

    def on_train_start(self, trainer, pl_module):
        # Lightning >= 2.5 puts its own SIGTERM handler in front of ours; under DDP it broadcasts from inside the
        # handler and stops only the signalled rank, leaving the others in a collective. Ours alone decides.
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is not self.request
        ):
            signal.signal(signal.SIGTERM, self.request)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        bad = float(loss is not None and not bool(torch.isfinite(loss.detach()).all()))
        signum = self.signum or 0
        if trainer.world_size > 1:  # DDP: a signal or a diverged loss seen by any rank stops every rank at the same
            # step (no rank is left waiting in a collective); one small all-reduce per step
            flags = torch.tensor([float(signum), bad], device=pl_module.device)
            signum, bad = (int(v) for v in trainer.strategy.reduce(flags, reduce_op="max").tolist())
        if bad:
            raise _Diverged(trainer, loss)
        if signum:
            raise _Stop(signum)


class _Diverged(AudferError):
    """The training loss became NaN or infinite: the run stops at that step (no checkpoint of the epoch)."""

    def __init__(self, trainer, loss) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        value = "not finite" if loss is None or loss.numel() != 1 else f"{float(loss):g}"
        super().__init__(
            f"training diverged: the loss is {value} at epoch {trainer.current_epoch + 1}, step "
            f"{trainer.global_step} (lr {lr:.3g}); the likely cause is a learning rate too high for this batch "
            f"size and model (lower optim.lr), or inputs that are not finite; no checkpoint of this epoch was "
            f"written (last.ckpt, if any, is the last finished epoch)"
        )


def load_module(
    checkpoint: PathLike, *, map_location: str | torch.device = "cpu", trust_pickle: bool = False
) -> AUDFERModule:
    """The ``AUDFERModule`` stored in a checkpoint written by ``train``, built without running the file's code.

    The file is read weights-only (``models.checkpoint.read_checkpoint``); the module is rebuilt from the plain
    config, K and pos-weights it stores and its tensors loaded. A stored config whose ``model.name`` names code
    to import (``package.module:factory``) is refused unless ``trust_pickle`` says the file is trusted: importing
    it would run that module."""
    from audfer.engine.module import AUDFERModule

    run = read_run_checkpoint(checkpoint, trust_pickle=trust_pickle)
    module = run.guarded(lambda: AUDFERModule.from_config(run.cfg, run.knowledge, run.pos_weight, run.steps_per_epoch))
    check_state_fits(run.path, module.state_dict(), run.state_dict)
    module.load_state_dict(run.state_dict)
    return module.to(map_location)


def evaluate_checkpoint(
    checkpoint: PathLike,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    split: str = "test",
    out: PathLike | None = None,
    log: Log = print,
    device: str | None = None,
    trust_pickle: bool = False,
) -> dict:
    """Evaluate a checkpoint on a split of its own dataset config (``overrides`` may point elsewhere, e.g.
    ``data.root=...``, ``data.fold=2``); writes metrics.json, predictions.csv, features.npy into ``out``."""
    from audfer.evaluation.metrics import classification_metrics
    from audfer.evaluation.predictions import predict_loaders, prediction_table

    module = load_module(checkpoint, trust_pickle=trust_pickle)
    cfg = apply_overrides(module.cfg, overrides)
    if split not in ("train", "test"):
        raise AudferError(f"split must be train or test, got {split!r}")
    loaders, au, views = ClipDataModule(cfg, module.model.input_spec).eval_loaders(split)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    res = predict_loaders(module.model, loaders, device)
    metrics = classification_metrics(
        res["probs"],
        res["labels"],
        res["au_probs"],
        res["au_targets"],
        res["au_mask"] if au is not None else np.zeros(len(res["labels"]), bool),
    )
    ck = Path(checkpoint)
    sel_file = ck.parent.parent / "selection.json"
    metrics["selection"] = (
        json.loads(sel_file.read_text()) if sel_file.is_file() else {"rule": "unknown", "checkpoint": str(ck)}
    )
    init_file = ck.parent.parent / "init.json"
    metrics["init"] = init_label(json.loads(init_file.read_text())) if init_file.is_file() else "unknown"
    metrics.update(
        {
            "split": split,
            "dataset": cfg.data.dataset,
            "fold": cfg.data.fold,
            "model": cfg.model.name,
            "au_strategy": cfg.au.strategy,
            "lam": cfg.au.lam,
            "views": views,
        }
    )
    out = Path(out) if out else ck.parent.parent / f"eval-{split}"
    out.mkdir(parents=True, exist_ok=True)
    write_json(metrics, out / "metrics.json")
    write_csv(prediction_table(res["ids"], res["labels"], res["probs"], res["au_probs"]), out / "predictions.csv")
    with atomic_path(out / "features.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, res["features"].astype(np.float32))
    log(
        f"evaluated {ck.name} on {cfg.data.dataset} {split} ({metrics['n']} clips): WAR {100 * metrics['war']:.2f} "
        f"UAR {100 * metrics['uar']:.2f} [{metrics['selection']['rule']}, {metrics['init']}] -> {out}"
    )
    return metrics
