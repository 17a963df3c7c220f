"""``audfer package``: a trained model as a self-describing folder that loads anywhere without pickle.

::

    model.safetensors      both heads' tensors (safetensors: no code)
    config.json            model name and sizes, input spec (frames, size, mean/std, sampling), class names in order,
                           AU names, the run's config, where the weights came from, its metrics, audfer version
    K.csv, pos_weights.csv the K (§3.1) and pos-weights (Eq. 6-8) the run trained with, each with its provenance
    README.md              the model card (YAML front matter for the Hub: licence, datasets, model-index metrics)
    model.onnx             optional (``--onnx``), checked against PyTorch

The source is a run folder (its selected checkpoint, ``selection.json``, ``init.json``, ``eval/metrics.json``; a
fold of ``audfer cv`` adds every fold's metrics and their mean ± std), an audfer checkpoint, or a released
fine-tuned checkpoint of a base project with ``model_name`` (M3DFEL / Former-DFER ``state_dict`` with ``module.``
prefixes, MAE-DFER ``model``). ``weights.package`` reads packages back; ``docs/weights.md`` explains publishing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from audfer import __version__
from audfer.config.load import with_defaults
from audfer.config.schema import Config
from audfer.data.registry import dataset as dataset_decl
from audfer.data.registry import dataset_of_classes
from audfer.engine.datamodule import sampling_of, views_at_test
from audfer.engine.runfolder import config_changes
from audfer.errors import AudferError
from audfer.evaluation.metrics import class_names
from audfer.files import atomic_path, check_output_dir, file_sha256, read_yaml, replace_output_dir, write_json
from audfer.hints import Log, PathLike
from audfer.method.knowledge import BUILTIN_KNOWLEDGE
from audfer.models.base import DFERModel
from audfer.models.checkpoint import load_checkpoint, read_weights
from audfer.models.hub import PACKAGE_CONFIG, PACKAGE_WEIGHTS
from audfer.models.registry import create_model, model_entry
from audfer.predict.export import export_checked
from audfer.progress import bar
from audfer.run_layout import RunLayout, metrics_file
from audfer.tasks.artifacts import write_run_table
from audfer.vocab import AUS, EXPRESSIONS
from audfer.weights.package import PACKAGE_FORMAT
from audfer.weights.pretrained import init_label
from audfer.weights.restore import read_run_checkpoint

__all__ = ["Packaged", "package", "CITATION"]

CITATION = """@inproceedings{liu2025audfer,
  title     = {Action Unit Enhance Dynamic Facial Expression Recognition},
  author    = {Liu, Feng and Shi, Chen and Gu, Lingna and Fu, Xiaolan},
  booktitle = {Proceedings of the 33rd ACM International Conference on Multimedia (MM '25)},
  year      = {2025}
}"""


@dataclass(frozen=True)
class Packaged:
    """What ``package`` wrote: the folder and its ``config.json``."""

    out: Path
    config: dict[str, Any]


@dataclass
class _Source:
    model: DFERModel
    cfg: dict[str, Any]
    knowledge: list[Any] | None
    pos_weight: list[Any] | None
    kind: str
    path: Path
    run: Path | None = None


def _run_folder_of(path: Path) -> Path | None:
    """The run folder a checkpoint belongs to, or the folder itself if it is one (``RunLayout.of``), when it has
    what the package reads (``RunLayout.is_complete``)."""
    run = RunLayout.of(path)
    return run.root if run is not None and run.is_complete() else None


def _read_source(source: Path, model_name: str | None, trust_pickle: bool) -> _Source:
    if model_name:  # a released checkpoint of a base project (no AU head, no run config)
        if source.is_dir():
            raise AudferError(f"{source}: --model NAME takes a checkpoint file (a released .pth), not a folder")
        entry = model_entry(model_name)
        weights = read_weights(source, trust_pickle=trust_pickle)  # read once
        head = f"{getattr(entry.builder, 'classifier_name', 'fc')}.weight"
        classes = int(weights.state[head].shape[0]) if head in weights.state else len(EXPRESSIONS)  # 7, or MAFW's 11
        model = create_model(model_name, num_classes=classes, au_head=False)
        load_checkpoint(model, weights)
        trained_on = dataset_of_classes(classes)  # the registered dataset with that many classes (11: MAFW)
        data = {"dataset": trained_on, "classes": classes} if trained_on else {}
        cfg = with_defaults({"model": {"name": model_name}, "au": {"strategy": "none"}, "data": data})
        return _Source(model.eval(), cfg, None, None, f"released {entry.description} checkpoint", source)
    run = _run_folder_of(source)
    ckpt = source
    if source.is_dir():
        if run is None:
            cv = sorted(f.root.name for f in RunLayout(source).folds() if f.root.is_dir())
            layout = RunLayout(source)
            raise AudferError(
                f"{source}: not a run folder (no {layout.config.name} and {layout.checkpoints.name}/)"
                + (f"; a cv folder: package one of its folds ({', '.join(cv)})" if cv else "")
            )
    if run is not None:
        _json(RunLayout(run).selection)  # an unreadable one: one line naming it
        selected = RunLayout(run).selected_checkpoint()
        if source.is_dir():
            ckpt = selected
        elif ckpt.resolve() != selected.resolve():
            run = None  # another checkpoint of the run: its evaluation, selection and card facts are not this one's
    stored = read_run_checkpoint(ckpt, trust_pickle=trust_pickle)
    if run is not None and not _is_runs_checkpoint(ckpt, run, stored.cfg):
        run = None  # a checkpoint copied in from elsewhere: the run's evaluation is not of these weights
    model = stored.build_model()
    return _Source(model, stored.cfg, stored.knowledge, stored.pos_weight, "audfer run", ckpt, run)


def _is_runs_checkpoint(ckpt: Path, run: Path, cfg: dict[str, Any]) -> bool:
    """Whether ``ckpt`` is the checkpoint the run selected and evaluated, by content, not by where it lies: the
    SHA-256 ``selection.json`` records (a run from before it was recorded: the checkpoint's stored config is the
    run's ``config.yaml``, result-affecting settings and ``out`` alike)."""
    selection = _json(RunLayout(run).selection) or {}
    if isinstance(selection.get("sha256"), str):
        return file_sha256(ckpt) == selection["sha256"]
    try:
        stored = read_yaml(RunLayout(run).config, "the run's config (YAML)")
    except AudferError:
        return False
    if not isinstance(stored, dict):
        return False
    own = with_defaults(stored)
    return not config_changes(own, cfg) and Path(str(own.get("out"))).name == Path(str(cfg.get("out"))).name


def _json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError) as exc:
        raise AudferError(f"{path}: unreadable ({exc})") from None


def _cv_of(run: Path | None) -> dict[str, Any] | None:
    """``cv.json`` of the cv this run is a fold of (``<cv>/fold_<k>``), if any."""
    cv = None if run is None else RunLayout(run).cv_parent()
    return None if cv is None else _json(cv.cv_json)


def _metric_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("WAR", f"{100 * m['war']:.2f}"), ("UAR", f"{100 * m['uar']:.2f}")]
    if m.get("macro_f1") is not None:
        rows.append(("macro-F1", f"{100 * m['macro_f1']:.2f}"))
    if m.get("au_f1_mean") is not None:
        rows.append(("AU F1 (mean over known AUs)", f"{100 * m['au_f1_mean']:.2f}"))
    rows.append(("clips", str(m.get("n", "-"))))
    return rows


def _card(
    cfg: Config,
    info: dict[str, Any],
    metrics: dict[str, Any] | None,
    cv: dict[str, Any] | None,
    license_: str,
    name: str,
) -> str:
    dataset = cfg.data.dataset
    has_au = info["model"]["au_head"]
    front: dict[str, Any] = {
        "license": license_,
        "library_name": "audfer",
        "tags": ["audfer", "dynamic-facial-expression-recognition", "action-units", "video-classification"],
        "datasets": [dataset],
        "metrics": ["war", "uar"],
    }
    if metrics is not None:
        front["model-index"] = [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": "video-classification", "name": "Dynamic facial expression recognition"},
                        "dataset": {
                            "name": dataset,
                            "type": dataset,
                            "split": f"{metrics.get('split', 'test')} (fold {metrics.get('fold', cfg.data.fold)})",
                        },
                        "metrics": [
                            {"type": "war", "name": "WAR", "value": float(metrics["war"])},
                            {"type": "uar", "name": "UAR", "value": float(metrics["uar"])},
                        ],
                    }
                ],
            }
        ]
    training = info.get("training") or {}
    sel = training.get("selection") or {}
    au_labels = sel.get("au_labels") or {}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "", f"# {name}", ""]
    lines += [
        f"`{info['model']['name']}` for dynamic facial expression recognition, "
        + (
            "with the AU-DFER AU head (Liu et al., ACM MM 2025): expression and 18 AU probabilities per clip."
            if has_au
            else "without an AU head: expression probabilities only (AU probabilities are not available)."
        ),
        "",
        "## What it was trained on",
        "",
        f"- source: {info['source']['kind']} (`{Path(info['source']['path']).name}`)",
    ]
    if info["source"]["kind"] == "audfer run":
        fold = f", fold {cfg.data.fold}" if dataset_decl(cfg.data.dataset).folds else ""
        lines += [
            f"- data: {dataset}{fold}, training split"
            + (f" ({cfg.data.train_fraction:g} of it)" if cfg.data.train_fraction < 1 else ""),
            f"- recipe: `{cfg.name}`" + (f" (follows {cfg.follows})" if cfg.follows else ""),
            f"- initialisation: {training.get('init_label', 'unknown')}",
            f"- selection: {sel.get('rule', 'unknown')}"
            + (f", epoch {sel['epoch']}" if sel.get("epoch") else "")
            + (f" ({sel['note']})" if sel.get("note") else ""),
            f"- AU loss: strategy {cfg.au.strategy}, λ = {cfg.au.lam:g}, K = {cfg.au.knowledge}, pos-weights = "
            f"{cfg.au.pos_weights}"
            if has_au
            else "- AU loss: none (baseline)",
            f"- AU labels: {', '.join(au_labels.get('sources') or []) or 'unknown source'}; masked (unknown) AUs: "
            f"{', '.join(au_labels.get('masked_aus') or []) or 'none'}"
            if has_au
            else "- AU labels: not used",
        ]
    else:
        lines += ["- converted from a released checkpoint: the base project's own training; audfer did not train it"]
    lines += ["", "## Metrics as evaluated", ""]
    if metrics is None:
        lines += [
            f"Not evaluated by audfer (no `{metrics_file(RunLayout(Path()).evaluation)}`): run "
            "`audfer evaluate <this folder> --data data.root=...`."
        ]
    else:
        lines += [
            f"{metrics.get('dataset', dataset)} {metrics.get('split', 'test')} split, fold {metrics.get('fold', cfg.data.fold)}:",
            "",
            "| metric | value |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in _metric_rows(metrics)],
        ]
        recall = metrics.get("per_class_recall") or {}
        if recall:
            lines += ["", "| class | recall |", "|---|---|"]
            lines += [f"| {c} | {'-' if r is None else f'{100 * r:.2f}'} |" for c, r in recall.items()]
    if cv is not None:
        agg, folds = cv.get("aggregate", {}), cv.get("folds", {})
        lines += [
            "",
            "This model is one fold of a cross-validation; every fold as evaluated:",
            "",
            "| fold | WAR | UAR |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {100 * m['war']:.2f} | {100 * m['uar']:.2f} |" for k, m in folds.items()]
        if "war" in agg:
            lines.append(
                f"| mean ± std | {100 * agg['war']['mean']:.2f} ± {100 * agg['war']['std']:.2f} | "
                f"{100 * agg['uar']['mean']:.2f} ± {100 * agg['uar']['std']:.2f} |"
            )
    spec = info["input"]
    lines += [
        "",
        "## Input",
        "",
        f"{spec['frames']} frames x 3 x {spec['size']} x {spec['size']}, RGB in [0, 1], normalised with mean "
        f"{spec['mean']} and std {spec['std']}; frames sampled `{spec['sampling']}`"
        + (f", {spec['views_at_test']} views averaged at test" if spec["views_at_test"] > 1 else "")
        + ". Faces cropped as the training data were (DFEW-style face crops).",
        "",
        f"Classes in output order: {', '.join(info['classes'])}."
        + (f" AUs: {', '.join(info['aus'])}." if has_au else ""),
        "",
        "## Intended use and limits",
        "",
        "Research on dynamic facial expression recognition from face video. The labels are the dataset's "
        "annotators' judgements of displayed expressions, not of anyone's felt emotion; accuracy differs across "
        "datasets, recording conditions and populations, and was measured only where the metrics above say. Not for "
        "decisions about people (hiring, policing, health, education).",
        "",
        "## How to load",
        "",
        "```python",
        "import audfer",
        'model = audfer.from_pretrained("<this folder or org/name>")',
        "```",
        "",
        "`audfer predict VIDEO --checkpoint <this folder or org/name> --out result.json`; nothing here is unpickled.",
        "",
        "## Licence",
        "",
        f"{license_} (set by whoever packaged it; the training data's own terms apply to the data).",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)


