"""Every file that carries a provenance sidecar is written here, whichever entry point asks (``audfer`` commands, the
demo, a user's Python): video AU labels (Eq. 4), pos-weights (Eq. 6-8), K (§3.1) for one dataset, and K combined
from several. Each kind records one fixed set of fields (``FIELDS``), so a run that reads the file back
(``engine.datamodule``: the test-split leak check, the AU source) finds the same facts whoever wrote it.

The sidecar format itself (``<file>.provenance.json``, clip ids and their SHA-256) is ``audfer.provenance``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audfer import __version__
from audfer.au.folder import AUFolder
from audfer.hints import PathLike
from audfer.io import expression_table, write_csv
from audfer.method.knowledge import KnowledgeResult
from audfer.method.labels import PosWeights
from audfer.provenance import read_provenance, write_provenance
from audfer.vocab import AUS, EXPRESSIONS

__all__ = [
    "FIELDS",
    "write_au_labels",
    "write_pos_weights",
    "write_preset_pos_weights",
    "write_knowledge",
    "write_combined_knowledge",
    "write_run_table",
    "au_source_facts",
]

#: The facts each kind of artifact records besides the common ``what, dataset, fold, split, source, audfer_version``
#: and the clip ids (``n_clips, clip_ids_sha256, clip_ids``).
FIELDS: dict[str, tuple[str, ...]] = {
    "video AU labels": ("au_source", "known_labels_per_au"),
    "pos-weights": ("strategy", "minor_classes", "preset", "unknown_aus", "filled_cells", "inputs"),
    "knowledge": ("au_source", "unmeasured_aus", "inputs", "frame_filter"),
}


def _version() -> str:

    return __version__


def _write(
    table: pl.DataFrame,
    out: PathLike,
    what: str,
    clip_ids: Iterable[object],
    *,
    dataset: str | None,
    fold: int | None,
    split: str | None,
    source: str | None,
    facts: dict[str, Any],
) -> Path:
    """The table, then its sidecar with exactly the common fields and ``FIELDS[what]`` (a missing fact is null)."""
    unknown = set(facts) - set(FIELDS[what])
    assert not unknown, f"{what}: undeclared provenance field(s) {sorted(unknown)}"
    out = Path(out)
    write_csv(table, out)
    write_provenance(
        out,
        what=what,
        clip_ids=clip_ids,
        dataset=dataset,
        fold=fold,
        split=split,
        source=source,
        extra={"audfer_version": _version(), **{k: facts.get(k) for k in FIELDS[what]}},
    )
    return out


def au_source_facts(folder: AUFolder) -> dict[str, Any]:
    """Which AU tool(s) wrote a folder, which AUs they lack (masked), and how many clips came from each tool."""
    avail = folder.availability.as_dict()
    counts = list(folder.sources.values())
    return {**avail, "clips_per_source": {s: counts.count(s) for s in avail["sources"]}}


def write_au_labels(
    table: pl.DataFrame,
    out: PathLike,
    *,
    folder: AUFolder,
    source: str | None,
    dataset: str | None = None,
) -> Path:
    """``video_au_labels.csv`` (Eq. 4) of an AU folder, with the folder's AU source and the known labels per AU."""
    return _write(
        table,
        out,
        "video AU labels",
        table["clip_id"].to_list(),
        dataset=dataset,
        fold=None,
        split=None,
        source=source,
        facts={
            "au_source": au_source_facts(folder),
            "known_labels_per_au": {a: int(table[a].is_not_null().sum()) for a in AUS},
        },
    )


def write_pos_weights(
    pw: PosWeights,
    out: PathLike,
    *,
    source: str | None,
    dataset: str | None = None,
    fold: int | None = None,
    split: str | None = None,
) -> Path:
    """A pos-weight table (Eq. 6-8) counted from clips, with the clips counted, the strategy, the minor classes, the
    AUs without any known label and the cells set by the bounded rule."""
    return _write(
        pw.table(),
        out,
        "pos-weights",
        pw.clip_ids,
        dataset=dataset,
        fold=fold,
        split=split,
        source=source,
        facts={
            "strategy": pw.strategy,
            "minor_classes": [EXPRESSIONS[i] for i in pw.minor],
            "unknown_aus": pw.unknown_aus,
            "filled_cells": pw.filled,
        },
    )


