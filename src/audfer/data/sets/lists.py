"""Any dataset as train / test list files, the form other DFER projects ship (Former-DFER, MAE-DFER):
``<dir> [<num_frames>] <label>`` lines (``data.train_list`` / ``data.test_list``), the listed folders re-rooted under
``data.root``. The label ids mean what ``data.class_order`` says (``audfer.data.datasets.list_label_map``); 7 classes
or MAFW's 11. Clip id: the listed folder's name. K is built from a list dataset as ``clips`` (a clip_labels.csv)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audfer.data.registry import register_dataset
from audfer.data.sets.mafw import MAFW
from audfer.errors import ConfigError, InputError


def split(root: Path, d: Any, part: str) -> Any:
    """The clips of ``d.train_list`` or ``d.test_list``."""
    from audfer.data.datasets import list_index

    lst = d.train_list if part == "train" else d.test_list
    if lst is None:
        raise InputError(f"config: data.{part}_list is not set (dataset: list)")
    return list_index(lst, root, num_classes=d.classes, class_order=d.class_order, on_missing=d.on_missing)


def check(d: Any) -> None:
    """A list's label ids have no meaning of their own: ``data.class_order`` must say it."""
    if d.class_order is None:
        raise ConfigError(
            "config: data.class_order is not set: a list dataset must say what its label ids mean "
            "(dfew7, mafw11 or the class names in id order)"
        )


LIST = register_dataset(
    "list",
    split,
    folds=None,
    description="any dataset as train / test list files (clip path, label)",
    class_order=MAFW.class_order,
    check=check,
)
