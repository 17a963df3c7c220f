"""``audfer au-labels`` as one call: video AU labels (Eq. 4) of a folder of AU files with their provenance, copied from
the labels cache (``au.labels_cache``) when the folder and the options are as before, computed otherwise
(``tasks.prepare.au_labels``). This module loads no table library until it has to compute.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from audfer.au.labels_cache import folder_state, lookup, store
from audfer.files import write_bytes, write_json
from audfer.hints import Log, PathLike
from audfer.provenance import sidecar

__all__ = ["au_labels_file"]


def au_labels_file(
    au_dir: PathLike,
    out: PathLike,
    *,
    min_confidence: float | None = None,
    source: str = "auto",
    mapping: PathLike | None = None,
    allow_mixed: bool = False,
    face_id: int | None = None,
    strict: bool = False,
    on_error: str = "raise",
    cache: bool = True,
    cache_dir: PathLike | None = None,
    log: Log = print,
) -> str:
    """Write ``out`` (``clip_id,n_frames,n_valid,AU01..AU45``) and its provenance sidecar; returns the summary line.
    The result is the same from the cache or computed (tested); ``cache=False`` neither reads nor writes caches."""
    out = Path(out)
    options: dict[str, Any] = {
        "min_confidence": min_confidence,
        "source": source,
        "mapping": None if mapping is None else str(mapping),
        "allow_mixed": allow_mixed,
        "face_id": face_id,
        "strict": strict,
        "on_error": on_error,
    }
    if cache and Path(au_dir).is_dir():
        hit = lookup(au_dir, options, cache_dir)
        if hit is not None:
            data, record = hit
            for clip, reason in record["skipped"]:
                log(f"skipped {clip}: {reason}")
            write_bytes(data, out)
            write_json({**record["sidecar"], "source": str(au_dir)}, sidecar(out))
            summary = re.sub(r" \(\d+ clips from cache\)", "", record["summary"])  # what the first read said
            return f"wrote {out}: {summary} (copied from the labels cache: no AU file changed, none read)"
    state = folder_state(au_dir) if cache and Path(au_dir).is_dir() else []  # no folder: the reader says so
    from audfer.tasks.prepare import au_labels  # computing needs the table libraries

    written = au_labels(
        au_dir,
        out,
        min_confidence=min_confidence,
        source=source,
        mapping=mapping,
        allow_mixed=allow_mixed,
        face_id=face_id,
        strict=strict,
        on_error=on_error,
        cache=cache,
        cache_dir=cache_dir,
        log=log,
    )
    if cache:
        record = {
            "sidecar": json.loads(sidecar(out).read_text()),
            "summary": written.summary,
            "skipped": written.skipped,
        }
        store(au_dir, options, cache_dir, out, record, state)
    return f"wrote {out}: {written.summary}"
