"""No file audfer opens runs code unless the user says they trust it (docs/weights.md, "What is trusted when").

Each test plants a file whose unpickling (``__reduce__``) or whose YAML tag would write a marker file, hands it to
a command that takes a file, and checks: no marker, exit status 2, one line naming the file."""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest
import torch

from audfer.cli import main

from conftest import TINY, tiny_video


class _Planted:
    """Unpickling this object runs ``os.system`` (what a hostile checkpoint does)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "MARKER"


def _planted_files(tmp_path, marker):
    """The two ways a PyTorch file pickles: torch.save's zip archive and a legacy raw pickle."""
    zipped, legacy = tmp_path / "planted.ckpt", tmp_path / "planted.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "epoch": 0, "hyper_parameters": _Planted(marker)}, zipped)
    with open(legacy, "wb") as fh:
        pickle.dump({"state_dict": _Planted(marker)}, fh, protocol=2)
    return [zipped, legacy]


def _one_error_line(capsys, path):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("audfer: error:") and str(path) in err[0]
    return err[0]


COMMANDS = {
    "predict": lambda f, t: [
        "predict",
        str(tiny_video(t / "v.mp4")),
        "--checkpoint",
        str(f),
        "--out",
        str(t / "p.json"),
    ],
    "predict --model": lambda f, t: [
        "predict",
        str(tiny_video(t / "v.mp4")),
        "--checkpoint",
        str(f),
        "--model",
        "former_dfer_small",
        "--out",
        str(t / "p.json"),
    ],
    "evaluate": lambda f, t: ["evaluate", str(f), "--out", str(t / "ev")],
    "export": lambda f, t: ["export", str(f), "--onnx", str(t / "m.onnx")],
    "export --model": lambda f, t: ["export", str(f), "--onnx", str(t / "m.onnx"), "--model", "former_dfer_small"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_planted_pickle_given_to_a_command_runs_nothing(command, tmp_path, marker, capsys):
    for planted in _planted_files(tmp_path, marker):
        assert main(COMMANDS[command](planted, tmp_path)) == 2
        assert not marker.exists(), f"{command} ran the code planted in {planted.name}"
        line = _one_error_line(capsys, planted)
        assert "refused" in line and "system" in line and "--trust-pickle" in line
        assert not (tmp_path / "p.json").exists() and not (tmp_path / "m.onnx").exists()


def test_a_planted_pretrained_file_runs_nothing(synth, tmp_path, marker, capsys):
    for planted in _planted_files(tmp_path, marker):
        argv = ["train", "synthetic_small", f"data.root={synth}", f"out={tmp_path / planted.stem}", *TINY]
        assert main([*argv, "train.epochs=1", f"model.pretrained={planted}"]) == 2
        assert not marker.exists()
        assert "refused" in _one_error_line(capsys, planted)


@pytest.mark.slow
def test_a_planted_checkpoint_in_a_run_folder_is_not_resumed_from(synth, tmp_path, marker, capsys):
    run = tmp_path / "run"
    argv = ["train", "synthetic_small", f"data.root={synth}", f"out={run}", *TINY, "train.epochs=1"]
    assert main(argv) == 0
    zipped, legacy = _planted_files(tmp_path, marker)
    (run / "checkpoints" / "last.ckpt").write_bytes(zipped.read_bytes())
    (run / "checkpoints" / "previous.ckpt").write_bytes(legacy.read_bytes())
    capsys.readouterr()
    assert main([*argv, "train.epochs=2", "--resume", "--accept-changes"]) == 2
    assert not marker.exists()
    line = _one_error_line(capsys, run / "checkpoints" / "last.ckpt")
    assert "refused" in line and "nothing to resume from" in line


@pytest.mark.slow
def test_our_own_checkpoints_load_weights_only_and_a_trusted_file_still_loads(synth, tmp_path):
    """audfer's checkpoints hold only tensors and plain values, so the safe path loses nothing; the trust flag is a
    real switch (the planted code does run with it: the flag, not an accident, is what kept it out)."""
    from audfer.engine.evaluate import load_module

    run = tmp_path / "run"
    assert main(["train", "synthetic_small", f"data.root={synth}", f"out={run}", *TINY, "train.epochs=1"]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    stored = torch.load(ckpt, weights_only=True)  # raises if anything in it needs an import
    module = load_module(ckpt)
    assert all(torch.equal(v, stored["state_dict"][k]) for k, v in module.state_dict().items())

    marker = tmp_path / "TRUSTED"
    planted = _planted_files(tmp_path, marker)[1]
    assert main(["evaluate", str(planted), "--trust-pickle", "--out", str(tmp_path / "ev")]) == 2  # not a checkpoint
    assert marker.exists()


FACTORY = """
from pathlib import Path
Path({marker!r}).touch()  # importing this module is running its code

def build(**kw):
    return None  # not a module: audfer then refuses it, after the import ran
"""


@pytest.mark.slow
def test_a_config_inside_a_checkpoint_cannot_name_code_to_import(synth, tmp_path, marker, capsys, monkeypatch):
    (tmp_path / "plantedmod.py").write_text(FACTORY.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    assert main(["train", "synthetic_small", f"data.root={synth}", f"out={run}", *TINY, "train.epochs=1"]) == 0
    ck = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    ck["hyper_parameters"]["cfg"]["model"]["name"] = "plantedmod:build"
    doctored = tmp_path / "doctored.ckpt"
    torch.save(ck, doctored)
    capsys.readouterr()
    for command in ("predict", "evaluate", "export"):
        assert main(COMMANDS[command](doctored, tmp_path)) == 2
        assert not marker.exists() and "plantedmod" not in sys.modules
        line = _one_error_line(capsys, doctored)
        assert "names code to import" in line and "plantedmod:build" in line
    main(["evaluate", str(doctored), "--trust-pickle", "--out", str(tmp_path / "ev")])
    assert marker.exists()  # trusted: imported (the gate above is what kept it out)
    sys.modules.pop("plantedmod", None)


YAML_TAG = "!!python/object/apply:os.system [touch {marker}]\n"


def test_yaml_files_are_loaded_safely(synth, tmp_path, marker, capsys):
    planted = tmp_path / "planted.yaml"
    planted.write_text("model:\n  name: " + YAML_TAG.format(marker=marker))
    knowledge = tmp_path / "knowledge.yaml"
    knowledge.write_text("datasets: " + YAML_TAG.format(marker=marker))
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("AU01: " + YAML_TAG.format(marker=marker))
    study = tmp_path / "study.yaml"
    study.write_text("config: synthetic_small\nsizes: " + YAML_TAG.format(marker=marker))
    for argv, path in (
        (["train", str(planted), f"data.root={synth}", f"out={tmp_path / 'r'}"], planted),
        (["config", str(planted)], planted),
        (["knowledge", "--config", str(knowledge), "--out", str(tmp_path / "K.csv")], knowledge),
        (["study", str(study), "--out", str(tmp_path / "s")], study),
        (
            ["au-labels", str(synth / "OpenFace"), "--source", "table", "--mapping", str(mapping)]
            + ["--out", str(tmp_path / "au.csv")],
            mapping,
        ),
    ):
        assert main(argv) == 2, argv
        assert not marker.exists()
        _one_error_line(capsys, path)


def test_a_planted_clip_cache_entry_is_not_unpickled_but_rebuilt(synth, tmp_path, marker):
    from audfer.data.cache import ClipCache

    clip = sorted((synth / "Clip" / "clip_32x32").iterdir())[0]
    cache = ClipCache(tmp_path / "cache", size=32)
    expected = cache.get(clip).copy()
    entry = ClipCache(tmp_path / "cache", size=32).entry(clip)
    with open(entry, "wb") as fh:  # an object array: np.load would have to unpickle it
        np.save(fh, np.array([_Planted(marker)], dtype=object), allow_pickle=True)
    fresh = ClipCache(tmp_path / "cache", size=32)
    np.testing.assert_array_equal(fresh.get(clip), expected)
    assert fresh.misses == 1 and not marker.exists()
