"""One exception family (audfer.errors): what audfer raises for bad input is an AudferError subclass, the CLI
prints it as one line with exit status 2, and no bare ValueError/TypeError/RuntimeError is raised anywhere."""

import ast
from pathlib import Path

import pytest

from audfer import errors
from audfer.cli import main

SRC = Path(errors.__file__).parent


def test_the_family_tree():
    for cls in (errors.InputError, errors.ConfigError, errors.CheckpointError, errors.TrainingStopped):
        assert issubclass(cls, errors.AudferError)
    assert issubclass(errors.NoFaceError, errors.InputError) and issubclass(
        errors.UnreadableFrameError, errors.InputError
    )
    assert issubclass(errors.AudferError, ValueError)  # callers that caught ValueError keep working
    from audfer.data.datasets import UnreadableFrame
    from audfer.errors import NoFaceError

    assert UnreadableFrame is errors.UnreadableFrameError and NoFaceError is errors.NoFaceError
    assert str(errors.UnreadableFrameError(Path("x/3.jpg"))) == "x/3.jpg: unreadable frame image"


#: Where a builtin error is the protocol: a mapping's item access and deletion raise KeyError (``dict``'s contract).
_PROTOCOL = {"__getitem__": "KeyError", "__delitem__": "KeyError"}


def test_no_bare_builtin_error_is_raised_in_the_package():
    bare = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        allowed = {
            id(node): _PROTOCOL[fn.name]
            for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef) and fn.name in _PROTOCOL
            for node in ast.walk(fn)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Raise)
                and isinstance(node.exc, ast.Call)
                and isinstance(node.exc.func, ast.Name)
                and node.exc.func.id in ("ValueError", "TypeError", "RuntimeError", "Exception", "KeyError")
                and allowed.get(id(node)) != node.exc.func.id
            ):
                bare.append(f"{path.relative_to(SRC)}:{node.lineno} {node.exc.func.id}")
    assert not bare, bare


@pytest.mark.parametrize(
    "argv, kind, message",
    [
        (["train", "synthetic_small", "au.lamda=0.5"], errors.ConfigError, "unknown option 'au.lamda'"),
        (["evaluate", "missing.ckpt"], errors.CheckpointError, "missing.ckpt: checkpoint not found"),
    ],
)
def test_each_kind_reaches_the_cli_as_one_line_and_status_2(argv, kind, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("audfer: error: ") and message in err[0]
    # the same call through the API raises the specific kind
    if argv[0] == "train":
        from audfer.config import load_config

        with pytest.raises(kind, match=message):
            load_config(argv[1], argv[2:])
    else:
        from audfer.engine.evaluate import load_module

        with pytest.raises(kind, match=message):
            load_module(argv[1])


def test_input_errors_name_the_file(tmp_path):
    from audfer.au.openface import read_openface

    bad = tmp_path / "clip.csv"
    bad.write_text("frame, face_id, timestamp, confidence, success, AU01_r\n1, 0, 0.0, 0.9, 1, abc\n")
    with pytest.raises(errors.InputError, match="clip.csv"):
        read_openface(bad)
