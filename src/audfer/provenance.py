"""What a K.csv or a pos-weight table was computed from, in a sidecar ``<file>.provenance.json``.

``audfer knowledge`` and ``audfer pos-weights`` write it next to their output: the dataset, fold and split
(when the command knew them), the number of clips and a SHA-256 of their sorted ids, and the ids
themselves (so that a run can check exactly which clips went in). ``audfer train`` / ``cv`` refuse a K or
a pos-weight table whose clips include clips of the run's test split (``au.allow_test_overlap=true``
accepts it, for deliberate use, and the run records it), and warn when a file has no sidecar.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from audfer.errors import InputError
from audfer.files import write_json

__all__ = ["sidecar", "write_provenance", "read_provenance", "ids_digest"]


def sidecar(path: str | Path) -> Path:
    """The provenance sidecar of ``path``: ``<path>.provenance.json``."""
    path = Path(path)
    return path.with_name(path.name + ".provenance.json")


def ids_digest(ids: Iterable[object]) -> str:
    """SHA-256 of the sorted clip ids, one per line: the same set of clips gives the same digest."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()


def write_provenance(
    path: str | Path,
    *,
    what: str,
    clip_ids: Iterable[object],
    dataset: str | None = None,
    fold: int | None = None,
    split: str | None = None,
    source: str | None = None,
    extra: dict | None = None,
) -> Path:
    """Write the sidecar of ``path`` (atomically). ``extra``: more facts, e.g. ``au_source`` (which AU tool,
    which AUs it lacks) and ``unmeasured_aus`` of a K (read back by ``audfer knowledge --combine``)."""
    ids = sorted({str(i) for i in clip_ids})
    record = {
        "what": what,
        "dataset": dataset,
        "fold": fold,
        "split": split,
        "source": source,
        **(extra or {}),
        "n_clips": len(ids),
        "clip_ids_sha256": ids_digest(ids),
        "clip_ids": ids,
    }
    out = sidecar(path)
    write_json(record, out)
    return out


def read_provenance(path: str | Path) -> dict | None:
    """The sidecar of ``path`` as a dict; None when there is none (``InputError`` when it is unreadable)."""
    side = sidecar(path)
    if not side.is_file():
        return None
    try:
        record = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{side}: unreadable provenance sidecar ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("clip_ids"), list):
        raise InputError(f"{side}: not a provenance sidecar (expected a clip_ids list)")
    if ids_digest(record["clip_ids"]) != record.get("clip_ids_sha256"):
        raise InputError(f"{side}: clip ids do not match their recorded SHA-256 (edited by hand?)")
    return record