def write_preset_pos_weights(values: np.ndarray, out: PathLike, *, preset: str, strategy: str) -> Path:
    """One of the authors' published pos-weight tables (``labels.official_pos_weights``); no clip is known to have
    gone in, so the sidecar lists none and names the preset."""
    return _write(
        expression_table(values),
        out,
        "pos-weights",
        [],
        dataset=preset,
        fold=None,
        split=None,
        source=f"the authors' published {preset} table",
        facts={"strategy": strategy, "preset": preset},
    )


def write_knowledge(
    result: KnowledgeResult,
    out: PathLike,
    *,
    dataset: str | None,
    fold: int | None = None,
    split: str | None = None,
    source: str | None = None,
    frame_filter: dict[str, Any] | None = None,
    filter_clips: Iterable[object] = (),
) -> Path:
    """K of one dataset (§3.1) with the clips that contributed, its AU source and the columns that are fills. With
    the θ filter: ``frame_filter`` (what it kept and dropped, the model that made the probabilities) and
    ``filter_clips``, the clips that model was trained on, recorded among K's clips (the test-leak check sees them)."""
    return _write(
        result.table(),
        out,
        "knowledge",
        sorted({*map(str, result.clip_ids), *map(str, filter_clips)}),
        dataset=dataset,
        fold=fold,
        split=split,
        source=source,
        facts={"au_source": result.au_source, "unmeasured_aus": result.unmeasured, "frame_filter": frame_filter},
    )


def write_combined_knowledge(
    matrix: np.ndarray, out: PathLike, *, inputs: Sequence[PathLike], measured: Sequence[np.ndarray | None]
) -> Path:
    """K combined from several (``knowledge.combine_knowledge``): its clips are the union of the inputs' recorded
    clips, and ``inputs`` names each input file with what its own sidecar said (null where it has none, so a run
    can tell that its leak check is incomplete)."""
    records = [read_provenance(Path(p)) for p in inputs]
    clip_ids = sorted({str(c) for r in records if r is not None for c in r["clip_ids"]})
    datasets = [str(r.get("dataset")) for r in records if r is not None and r.get("dataset")]
    unmeasured = [a for j, a in enumerate(AUS) if not any(m is None or bool(m[j]) for m in measured)]
    return _write(
        expression_table(matrix),
        out,
        "knowledge",
        clip_ids,
        dataset="+".join(datasets) or None,
        fold=None,
        split=None,
        source="combined",
        facts={
            "unmeasured_aus": unmeasured,
            "inputs": [
                {
                    "file": str(p),
                    "provenance": None if r is None else {k: v for k, v in r.items() if k != "clip_ids"},
                }
                for p, r in zip(inputs, records)
            ],
        },
    )


def write_run_table(
    what: str,
    values: np.ndarray,
    out: PathLike,
    *,
    setting: str,
    source_file: str | None,
    dataset: str | None,
    fold: int | None,
    split: str | None,
) -> Path:
    """The K or pos-weights a run trained with (``audfer package``): the clips and facts of the file it read (its
    own sidecar, named in ``inputs``), or, when the run made them itself (the paper's matrix, a preset, counting on
    its training split), what ``setting`` produced them and no clip ids."""
    record = read_provenance(Path(source_file)) if source_file and Path(source_file).is_file() else None
    facts = {k: record.get(k) for k in FIELDS[what] if k != "inputs"} if record else {}
    if source_file:
        facts["inputs"] = [
            {
                "file": source_file,
                "provenance": None if record is None else {k: v for k, v in record.items() if k != "clip_ids"},
            }
        ]
    return _write(
        expression_table(values),
        out,
        what,
        record["clip_ids"] if record else [],
        dataset=dataset,
        fold=fold,
        split=split,
        source=f"the run's {setting}",
        facts=facts,
    )
