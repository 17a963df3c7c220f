"""A cache of finished video AU labels (Eq. 4): ``audfer au-labels`` on a folder it has seen, with the same options
and no AU file changed, copies its earlier result instead of reading anything. Valid while every ``*.csv`` of the
folder keeps its name, size, modification and status-change time (as the Parquet cache of ``au.folder``; the kernel
moves ``st_ctime_ns`` on every write, so a file rewritten in place with size and mtime put back counts as changed), and for the reader
options, the mapping file's state and the audfer version it was made with. Standard library only: a cached run
loads no table library. The stored labels carry their SHA-256, so a damaged or half-replaced entry is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from audfer.files import write_bytes, write_json

__all__ = ["cache_root", "folder_state", "lookup", "store"]

LABELS_CACHE_VERSION = 2  # 2: file states hold ctime


def cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    """Where audfer's caches live: ``cache_dir``, else ``$AUDFER_CACHE_DIR``, else ``~/.cache/audfer``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("AUDFER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "audfer"


def folder_state(folder: str | os.PathLike[str]) -> list[list[Any]]:
    """``[name, size, mtime_ns, ctime_ns]`` of every ``*.csv`` in ``folder``, sorted by name."""
    with os.scandir(folder) as it:
        found = [
            [e.name, *(lambda s: (s.st_size, s.st_mtime_ns, s.st_ctime_ns))(e.stat())]
            for e in it
            if e.name.endswith(".csv")
        ]
    return sorted(found)


def _entry(folder: str | os.PathLike[str], options: dict[str, Any], cache_dir: str | os.PathLike[str] | None) -> Path:
    from audfer import __version__

    mapping = options.get("mapping")
    if mapping:  # the mapping file's own state is part of the key
        st = os.stat(mapping)
        options = {**options, "mapping": [str(Path(mapping).resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns]}
    blob = json.dumps([LABELS_CACHE_VERSION, __version__, str(Path(folder).resolve()), options], sort_keys=True)
    return cache_root(cache_dir) / "labels" / hashlib.sha1(blob.encode()).hexdigest()[:20]


def lookup(
    folder: str | os.PathLike[str], options: dict[str, Any], cache_dir: str | os.PathLike[str] | None
) -> tuple[bytes, dict[str, Any]] | None:
    """The stored labels CSV and its record (sidecar fields, summary, skipped files), or None when there is none or
    anything changed."""
    entry = _entry(folder, options, cache_dir)
    try:
        record = json.loads((entry / "record.json").read_text())
        if record.get("folder_state") != folder_state(folder):
            return None
        data = (entry / "labels.csv").read_bytes()
    except (OSError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != record.get("labels_sha256"):
        return None
    return data, record


def store(
    folder: str | os.PathLike[str],
    options: dict[str, Any],
    cache_dir: str | os.PathLike[str] | None,
    labels_csv: str | os.PathLike[str],
    record: dict[str, Any],
    state: list[list[Any]],
) -> None:
    """Keep ``labels_csv`` (just written) with ``record`` for the folder ``state`` seen before reading it; a cache
    that cannot be written is skipped (the result does not depend on it)."""
    entry = _entry(folder, options, cache_dir)
    try:
        data = Path(labels_csv).read_bytes()
        write_bytes(data, entry / "labels.csv")
        write_json(
            {**record, "folder_state": state, "labels_sha256": hashlib.sha256(data).hexdigest()}, entry / "record.json"
        )
    except Exception:  # noqa: BLE001 - a cache is optional: a full disk or a read-only home must not fail the run
        return
