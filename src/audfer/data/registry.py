"""Dataset adapters behind one registry: each dataset says how its official split of a fold is listed (``ClipIndex``)
from its root and the run's ``data`` options, and whether it has folds. ``dfew``, ``ferv39k``, ``mafw``, ``list`` and
``synthetic`` register themselves (``audfer.data.adapters``, imported with the package); the engine names no dataset.
"""

from __future__ import annotations

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


def register_dataset(
    name: str, split: Callable[[Path, Any, str], Any], *, folds: int | None = None, description: str = ""
) -> DatasetAdapter:
    """Register (or replace) the adapter of dataset ``name``."""
    adapter = DatasetAdapter(name, split, folds, description)
    _ADAPTERS[name] = adapter
    return adapter


def dataset_adapter(name: str) -> DatasetAdapter:
    """The adapter of ``name`` (``ConfigError`` naming the registered ones otherwise)."""
    if name not in _ADAPTERS:
        raise ConfigError(f"unknown dataset {name!r}; registered: {', '.join(sorted(_ADAPTERS))}")
    return _ADAPTERS[name]


def list_datasets() -> list[str]:
    """The registered dataset names."""
    return sorted(_ADAPTERS)
