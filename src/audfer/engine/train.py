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

import json
import logging
import signal
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from lightning.pytorch.callbacks import Callback

from audfer.config.load import dump_config, with_values
from audfer.config.paths import absolute_values
from audfer.config.schema import Config
from audfer.engine.callbacks import EveryEpoch, Stop, StopOnSignal
from audfer.engine.datamodule import ClipDataModule, steps_per_epoch
from audfer.engine.evaluate import evaluate_checkpoint
from audfer.engine.learning import check_learning
from audfer.engine.plan import batch_layout, has_batchnorm
from audfer.engine.resolve import au_label_summary, describe_au_labels, prepare
from audfer.engine.runfolder import (
    SELECTION_NOTE,
    best_epochs,
    check_resume_settings,
    has_checkpoint,
    keep_earlier_log,
    resume_point,
)
from audfer.engine.runlock import run_lock
from audfer.errors import AudferError, TrainingStopped
from audfer.files import atomic_path, file_sha256, write_json, writing
from audfer.hints import Log
from audfer.run_layout import RunLayout
from audfer.weights.pretrained import init_label, initialise

if TYPE_CHECKING:
    pass


def _loggers(cfg: Config, out: Path):
    from lightning.pytorch.loggers import CSVLogger, Logger

    loggers: list[Logger] = []
    for kind in cfg.train.loggers or []:
        if kind == "csv":
            loggers.append(CSVLogger(str(out), name=RunLayout(out).logs.name, version=""))
        else:
            try:
                import tensorboard  # noqa: F401
                from lightning.pytorch.loggers import TensorBoardLogger
            except ImportError:
                raise AudferError(
                    "train.loggers has tensorboard but it is not installed: pip install 'audfer[tensorboard]'"
                ) from None
            loggers.append(TensorBoardLogger(str(out), name=RunLayout(out).tensorboard.name, version=""))
    return loggers or False


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
    # stored absolute: the run folder, its checkpoints and packages work from any working directory (config/paths.py)
    cfg = with_values(cfg, {"out": str(out), **absolute_values(cfg.to_dict())}, source="the run folder")
    run = RunLayout(out)
    ckdir, last = run.checkpoints, run.last
    if resume and not has_checkpoint(out):
        raise AudferError(f"{last}: nothing to resume from")
    if not resume and has_checkpoint(out):
        raise AudferError(
            f"{out}: run folder already has checkpoints; pass --resume to continue it or choose another out="
        )
    start = None
    if resume:
        start, done = resume_point(ckdir, log=log, trust_pickle=cfg.model.trust_pickle)
        check_resume_settings(out, cfg, done, accept_changes, log)
    t = cfg.train
    if t.threads:
        torch.set_num_threads(int(t.threads))
    L.seed_everything(t.seed, workers=True, verbose=False)
    prep = prepare(cfg)
    steps = steps_per_epoch(len(prep.train), t)
    module = AUDFERModule.from_config(
        cfg, prep.knowledge.tolist(), None if prep.pos_weight is None else prep.pos_weight.tolist(), steps
    )
    check_learning(cfg, steps, module.lr_at)  # one line before training when no step would change the weights
    datamodule = ClipDataModule(cfg, module.model.input_spec, prep)
    for note in batch_layout(cfg, batchnorm=has_batchnorm(module.model))["differs"]:  # not the source's layout
        warnings.warn(f"{cfg.name}: {note}", UserWarning, stacklevel=2)
    sel = t.selection
    watch = datamodule.watched
    monitor = f"val/{t.monitor}"
    stopper = StopOnSignal()
    cbs = [EveryEpoch(ckdir, run.epochs), stopper]
    best_cb = None
    if watch is not None:
        best_cb = ModelCheckpoint(
            dirpath=str(ckdir),
            filename=run.best.stem,
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
        num_nodes=t.num_nodes,  # Lightning finds the other nodes from torchrun's or SLURM's environment
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
    # every process (each device, each node) builds the same model; only global rank 0 writes the run's files
    writer = trainer.global_rank == 0
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(run.config) as tmp:
            tmp.write_text(dump_config(cfg))
    if not resume or not run.init.is_file():
        init = initialise(module.model, cfg, log=log)  # on resume the checkpoint restores the weights anyway
        if writer:
            write_json(init, run.init)
    t0 = time.perf_counter()
    log(
        f"training {cfg.model.name} on {cfg.data.dataset} ({len(prep.train)} train clips, AU strategy "
        f"{cfg.au.strategy}, λ={cfg.au.lam}, selection {sel}) -> {out}"
    )
    au_summary = au_label_summary(prep.checks)
    if au_summary is not None:
        log(f"  {describe_au_labels(au_summary)}")
    log_file = run.log_csv
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
            # Lightning's own writes (logs/metrics.csv, best.ckpt) on a full disk: one line naming the run folder
            with writing(out, "the run's logs or checkpoints", f"{last} holds the last finished epoch (--resume)"):
                trainer.fit(
                    module,
                    datamodule=datamodule,
                    ckpt_path=str(start) if start is not None else None,
                    weights_only=not cfg.model.trust_pickle,  # a resumed checkpoint is read like any other file
                )
    except (Stop, SIGTERMException) as exc:  # Lightning raises its own at the step boundary on SIGTERM
        stop = exc if isinstance(exc, Stop) else Stop(signal.SIGTERM)
        raise TrainingStopped(
            f"stopped by {stop.name} after step {trainer.global_step} (epoch {trainer.current_epoch + 1}); "
            f"the {trainer.current_epoch} finished epoch(s) are in {last} and {run.epochs}; continue with --resume "
            f"(the unfinished epoch is redone from its start, so the result equals an uninterrupted run)",
            128 + stop.signum,
        ) from None
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)
        if earlier is not None and trainer.global_rank == 0:
            keep_earlier_log(log_file, earlier)
    if trainer.interrupted:
        raise AudferError(f"training interrupted; finished epochs are in {last} (continue with --resume)")
    if trainer.global_rank != 0:
        return out
    chosen = last if best_cb is None else Path(best_cb.best_model_path)
    info = torch.load(chosen, map_location="cpu", weights_only=True)  # written by this run
    init = json.loads(run.init.read_text())
    selection = {
        "rule": sel,
        "note": SELECTION_NOTE[sel],
        "checkpoint": run.relative(chosen),
        "sha256": file_sha256(chosen),  # its identity: a copy elsewhere, or another file put here, is told apart
        "init": init_label(init),
        "epoch": int(info["epoch"]) + 1,
        "monitor": None if sel == "last" else monitor,
        "score": None if best_cb is None or best_cb.best_model_score is None else float(best_cb.best_model_score),
        "train_seconds": round(time.perf_counter() - t0, 1),
        "au_labels": au_summary,
        "follows": cfg.follows,
        "reproduced_bugs": list(cfg.data.reproduce_bugs),
        **best_epochs(run.epochs),
    }
    write_json(selection, run.selection)
    if evaluate:
        # the file this run just wrote from the user's own config (which may name the user's model factory)
        evaluate_checkpoint(chosen, out=run.evaluation, log=log, trust_pickle=True)
    return out
