"""Run folders and checkpoints from an older audfer: they load (options they lack take their defaults, and the run
says so), or say in one line what they lack and how to proceed."""

from __future__ import annotations

import pytest
import torch
import yaml

from audfer import AudferError
from audfer.cli import main
from audfer.config.schema import Config
from audfer.engine.evaluate import load_module

from conftest import TINY


@pytest.fixture(scope="module")
def run(synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("old")
    out = root / "run"
    assert main(["train", "synthetic_small", f"data.root={synth}", f"out={out}", *TINY, "train.epochs=1"]) == 0
    return synth, out


def _doctored(run, tmp_path, edit):
    ck = torch.load(run[1] / "checkpoints" / "last.ckpt", weights_only=True)
    edit(ck)
    path = tmp_path / "old.ckpt"
    torch.save(ck, path)
    return path


@pytest.mark.slow
def test_a_checkpoint_without_newer_options_loads_with_their_defaults(run, tmp_path):
    def drop(ck):
        cfg = ck["hyper_parameters"]["cfg"]
        del cfg["au"]["scale"], cfg["data"]["cache"], cfg["train"]["selection"]

    module = load_module(_doctored(run, tmp_path, drop))
    assert module.cfg.au.scale == Config().au.scale and module.cfg.train.selection == Config().train.selection
    reference = load_module(run[1] / "checkpoints" / "last.ckpt")
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), reference.state_dict().values()))


def test_a_checkpoint_with_an_option_this_audfer_lacks_says_so(run, tmp_path, capsys):
    def add(ck):
        ck["hyper_parameters"]["cfg"]["model"]["retired_option"] = 3

    path = _doctored(run, tmp_path, add)
    assert main(["evaluate", str(path), "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "retired_option" in err[0]
    assert "another audfer version" in err[0] and "model.pretrained" in err[0]


@pytest.mark.parametrize("missing", ["hyper_parameters", "state_dict"])
def test_a_checkpoint_missing_a_part_says_what(run, tmp_path, missing):
    path = _doctored(run, tmp_path, lambda ck: ck.pop(missing))
    with pytest.raises(AudferError, match=r"old\.ckpt: not an audfer training checkpoint"):
        load_module(path)


def test_a_checkpoint_missing_a_tensor_names_it(run, tmp_path):
    path = _doctored(run, tmp_path, lambda ck: ck["state_dict"].pop(next(iter(ck["state_dict"]))))
    with pytest.raises(AudferError, match=r"old\.ckpt: its tensors do not fit the model .*\(missing 1: model\."):
        load_module(path)


@pytest.mark.slow
def test_an_older_run_folder_resumes_with_the_options_it_lacked_at_their_defaults(run, tmp_path):
    import shutil

    synth, out = run
    old = tmp_path / "old-run"
    shutil.copytree(out, old)
    stored = yaml.safe_load((old / "config.yaml").read_text())
    del stored["au"]["scale"], stored["train"]["selection"]
    (old / "config.yaml").write_text(yaml.safe_dump(stored))
    logs = []
    from audfer.config import load_config
    from audfer.engine import train

    cfg = load_config("synthetic_small", [f"data.root={synth}", f"out={old}", *TINY, "train.epochs=2"])
    with pytest.raises(AudferError, match="changed setting"):  # epochs changed: a real change is still refused
        train(cfg, resume=True, log=logs.append, evaluate=False)
    assert any("written by an older audfer, without 2 option(s) (au.scale, train.selection)" in m for m in logs)
    assert not any("au.scale" in m and "->" in m for m in logs)  # a lacking option is not a change
    train(cfg, resume=True, accept_changes=True, log=logs.append, evaluate=False)
    assert torch.load(old / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
