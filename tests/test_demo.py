"""The demo's statistics: floor/ceilings, paired seed differences, AU F1 tables (against independent computations)."""

import math

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score

from audfer.evaluation.metrics import au_f1_table
from audfer.evaluation.statistics import ceilings, format_difference, paired_differences
from audfer.vocab import AUS


def test_paired_differences_by_hand():
    # diffs 0.02, 0.04, 0.00: mean 0.02, sd 0.02, t(0.975, 2) = 4.302653, half = 4.302653 * 0.02 / sqrt(3)
    r = paired_differences([0.50, 0.40, 0.60], [0.52, 0.44, 0.60])
    assert r["diffs"] == pytest.approx([0.02, 0.04, 0.0])
    assert (r["mean"], r["std"]) == (pytest.approx(0.02), pytest.approx(0.02))
    half = 4.302653 * 0.02 / math.sqrt(3)
    assert r["ci"] == (pytest.approx(0.02 - half, abs=1e-6), pytest.approx(0.02 + half, abs=1e-6))
    assert r["distinguishable"] is None  # 3 seeds: an interval is given, but no claim is made either way
    assert "3 seeds: too few to judge" in format_difference(r)
    four = paired_differences([0.5, 0.5, 0.5, 0.5], [0.60, 0.61, 0.59, 0.60])
    assert four["ci"][0] > 0 and four["distinguishable"] is None  # excludes 0, but 4 < 5 seeds
    clear = paired_differences([0.5] * 5, [0.60, 0.61, 0.59, 0.60, 0.62])
    assert clear["distinguishable"] is True and clear["ci"][0] > 0
    assert "5 seeds: distinguishable from 0" in format_difference(clear)
    noise = paired_differences([0.5] * 5, [0.52, 0.47, 0.51, 0.49, 0.50])
    assert noise["distinguishable"] is False and "5 seeds: not distinguishable from 0" in format_difference(noise)
    one = paired_differences([0.5], [0.6])
    assert one["mean"] == pytest.approx(0.1) and one["std"] is None and one["distinguishable"] is None


def _meta(n=350, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 7, n)
    aus = (rng.random((n, len(AUS))) < 0.2).astype(int)
    aus[np.arange(n), label] = 1  # AU i marks class i: a learnable link
    return pl.DataFrame(
        {
            "clip_id": [f"{i:05d}" for i in range(n)],
            "fold": (np.arange(n) % 5 + 1),
            "label": label,
            **{a: aus[:, j] for j, a in enumerate(AUS)},
        }
    )


def test_ceilings_match_an_independent_regression_and_the_majority_rule():
    meta = _meta()
    eq4 = meta.select("clip_id", *AUS).with_columns(pl.lit(5).alias("n_valid"))
    res = ceilings(meta, eq4, fold=2)
    y, test = meta["label"].to_numpy(), meta["fold"].to_numpy() == 2
    x = meta.select(AUS).to_numpy().astype(float)
    pred = LogisticRegression(max_iter=5000).fit(x[~test], y[~test]).predict(x[test])
    assert res["au_oracle_exact"]["war"] == pytest.approx((pred == y[test]).mean())
    assert res["au_oracle_exact"]["uar"] == pytest.approx(balanced_accuracy_score(y[test], pred))
    assert res["au_oracle_openface"] == res["au_oracle_exact"]  # identical labels, identical line
    major = np.bincount(y[~test]).argmax()
    assert res["majority"]["war"] == pytest.approx((y[test] == major).mean())
    assert res["majority"]["uar"] == pytest.approx(1 / len(np.unique(y[test])))
    assert res["au_oracle_exact"]["war"] > res["majority"]["war"] + 0.3 and res["majority"]["n"] == test.sum()


def test_au_f1_table_against_sklearn_skipping_unknown_labels():
    rng = np.random.default_rng(1)
    ids = [f"{i:05d}" for i in range(40)]
    probs = pl.DataFrame({"clip_id": ids, **{a: rng.random(40).astype(np.float32) for a in AUS}})
    truth = pl.DataFrame({"clip_id": ids, **{a: rng.integers(0, 2, 40) for a in AUS}})
    truth = truth.with_columns(pl.when(pl.int_range(40) < 5).then(None).otherwise(pl.col("AU45")).alias("AU45"))
    truth = truth.with_columns(pl.lit(0).alias("AU28"))
    probs = probs.with_columns(pl.lit(0.1).alias("AU28"))
    got = au_f1_table(probs, truth)
    for a in ("AU01", "AU12"):
        assert got[a] == pytest.approx(100 * f1_score(truth[a].to_numpy(), probs[a].to_numpy() >= 0.5))
    known = truth["AU45"].is_not_null().to_numpy()
    assert got["AU45"] == pytest.approx(
        100 * f1_score(truth["AU45"].to_numpy()[known].astype(int), probs["AU45"].to_numpy()[known] >= 0.5)
    )
    assert got["AU28"] is None  # no positive anywhere: F1 undefined, not 0


@pytest.mark.slow
def test_the_demo_model_and_pipeline_can_memorise_a_small_training_set(tmp_path):
    """Capacity and pipeline check (issue: the demo learned only the class prior): the demo's model through the
    demo's data pipeline (JPEG frames, clip cache, sampler, loader), augmentation off, drives ~60 training clips
    to >= 95 % training accuracy, wrong labels included (about 30 s on 2 cores)."""
    from audfer.config import load_config
    from audfer.engine.evaluate import evaluate_checkpoint
    from audfer.engine.train import train
    from audfer.synth.dataset import SynthConfig, generate

    root = generate(tmp_path / "s", SynthConfig(clips=80, size=48, frames=8), workers=1)
    cfg = load_config(
        "synthetic_small",
        [
            f"data.root={root}",
            f"out={tmp_path / 'run'}",
            "au.strategy=none",
            "train.progress=false",
            "train.epochs=30",
            "train.batch_size=16",
            "optim.lr=3e-3",
            "optim.weight_decay=0",
            "data.crop_scale=[1.0, 1.0]",
            "data.jitter=0",
        ],
    )
    out = train(cfg, log=lambda m: None, evaluate=False)
    m = evaluate_checkpoint(out / "checkpoints" / "last.ckpt", split="train", out=tmp_path / "eval", log=lambda m: None)
    assert m["n"] >= 60 and m["war"] >= 0.95, m["war"]
