"""The AU side of a run, prepared as files: video AU labels (Eq. 4), pos-weights (Eq. 6-8) and K (§3.1: one dataset,
several combined, or a config listing several), each written with its provenance (``tasks.artifacts``). One code path
for ``audfer au-labels`` / ``pos-weights`` / ``knowledge``, the demo and Python users; each returns what it computed
and a one-line summary for the caller to print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audfer.au.folder import AUFolder, read_au_dir
from audfer.au.sources import read_mapping_file
from audfer.engine.frame_probs import frame_probabilities
from audfer.errors import AudferError, InputError
from audfer.evaluation.reports import plot_knowledge
from audfer.hints import Log, PathLike
from audfer.io import read_clip_labels, read_expression_table
from audfer.method.dataset_knowledge import (
    DatasetSpec,
    KnowledgeConfig,
    filter_facts,
    filter_lines,
    filter_model_overrides,
    knowledge_for_dataset,
    measured_from_sidecar,
)
from audfer.method.knowledge import KnowledgeResult, combine_knowledge
from audfer.method.labels import (
    PosWeights,
    official_pos_weights,
    pos_weights,
    read_au_labels,
    video_au_labels,
    with_clips,
)
from audfer.tasks.artifacts import (
    write_au_labels,
    write_combined_knowledge,
    write_knowledge,
    write_pos_weights,
    write_preset_pos_weights,
)
from audfer.vocab import AUS, EXPRESSIONS

__all__ = [
    "read_folder",
    "au_labels",
    "WrittenLabels",
    "pos_weights_file",
    "preset_pos_weights_file",
    "knowledge_file",
    "combined_knowledge_file",
    "knowledge_from_config",
    "source_line",
]


def source_line(avail: dict[str, Any] | None) -> str:
    """The AU source of a folder in words: its tool(s) and the AUs they lack (masked downstream)."""
    if not avail:
        return "AU source unknown"
    return f"AU source {'+'.join(avail['sources'])}; unknown (masked) AUs: {', '.join(avail['masked_aus']) or 'none'}"


def read_folder(
    au_dir: PathLike,
    *,
    source: str = "auto",
    mapping: PathLike | None = None,
    allow_mixed: bool = False,
    reduce: Any = None,
    log: Log = print,
    **reader_options: Any,
) -> AUFolder:
    """``read_au_dir`` with a mapping file (``--source table``); skipped files are logged one per line."""
    if mapping is not None and source not in ("auto", "table"):
        raise AudferError(f"an AU mapping (--mapping) is for source table, not {source}")
    folder = read_au_dir(
        au_dir,
        source=source,
        mapping=read_mapping_file(mapping) if mapping is not None else None,
        allow_mixed=allow_mixed,
        reduce=reduce,
        **reader_options,
    )
    for clip, reason in folder.skipped:
        log(f"skipped {clip}: {reason}")
    return folder


@dataclass(frozen=True)
class WrittenLabels:
    """What ``au_labels`` wrote: the table, a summary of what was read (clips, frames, AU source, clips without a valid
    frame) and the files skipped as unreadable."""

    table: pl.DataFrame
    summary: str
    skipped: list[tuple[str, str]]


def au_labels(
    au_dir: PathLike, out: PathLike, *, min_confidence: float | None = None, log: Log = print, **read_options: Any
) -> WrittenLabels:
    """``video_au_labels.csv`` of a folder of per-clip AU files (Eq. 4), computed chunk by chunk as the files are read
    (the folder's frames are never held whole: ``benchmarks/bench_scale.py``)."""
    folder = read_folder(
        au_dir, reduce=lambda frames: video_au_labels(frames, min_confidence=min_confidence), log=log, **read_options
    )
    table = with_clips(folder.reduced if folder.reduced is not None else video_au_labels(folder.frames), folder.clips)
    write_au_labels(table, out, folder=folder, source=str(au_dir))
    empty = table.filter(table["n_valid"] == 0)["clip_id"].to_list()
    shown = f": {', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''}" if empty else ""
    summary = (
        f"{table.height} clips, {folder.n_frames} frames ({folder.from_cache} clips from cache); "
        f"{source_line(folder.availability.as_dict())}; {len(empty)} clip(s) without a valid frame keep empty AU "
        f"labels{shown}"
    )
    return WrittenLabels(table, summary, list(folder.skipped))


def pos_weights_file(
    au_labels_csv: PathLike, labels_csv: PathLike, strategy: str, out: PathLike, *, minor: Sequence[str] | None = None
) -> tuple[PosWeights, str]:
    """Pos-weights (Eq. 6-8) counted from ``video_au_labels.csv`` and ``clip_labels.csv``, written to ``out``."""
    au, clips = read_au_labels(au_labels_csv), read_clip_labels(labels_csv)
    pw = pos_weights(au, clips, strategy, minor=list(minor) if minor else None)
    if clips.height and not pw.clip_ids:
        raise InputError(
            f"{labels_csv}: no clip id has known AU labels in {au_labels_csv} (labels e.g. "
            f"{', '.join(clips['clip_id'].head(3).to_list())}; AU labels e.g. "
            f"{', '.join(au['clip_id'].head(3).to_list()) or '-'}): the two files do not describe the same clips"
        )
    write_pos_weights(pw, out, source=str(labels_csv))
    return pw, (
        f"wrote {out}: {strategy} from {int(pw.class_counts.sum())} clips; {len(pw.filled)} cell(s) set by "
        f"the bounded rule, capped at 5 x the AU's global weight or neutral (listed in the provenance); AUs without any known label "
        f"(weight 1.0, masked in the loss): {', '.join(pw.unknown_aus) or 'none'}; minor classes "
        f"{', '.join(EXPRESSIONS[i] for i in pw.minor) or 'none'}; not counted: {pw.n_missing_au} labelled clip(s) "
        f"without valid AU labels, {pw.n_unlabelled} AU-labelled clip(s) without an expression label"
    )


def preset_pos_weights_file(preset: str, strategy: str, out: PathLike) -> tuple[np.ndarray, str]:
    """One of the authors' published pos-weight tables, written to ``out``."""
    values = official_pos_weights(preset, strategy)
    write_preset_pos_weights(values, out, preset=preset, strategy=strategy)
    return values, f"wrote {out}: official {preset} {strategy} table"


def _write_knowledge(
    spec: DatasetSpec, out: PathLike, *, log: Log = print, **reader_options: Any
) -> tuple[KnowledgeResult, dict[str, int]]:
    from dataclasses import replace

    if spec.filter_checkpoint is not None:  # the base model's frame probabilities first, beside K (resumable)
        probs = Path(out).with_name(f"{Path(out).stem}.frame_probs.csv")
        spec = replace(spec, frame_probs=make_frame_probs(spec, probs, log=log), filter_checkpoint=None)
    result, counts = knowledge_for_dataset(spec, **reader_options)
    facts, trained = filter_facts(spec, result)
    write_knowledge(
        result,
        out,
        dataset=spec.name,
        fold=spec.used_fold,
        split=spec.split,
        source=spec.source_path,
        frame_filter=facts,
        filter_clips=trained,
    )
    return result, counts


def knowledge_file(
    spec: DatasetSpec, out: PathLike, *, log: Log = print, **reader_options: Any
) -> tuple[KnowledgeResult, str]:
    """K of one dataset (§3.1), written to ``out`` with the split and fold its labels came from."""
    result, counts = _write_knowledge(spec, out, log=log, **reader_options)
    return result, (
        f"wrote {out}: "
        + "; ".join(f"{k} {v}" for k, v in counts.items())
        + f"; {source_line(result.au_source)}; K columns not measured (filled with the mean, §3.1 AU28 rule): "
        f"{', '.join(result.unmeasured)}"
        + "".join("\n" + line for line in filter_lines(result.filter_report, spec.theta))
    )


@dataclass(frozen=True)
class CombinedKnowledge:
    """K combined from several: the matrix and the AUs measured by none of the inputs."""

    matrix: np.ndarray
    unmeasured: list[str]


def combined_knowledge_file(
    inputs: Sequence[PathLike], out: PathLike, *, shift: float | str = 2.5
) -> tuple[CombinedKnowledge, str]:
    """C = sigmoid(Σ K_d − S) over K.csv files (``knowledge.combine_knowledge``; each input's measured AUs from its
    sidecar), written to ``out`` with every input's provenance."""
    measured = [measured_from_sidecar(Path(p)) for p in inputs]
    matrix = combine_knowledge([read_expression_table(p, what="knowledge matrix") for p in inputs], shift, measured)
    write_combined_knowledge(matrix, out, inputs=inputs, measured=measured)
    unmeasured = [a for j, a in enumerate(AUS) if not any(m is None or m[j] for m in measured)]
    partial = [
        f"{a} ({sum(m is None or m[j] for m in measured)}/{len(measured)})"
        for j, a in enumerate(AUS)
        if not all(m is None or m[j] for m in measured)
    ]
    return CombinedKnowledge(matrix, unmeasured), (
        f"wrote {out}: combined {len(inputs)} matrices with shift {shift}; AUs measured by only some "
        f"sources (combined over those, shift rescaled): {', '.join(partial) or 'none'}"
    )


def knowledge_from_config(config: KnowledgeConfig, *, log: Log = print) -> CombinedKnowledge:
    """Every dataset of a knowledge config (``dataset_knowledge.parse_knowledge_config``): each K written beside the
    combined one (``<out stem>_<label>.csv``), then the combination and its Fig. 4 heatmap."""
    paths = []
    for spec in config.datasets:
        path = config.out.with_name(f"{config.out.stem}_{spec.label}{config.out.suffix}")
        result, counts = _write_knowledge(spec, path, log=log)
        log(
            f"{spec.label}: "
            + "; ".join(f"{k} {v}" for k, v in counts.items())
            + f"; unmeasured K columns {', '.join(result.unmeasured)} -> {path}"
        )
        for line in filter_lines(result.filter_report, spec.theta):
            log(line)
        paths.append(path)
    combined, line = combined_knowledge_file(paths, config.out, shift=config.shift)
    log(line)
    if config.heatmap is not None:
        labels = ", ".join(s.label for s in config.datasets)
        plot_knowledge(
            combined.matrix, config.heatmap, title=f"AU-expression knowledge ({labels})", unmeasured=combined.unmeasured
        )
        log(f"heatmap -> {config.heatmap}")
    return combined


def make_frame_probs(spec: DatasetSpec, out: str | Path, *, log: Any = print, **options: Any) -> Path:
    """The filter model's frame probabilities for ``spec`` (``engine.frame_probs.frame_probabilities`` on the split the
    labels come from: ``train``, or ``all`` with ``include_test``), written to ``out`` (resumed when interrupted)."""
    assert spec.filter_checkpoint is not None
    frame_probabilities(
        spec.filter_checkpoint,
        filter_model_overrides(spec),
        out=out,
        split="all" if spec.include_test or spec.split is None else "train",
        log=log,
        **options,
    )
    return Path(out)
