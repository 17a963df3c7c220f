"""The AU-effect study: nested stratified subsets, the AU-loss variants, paired differences checked against an
independent computation, claims only with enough seeds, and a study that resumes."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from audfer import AudferError
from audfer.cli import main
from audfer.config import load_config
from audfer.data.datasets import ClipIndex
from audfer.engine.resolve import prepare, training_subset
from audfer.engine.study import StudySpec, run_study

from conftest import TINY


def _index(n=400, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(7, n, p=[0.3, 0.2, 0.2, 0.15, 0.08, 0.02, 0.05])
    return ClipIndex(
        pl.DataFrame(
            {
                "clip_id": [f"{i:05d}" for i in range(n)],
                "label": pl.Series(labels, dtype=pl.Int8),
                "path": [f"/x/{i}" for i in range(n)],
            }
        ),
        skipped=[],
    )


def test_training_subsets_are_stratified_nested_seeded_and_keep_identities_together():
    index = _index()
    identities = {f"{i:05d}": str(i // 4) for i in range(400)}  # 100 people, 4 clips each
    full = np.bincount(index.table["label"].to_numpy(), minlength=7)
    previous: set[str] = set()
    for f in (0.1, 0.25, 0.5, 1.0):
        sub = training_subset(index, f, seed=3, identities=identities)
        counts = np.bincount(sub.table["label"].to_numpy(), minlength=7)
        np.testing.assert_array_equal(counts, [max(1, math.ceil(f * c)) if c else 0 for c in full])  # stratified
        ids = set(sub.table["clip_id"].to_list())
        assert previous <= ids  # nested: the smaller subset lies inside the larger one
        previous = ids
    same = training_subset(index, 0.25, seed=3, identities=identities).table["clip_id"].to_list()
    other = training_subset(index, 0.25, seed=4, identities=identities).table["clip_id"].to_list()
    assert same == training_subset(index, 0.25, seed=3, identities=identities).table["clip_id"].to_list()
    assert same != other  # seeded
    # identity-aware: a 25 % subset covers far fewer people than 25 % of clips drawn one by one would
    people = {identities[c] for c in same}
    loose = {identities[c] for c in training_subset(index, 0.25, seed=3).table["clip_id"].to_list()}
    assert len(people) < 0.75 * len(loose)


def test_the_variants_change_only_what_they_name(synth):
    base = load_config("synthetic_small", [f"data.root={synth}", *TINY])
    plain = prepare(load_config("synthetic_small", [f"data.root={synth}", *TINY, "au.knowledge=ones"]))
    bare = prepare(load_config("synthetic_small", [f"data.root={synth}", *TINY, "au.pos_weights=none"]))
    paper = prepare(base)
    assert (plain.knowledge == 1).all() and np.array_equal(plain.pos_weight, paper.pos_weight)
    assert bare.pos_weight is None and np.array_equal(bare.knowledge, paper.knowledge)
    half = prepare(load_config("synthetic_small", [f"data.root={synth}", *TINY, "data.train_fraction=0.5"]))
    assert len(half.train) < len(paper.train) and len(half.test) == len(paper.test)


def _spec(tmp_path, body):
    path = tmp_path / "study.yaml"
    path.write_text(body)
    return StudySpec.read(path)


@pytest.mark.slow
def test_a_study_pairs_each_au_run_with_its_baseline_and_resumes(synth, tmp_path):
    overrides = "[" + ", ".join(f'"{o}"' for o in [f"data.root={synth}", *TINY, "train.epochs=2"]) + "]"
    spec = _spec(
        tmp_path,
        f"config: synthetic_small\noverrides: {overrides}\nsizes: [0.5, 1.0]\nlambdas: [0.5]\n"
        "variants: [paper, plain]\nseeds: [0, 1]\n",
    )
    logs: list[str] = []
    res = run_study(spec, tmp_path / "out", log=logs.append)
    runs = pl.read_csv(tmp_path / "out" / "study.csv")
    assert runs.height == 2 * 2 * (1 + 2) and set(runs["variant"]) == {"baseline", "paper", "plain"}
    for e in res["effects"]:
        base = runs.filter((pl.col("size") == e["size"]) & (pl.col("variant") == "baseline")).sort("seed")
        cell = runs.filter(
            (pl.col("size") == e["size"]) & (pl.col("variant") == e["variant"]) & (pl.col("lam") == e["lam"])
        ).sort("seed")
        d = cell["uar"].to_numpy() - base["uar"].to_numpy()
        assert e["uar_mean"] == pytest.approx(d.mean())
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
        assert e["uar_ci_low"] == pytest.approx(d.mean() - half) and e["uar_ci_high"] == pytest.approx(d.mean() + half)
        assert e["uar_distinguishable"] is None and "2 seeds: too few to judge" in e["uar_text"]  # < 5 seeds
    report = (tmp_path / "out" / "report.md").read_text()
    assert "No cell's effect" in report and "one machine" in report and (tmp_path / "out" / "effect.png").is_file()
    # the baseline of a size and seed trains on the same clips as every AU run of that size and seed
    plans = {}
    for row in runs.iter_rows(named=True):
        cfg = load_config(str(tmp_path / "out" / row["run"] / "config.yaml"))
        plans.setdefault((row["size"], row["seed"]), set()).add(len(prepare(cfg).train))
    assert all(len(v) == 1 for v in plans.values())
    # run again: every run is reused, nothing retrained
    again = []
    run_study(spec, tmp_path / "out", log=again.append)
    assert not any(m.startswith("training ") for m in again)


def test_study_files_are_checked_and_the_shipped_one_is_complete(tmp_path, capsys):
    shipped = StudySpec.read("au_effect")
    assert len(shipped.seeds) >= 5 and shipped.sizes == (0.1, 0.25, 0.5, 1.0)
    assert set(shipped.variants) == {"paper", "plain", "k-no-pw"} and shipped.synth["clips"] == 1500
    from audfer.tasks.demo import DEMO_SYNTH

    assert {k: shipped.synth[k] for k in DEMO_SYNTH} == DEMO_SYNTH  # the demo's generator settings, as they are
    for body, message in (
        ("config: synthetic_small\nsizes: [0, 1]\n", r"sizes: 0; expected shares of the training fold in \(0, 1\]"),
        ("config: synthetic_small\nvariants: [paper, magic]\n", r"variants: 'magic'; expected variants among"),
        ("config: synthetic_small\nseeds: [1, 1]\n", "a value is listed twice"),
        ("config: synthetic_small\nepochs: 3\n", "unknown key 'epochs'"),
    ):
        with pytest.raises(AudferError, match=message):
            _spec(tmp_path, body)
    assert main(["study", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "no such study file" in capsys.readouterr().err


def test_shuffled_k_is_the_same_matrix_with_the_declared_rows_permuted(synth, tmp_path):
    from audfer.engine.study import _shuffled_files
    from audfer.method.knowledge import paper_knowledge

    perm = [6, 3, 1, 5, 2, 0, 4]
    spec = _spec(
        tmp_path,
        f"config: synthetic_small\nvariants: [paper, shuffled]\nseeds: [0, 1]\n"
        f"permutations: {{0: {perm}, 1: [1, 0, 2, 3, 4, 5, 6]}}\n",
    )
    base = load_config("synthetic_small", [f"data.root={synth}", *TINY])
    files = _shuffled_files(base, spec, tmp_path / "out")
    run = prepare(load_config("synthetic_small", [f"data.root={synth}", *TINY, f"au.knowledge={files[0]}"]))
    k = paper_knowledge()
    for i in range(7):  # row i of the shuffled K is row perm[i] of the paper's K, every value kept
        np.testing.assert_allclose(run.knowledge[i], k[perm[i]], rtol=1e-9)
    assert not np.allclose(run.knowledge, k) and run.checks["knowledge"]["test_clips"] == 0
    second = prepare(load_config("synthetic_small", [f"data.root={synth}", *TINY, f"au.knowledge={files[1]}"]))
    np.testing.assert_allclose(second.knowledge[2:], k[2:], rtol=1e-9)
    np.testing.assert_allclose(second.knowledge[[0, 1]], k[[1, 0]], rtol=1e-9)


def test_shuffled_study_files_are_checked(tmp_path):
    seeds = "seeds: [0, 1]\n"
    for body, message in (
        ("variants: [shuffled]\n" + seeds, "variant shuffled needs a mapping"),
        ("variants: [shuffled]\n" + seeds + "permutations: {0: [1, 0, 2, 3, 4, 5, 6]}\n", "seed 1: None"),
        (
            "variants: [shuffled]\n" + seeds + "permutations: {0: [0, 1, 2, 3, 4, 5, 6], 1: [1, 0, 2, 3, 4, 5, 6]}\n",
            "the identity",
        ),
        (
            "variants: [shuffled]\n" + seeds + "permutations: {0: [1, 1, 2, 3, 4, 5, 6], 1: [1, 0, 2, 3, 4, 5, 6]}\n",
            "expected a permutation of 0..6",
        ),
        ("variants: [paper]\n" + seeds + "permutations: {0: [1, 0, 2, 3, 4, 5, 6]}\n", "only used by variant"),
        ("variants: [paper, plain]\n" + seeds + "contrasts: [[paper, magic]]\n", "contrasts: expected"),
    ):
        with pytest.raises(AudferError, match=message):
            _spec(tmp_path, "config: synthetic_small\n" + body)
    shipped = StudySpec.read("k_knowledge")
    assert len(shipped.seeds) >= 10 and set(shipped.variants) == {"paper", "shuffled", "plain"}
    assert all(all(p[i] != i for i in range(7)) for p in shipped.permutations.values())  # derangements
    assert shipped.synth == StudySpec.read("au_effect").synth  # the first study's data


def test_contrasts_are_paired_by_seed(tmp_path):
    from audfer.engine.study import _contrast_rows

    spec = _spec(
        tmp_path,
        "config: synthetic_small\nsizes: [1.0]\nlambdas: [0.5]\nvariants: [paper, plain]\nseeds: [0, 1, 2, 3, 4]\n"
        "contrasts: [[paper, plain], [paper, baseline]]\n",
    )
    rng = np.random.default_rng(1)
    rows = []
    for variant, lam in (("baseline", 0.0), ("paper", 0.5), ("plain", 0.5)):
        for seed in (4, 2, 0, 1, 3):  # out of order: pairing is by seed, not by row
            war, uar, minor = rng.random(3)
            rows.append(dict(size=1.0, variant=variant, lam=lam, seed=seed, war=war, uar=uar, minor_recall=minor))
    table = pl.DataFrame(rows)
    out = _contrast_rows(table, spec)
    assert [(r["a"], r["b"]) for r in out] == [("paper", "plain"), ("paper", "baseline")]
    for r in out:
        a = {x["seed"]: x["uar"] for x in rows if x["variant"] == r["a"]}
        b = {x["seed"]: x["uar"] for x in rows if x["variant"] == r["b"]}
        d = np.array([a[s] - b[s] for s in range(5)])
        half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
        assert r["uar_mean"] == pytest.approx(d.mean()) and r["uar_ci_low"] == pytest.approx(d.mean() - half)
        assert r["seeds"] == 5 and r["uar_distinguishable"] == bool(abs(d.mean()) > half)