def _older_output(folder: Path) -> set[str] | None:
    """What an ``audfer package`` without the output marker wrote, when its ``config.json`` says it was one."""
    info = _json(folder / PACKAGE_CONFIG) if (folder / PACKAGE_CONFIG).is_file() else None
    if not isinstance(info, dict) or "audfer_version" not in info or "format" not in info:
        return None
    tables = ("K.csv", "pos_weights.csv")
    return {
        PACKAGE_WEIGHTS,
        PACKAGE_CONFIG,
        "README.md",
        "model.onnx",
        *tables,
        *(f"{t}.provenance.json" for t in tables),
    }


#: ``audfer package``'s output folder, as ``files.replace_output_dir`` checks and replaces it.
_OUTPUT: dict[str, Any] = {
    "kind": "package",
    "what": "an earlier `audfer package` output",
    "legacy": _older_output,
    "evidence": PACKAGE_CONFIG,
}


def _save_safetensors(state: dict[str, Any], path: Path) -> None:
    """``safetensors.torch.save_file``, its I/O failures (a full disk) raised as the ``OSError`` they are, so the
    atomic write names the file and keeps the previous one."""
    import errno
    import re

    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(state, str(path), metadata={"format": "pt", "audfer_version": __version__})
    except SafetensorError as exc:
        found = re.search(r"os error (\d+)", str(exc))
        code = int(found.group(1)) if found else errno.EIO
        raise OSError(code, os.strerror(code), str(path)) from None


