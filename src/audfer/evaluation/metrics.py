"""Metrics: WAR, UAR, per-class recall, macro-F1, confusion matrices, per-AU F1 of the AU head.

``WARUAR`` and ``MaskedAUF1`` are torchmetrics ``Metric``s (states summed across DDP processes): a researcher's own
loop, the training module's validation and ``classification_metrics`` (test metrics, the demo) all count with them.

WAR (weighted average recall) = overall accuracy, UAR (unweighted average recall) = mean of the
per-class recalls, as in the paper's Tables 1-3.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import polars as pl
import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassF1Score, MulticlassRecall

from audfer.data.registry import dataset, list_datasets
from audfer.vocab import AUS, EXPRESSIONS, MAFW_CLASSES


def class_names(num_classes: int) -> tuple[str, ...]:
    """The class names of a ``num_classes``-way head: the 7 expressions, or the class order a registered dataset
    declares for that count (``audfer.data.registry``: MAFW's 11 classes)."""
    if num_classes == len(EXPRESSIONS):
        return EXPRESSIONS
    for name in list_datasets(training=True):
        order = dataset(name).class_order.get(num_classes)
        if order is not None:
            return order
    return tuple(c.capitalize() for c in MAFW_CLASSES[:num_classes])


def war_uar(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(WAR, UAR) from a confusion matrix of counts (rows = true class). UAR averages the recall of the
    classes present only: a class with no clip in the split is not a recall of 0. Used by the test metrics
    and by the validation metrics that select checkpoints, so both count alike."""
    cm = confusion.double()
    support = cm.sum(1)
    present = support > 0
    war = cm.diag().sum() / cm.sum().clamp(min=1)
    uar = (cm.diag()[present] / support[present]).mean() if present.any() else torch.zeros((), dtype=cm.dtype)
    return war.float(), uar.float()


class WARUAR(Metric):
    """WAR (accuracy) and UAR (mean recall over the classes present in what was seen) as a torchmetrics ``Metric``:
    ``update(preds, target)`` with class scores ``(N, C)`` or class indices ``(N,)``; ``compute()`` ->
    ``(war, uar)``. The state is the confusion matrix of counts, summed across processes under DDP, so a split
    sharded over devices gives the numbers one process would."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        """``num_classes``: C of the classifier."""
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.add_state(
            "confusion", default=torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Count a batch: ``preds`` scores ``(N, C)`` (argmax taken) or indices ``(N,)``; ``target`` indices ``(N,)``."""
        pred = preds.argmax(-1) if preds.ndim == 2 else preds
        idx = target.long().flatten() * self.num_classes + pred.long().flatten()
        counts = torch.bincount(idx, minlength=self.num_classes**2).reshape(self.num_classes, -1)
        setattr(self, "confusion", getattr(self, "confusion") + counts)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(WAR, UAR)`` of everything counted since the last ``reset``."""
        return war_uar(cast(torch.Tensor, getattr(self, "confusion")))


class MaskedAUF1(Metric):
    """Per-AU F1 of the AU head over the known labels only, as a torchmetrics ``Metric``.

    ``update(probs, targets, mask)``: AU probabilities ``(N, 18)`` (positive above ``threshold``, as torchmetrics
    binarises), 0/1 targets and a mask ``(N, 18)`` or ``(N,)`` of the labels that are known (an AU the clip's tool does
    not measure, or a clip without AU data, is not scored, never counted as 0; NaN targets count as unknown).
    ``compute()`` -> per-AU F1 ``(18,)``: NaN for an AU with no known label; ``zero_division`` for an AU with known
    labels but no positive and no predicted positive (0, as torchmetrics; NaN to call it undefined). The true /
    false positive, false negative and known counts are summed across processes under DDP."""

    full_state_update = False
    higher_is_better = True

    def __init__(
        self, num_labels: int = len(AUS), threshold: float = 0.5, zero_division: float = 0.0, **kwargs: Any
    ) -> None:
        """``num_labels``: AUs (18); ``threshold``: probability above which an AU counts as predicted present."""
        super().__init__(**kwargs)
        self.threshold, self.zero_division = float(threshold), float(zero_division)
        for name in ("tp", "fp", "fn", "known"):
            self.add_state(name, default=torch.zeros(num_labels, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Count a batch (see the class doc)."""
        targets = targets.float()
        known = ~torch.isnan(targets)
        if mask is not None:
            m = mask.bool()
            known &= m[:, None].expand_as(known) if m.ndim == 1 else m
        pred = probs > self.threshold
        true = torch.nan_to_num(targets) > 0.5
        for name, hits in (("tp", pred & true), ("fp", pred & ~true), ("fn", ~pred & true), ("known", known)):
            setattr(self, name, getattr(self, name) + (hits & known).sum(0))

    def compute(self) -> torch.Tensor:
        """Per-AU F1 (see the class doc)."""
        tp, fp, fn, known = (cast(torch.Tensor, getattr(self, n)) for n in ("tp", "fp", "fn", "known"))
        denom = (2 * tp + fp + fn).double()
        f1 = torch.where(denom > 0, 2 * tp.double() / denom.clamp(min=1), torch.full_like(denom, self.zero_division))
        return torch.where(known > 0, f1, torch.full_like(f1, float("nan"))).float()

    @property
    def known_counts(self) -> torch.Tensor:
        """Known labels per AU seen so far (0: the AU's F1 is NaN)."""
        return cast(torch.Tensor, self.known)


def classification_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    au_probs: np.ndarray | None = None,
    au_targets: np.ndarray | None = None,
    au_mask: np.ndarray | None = None,
) -> dict:
    """Metrics of one evaluation. ``probs`` (N, C) class probabilities, ``labels`` (N,) ints; optional AU
    head probabilities (N, 18) against video AU labels, counted where ``au_mask`` is True (per clip (N,) or
    per element (N, 18)); an AU without any known label gets F1 None and stays out of the mean."""
    import warnings

    warnings.filterwarnings("ignore", message=".*NaN values found in confusion matrix.*")
    p = torch.as_tensor(np.asarray(probs), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    c = p.shape[1]
    names = class_names(c)
    recall = MulticlassRecall(num_classes=c, average=None)(p, y).numpy()
    present = np.bincount(y.numpy(), minlength=c) > 0
    counts = MulticlassConfusionMatrix(num_classes=c)(p, y)
    war, uar = war_uar(counts)
    out = {
        "n": int(len(y)),
        "war": float(war),
        "uar": float(uar),
        "macro_f1": float(MulticlassF1Score(num_classes=c, average="macro")(p, y)),
        "per_class_recall": {n: (float(r) if present[i] else None) for i, (n, r) in enumerate(zip(names, recall))},
        "class_counts": {n: int(k) for n, k in zip(names, np.bincount(y.numpy(), minlength=c))},
        "confusion": MulticlassConfusionMatrix(num_classes=c, normalize="true")(p, y).numpy().round(6).tolist(),
        "confusion_counts": counts.numpy().tolist(),
    }
    if au_probs is not None and au_targets is not None:
        targets = torch.as_tensor(np.asarray(au_targets, np.float64))
        mask = None if au_mask is None else torch.as_tensor(np.asarray(au_mask, bool))
        metric = MaskedAUF1(sync_on_compute=False)  # the predictions are already all here (one process)
        metric.update(torch.as_tensor(np.asarray(au_probs), dtype=torch.float32), targets, mask)
        f1 = metric.compute().numpy()
        known = metric.known_counts.numpy() > 0
        if known.any():
            # unknown labels (no AU data, or an AU the clip's tool lacks) are ignored, never scored as 0
            out["au_f1"] = {a: (float(v) if k else None) for a, v, k in zip(AUS, f1, known.tolist())}
            out["au_f1_mean"] = float(f1[known].mean())
            m = ~np.isnan(np.asarray(au_targets, np.float64))
            if au_mask is not None:
                am = np.asarray(au_mask, bool)
                m &= am[:, None] if am.ndim == 1 else am
            out["au_clips"] = int(m.any(axis=1).sum())
            if not known.all():
                out["au_unknown"] = [a for a, k in zip(AUS, known.tolist()) if not k]
    return out


def au_f1_table(au_probs: pl.DataFrame, truth: pl.DataFrame) -> dict[str, float | None]:
    """Per-AU F1 (%) of AU-head probabilities ``au_probs`` (``clip_id`` + one column per AU) against 0/1 labels in
    ``truth`` (joined on ``clip_id``; null labels are not scored): ``MaskedAUF1`` with an AU that has neither a positive
    nor a predicted positive, or no known label, given ``None`` (undefined, not 0)."""
    both = au_probs.join(
        truth.select("clip_id", *[pl.col(a).alias(f"{a}_true") for a in AUS]), on="clip_id", how="inner"
    )
    metric = MaskedAUF1(zero_division=float("nan"), sync_on_compute=False)
    targets = both.select([pl.col(f"{a}_true").cast(pl.Float64) for a in AUS]).to_numpy()
    metric.update(torch.as_tensor(both.select(AUS).to_numpy(), dtype=torch.float32), torch.as_tensor(targets))
    return {a: (None if math.isnan(v) else 100 * v) for a, v in zip(AUS, metric.compute().double().tolist())}
