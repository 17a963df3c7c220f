"""The run folder's layout, in one place: every file and folder a run writes or reads, how a run is found from a
checkpoint, and the evaluation folders' names. Nothing else in audfer spells these names (``tests/test_run_layout.py``
fails on one); a module asks a ``RunLayout`` for the path.

One run (``audfer train``)::

    <run>/config.yaml            the resolved config          <run>/init.json        the initialisation record
    <run>/selection.json         the checkpoint evaluated     <run>/changes.json     settings changed on --resume
    <run>/plan.json              ``train --dry-run``          <run>/epochs.csv       one row per finished epoch
    <run>/.audfer.lock           held while a command works   <run>/logs/metrics.csv Lightning's CSV log
    <run>/tensorboard/           when asked for               <run>/checkpoints/     last.ckpt, previous.ckpt, best.ckpt
    <run>/eval/                  metrics.json, predictions.csv, features.npy of the selected checkpoint on the test split

A sweep's base folder: ``cv`` puts one run per fold in ``fold_<k>/`` and writes ``cv.json``, ``cv.csv``; ``ablate``
puts runs in ``<strategy>/seed_<s>/`` and ``lambda_<x>/seed_<s>/`` and writes ``ablation.json`` and its figures;
``study`` puts runs in ``size_<f>/baseline/seed_<s>/`` and ``size_<f>/<variant>/lambda_<x>/seed_<s>/`` and writes
``study.csv``, ``effects.csv``, ``contrasts.csv``, ``study.json``, ``effect.png``, ``knowledge/`` and ``synth/``; each
writes ``report.md``.

**The evaluation folder's name, one rule**: ``eval/`` is the run's own result, the selected checkpoint on the test
split, written once by ``train`` and read by ``package``, ``cv``, ``ablate``, ``study`` and the demo;
``audfer evaluate`` never overwrites it and writes ``eval-<split>/`` (beside the checkpoint's ``checkpoints/``
folder, or in the working directory for a model package). Run folders from every audfer version follow it.

**A run from a checkpoint, one rule** (``RunLayout.of``): a checkpoint in a folder named ``checkpoints`` belongs to
the run folder above it; a folder with a ``checkpoints/`` folder and no package ``config.json`` is a run folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

#: The names below are the layout; each is used only through ``RunLayout``.
CONFIG = "config.yaml"
INIT = "init.json"
SELECTION = "selection.json"
CHANGES = "changes.json"
PLAN = "plan.json"
EPOCHS = "epochs.csv"
LOCK = ".audfer.lock"
LOGS = "logs"
LOG_CSV = "metrics.csv"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
LAST = "last.ckpt"
PREVIOUS = "previous.ckpt"
BEST_STEM = "best"  # Lightning's ModelCheckpoint adds the suffix
CKPT_SUFFIX = ".ckpt"
PARTIAL = ".last.ckpt.partial"
EVAL = "eval"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
FEATURES = "features.npy"
REPORT = "report.md"
CV_JSON, CV_CSV = "cv.json", "cv.csv"
ABLATION_JSON = "ablation.json"
STUDY_SYNTH = "synth"
STUDY_CSV, EFFECTS_CSV, CONTRASTS_CSV, STUDY_JSON = "study.csv", "effects.csv", "contrasts.csv", "study.json"
STUDY_KNOWLEDGE = "knowledge"
#: A model package's marker file (``weights.package``): a folder holding it is a package, never a run.
PACKAGE_MARKER = "config.json"


@dataclass(frozen=True)
class RunLayout:
    """The paths of the run (or sweep) folder ``root``; building one touches no file."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # --- how a run is found -----------------------------------------------------------------------------------
    @classmethod
    def of(cls, path: str | os.PathLike) -> RunLayout | None:
        """The run ``path`` belongs to: a checkpoint in ``<run>/checkpoints/`` -> ``<run>``; a folder with a
        ``checkpoints/`` folder (and no package ``config.json``) -> itself; anything else (a checkpoint elsewhere,
        a model package, a Hub id) -> None."""
        p = Path(path)
        if p.parent.name == CHECKPOINTS and not p.is_dir():
            return cls(p.parent.parent)
        if p.is_dir() and (p / CHECKPOINTS).is_dir() and not (p / PACKAGE_MARKER).is_file():
            return cls(p)
        return None

    @classmethod
    def around(cls, checkpoint: str | os.PathLike) -> RunLayout:
        """Where a checkpoint's run records are read from and its ``eval-<split>/`` goes: its run (``of``), else,
        for a checkpoint outside any run, the folder above the checkpoint's own folder (as audfer always did)."""
        return cls.of(checkpoint) or cls(Path(checkpoint).parent.parent)

    def is_complete(self) -> bool:
        """Whether the folder holds what a finished run's readers need: its ``config.yaml`` and ``checkpoints/``."""
        return self.config.is_file() and self.checkpoints.is_dir()

    def selected_checkpoint(self) -> Path:
        """The checkpoint the run selected (``selection.json``'s, relative to the run), else ``last.ckpt``; the path
        may not exist (a run that has not finished)."""
        try:
            chosen = json.loads(self.selection.read_text()).get("checkpoint")
        except (OSError, ValueError, AttributeError):
            chosen = None
        return self.root / chosen if isinstance(chosen, str) and chosen else self.last

    def relative(self, path: Path) -> str:
        """``path`` as recorded in the run's files (``selection.json``'s checkpoint): relative to the run folder."""
        return str(Path(path).relative_to(self.root))

    # --- one run ----------------------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        """The resolved config the run trained with (``config.yaml``; a resume compares against it)."""
        return self.root / CONFIG

    @property
    def init(self) -> Path:
        """The initialisation record (``init.json``): pretrained file and load report, or from scratch."""
        return self.root / INIT

    @property
    def selection(self) -> Path:
        """Which checkpoint was evaluated, by which rule, from which epoch, with its SHA-256 (``selection.json``)."""
        return self.root / SELECTION

    @property
    def changes(self) -> Path:
        """Settings changed on a ``--resume --accept-changes``, with the epoch (``changes.json``)."""
        return self.root / CHANGES

    @property
    def plan(self) -> Path:
        """``audfer train --dry-run``'s plan (``plan.json``)."""
        return self.root / PLAN

    @property
    def epochs(self) -> Path:
        """One row per finished epoch, written as it ends (``epochs.csv``)."""
        return self.root / EPOCHS

    @property
    def lock(self) -> Path:
        """The run lock a command holds while it works in the folder (``engine.runlock``)."""
        return self.root / LOCK

    @property
    def logs(self) -> Path:
        """Lightning's CSV logger folder (the logger is given ``root`` and this folder's name)."""
        return self.root / LOGS

    @property
    def log_csv(self) -> Path:
        """Lightning's CSV log (``logs/metrics.csv``)."""
        return self.logs / LOG_CSV

    @property
    def tensorboard(self) -> Path:
        """TensorBoard's log folder, when ``train.loggers`` asks for it."""
        return self.root / TENSORBOARD

    @property
    def checkpoints(self) -> Path:
        """The checkpoints folder; a checkpoint in it belongs to this run (``RunLayout.of``)."""
        return self.root / CHECKPOINTS

    @property
    def last(self) -> Path:
        """The last finished epoch (``--resume`` continues from it)."""
        return checkpoint_file(self.checkpoints, "last")

    @property
    def previous(self) -> Path:
        """The ``last.ckpt`` before the current one (the fallback of a resume when ``last.ckpt`` is damaged)."""
        return checkpoint_file(self.checkpoints, "previous")

    @property
    def best(self) -> Path:
        """The best epoch on the watched split (``best-val`` / ``best-test`` selection only)."""
        return checkpoint_file(self.checkpoints, "best")

    def checkpoint_files(self) -> list[Path]:
        """The checkpoints in ``checkpoints/``, sorted by name."""
        return sorted(self.checkpoints.glob(f"*{CKPT_SUFFIX}"))

    @property
    def evaluation(self) -> Path:
        """``eval/``: the run's own evaluation (selected checkpoint, test split), written by ``train``."""
        return self.root / EVAL

    def reevaluation(self, split: str) -> Path:
        """``eval-<split>/``: where ``audfer evaluate`` writes by default, never over ``eval/``."""
        return self.root / evaluation_name(split)

    # --- sweeps -----------------------------------------------------------------------------------------------
    @property
    def report(self) -> Path:
        """The report of a sweep or study (``report.md``)."""
        return self.root / REPORT

    def fold(self, k: int) -> RunLayout:
        """``cv``'s run of fold ``k``."""
        return RunLayout(self.root / f"fold_{k}")

    def folds(self) -> list[RunLayout]:
        """The fold runs of a ``cv`` folder, as they are on disk (sorted by name)."""
        return [RunLayout(p) for p in sorted(self.root.glob("fold_*"))]

    @property
    def cv_json(self) -> Path:
        """``cv``'s aggregate and per-fold metrics."""
        return self.root / CV_JSON

    @property
    def cv_csv(self) -> Path:
        """``cv``'s per-fold table."""
        return self.root / CV_CSV

    def cv_parent(self) -> RunLayout | None:
        """The ``cv`` folder this run is a fold of, or None."""
        return RunLayout(self.root.parent) if self.root.name.startswith("fold_") else None

    def variant(self, *parts: str, seed: int | None = None) -> RunLayout:
        """A sweep's run below this folder: ``<parts...>/seed_<seed>`` (``ablate``: ``<strategy>/seed_<s>``)."""
        return RunLayout(self.root.joinpath(*parts, *([] if seed is None else [f"seed_{seed}"])))

    def lambda_run(self, lam: float, seed: int) -> RunLayout:
        """``ablate``'s λ-sweep run: ``lambda_<λ>/seed_<s>``."""
        return self.variant(f"lambda_{lam:g}", seed=seed)

    def study_run(self, size: float, variant: str | None, lam: float | None, seed: int) -> RunLayout:
        """A study's cell: ``size_<f>/baseline/seed_<s>`` or ``size_<f>/<variant>/lambda_<λ>/seed_<s>``."""
        cell = ["baseline"] if variant is None else [variant, f"lambda_{lam:g}"]
        return self.variant(f"size_{size:g}", *cell, seed=seed)

    @property
    def ablation_json(self) -> Path:
        """``ablate``'s per-strategy and λ-sweep results."""
        return self.root / ABLATION_JSON

    def figure(self, name: str) -> Path:
        """A report's figure (``knowledge``, ``confusion``, ``tsne``, ``curves``, ``lambda``, ``effect``): PNG."""
        return self.root / f"{name}.png"

    @property
    def study_synth(self) -> Path:
        """A study's rendered synthetic set, when its spec asks for one."""
        return self.root / STUDY_SYNTH

    @property
    def study_csv(self) -> Path:
        """A study's table: one row per run."""
        return self.root / STUDY_CSV

    @property
    def effects_csv(self) -> Path:
        """A study's paired differences per cell."""
        return self.root / EFFECTS_CSV

    @property
    def contrasts_csv(self) -> Path:
        """A study's declared contrasts."""
        return self.root / CONTRASTS_CSV

    @property
    def study_json(self) -> Path:
        """A study's spec, effects, contrasts and wall time."""
        return self.root / STUDY_JSON

    def shuffled_knowledge(self, seed: int) -> Path:
        """A study's K with the seed's row permutation."""
        return self.root / STUDY_KNOWLEDGE / f"K_shuffled_seed_{seed}.csv"


def checkpoint_file(folder: Path, stem: str) -> Path:
    """``<folder>/<stem>.ckpt`` (``last``, ``previous``, ``best``)."""
    return Path(folder) / f"{stem}{CKPT_SUFFIX}"


def partial_checkpoint(folder: Path) -> Path:
    """Where ``last.ckpt``'s next version is written before it replaces it."""
    return Path(folder) / PARTIAL


def evaluation_name(split: str) -> str:
    """``eval-<split>``: the folder name of an ``audfer evaluate`` result (see the module docstring's rule)."""
    return f"{EVAL}-{split}"


def metrics_file(folder: Path) -> Path:
    """An evaluation folder's ``metrics.json``."""
    return Path(folder) / METRICS


def predictions_file(folder: Path) -> Path:
    """An evaluation folder's ``predictions.csv``."""
    return Path(folder) / PREDICTIONS


def features_file(folder: Path) -> Path:
    """An evaluation folder's ``features.npy`` (pooled test features, for t-SNE)."""
    return Path(folder) / FEATURES
