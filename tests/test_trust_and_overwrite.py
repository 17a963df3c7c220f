"""A model file cannot run code unless trusted, through any door (``audfer.trust``), and ``--overwrite`` replaces only
what audfer wrote (``audfer.files.replace_output_dir``).

The planted files name ``plantedmod:build`` as ``model.name``: importing ``plantedmod`` writes one marker, calling
``build`` another. Every door (every command and public function that reads a model or an experiment config) is
handed each planted carrier; each must refuse in one line naming the file and the code, with neither marker written
and ``plantedmod`` never imported. ``test_every_door_is_tested`` finds the doors by introspection (CLI commands with
``--trust-pickle`` or an experiment config, public functions taking a checkpoint, a pretrained source or a trust
flag), so a new door fails it until it is added here."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import audfer
from audfer.cli import build_parser, main
from audfer.errors import AudferError

from conftest import TINY, tiny_video

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CODE = "plantedmod:build"

FACTORY = """
from pathlib import Path
Path({imported!r}).touch()  # importing this module is running its code

def build(**kw):
    Path({called!r}).touch()  # what os:system with model.kwargs would do
    raise SystemExit("planted factory called")
"""


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """``plantedmod`` importable, and every carrier of its name: a package folder, a Hub id in the local cache, a
    training checkpoint, an experiment config and a study file inside a package."""
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    imported, called = tmp_path / "IMPORTED", tmp_path / "CALLED"
    (mod_dir / "plantedmod.py").write_text(FACTORY.format(imported=str(imported), called=str(called)))
    monkeypatch.syspath_prepend(str(mod_dir))
    sys.modules.pop("plantedmod", None)

    from safetensors.torch import save_file

    model = {"name": CODE, "kwargs": {"command": f"touch {called}"}}
    cfg = {"model": model, "au": {"strategy": "global"}}
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    save_file({"fc.weight": torch.zeros(7, 8), "fc.bias": torch.zeros(7)}, str(pkg / "model.safetensors"))
    info = {"format": 1, "model": {**model, "num_classes": 7, "au_head": True}, "config": cfg, "knowledge": None}
    (pkg / "config.json").write_text(json.dumps(info))
    (pkg / "experiment.yaml").write_text(f"base: synthetic_small\nmodel:\n  name: '{CODE}'\n")
    (pkg / "study.yaml").write_text(f"config: synthetic_small\noverrides: ['model.name={CODE}']\n")

    import huggingface_hub.constants as hf

    hub = tmp_path / "hub" / "models--someorg--planted"
    shutil.copytree(pkg, hub / "snapshots" / COMMIT)
    (hub / "refs").mkdir()
    (hub / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))

    ckpt = tmp_path / "planted.ckpt"
    torch.save(
        {
            "state_dict": {"model.fc.weight": torch.zeros(7, 8)},
            "hyper_parameters": {"cfg": cfg, "knowledge": np.ones((7, 18)).tolist(), "pos_weight": None},
            "pytorch-lightning_version": "2.4.0",
        },
        ckpt,
    )
    yield {
        "package": pkg,
        "hub": "someorg/planted",
        "checkpoint": ckpt,
        "experiment": pkg / "experiment.yaml",
        "study": pkg / "study.yaml",
        "markers": (imported, called),
        "tmp": tmp_path,
    }
    sys.modules.pop("plantedmod", None)


def _model_doors(t: Path) -> dict[str, object]:
    """Doors that read a model file: name -> argv builder or function of the source."""
    return {
        "cli predict": lambda s: [
            "predict",
            str(tiny_video(t / "v.mp4")),
            "--checkpoint",
            str(s),
            "--out",
            str(t / "p.json"),
        ],
        "cli predict --model": lambda s: [
            "predict",
            str(tiny_video(t / "v.mp4")),
            "--checkpoint",
            str(s),
            "--model",
            "former_dfer_small",
            "--out",
            str(t / "p.json"),
        ],
        "cli evaluate": lambda s: ["evaluate", str(s), "--out", str(t / "ev")],
        "cli export": lambda s: ["export", str(s), "--onnx", str(t / "m.onnx")],
        "cli export --model": lambda s: ["export", str(s), "--onnx", str(t / "m.onnx"), "--model", "former_dfer_small"],
        "cli frame-probs": lambda s: ["frame-probs", str(s), "--out", str(t / "fp.csv")],
        "api frame_probabilities": lambda s: audfer.frame_probabilities(s, out=t / "fp2.csv"),
        "api from_pretrained": lambda s: audfer.from_pretrained(s),
        "api create_model(pretrained=)": lambda s: audfer.create_model("former_dfer_small", pretrained=s),
        "api load_checkpoint": lambda s: audfer.load_checkpoint(audfer.create_model("former_dfer_small"), s),
        "api load_module": lambda s: audfer.load_module(s),
        "api evaluate_checkpoint": lambda s: audfer.evaluate_checkpoint(s, out=t / "ev2"),
        "api load_predictor": lambda s: audfer.load_predictor(s),
        "api load_predictor(model_name=)": lambda s: audfer.load_predictor(s, "former_dfer_small"),
    }


#: Doors that take a checkpoint file only (no package folder or Hub id).
CHECKPOINT_DOORS = {
    "cli package": lambda s, t: ["package", str(s), "--out", str(t / "out")],
    "cli package --model": lambda s, t: ["package", str(s), "--out", str(t / "out"), "--model", "former_dfer_small"],
}

#: Doors that take an experiment config (or study) file.
CONFIG_DOORS = {
    "cli train": lambda p, t: ["train", str(p["experiment"]), f"out={t / 'run'}"],
    "cli config": lambda p, t: ["config", str(p["experiment"])],
    "cli cv": lambda p, t: ["cv", str(p["experiment"]), f"out={t / 'cv'}"],
    "cli ablate": lambda p, t: ["ablate", str(p["experiment"]), f"out={t / 'ab'}"],
    "cli study": lambda p, t: ["study", str(p["study"]), "--out", str(t / "study")],
    "api load_config": lambda p, t: audfer.load_config(p["experiment"]),
}

#: ``model.pretrained``: the training door (needs the synthetic set).
PRETRAINED_DOORS = {"cli train model.pretrained=", "api train (model.pretrained)"}


def _refused(argv, capsys, planted, source, error_file):
    """The command exits 2 with one line naming the file and the code; nothing of the code ran."""
    imported, called = planted["markers"]
    assert main(argv) == 2, source
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    assert str(error_file) in line and CODE in line and "refused" in line and "--trust-pickle" in line, line
    assert "plantedmod" not in sys.modules and not imported.exists() and not called.exists(), source


@pytest.mark.parametrize("carrier", ["package", "hub", "checkpoint"])
def test_a_model_file_naming_code_is_refused_by_every_door_before_anything_is_imported(planted, carrier, capsys):
    source = planted[carrier]
    if carrier == "package":
        error_file = planted["package"] / "config.json"
    elif carrier == "hub":
        error_file = Path(planted["tmp"], "hub", "models--someorg--planted", "snapshots", COMMIT, "config.json")
    else:
        error_file = planted["checkpoint"]
    t = planted["tmp"]
    for name, door in _model_doors(t).items():
        if name.startswith("cli"):
            _refused(door(source), capsys, planted, f"{name} {carrier}", error_file)
        else:
            with pytest.raises(AudferError) as info:
                door(source)
            line = str(info.value)
            if carrier == "checkpoint" and name == "api from_pretrained":  # packages only: refused as such
                assert "not an audfer package" in line
                continue
            assert str(error_file) in line and CODE in line and "--trust-pickle" in line, (name, line)
            assert "plantedmod" not in sys.modules and not any(m.exists() for m in planted["markers"]), name
    if carrier == "checkpoint":
        for name, door in CHECKPOINT_DOORS.items():
            _refused(door(source, t), capsys, planted, name, error_file)


def test_an_experiment_or_study_file_taken_from_a_package_cannot_name_code(planted, capsys):
    t = planted["tmp"]
    for name, door in CONFIG_DOORS.items():
        if name.startswith("cli"):
            _refused(door(planted, t), capsys, planted, name, planted["study" if "study" in name else "experiment"])
        else:
            with pytest.raises(AudferError) as info:
                door(planted, t)
            assert str(planted["experiment"]) in str(info.value) and CODE in str(info.value)
            assert "plantedmod" not in sys.modules


def test_model_pretrained_naming_code_is_refused(planted, synth, capsys):
    t = planted["tmp"]
    for source, error_file in ((planted["package"], planted["package"] / "config.json"), (planted["checkpoint"],) * 2):
        argv = ["train", "synthetic_small", f"data.root={synth}", f"out={t / 'run'}", *TINY, "train.epochs=1"]
        _refused([*argv, f"model.pretrained={source}"], capsys, planted, "train", error_file)
        cfg = audfer.load_config(
            "synthetic_small", [f"data.root={synth}", f"out={t / 'run2'}", *TINY, f"model.pretrained={source}"]
        )
        with pytest.raises(AudferError, match="plantedmod:build"):
            audfer.train(cfg)
        assert "plantedmod" not in sys.modules


def test_the_users_trust_flag_still_lets_the_code_run(planted, capsys):
    """The gate is a switch, not an accident: trusted, the named code is imported and called."""
    imported, called = planted["markers"]
    with pytest.raises(SystemExit):
        audfer.from_pretrained(planted["package"], trust_pickle=True)
    assert imported.exists() and called.exists()
    sys.modules.pop("plantedmod", None)
    imported.unlink()
    # a user's own experiment config naming their own code is theirs: not gated
    own = planted["tmp"] / "mine.yaml"
    own.write_text(f"base: synthetic_small\nmodel:\n  name: '{CODE}'\n")
    assert audfer.load_config(own).model.name == CODE  # checked: imported (not called)
    assert imported.exists()
    # a taken experiment file with the user's own trust override loads too
    sys.modules.pop("plantedmod", None)
    imported.unlink()
    assert audfer.load_config(planted["experiment"], ["model.trust_pickle=true"]).model.name == CODE
    assert imported.exists()


def _cli_doors() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    doors = set()
    for name, p in sub.choices.items():
        dests = {a.dest for a in p._actions}
        if "trust_pickle" in dests or ({"config", "study"} & dests and "overrides" in dests):
            doors.add(f"cli {name}")
    return doors


def _api_doors() -> set[str]:
    doors = set()
    for name in audfer.__all__:
        obj = getattr(audfer, name)
        if not callable(obj) or isinstance(obj, type):
            continue
        params = set(inspect.signature(obj).parameters)
        if params & {"checkpoint", "pretrained", "trust_pickle"} or (name == "load_config"):
            doors.add(f"api {name}")
        if name == "train":  # takes a Config whose model.pretrained it loads
            doors.add("api train")
    return doors


def test_every_door_is_tested():
    """Every command and public function that reads a model or an experiment config is in the lists above: a new
    door fails here until a test hands it the planted files."""
    tested = {n.split(" (")[0].split("(")[0].split(" --")[0] for n in _model_doors(Path("."))}
    tested |= {n.split(" --")[0] for n in CHECKPOINT_DOORS} | set(CONFIG_DOORS)
    tested |= {n.split(" (")[0].split(" model.")[0] for n in PRETRAINED_DOORS}
    found = _cli_doors() | _api_doors()
    assert found, "introspection found no door"
    assert found <= tested, f"doors not tested: {sorted(found - tested)}"


# ------------------------------------------------------------------------------------------------ --overwrite


@pytest.fixture
def released(tmp_path):
    """A released-layout checkpoint (``{'state_dict': ...}``) of ``former_dfer_small`` without the AU head: what
    ``package --model`` converts, in a second."""
    model = audfer.create_model("former_dfer_small", au_head=False)
    path = tmp_path / "runs" / "released.pth"
    path.parent.mkdir()
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def _package(src, out, *extra, capsys=None):
    if capsys is not None:
        capsys.readouterr()  # what earlier commands printed
    return main(["package", str(src), "--out", str(out), "--model", "former_dfer_small", *extra])


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_package_overwrite_refuses_a_users_folder_and_the_folder_holding_its_source(released, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert _package(released, mine, "--overwrite") == 2
    line = _one_line(capsys)
    assert str(mine) in line and "replaces only an earlier `audfer package` output" in line
    assert (mine / "thesis.tex").read_text() == "precious" and sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    runs = released.parent  # the folder holding the source
    assert _package(released, runs, "--overwrite") == 2
    line = _one_line(capsys)
    assert str(released) in line and "source" in line
    assert released.is_file()
    assert not list(tmp_path.glob(".*partial*"))  # nothing left beside


def test_package_overwrite_replaces_its_own_output_and_nothing_a_user_added(released, tmp_path, capsys):
    from audfer.files import OUTPUT_MARKER

    out = tmp_path / "pkg"
    assert _package(released, out) == 0
    marker = json.loads((out / OUTPUT_MARKER).read_text())
    assert marker["kind"] == "package" and set(marker["entries"]) == {p.name for p in out.iterdir()} - {OUTPUT_MARKER}
    assert _package(released, out, capsys=capsys) == 2 and "not empty" in _one_line(capsys)  # without --overwrite
    (out / "notes.txt").write_text("mine")
    assert _package(released, out, "--overwrite", capsys=capsys) == 2
    assert "notes.txt" in _one_line(capsys) and (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    before = (out / "config.json").stat().st_mtime_ns
    assert _package(released, out, "--overwrite", "--license", "mit") == 0
    assert json.loads((out / "config.json").read_text())["license"] == "mit"
    assert (out / "config.json").stat().st_mtime_ns != before
    (out / OUTPUT_MARKER).unlink()  # a package from an audfer before the marker: recognised by its config.json
    assert _package(released, out, "--overwrite") == 0 and (out / OUTPUT_MARKER).is_file()


def test_overwrite_follows_a_symlinked_folder_and_keeps_the_link(released, tmp_path):
    real = tmp_path / "real"
    assert _package(released, real) == 0
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    assert _package(released, link, "--overwrite", "--license", "apache-2.0") == 0
    assert link.is_symlink() and Path(os.readlink(link)) == real
    assert json.loads((real / "config.json").read_text())["license"] == "apache-2.0"


def test_synth_overwrite_uses_the_same_marker_and_refuses_another_commands_output(released, tmp_path, capsys):
    from audfer.files import OUTPUT_MARKER

    out = tmp_path / "syn"
    argv = ["synth", "--out", str(out), "--clips", "5", "--size", "32", "--frames", "4", "--workers", "1"]
    assert main(argv) == 0
    assert json.loads((out / OUTPUT_MARKER).read_text())["kind"] == "synth"
    assert main([*argv, "--overwrite", "--seed", "4"]) == 0
    assert json.loads((out / "synth.json").read_text())["seed"] == 4
    pkg = tmp_path / "pkg"
    assert _package(released, pkg) == 0
    capsys.readouterr()
    assert main(["synth", "--out", str(pkg), "--clips", "5", "--size", "32", "--frames", "4", "--overwrite"]) == 2
    assert "replaces only an earlier `audfer synth` output" in _one_line(capsys) and (pkg / "config.json").is_file()
    assert _package(released, out, "--overwrite") == 2 and (out / "synth.json").is_file()


@pytest.mark.slow  # a subprocess that loads torch: ~10-40 s on a busy 2-core machine
def test_package_on_a_full_disk_is_one_line_naming_the_file_and_keeps_the_previous_package(released, tmp_path):
    """A real write failure: the process may not write files over 1 MB (RLIMIT_FSIZE, EFBIG), and the weights are
    3.5 MB, so safetensors fails mid-file."""
    import resource
    import signal
    import subprocess

    out = tmp_path / "pkg"
    assert _package(released, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    cmd = [sys.executable, "-m", "audfer", "package", str(released), "--out", str(out), "--model", "former_dfer_small"]
    done = subprocess.run([*cmd, "--overwrite"], capture_output=True, text=True, preexec_fn=limit, env=os.environ)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert str(out / "model.safetensors") in err[0] and "File too large" in err[0] and "Traceback" not in done.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------------------------------ non-finite weights


def test_weights_that_are_not_finite_are_refused_by_every_reader(tmp_path, capsys):
    """A NaN in the weights gives invented numbers (WAR/UAR, "Happy (nan)"): every reader refuses the file, naming
    it and the first non-finite tensor, before any output is written."""
    from safetensors.torch import save_file

    model = audfer.create_model("former_dfer_small", au_head=False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    broken = next(k for k, v in state.items() if v.is_floating_point())
    state[broken].view(-1)[0] = float("nan")
    released = tmp_path / "released.pth"
    torch.save({"state_dict": state}, released)
    cfg = {"model": {"name": "former_dfer_small", "kwargs": {}}, "au": {"strategy": "none"}}
    ckpt = tmp_path / "run.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in state.items()},
            "hyper_parameters": {"cfg": cfg, "knowledge": np.ones((7, 18)).tolist(), "pos_weight": None},
            "pytorch-lightning_version": "2.4.0",
            "epoch": 0,
        },
        ckpt,
    )
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    save_file(state, str(pkg / "model.safetensors"))
    info = {"format": 1, "model": {**cfg["model"], "num_classes": 7, "au_head": False}, "config": cfg}
    (pkg / "config.json").write_text(json.dumps({**info, "knowledge": None}))
    t = tmp_path
    for source, named in ((ckpt, ckpt), (pkg, pkg / "model.safetensors"), (released, released)):
        doors = [
            ["evaluate", str(source), "--out", str(t / "ev")],
            ["predict", str(tiny_video(t / "v.mp4")), "--checkpoint", str(source), "--out", str(t / "p.json")],
            ["export", str(source), "--onnx", str(t / "m.onnx")],
            ["export", str(source), "--onnx", str(t / "m.onnx"), "--model", "former_dfer_small"],
        ]
        if source != pkg:
            doors.append(["package", str(source), "--out", str(t / "out")])
        if source == released:
            doors = doors[3:] + [["package", str(source), "--out", str(t / "out"), "--model", "former_dfer_small"]]
        for argv in doors:
            capsys.readouterr()
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and str(named) in err[0] and broken in err[0] and "not finite" in err[0], err
        with pytest.raises(AudferError, match="not finite"):
            audfer.create_model("former_dfer_small", au_head=False, pretrained=source)
        assert not any((t / n).exists() for n in ("ev", "p.json", "m.onnx", "out"))
