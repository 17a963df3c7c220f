"""Statistics over runs: mean ± std over folds or seeds (``aggregate``), and paired per-seed differences with their
Student-t interval (``paired_differences``; a claim needs ``MIN_SEEDS_FOR_A_CLAIM`` seeds), as the demo, the
ablations and the study report them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import torch

from audfer.evaluation.metrics import WARUAR
from audfer.vocab import AUS, EXPRESSIONS

__all__ = ["aggregate", "MIN_SEEDS_FOR_A_CLAIM", "paired_differences", "format_difference", "ceilings"]


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


def _war_uar(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    metric = WARUAR(len(EXPRESSIONS), sync_on_compute=False)
    metric.update(torch.as_tensor(pred), torch.as_tensor(y))
    war, uar = metric.compute()
    return float(war), float(uar)


def ceilings(meta: pl.DataFrame, eq4: pl.DataFrame, fold: int, colour: np.ndarray | None = None) -> dict[str, dict]:
    """Floor and ceilings on the test fold ``fold`` against its observed labels, each trained on the other folds.

    ``majority``: the training fold's most frequent class, always. ``au_oracle_exact``: logistic regression
    on the exact clip AU labels (``synth_meta.csv``). ``au_oracle_openface``: the same on the video AU
    labels built from the OpenFace CSVs (Eq. 4; a clip without valid frames gets all zeros).
    ``colour``: (clips, F) per-clip colour statistics, the same regression on them: what colour, lighting
    and background alone give. Values are fractions; ``n`` = test clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y = meta["label"].to_numpy().astype(np.int64)
    test = meta["fold"].to_numpy() == fold
    exact = meta.select(AUS).to_numpy().astype(np.float64)
    joined = meta.select("clip_id").join(eq4.select("clip_id", *AUS), on="clip_id", how="left").select(AUS)
    of = joined.fill_null(0).to_numpy().astype(np.float64)
    counts = np.bincount(y[~test], minlength=len(EXPRESSIONS))
    out: dict[str, dict] = {
        "majority": dict(zip(("war", "uar"), _war_uar(np.full(test.sum(), counts.argmax()), y[test])))
    }
    feats = {"au_oracle_exact": exact, "au_oracle_openface": of}
    if colour is not None:
        feats["colour"] = StandardScaler().fit(colour[~test]).transform(colour)
    for name, x in feats.items():
        clf = LogisticRegression(max_iter=5000).fit(x[~test], y[~test])
        out[name] = dict(zip(("war", "uar"), _war_uar(clf.predict(x[test]), y[test])))
    for v in out.values():
        v["n"] = int(test.sum())
    return out
