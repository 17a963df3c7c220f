"""The file paths a config names, made to survive a move: a run stores them absolute, and a run folder read back
from another place (moved, copied to another machine) has each path that no longer exists re-resolved against the
folder's new location, keeping its place relative to the run (a demo folder moved whole keeps working). What still
does not exist is named in one line with every key to override, together."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from audfer.errors import InputError

#: Options that name a file or folder (presets such as ``au.knowledge: paper`` and Hub ids are left alone).
PATH_KEYS: tuple[str, ...] = (
    "data.root",
    "data.au_labels",
    "data.au_dir",
    "data.openface",  # the former name of data.au_dir, in the config of a run written before the rename
    "data.identities",
    "data.train_list",
    "data.test_list",
    "data.au_mapping",
    "data.cache",
    "au.knowledge",
    "au.pos_weights",
    "model.pretrained",
)
_NOT_PATHS = {"auto", "paper", "per-fold", "ones", "computed", "dfew", "ferv39k", "none"}


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    section, key = dotted.split(".")
    return (data.get(section) or {}).get(key)


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and value not in _NOT_PATHS


def absolute_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: absolute path}`` for ``out`` and every relative path option of a config's YAML form that exists here
    (the clip-cache folder whether or not it exists yet): what a run stores, so that it works from any working
    directory (``with_values(cfg, absolute_values(cfg.to_dict()), ...)``)."""
    values: dict[str, Any] = {}
    if data.get("out") and not Path(data["out"]).is_absolute():
        values["out"] = os.path.abspath(data["out"])
    for dotted in PATH_KEYS:
        value = _get(data, dotted)
        if _is_path(value) and not Path(value).is_absolute() and (Path(value).exists() or dotted == "data.cache"):
            values[dotted] = os.path.abspath(value)
    return values


def relocated_values(data: Mapping[str, Any], run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """For a stored run config read back from ``run_dir`` (where the run folder is now): ``out`` = ``run_dir``, and each
    path that does not exist replaced by the same place relative to the folder's new location where that exists (the
    run was moved or copied with its data). Paths that exist, and paths found nowhere, stay (``check_data_paths``)."""
    now = Path(os.path.abspath(run_dir))
    then = data.get("out")
    values: dict[str, Any] = {"out": str(now)}
    if not then or not Path(then).is_absolute() or Path(then) == now:
        return values
    for dotted in PATH_KEYS:
        value = _get(data, dotted)
        if not _is_path(value) or not Path(value).is_absolute() or Path(value).exists():
            continue
        moved = Path(os.path.normpath(now / os.path.relpath(value, then)))
        if moved.exists() or (dotted == "data.cache" and moved.parent.exists()):
            values[dotted] = str(moved)
    return values


def with_paths(data: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a config's YAML form) with the dotted ``values`` set."""
    out = copy.deepcopy(dict(data))
    for dotted, value in values.items():
        if "." in dotted:
            section, key = dotted.split(".")
            out.setdefault(section, {})[key] = value
        else:
            out[dotted] = value
    return out


def missing_paths(data: Mapping[str, Any]) -> dict[str, str]:
    """``{key: path}`` of the path options whose file or folder does not exist (the clip cache, created on use, and
    Hub ids of ``model.pretrained`` aside)."""
    missing = {}
    for dotted in PATH_KEYS:
        value = _get(data, dotted)
        if dotted in ("data.cache", "model.pretrained") or not _is_path(value):
            continue
        if not Path(value).exists():
            missing[dotted] = value
    return missing


def check_data_paths(data: Mapping[str, Any], where: str) -> None:
    """One line naming every data path of a stored run that does not exist here, with the keys to override together
    (``data.root=... data.au_labels=...``), instead of an error about the first one and then the next."""
    missing = {k: v for k, v in missing_paths(data).items() if k.startswith("data.")}
    if not missing:
        return
    keys = " ".join(f"{k}=NEW" for k in missing)
    raise InputError(
        f"{where}: the run's data is not where it was: {', '.join(f'{k} {v}' for k, v in missing.items())} "
        f"(not found here, nor at the same place relative to the run folder); override them together: {keys}"
    )
