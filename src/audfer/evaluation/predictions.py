"""A model's predictions over evaluation loaders (views averaged) and their table (``predictions.csv``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl
import torch

from audfer.evaluation.metrics import class_names
from audfer.vocab import AUS

__all__ = ["predict_loaders", "prediction_table"]


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