def package(
    source: PathLike,
    out: PathLike,
    *,
    model_name: str | None = None,
    onnx: bool = False,
    license: str = "other",
    name: str | None = None,
    overwrite: bool = False,
    trust_pickle: bool = False,
    log: Log = print,
) -> Packaged:
    """Write the package of ``source`` (run folder, audfer checkpoint, or with ``model_name`` a released checkpoint)
    into ``out`` (see the module doc). The folder appears whole or not at all; an existing non-empty ``out`` is
    refused unless ``overwrite``, which replaces only an earlier package (``files.replace_output_dir``: never a
    user's folder, nor one holding ``source``; a symlinked ``out`` keeps pointing at the replaced folder)."""
    src, out = Path(source), Path(out)
    output = {**_OUTPUT, "protect": [src]}
    check_output_dir(out, overwrite=overwrite, **output)  # before reading: refused early
    with bar(total=1, desc=f"loading {src.name}", unit="model") as shown:  # stderr, only on a terminal
        got = _read_source(src, model_name, trust_pickle)
        shown.update()
    cfg = Config.from_dict(got.cfg)
    model = got.model
    spec = model.input_spec
    has_au = getattr(model, "au_head", None) is not None
    run = got.run
    layout = RunLayout(run) if run else None
    metrics = _json(metrics_file(layout.evaluation)) if layout else None
    selection = _json(layout.selection) if layout else None
    init = _json(layout.init) if layout else None
    info: dict[str, Any] = {
        "format": PACKAGE_FORMAT,
        "audfer_version": __version__,
        "model": {
            "name": cfg.model.name,
            "kwargs": dict(cfg.model.to_dict()["kwargs"]),
            "num_classes": cfg.num_classes,
            "au_head": has_au,
        },
        "input": {
            "frames": spec.frames,
            "size": spec.size,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "sampling": sampling_of(cfg),
            "views_at_test": views_at_test(cfg),
        },
        "classes": list(class_names(cfg.num_classes)),
        "aus": list(AUS) if has_au else [],
        "knowledge": "K.csv" if got.knowledge is not None else None,
        "pos_weights": "pos_weights.csv" if got.pos_weight is not None else None,
        "config": cfg.to_dict(),
        "source": {"kind": got.kind, "path": str(got.path)},
        "training": None
        if run is None
        else {"selection": selection, "init": init, "init_label": init_label(init) if init else "unknown"},
        "metrics": metrics,
        "license": license,
    }
    title = name or f"{cfg.model.name} {'+ AU head ' if has_au else ''}({cfg.data.dataset}, fold {cfg.data.fold})"
    with replace_output_dir(out, overwrite=overwrite, **output) as tmp:  # whole or not at all; ours only
        trained_on: dict[str, Any] = {"dataset": cfg.data.dataset, "fold": cfg.data.fold, "split": "train"}
        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        with atomic_path(tmp / PACKAGE_WEIGHTS) as part:
            _save_safetensors(state, part)
        if got.knowledge is not None:
            k_file = cfg.au.knowledge if cfg.au.knowledge not in BUILTIN_KNOWLEDGE else None
            write_run_table(
                "knowledge",
                np.asarray(got.knowledge),
                tmp / "K.csv",
                setting=f"au.knowledge={cfg.au.knowledge}",
                source_file=k_file,
                **trained_on,
            )
        if got.pos_weight is not None:
            pw_file = cfg.au.pos_weights if cfg.au.pos_weights not in ("computed", "none", "dfew", "ferv39k") else None
            write_run_table(
                "pos-weights",
                np.asarray(got.pos_weight),
                tmp / "pos_weights.csv",
                setting=f"au.pos_weights={cfg.au.pos_weights} (strategy {cfg.au.strategy})",
                source_file=pw_file,
                **trained_on,
            )
        write_json(info, tmp / PACKAGE_CONFIG)
        with atomic_path(tmp / "README.md") as part:
            part.write_text(_card(cfg, info, metrics, _cv_of(run), license, title))
        if onnx:
            diff = export_checked(model, tmp / "model.onnx")
            log(f"model.onnx: onnxruntime vs PyTorch max abs difference {max(diff.values()):.2e}")
    if not has_au:
        log(f"{out}: no AU head ({got.kind}); its card says so and `predict` gives expression probabilities only")
    log(
        f"wrote {out}: {PACKAGE_WEIGHTS}, {PACKAGE_CONFIG}, README.md"
        + (", K.csv" if got.knowledge is not None else "")
        + (", pos_weights.csv" if got.pos_weight is not None else "")
        + (", model.onnx" if onnx else "")
    )
    return Packaged(out, info)
