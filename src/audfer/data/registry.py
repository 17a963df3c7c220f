"""Datasets as plug-ins: one module per dataset declares everything audfer needs to know about it and registers
itself with ``register_dataset``, as a model does with ``audfer.models.registry.register_model``.

A declaration (``Dataset``) says:

- ``split``: its layout and official splits, as ``split(root, data_options, "train" | "test") -> ClipIndex``
  (where its clips, frames and label files are; ``audfer.data.datasets`` has the readers);
- ``folds``: how many official folds it has (``data.fold`` 1..folds), or None for one train / test split;
- ``class_order``: the class counts it can be read with and the class names of each, in label order (the first is
  the default);
- ``clip_id``: the rule that turns an AU tool's file stem (and a frame-probability row's clip id) into the clip id
  its label files use, as a polars expression on a column (None: compared as written);
- ``knowledge``: how §3.1's K gets its labels from the dataset (``KnowledgeLabels``), or None when it has none; it
  is given the AU frames with the ``clip_id`` rule applied, and the AU files' stems as they are;
- ``check``: its own checks of the ``data`` options (``ConfigError``), run when a config is built;
- ``au_dir``: where its per-clip AU CSVs are under its root when ``data.au_dir`` does not say (the synthetic set's
  ``OpenFace``).

The built-in datasets are the modules of ``audfer.data.sets`` (``dfew``, ``ferv39k``, ``mafw``, ``synthetic``,
``lists``, ``clips``, ``affwild2``, ``ravdess``), imported when a dataset is first looked up or listed (they import
no table library until used). A user's dataset is a module of their own that calls ``register_dataset``; a config
or ``audfer knowledge --dataset`` names it ``package.module:name`` and audfer imports the module, as it does a
user's model (``audfer.models.custom``; a stored config naming one passes the trust gate, ``audfer.trust``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audfer.errors import ConfigError, InputError
from audfer.plugins import import_module_of, is_code_name
from audfer.vocab import EXPRESSIONS

__all__ = [
    "Dataset",
    "DatasetAdapter",
    "KnowledgeLabels",
    "register_dataset",
    "dataset",
    "dataset_adapter",
    "list_datasets",
    "declared_class_counts",
    "max_folds",
    "required",
]


@dataclass
class KnowledgeLabels:
    """What a dataset's knowledge adapter returns: the AU frames (clip ids as its labels write them; joined with
    frame labels for a frame-level dataset), the clip-level ``clip_id,label`` table (None when the frames carry
    their labels) and counts of what was left out, by reason (they join the summary of ``audfer knowledge``)."""

    frames: Any
    labels: Any
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """One dataset's declaration (see the module docstring)."""

    name: str
    split: Callable[[Path, Any, str], Any] | None = None
    folds: int | None = None
    description: str = ""
    class_order: Mapping[int, tuple[str, ...]] = field(default_factory=lambda: {len(EXPRESSIONS): EXPRESSIONS})
    clip_id: Callable[[str], Any] | None = None
    knowledge: Callable[[Any, Any, list[str]], KnowledgeLabels] | None = None
    check: Callable[[Any], None] | None = None
    root_hint: str = ""  #: words added to "data.root is not set" (how to get the data)
    au_dir: str | None = None  #: where its per-clip AU CSVs are under the root when ``data.au_dir`` is not set

    @property
    def classes(self) -> tuple[int, ...]:
        """The class counts it can be read with (``data.classes``), the default first."""
        return tuple(self.class_order)

    def num_classes(self, requested: int) -> int:
        """Classes of the expression head for ``data.classes = requested``: that count when the dataset declares it,
        else its default (a 7-class dataset ignores ``data.classes``)."""
        return requested if requested in self.class_order else self.classes[0]


#: Kept for code that imports the old name.
DatasetAdapter = Dataset

_DATASETS: dict[str, Dataset] = {}
_BUILTINS_LOADED = False


