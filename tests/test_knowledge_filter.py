"""The θ filter of §3.1 in ``audfer knowledge``: probabilities from a file or made from a checkpoint, what was kept
and dropped per expression (printed and in the sidecar), and a K whose filter model saw the run's test clips refused."""

from __future__ import annotations

import json

import polars as pl
import pytest

from audfer import AudferError
from audfer.au.folder import read_au_dir
from audfer.cli import main
from audfer.config import load_config
from audfer.data.annotations import dfew_labels
from audfer.engine.frame_probs import frame_probabilities
from audfer.engine.resolve import prepare, split_index
from audfer.vocab import EXPRESSIONS
from test_frame_probs import _checkpoint

from conftest import TINY


def _cfg(synth, *extra):
    return load_config("synthetic_small", [f"data.root={synth}", *TINY, "data.cache=null", *extra])


def test_the_filter_reports_per_expression_and_records_the_filter_model(synth, tmp_path, capsys):
    (tmp_path / "f1").mkdir()
    ck = _checkpoint(tmp_path / "f1", _cfg(synth))  # the filter model's config: fold 1
    probs = tmp_path / "probs.csv"
    frame_probabilities(ck, out=probs, split="train", log=lambda m: None)
    table = pl.read_csv(probs, schema_overrides={"clip_id": pl.String})
    labels = dfew_labels(synth, 1, "train")
    frames = read_au_dir(synth / "OpenFace").frames.filter(pl.col("success") == 1).select("clip_id", "frame")
    own = (
        table.join(labels.select(pl.col("clip_id").cast(pl.String), "label"), on="clip_id")
        .join(frames.with_columns(pl.col("clip_id").cast(pl.String)), on=["clip_id", "frame"])
        .with_columns(pl.concat_list([f"p{i}" for i in range(7)]).list.get(pl.col("label").cast(pl.Int64)).alias("own"))
    )
    # the lowest of the expressions' median own-label probabilities: every expression keeps frames, some are dropped
    theta = float(own.group_by("label").agg(pl.col("own").median())["own"].min())
    out = tmp_path / "K.csv"
    args = ["knowledge", "--dataset", "dfew", "--au-dir", str(synth / "OpenFace"), "--root", str(synth)]
    assert main([*args, "--frame-probs", str(probs), "--theta", str(theta), "--out", str(out)]) == 0
    printed = capsys.readouterr().err
    side = json.loads((tmp_path / "K.csv.provenance.json").read_text())
    report = side["frame_filter"]["per_expression"]
    for i, name in enumerate(EXPRESSIONS):  # independent count from the probability table
        mine = own.filter(pl.col("label") == i)
        kept = mine.filter(pl.col("own") > theta)
        r = report[name]
        assert r["frames_before"] == mine.height and r["frames_kept"] == kept.height
        assert r["frames_at_or_below_theta"] == mine.height - kept.height and r["frames_without_probability"] == 0
        assert r["clips_kept"] == kept["clip_id"].n_unique()
        assert r["clips_dropped"] == mine["clip_id"].n_unique() - kept["clip_id"].n_unique()
        assert f"  {name}: kept {r['clips_kept']}/{r['clips_before']} clips, {r['frames_kept']}/" in printed
    assert sum(r["frames_at_or_below_theta"] for r in report.values()) > 0  # the filter did something
    assert side["frame_filter"]["theta"] == theta and side["frame_filter"]["checkpoint"] == str(ck)
    train1 = set(map(str, split_index(_cfg(synth), "train").table["clip_id"].to_list()))
    assert side["frame_filter"]["model_trained_on_clips"] == len(train1) and train1 <= set(side["clip_ids"])
    # K from a filter model trained on fold 1 is fine for fold 1's run
    assert prepare(_cfg(synth, f"au.knowledge={out}")).checks["knowledge"]["test_clips"] == 0


def test_a_k_whose_filter_model_saw_the_test_clips_is_refused(synth, tmp_path, capsys):
    (tmp_path / "f2").mkdir()
    ck2 = _checkpoint(tmp_path / "f2", _cfg(synth, "data.fold=2"))  # trained on fold 2: holds fold 1's test clips
    out = tmp_path / "K.csv"
    args = ["knowledge", "--dataset", "dfew", "--au-dir", str(synth / "OpenFace"), "--root", str(synth)]
    assert main([*args, "--filter-checkpoint", str(ck2), "--theta", "0.01", "--out", str(out)]) == 0
    assert "θ filter" in capsys.readouterr().err
    made = tmp_path / "K.frame_probs.csv"  # the probabilities were made beside K, for fold 1's training clips
    assert set(pl.read_csv(made, schema_overrides={"clip_id": pl.String})["clip_id"]) == set(
        map(str, split_index(_cfg(synth), "train").table["clip_id"].to_list())
    )
    with pytest.raises(AudferError, match="test split"):
        prepare(_cfg(synth, f"au.knowledge={out}"))
    assert main([*args, "--theta", "0.3", "--out", str(tmp_path / "x.csv")]) == 2
    assert "theta needs frame_probs or filter_checkpoint" in capsys.readouterr().err
