"""Evaluation: WAR, UAR, per-class recall, macro-F1, confusion matrices (torchmetrics), per-AU F1 of the
AU head, prediction tables, and mean ± std over folds or seeds.

WAR (weighted average recall) = overall accuracy, UAR (unweighted average recall) = mean of the
per-class recalls, as in the paper's Tables 1-3.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl
import torch
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
    MultilabelF1Score,
)

from .vocab import AUS, EXPRESSIONS, MAFW_CLASSES


def class_names(num_classes: int) -> tuple[str, ...]:
    """The class names of a ``num_classes``-way head: the 7 expressions, or MAFW's 11 classes."""
    return EXPRESSIONS if num_classes == len(EXPRESSIONS) else tuple(c.capitalize() for c in MAFW_CLASSES[:num_classes])


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
        mask = np.ones((len(y), len(AUS)), bool) if au_mask is None else np.asarray(au_mask, bool)
        if mask.ndim == 1:
            mask = np.repeat(mask[:, None], len(AUS), axis=1)
        mask = np.asarray(mask & ~np.isnan(np.asarray(au_targets, np.float64)), bool)
        if mask.any():
            # unknown labels (no AU data, or an AU the clip's tool lacks) are ignored, never scored as 0
            target = torch.as_tensor(np.where(mask, np.nan_to_num(au_targets), -1)).long()
            f1 = MultilabelF1Score(num_labels=len(AUS), average=None, zero_division=0, ignore_index=-1)(
                torch.as_tensor(au_probs, dtype=torch.float32), target
            ).numpy()
            known = np.asarray(mask.any(axis=0), bool)
            out["au_f1"] = {a: (float(v) if k else None) for a, v, k in zip(AUS, f1, known.tolist())}
            out["au_f1_mean"] = float(f1[known].mean())
            out["au_clips"] = int(mask.any(axis=1).sum())
            if not known.all():
                out["au_unknown"] = [a for a, k in zip(AUS, known.tolist()) if not k]
    return out


def prediction_table(
    ids: Sequence[str], labels: np.ndarray, probs: np.ndarray, au_probs: np.ndarray | None = None
) -> pl.DataFrame:
    """``clip_id,label,pred``, one probability column per class, then one per AU (when the AU head is on)."""
    names = class_names(probs.shape[1])
    data = {"clip_id": list(ids), "label": np.asarray(labels, np.int64), "pred": probs.argmax(1).astype(np.int64)}
    data.update({n: probs[:, i].astype(np.float32) for i, n in enumerate(names)})
    if au_probs is not None:
        data.update({a: au_probs[:, j].astype(np.float32) for j, a in enumerate(AUS)})
    return pl.DataFrame(data)


@torch.no_grad()
def predict_loaders(model: torch.nn.Module, loaders: Sequence[Iterable], device: str | torch.device = "cpu") -> dict:
    """Run ``model`` over one loader per temporal view; softmax / sigmoid / features averaged over views."""
    model.eval().to(device)
    acc: dict[str, Any] | None = None
    for loader in loaders:
        probs, aus, feats, labels, ids, au_t, au_m = [], [], [], [], [], [], []
        for clips, y, au, mask, cid in loader:
            out = model(clips.to(device))
            probs.append(out.logits.float().softmax(1).cpu())
            feats.append(out.features.float().cpu())
            if out.au_logits is not None:
                aus.append(out.au_logits.float().sigmoid().cpu())
            labels.append(y)
            au_t.append(au)
            au_m.append(mask)
            ids += cid
        view = {
            "probs": torch.cat(probs).numpy(),
            "features": torch.cat(feats).numpy(),
            "au_probs": torch.cat(aus).numpy() if aus else None,
        }
        if acc is None:
            acc = {
                **view,
                "labels": torch.cat(labels).numpy(),
                "ids": ids,
                "au_targets": torch.cat(au_t).numpy(),
                "au_mask": torch.cat(au_m).numpy(),
            }
        else:
            for k in ("probs", "features", "au_probs"):
                if view[k] is not None:
                    acc[k] = acc[k] + view[k]
    n = len(loaders)
    assert acc is not None, "predict_loaders needs at least one loader"
    for k in ("probs", "features", "au_probs"):
        if acc[k] is not None:
            acc[k] = acc[k] / n
    return acc


def aggregate(runs: dict[str, dict], keys: Sequence[str] = ("war", "uar", "macro_f1")) -> dict:
    """Mean and sample std over runs (folds or seeds) of the scalar metrics and per-class recalls."""
    out: dict = {"runs": list(runs)}
    for k in keys:
        vals = np.array([r[k] for r in runs.values()], dtype=float)
        out[k] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}
    first = next(iter(runs.values()))
    per = {}
    for cls in first["per_class_recall"]:
        vals = np.array(
            [r["per_class_recall"][cls] for r in runs.values() if r["per_class_recall"][cls] is not None], float
        )
        per[cls] = {
            "mean": float(vals.mean()) if len(vals) else None,
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
        }
    out["per_class_recall"] = per
    if all("au_f1_mean" in r for r in runs.values()):
        vals = np.array([r["au_f1_mean"] for r in runs.values()])
        out["au_f1_mean"] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}
    return out


#: Fewest seeds for which a paired difference may be called distinguishable from zero (with 3, a Student-t interval
#: is about +-4 standard deviations of the mean wide: it cannot carry a claim).
MIN_SEEDS_FOR_A_CLAIM = 5


def paired_differences(base: Sequence[float], other: Sequence[float], *, level: float = 0.95) -> dict[str, Any]:
    """Per-seed paired differences ``other - base`` (same seed, same data and order): mean, std (ddof 1) and the
    Student-t ``level`` interval of the mean. ``distinguishable`` (from zero) is True or False only with at least
    ``MIN_SEEDS_FOR_A_CLAIM`` seeds, and True only when the interval excludes 0; with fewer seeds it is None (the
    interval is still given). With one seed there is no uncertainty estimate (std and interval None)."""
    import math

    d = np.asarray(other, np.float64) - np.asarray(base, np.float64)
    n = len(d)
    res: dict[str, Any] = {
        "diffs": d.tolist(),
        "mean": float(d.mean()),
        "std": None,
        "ci": None,
        "distinguishable": None,
        "n": n,
    }
    if n >= 2:
        from scipy.stats import t

        sd = float(d.std(ddof=1))
        half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
        res.update(std=sd, ci=(res["mean"] - half, res["mean"] + half))
        if n >= MIN_SEEDS_FOR_A_CLAIM:
            res["distinguishable"] = bool(res["mean"] - half > 0 or res["mean"] + half < 0)
    return res


def format_difference(r: dict[str, Any], scale: float = 100.0) -> str:
    """``+1.00 ± 0.60 (95 % CI -0.49 to +2.49, 3 seeds: too few to judge)``: a paired difference as reports print it,
    always with its interval and number of seeds."""
    if r["std"] is None:
        return f"{scale * r['mean']:+.2f} (one seed: no uncertainty estimate)"
    lo, hi = (scale * v for v in r["ci"])
    if r["distinguishable"] is None:
        verdict = f"{r['n']} seeds: too few to judge (>= {MIN_SEEDS_FOR_A_CLAIM})"
    else:
        verdict = f"{r['n']} seeds: " + (
            "distinguishable from 0" if r["distinguishable"] else "not distinguishable from 0"
        )
    return f"{scale * r['mean']:+.2f} ± {scale * r['std']:.2f} (95 % CI {lo:+.2f} to {hi:+.2f}, {verdict})"
