"""Command-line habits (issue 37 item 4): flags and ``key=value`` overrides in any order on every command, one error
prefix, a data-root error that says what to do, no empty run folder after a failed start, a cached ``au-labels`` line
that reads true."""

from __future__ import annotations

import pytest

from audfer.cli import build_parser, main
from audfer.synth.openface_writer import write_openface_csv

from conftest import make_frames

#: command, the first positional's name and value, its arguments in the documented order, the same arguments with the
#: flags moved before, between and after the positionals.
ORDERS = {
    "train": (
        "train",
        "config",
        ["cfg.yaml", "a.b=1", "c.d=2", "--dry-run"],
        ["--dry-run", "cfg.yaml", "a.b=1", "c.d=2"],
    ),
    "train-resume": (
        "train",
        "config",
        ["cfg.yaml", "a.b=1", "--resume", "--accept-changes"],
        ["--resume", "cfg.yaml", "--accept-changes", "a.b=1"],
    ),
    "config": ("config", "config", ["cfg.yaml", "a.b=1", "--markdown"], ["--markdown", "cfg.yaml", "a.b=1"]),
    "evaluate": (
        "evaluate",
        "checkpoint",
        ["r/last.ckpt", "data.root=x", "--split", "train"],
        ["--split", "train", "r/last.ckpt", "data.root=x"],
    ),
    "cv": (
        "cv",
        "config",
        ["cfg.yaml", "a.b=1", "--folds", "1,2", "--jobs", "2"],
        ["--folds", "1,2", "cfg.yaml", "--jobs", "2", "a.b=1"],
    ),
    "ablate": (
        "ablate",
        "config",
        ["cfg.yaml", "a.b=1", "c.d=2", "--seeds", "0"],
        ["cfg.yaml", "--seeds", "0", "a.b=1", "c.d=2"],
    ),
    "study": (
        "study",
        "study",
        ["s.yaml", "a.b=1", "--out", "o", "--jobs", "2"],
        ["--out", "o", "s.yaml", "--jobs", "2", "a.b=1"],
    ),
    "package": ("package", "source", ["r", "--out", "pkg", "--onnx"], ["--out", "pkg", "--onnx", "r"]),
    "au-labels": (
        "au-labels",
        "au_dir",
        ["of", "--out", "o.csv", "--no-cache"],
        ["--out", "o.csv", "of", "--no-cache"],
    ),
}


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_flags_and_overrides_in_any_order(name):
    command, dest, documented, moved = ORDERS[name]
    a, b = build_parser().parse_args([command, *documented]), build_parser().parse_args([command, *moved])
    assert vars(a) == vars(b)
    assert str(getattr(a, dest)) == documented[0]
    assert getattr(a, "overrides", []) == [x for x in documented if "=" in x]


def test_ablate_flags_before_overrides_reach_the_config(tmp_path, capsys):
    # the command: flags before the overrides; it now gets as far as the (missing) data folder
    assert main(["ablate", "synthetic_small", "--seeds", "0", f"data.root={tmp_path / 'nope'}", "--lambdas", ""]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unrecognized" not in err[0] and "nope is not a folder" in err[0]


def test_no_message_doubles_its_prefix(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "audfer: error: audfer:" not in err and "audfer: error: no command given" in err and "--help" in err
    with pytest.raises(SystemExit) as stop:
        main(["ablate", "cfg.yaml", "a.b=1", "--bogus"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "audfer: error: ablate: unrecognized arguments: --bogus"
    with pytest.raises(SystemExit):
        main(["cv", "cfg.yaml", "--folds"])
    assert capsys.readouterr().err.strip() == "audfer: error: cv: argument --folds: expected one argument"


def test_missing_data_root_says_to_run_synth_and_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "r1"
    assert main(["train", "synthetic_small", f"out={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "data.root is not set" in err and "`audfer synth --out" in err
    assert "audfer-synth" not in err  # no default the user never typed
    assert not (tmp_path / "runs").exists()  # no empty run folder (nor its parent) after the failed start
    assert main(["train", "synthetic_small", "data.root=missing", f"out={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"data.root: missing is not a folder (relative to the current folder {tmp_path})" in err
    assert "`audfer synth" in err and not (tmp_path / "runs").exists()
    (tmp_path / "runs").mkdir()
    assert main(["train", "synthetic_small", f"out={out}"]) == 2
    assert (tmp_path / "runs").is_dir() and not out.exists()  # a folder that was there stays


def test_cached_au_labels_line_reads_true(tmp_path, capsys):
    of = tmp_path / "openface"
    of.mkdir()
    for i in range(3):
        write_openface_csv(of / f"c{i}.csv", make_frames(6, seed=i), "2.2", full=False)
    args = ["au-labels", str(of), "--out", str(tmp_path / "au.csv"), "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    first = capsys.readouterr().err.strip().splitlines()[-1]
    assert "3 clips, 18 frames (0 clips from cache)" in first
    assert main(args) == 0
    second = capsys.readouterr().err.strip().splitlines()[-1]
    assert "3 clips, 18 frames;" in second and "from cache)" not in second
    assert second.endswith("(copied from the labels cache: no AU file changed, none read)")
