"""A model package read back: a folder written by ``audfer package`` (or its Hub copy, ``org/name``) -> the model it
describes, or the ``StoredRun`` that ``predict``, ``evaluate``, ``export`` and ``load_module`` take like a training
checkpoint. Nothing in a package is unpickled: weights are safetensors, the rest JSON and CSV (``docs/weights.md``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from audfer.config.load import with_defaults
from audfer.errors import CheckpointError
from audfer.io import read_expression_table
from audfer.models.base import DFERModel
from audfer.models.checkpoint import read_safetensors
from audfer.models.hub import PACKAGE_CONFIG, PACKAGE_WEIGHTS, is_hub_id, is_package, resolve_weights
from audfer.trust import check_package
from audfer.vocab import AUS, EXPRESSIONS
from audfer.weights.restore import StoredRun, loss_from_config, read_run_checkpoint

__all__ = [
    "PACKAGE_FORMAT",
    "is_package_source",
    "read_package_config",
    "read_package",
    "from_pretrained",
    "read_stored_run",
]

#: The version of the package layout this audfer writes and reads.
PACKAGE_FORMAT = 1


def is_package_source(source: str | os.PathLike[str]) -> bool:
    """A package folder, or a Hub id (``org/name``: Hub repositories hold packages)."""
    return is_package(source) or is_hub_id(source)


def read_package_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """A package's ``config.json``, checked for the fields a loader needs."""
    path = Path(folder) / PACKAGE_CONFIG
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable package config ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict) or "model" not in data:
        raise CheckpointError(f"{path}: not an audfer package config (expected 'model' and 'config')")
    if int(data.get("format", 0)) > PACKAGE_FORMAT:
        raise CheckpointError(
            f"{path}: package format {data['format']} is newer than this audfer reads ({PACKAGE_FORMAT}); update audfer"
        )
    return data


def read_package(
    source: str | os.PathLike[str], revision: str | None = None, *, trust_pickle: bool = False
) -> StoredRun:
    """The package at ``source`` (folder or Hub id at ``revision``) as a ``StoredRun``: its run config, K, pos-weights
    and tensors (the model's from ``model.safetensors``, the loss buffers rebuilt from K and pos-weights). A config
    naming code to import (``model.name: package.module:factory``) is refused unless ``trust_pickle`` says the
    package is trusted (``audfer.trust``)."""
    folder = resolve_weights(source, revision)
    if not is_package(folder):
        raise CheckpointError(f"{source}: not an audfer package (a folder with config.json and model.safetensors)")
    data = read_package_config(folder)
    check_package(folder, trusted=trust_pickle)  # before the config becomes a model or a loss (that imports it)
    cfg = with_defaults(data["config"])
    k_file = data.get("knowledge")
    if k_file:
        knowledge = read_expression_table(folder / k_file, what="knowledge matrix").tolist()
    else:  # a model without the AU loss (a converted release): λ = 0, so K weighs nothing; ones keep the shapes
        knowledge = np.ones((len(EXPRESSIONS), len(AUS))).tolist()
    pw_file = data.get("pos_weights")
    pos_weight = None if not pw_file else read_expression_table(folder / pw_file, what="pos-weight table").tolist()
    state = {f"model.{k}": v for k, v in read_safetensors(folder).items()}
    loss = loss_from_config(cfg, knowledge, pos_weight)
    state.update({f"criterion.{k}": v for k, v in loss.state_dict().items()})
    return StoredRun(folder, cfg, knowledge, pos_weight, int(data.get("steps_per_epoch", 1)), state)


def from_pretrained(
    source: str | os.PathLike[str], revision: str | None = None, *, trust_pickle: bool = False
) -> DFERModel:
    """The model a package describes (its registered name, sizes, classes and heads) with its weights, in eval mode:
    ``audfer.from_pretrained("org/name")`` or a folder. ``model.package_config`` holds the package's
    ``config.json`` (input spec, classes, AUs, provenance). A package naming code to import needs
    ``trust_pickle=True``."""
    run = read_package(source, revision, trust_pickle=trust_pickle)
    model = run.build_model()
    model.package_config = read_package_config(run.path)  # type: ignore[assignment]
    return model


def read_stored_run(
    source: str | os.PathLike[str], *, revision: str | None = None, trust_pickle: bool = False
) -> StoredRun:
    """What ``predict``, ``evaluate``, ``export`` and ``load_module`` read: a package (folder or Hub id), or an audfer
    training checkpoint (weights-only unless ``trust_pickle``; ``restore.read_run_checkpoint``)."""
    half = [n for n in (PACKAGE_CONFIG, PACKAGE_WEIGHTS) if (Path(source) / n).is_file()]
    if len(half) == 1:  # a package folder missing a file (an interrupted copy or download): name it
        missing = Path(source) / ({PACKAGE_CONFIG, PACKAGE_WEIGHTS} - set(half)).pop()
        raise CheckpointError(f"{missing}: not found; a package folder holds {PACKAGE_CONFIG} and {PACKAGE_WEIGHTS}")
    if is_package_source(source):
        return read_package(source, revision, trust_pickle=trust_pickle)
    if revision is not None:
        raise CheckpointError(f"{source}: a revision ({revision}) is for Hub ids (org/name), not local files")
    return read_run_checkpoint(source, trust_pickle=trust_pickle)
