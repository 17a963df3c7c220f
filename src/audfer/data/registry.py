"""Dataset adapters behind one registry: each dataset says how its official split of a fold is listed (``ClipIndex``)
from its root and the run's ``data`` options, and whether it has folds. ``dfew``, ``ferv39k``, ``mafw``, ``list`` and
``synthetic`` are built in (``audfer.data.adapters``, loaded when one is first used, so that listing the names loads no
table library); ``register_dataset`` adds a user's own. The engine names no dataset.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audfer.errors import ConfigError

__all__ = ["DatasetAdapter", "register_dataset", "dataset_adapter", "list_datasets"]


@dataclass(frozen=True)
class DatasetAdapter:
    """How one dataset lists a split: ``split(root, data_options, "train" | "test") -> ClipIndex``."""

    name: str
    split: Callable[[Path, Any, str], Any]
    folds: int | None  #: official folds (DFEW, MAFW: 5); None for a dataset with one train / test split
    description: str


_ADAPTERS: dict[str, DatasetAdapter] = {}
#: name -> (function in ``audfer.data.adapters``, folds, description)
_BUILTIN: dict[str, tuple[str, int | None, str]] = {
    "dfew": ("dfew_split", 5, "DFEW: 5 folds (EmoLabel_DataSplit), frame folders under Clip/<frames>"),
    "synthetic": ("synthetic_split", 5, "`audfer synth` output: DFEW's layout, identity-disjoint folds"),
    "ferv39k": ("ferv39k_split", None, "FERV39k: one official train / test split"),
    "mafw": ("mafw_split", 5, "MAFW: 5 folds, 11 classes or our 7-class view"),
    "list": ("list_split", None, "any dataset as train / test list files (clip path, label)"),
}


def register_dataset(
    name: str, split: Callable[[Path, Any, str], Any], *, folds: int | None = None, description: str = ""
) -> DatasetAdapter:
    """Register (or replace) the adapter of dataset ``name``."""
    adapter = DatasetAdapter(name, split, folds, description)
    _ADAPTERS[name] = adapter
    return adapter


def dataset_adapter(name: str) -> DatasetAdapter:
    """The adapter of ``name`` (``ConfigError`` naming the registered ones otherwise)."""
    if name not in _ADAPTERS and name in _BUILTIN:
        function, folds, description = _BUILTIN[name]
        adapters = importlib.import_module("audfer.data.adapters")
        register_dataset(name, getattr(adapters, function), folds=folds, description=description)
    if name not in _ADAPTERS:
        raise ConfigError(f"unknown dataset {name!r}; registered: {', '.join(list_datasets())}")
    return _ADAPTERS[name]


def list_datasets() -> list[str]:
    """The registered dataset names."""
    return sorted(set(_ADAPTERS) | set(_BUILTIN))