def register_dataset(
    name: str | Dataset,
    split: Callable[[Path, Any, str], Any] | None = None,
    *,
    folds: int | None = None,
    description: str = "",
    **declared: Any,
) -> Dataset:
    """Register (or replace) a dataset: a ``Dataset`` declaration, or its fields (``name``, ``split``, ``folds``,
    ``description``, then ``class_order``, ``clip_id``, ``knowledge``, ``check``, ``root_hint``, ``au_dir``)."""
    decl = name if isinstance(name, Dataset) else Dataset(name, split, folds, description, **declared)
    if not decl.class_order or any(len(v) != k for k, v in decl.class_order.items()):
        raise ConfigError(f"dataset {decl.name!r}: class_order must map each class count to that many class names")
    _DATASETS[decl.name] = decl
    return decl


def _load_builtins() -> None:
    """Import every module of ``audfer.data.sets`` once: each registers its dataset (a dataset registered before,
    under a built-in's name, stays: a user's replacement wins)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    before = dict(_DATASETS)
    sets = importlib.import_module("audfer.data.sets")
    for info in pkgutil.iter_modules(sets.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"audfer.data.sets.{info.name}")
    _DATASETS.update(before)


def _import_user_dataset(name: str) -> Dataset:
    """``package.module:name``: import the module (it registers ``name``) and return that declaration."""
    module_name, _, attr = name.partition(":")
    if not is_code_name(name):
        raise ConfigError(f"dataset {name!r}: expected a registered name or 'package.module:name'")
    module = import_module_of(name, f"dataset {name!r}")  # importing it registers its datasets
    decl = _DATASETS.get(attr)
    if decl is None and isinstance(getattr(module, attr, None), Dataset):
        decl = register_dataset(getattr(module, attr))
    if decl is None:
        raise ConfigError(
            f"dataset {name!r}: module {module_name!r} registers no dataset {attr!r} (call "
            f"audfer.data.registry.register_dataset({attr!r}, ...) in it)"
        )
    _DATASETS[name] = decl
    return decl


def dataset(name: str) -> Dataset:
    """The declaration of dataset ``name`` (``package.module:name`` imports a user's module first);
    ``ConfigError`` naming the registered ones otherwise."""
    _load_builtins()
    if name not in _DATASETS and ":" in name:
        return _import_user_dataset(name)
    if name not in _DATASETS:
        raise ConfigError(
            f"unknown dataset {name!r}; registered: {', '.join(list_datasets())} (or package.module:name for your own)"
        )
    return _DATASETS[name]


#: Kept for code that imports the old name.
dataset_adapter = dataset


def list_datasets(*, knowledge: bool = False, training: bool = False) -> list[str]:
    """The registered dataset names (``knowledge``: those K can be built from; ``training``: those with splits)."""
    _load_builtins()
    return sorted(
        n
        for n, d in _DATASETS.items()
        if ":" not in n and (not knowledge or d.knowledge is not None) and (not training or d.split is not None)
    )


def declared_class_counts() -> tuple[int, ...]:
    """Every class count some registered dataset can be read with (``data.classes``)."""
    _load_builtins()
    return tuple(sorted({c for d in _DATASETS.values() for c in d.classes}))


def dataset_of_classes(n: int) -> str | None:
    """The one registered dataset with official splits whose own class order has ``n`` classes and that needs no
    further option to read its labels (no ``check`` of its own: a list dataset needs ``data.class_order``), or None
    when none or several do. What a released base-model checkpoint with an ``n``-way head was trained on (11: MAFW)."""
    _load_builtins()
    found = [
        name
        for name, d in _DATASETS.items()
        if ":" not in name and d.split is not None and d.check is None and n in d.class_order and n != len(EXPRESSIONS)
    ]
    return found[0] if len(found) == 1 else None


def max_folds() -> int:
    """The most official folds of a registered dataset (the range of ``data.fold``)."""
    _load_builtins()
    return max([d.folds or 1 for d in _DATASETS.values()])


def required(spec: Any, attr: str, flag: str) -> Any:
    """``spec.attr``, or ``InputError`` saying which option the dataset needs (for knowledge adapters)."""
    value = getattr(spec, attr)
    if value is None:
        raise InputError(f"dataset {spec.name}: needs {flag}")
    return value
