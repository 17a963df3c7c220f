"""A finished run moved (with its data) keeps working from another working directory: evaluate, predictor loading,
package and resume (issue 37 item 1); caches land in the run's place or the user's cache, never in the current
folder; a run whose data is gone names every data key to override, together."""

from __future__ import annotations

import json
import shutil

import pytest

from audfer.cli import main
from audfer.config.load import load_config

from conftest import TINY


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.slow
def test_a_moved_run_evaluates_predicts_packages_and_resumes_from_elsewhere(synth, tmp_path, monkeypatch, capsys):
    from audfer.engine.evaluate import evaluate_checkpoint
    from audfer.engine.train import train
    from audfer.predict.predictor import load_predictor

    first = tmp_path / "first"
    first.mkdir()
    shutil.copytree(synth, first / "data")
    monkeypatch.chdir(first)  # every path relative to where the user started
    assert main(["au-labels", "data/OpenFace", "--out", "data/video_au_labels.csv"]) == 0
    overrides = ["data.root=data", "data.au_labels=data/video_au_labels.csv", "data.cache=auto", *TINY]
    train(load_config("synthetic_small", [*overrides, "out=runs/r", "train.epochs=1"]), log=lambda m: None)
    before = json.loads((first / "runs" / "r" / "eval" / "metrics.json").read_text())

    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(first, moved)  # the whole folder: run and data together
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    run = moved / "runs" / "r"
    ckpt = run / "checkpoints" / "last.ckpt"
    after = evaluate_checkpoint(ckpt, log=lambda m: None)
    assert (after["war"], after["uar"], after["n"]) == (before["war"], before["uar"], before["n"])
    assert (moved / "runs" / ".clip-cache").is_dir()  # the run's own cache place, found where it is now
    load_predictor(ckpt)  # the predictor loads the moved checkpoint
    assert main(["package", str(run), "--out", str(tmp_path / "pkg")]) == 0
    from audfer.errors import InputError

    with pytest.raises(InputError, match=r"override them together: data\.au_labels=NEW$"):  # root alone is not enough
        evaluate_checkpoint(tmp_path / "pkg", overrides=[f"data.root={moved / 'data'}"], log=lambda m: None)
    data = [f"data.root={moved / 'data'}", f"data.au_labels={moved / 'data' / 'video_au_labels.csv'}"]
    pkg = evaluate_checkpoint(tmp_path / "pkg", overrides=data, out=tmp_path / "pkg-eval", log=lambda m: None)
    assert pkg["war"] == before["war"]
    assert (tmp_path / "cache" / "clips").is_dir()  # no run folder: the user's cache ($AUDFER_CACHE_DIR)
    resumed = train(
        load_config(
            "synthetic_small",
            [
                *overrides[2:],
                f"data.root={moved / 'data'}",
                f"data.au_labels={moved / 'data' / 'video_au_labels.csv'}",
                f"out={run}",
                "train.epochs=2",
            ],
        ),
        resume=True,
        accept_changes=True,
        log=lambda m: None,
    )
    assert resumed == run and len((run / "epochs.csv").read_text().strip().splitlines()) == 3
    # the one recorded change is the longer run: the stored paths were re-found where the run and its data are now
    assert json.loads((run / "changes.json").read_text()) == [{"from_epoch": 2, "changes": {"train.epochs": [1, 2]}}]
    assert _files(work) == []  # nothing written into the working directory: no stray .clip-cache, no eval folder

    # the run alone, copied to a place without its data: one line naming both data keys to override together
    lone = tmp_path / "lone" / "r"
    shutil.copytree(run, lone)
    shutil.rmtree(moved / "data")
    capsys.readouterr()
    assert main(["evaluate", str(lone / "checkpoints" / "last.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "the run's data is not where it was" in err
    assert "override them together: data.root=NEW data.au_labels=NEW" in err
    assert _files(work) == []


def test_relocation_keeps_each_path_in_its_place_relative_to_the_run(tmp_path):
    from audfer.config.paths import absolute_values, missing_paths, relocated_values, with_paths

    (tmp_path / "b" / "data").mkdir(parents=True)
    (tmp_path / "b" / "data" / "au.csv").write_text("x")
    (tmp_path / "shared").mkdir()
    stored = {
        "out": str(tmp_path / "a" / "runs" / "r"),
        "data": {
            "root": str(tmp_path / "a" / "data"),
            "au_labels": str(tmp_path / "a" / "data" / "au.csv"),
            "identities": str(tmp_path / "shared"),  # still where it was: kept
            "cache": "auto",
            "openface": None,
        },
        "au": {"knowledge": "paper", "pos_weights": "computed"},
        "model": {"pretrained": "org/name"},  # a Hub id: never a path to rebase
    }
    values = relocated_values(stored, tmp_path / "b" / "runs" / "r")
    assert values == {
        "out": str(tmp_path / "b" / "runs" / "r"),
        "data.root": str(tmp_path / "b" / "data"),
        "data.au_labels": str(tmp_path / "b" / "data" / "au.csv"),
    }
    assert missing_paths(with_paths(stored, values)) == {}
    assert set(missing_paths(stored)) == {"data.root", "data.au_labels"}
    assert relocated_values(stored, tmp_path / "c" / "r")["out"] == str(tmp_path / "c" / "r")
    assert "data.root" not in relocated_values(stored, tmp_path / "c" / "r")  # nowhere: left for the error
    rel = {"out": "runs/x", "data": {"root": "b", "cache": "cache"}, "au": {"knowledge": "paper"}}
    import os

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert absolute_values(rel) == {
            "out": str(tmp_path / "runs" / "x"),
            "data.root": str(tmp_path / "b"),
            "data.cache": str(tmp_path / "cache"),
        }
    finally:
        os.chdir(here)
