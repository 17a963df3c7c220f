"""``audfer train --dry-run``: the run's plan (clips, AU coverage, steps and lr, initialisation, augmentation, the share
of enlarged crops, the pos-weight scale) checked and written to ``plan.json`` without training."""

from __future__ import annotations

from typing import Any

import numpy as np

from audfer.config.load import with_values
from audfer.config.schema import Config, TrainOptions
from audfer.data.datasets import read_frames
from audfer.engine.datamodule import (
    crop_upsampling,
    sampling_kwargs,
    sampling_of,
    steps_per_epoch,
    train_transform,
    views_at_test,
)
from audfer.engine.learning import check_learning
from audfer.engine.resolve import au_label_summary, describe_au_labels, prepare
from audfer.engine.runfolder import SELECTION_NOTE
from audfer.engine.schedules import global_batch
from audfer.errors import AudferError, ConfigError
from audfer.files import write_json
from audfer.hints import Log
from audfer.method.knowledge import AUTHOR_KNOWLEDGE, authors_knowledge
from audfer.method.labels import official_pos_weights
from audfer.run_layout import RunLayout
from audfer.vocab import AUS, EXPRESSIONS
from audfer.weights.pretrained import init_label, initialise


def _layout(t: TrainOptions) -> str:
    """``devices x batch`` (``nodes x devices x batch`` across machines), as the dry run prints it."""
    return (
        f"{t.devices} x {t.batch_size}" if t.num_nodes == 1 else f"{t.num_nodes} nodes x {t.devices} x {t.batch_size}"
    )


def batch_layout(cfg: Config, *, batchnorm: bool) -> dict[str, Any]:
    """The run's global batch next to the one of the run its recipe reproduces (``train.source_batch``), and what a
    different layout changes: ``differs`` (one sentence each; empty when the layout is the source's). ``batchnorm``:
    whether the model normalises by batch statistics (then the clips per device matter, not only their total).

    The same global batch on fewer devices gives the same lr, min_lr, warm-up and steps per epoch; what the split still
    changes is named: BatchNorm statistics are taken per device, and mixup/cutmix (timm's ``Mixup``, applied to each
    process's batch in the official loops) draws one λ, one mixup-or-cutmix choice and one pairing per process batch."""
    t, o = cfg.train, cfg.optim
    g = global_batch(t)
    out: dict[str, Any] = {
        "global_batch": g,
        "devices": t.devices,
        "num_nodes": t.num_nodes,
        "per_device": t.batch_size,
        "lr": cfg.optim.lr * (g / 256 if o.lr_scale == "batch256" else 1.0),
        "source": None,
        "follows": cfg.follows or "not stated (a user's config)",
        "differs": [],
    }
    if t.source_batch is None:
        return out
    if len(t.source_batch) != 2:
        raise ConfigError(
            f"config: train.source_batch: expected [devices, clips per device], got {list(t.source_batch)}"
        )
    sd, sb = int(t.source_batch[0]), int(t.source_batch[1])
    out["source"] = {"devices": sd, "per_device": sb, "global_batch": sd * sb}
    notes: list[str] = out["differs"]
    if g != sd * sb:
        scaled = " (the lr and min_lr scale with it: x batch / 256)" if o.lr_scale == "batch256" else ""
        notes.append(
            f"global batch {g} ({_layout(t)}) is not the source's {sd * sb} ({sd} x {sb}): steps per "
            f"epoch differ{scaled}; train.devices={sd} train.batch_size={sb} runs the source's layout"
        )
    if t.batch_size != sb:
        if batchnorm:
            notes.append(f"BatchNorm statistics over {t.batch_size} clips per device, not the source's {sb}")
        if o.mixup or o.cutmix:
            notes.append(
                f"mixup/cutmix draws its λ, its choice of mixup or cutmix and its flip pairing once per process "
                f"batch: {t.devices * t.num_nodes} draw(s) over {t.batch_size} clips per step, not the source's {sd} over {sb}"
            )
    return out


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
            "knowledge_used_by": authors_knowledge(cfg.au.knowledge)[1]
            if cfg.au.knowledge in AUTHOR_KNOWLEDGE
            else None,
            "pos_weights": cfg.au.pos_weights,
            **prep.checks,
        },
        "steps_per_epoch": steps,
        "total_steps": total,
        "warmup_steps": warm,
        "learning": check_learning(cfg, steps, module.lr_at) or "ok",
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
        "augment_on": _augment_split(cfg, transform),
        "training_crops": _crop_report(cfg, spec, prep.train),
        "pos_weight_scale": pos_weight_scale(cfg, prep.pos_weight),
        "selection": {"rule": t.selection, "note": SELECTION_NOTE[t.selection], "monitor": t.monitor},
        "precision": t.precision,
        "devices": t.devices,
        "batch_size": t.batch_size,
        "batch": batch_layout(cfg, batchnorm=has_batchnorm(module.model)),
        "epochs": t.epochs,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(result, RunLayout(out).plan)
    log(f"plan for {cfg.name} ({cfg.model.name}, {result['init_label']}) -> {RunLayout(out).plan}")
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
    b = result["batch"]
    src = b["source"]
    log(
        f"  global batch {b['global_batch']} ({b['num_nodes']} node(s) x {b['devices']} device(s) x {b['per_device']}), "
        f"lr {b['lr']:.4g}"
        + (
            f"; source ({b['follows'].split(':')[0]}): {src['global_batch']} ({src['devices']} x {src['per_device']})"
            if src
            else "; no source layout declared"
        )
    )
    for note in b["differs"]:
        log(f"  WARNING: {note}")
    log(
        f"  follows {result['follows']}"
        + (f"; REPRODUCES BUGS {result['reproduced_bugs']}" if d.reproduce_bugs else "")
    )
    log(f"  sampling {sampling}; augmentation: {', '.join(result['augmentation'])}")
    split = result["augment_on"]
    if split["where"] == "device":
        log(f"  in the loader: {', '.join(split['loader'])}; on the training device: {', '.join(split['device'])}")
    elif split["device"]:
        log(f"  on a GPU, data.augment_on=device would run {', '.join(split['device'])} there (the same draws)")
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


def has_batchnorm(model: Any) -> bool:
    """Whether ``model`` normalises with batch statistics (a ``_BatchNorm`` module: M3DFEL's R3D-18, Former-DFER's
    ResNet-18; MAE-DFER's ViT has none)."""
    import torch

    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _crop_report(cfg: Config, spec, index) -> dict[str, Any] | None:
    """``crop_upsampling`` for the first training clip's stored frame size (None without a readable clip)."""

    if not len(index):
        return None
    try:
        first = read_frames(index.table["path"][0], [0])
    except AudferError:
        return None
    return crop_upsampling(cfg, spec, (int(first.shape[1]), int(first.shape[2])))


def pos_weight_scale(cfg: Config, table: np.ndarray | None) -> dict[str, Any] | None:
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


def _augment_split(cfg, transform) -> dict:
    """Where the training augmentation runs (``data.augment_on``): the steps left to the loader and those the training
    device runs under ``device`` (``Compose.split_device``), named as in ``augmentation``."""
    loader, device = transform.split_device()
    return {
        "where": cfg.data.augment_on,
        "loader": [type(step).__name__ for step in loader.steps],
        "device": [type(step).__name__ for step in device.steps],
    }


def _describe(step) -> str:
    fields = {k: v for k, v in vars(step).items() if isinstance(v, (int, float, str, tuple)) and not k.startswith("_")}
    return "(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")" if fields else ""
