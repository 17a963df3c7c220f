"""A training checkpoint read back (``load_module``, never Lightning's unpickling load) and evaluated on a split
(``evaluate_checkpoint``: ``metrics.json``, ``predictions.csv``, ``features.npy``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from audfer.au.labels_cache import cache_root
from audfer.config.load import apply_overrides, with_values
from audfer.config.paths import check_data_paths, relocated_values
from audfer.engine.datamodule import ClipDataModule
from audfer.errors import AudferError
from audfer.files import atomic_path, write_json
from audfer.hints import Log, PathLike
from audfer.io import write_csv
from audfer.progress import bar
from audfer.run_layout import RunLayout, evaluation_name, features_file, metrics_file, predictions_file
from audfer.weights.package import is_package_source, read_package_config, read_stored_run
from audfer.weights.pretrained import init_label
from audfer.weights.restore import StoredRun, check_state_fits

if TYPE_CHECKING:
    from audfer.engine.module import AUDFERModule


def load_module(
    checkpoint: PathLike | StoredRun,
    *,
    map_location: str | torch.device = "cpu",
    trust_pickle: bool = False,
    revision: str | None = None,
) -> AUDFERModule:
    """The ``AUDFERModule`` stored in a checkpoint written by ``train`` or in a model package (folder or Hub id at
    ``revision``), built without running the file's code.

    The file is read weights-only (``models.checkpoint.read_checkpoint``); the module is rebuilt from the plain
    config, K and pos-weights it stores and its tensors loaded. A stored config whose ``model.name`` names code
    to import (``package.module:factory``) is refused unless ``trust_pickle`` says the file is trusted: importing
    it would run that module."""
    from audfer.engine.module import AUDFERModule

    run = (
        checkpoint
        if isinstance(checkpoint, StoredRun)
        else read_stored_run(checkpoint, revision=revision, trust_pickle=trust_pickle)
    )
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
    revision: str | None = None,
) -> dict:
    """Evaluate a checkpoint or a model package on a split of its own dataset config (``overrides`` may point
    elsewhere, e.g. ``data.root=...``, ``data.fold=2``); writes metrics.json, predictions.csv, features.npy into
    ``out`` (default: ``<run>/eval-<split>``, or ``eval-<split>`` here for a package)."""
    from audfer.evaluation.metrics import classification_metrics
    from audfer.evaluation.predictions import predict_loaders, prediction_table

    with bar(total=1, desc=f"loading {Path(str(checkpoint)).name}", unit="model") as shown:  # stderr, a terminal
        stored = read_stored_run(checkpoint, revision=revision, trust_pickle=trust_pickle)  # read once
        module = load_module(stored)
        shown.update()
    package = is_package_source(checkpoint)
    ck = Path(checkpoint)
    run = None if package else RunLayout.of(ck)
    run_dir = None if run is None else run.root
    if run_dir is not None:  # the run folder where it is now, its data re-found if it moved with it
        base = with_values(module.cfg, relocated_values(module.cfg.to_dict(), run_dir), source=f"the run {run_dir}")
    elif module.cfg.data.cache == "auto":  # no run folder: the clip cache goes to the user's cache folder
        base = with_values(module.cfg, {"data.cache": str(cache_root(None) / "clips")}, source="the user cache")
    else:
        base = module.cfg
    cfg = apply_overrides(base, overrides)
    check_data_paths(cfg.to_dict(), str(checkpoint))
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
    if package:  # what the package says of the run it came from
        trained = read_package_config(stored.path).get("training") or {}
        metrics["selection"] = trained.get("selection") or {"rule": "unknown", "checkpoint": str(checkpoint)}
        metrics["init"] = init_label(trained.get("init")) if trained.get("init") else "unknown"
    else:
        near = RunLayout.around(ck)  # a lone checkpoint: the folder above its own, as before
        sel_file = near.selection
        metrics["selection"] = (
            json.loads(sel_file.read_text()) if sel_file.is_file() else {"rule": "unknown", "checkpoint": str(ck)}
        )
        init_file = near.init
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
    out = Path(out) if out else (Path(evaluation_name(split)) if package else RunLayout.around(ck).reevaluation(split))
    out.mkdir(parents=True, exist_ok=True)
    write_json(metrics, metrics_file(out))
    write_csv(prediction_table(res["ids"], res["labels"], res["probs"], res["au_probs"]), predictions_file(out))
    with atomic_path(features_file(out)) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, res["features"].astype(np.float32))
    log(
        f"evaluated {ck.name} on {cfg.data.dataset} {split} ({metrics['n']} clips): WAR {100 * metrics['war']:.2f} "
        f"UAR {100 * metrics['uar']:.2f} [{metrics['selection']['rule']}, {metrics['init']}] -> {out}"
    )
    return metrics
