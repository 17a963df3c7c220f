"""Progress bars (issue 36 item 6, the commands outside predict): drawn on stderr only when it is a terminal and
without --quiet; stdout and the files written are the same with and without a terminal (a pseudo-terminal here)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from audfer import progress


def _audfer(args: list[str], *, tty: bool, cwd: Path) -> tuple[bytes, bytes]:
    """stdout and stderr of ``python -m audfer ARGS``; with ``tty`` its stderr is a pseudo-terminal."""
    env = {**os.environ, "COLUMNS": "100"}
    cmd = [sys.executable, "-m", "audfer", *args]
    if not tty:
        done = subprocess.run(cmd, capture_output=True, cwd=cwd, env=env, timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout, done.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal (EIO)
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    out = proc.stdout.read() if proc.stdout else b""
    assert proc.wait(timeout=300) == 0, err.decode(errors="replace")
    return out, err


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # five processes that import torch
def test_bars_only_on_a_terminal_and_outputs_unchanged(tmp_path):
    synth = ["synth", "--clips", "8", "--size", "32", "--frames", "4", "--workers", "1", "--seed", "3"]
    out_plain, err_plain = _audfer([*synth, "--out", "plain"], tty=False, cwd=tmp_path)
    out_tty, err_tty = _audfer([*synth, "--out", "tty"], tty=True, cwd=tmp_path)
    out_quiet, err_quiet = _audfer([*synth, "--out", "quiet", "--quiet"], tty=True, cwd=tmp_path)
    assert _tree(tmp_path / "plain") == _tree(tmp_path / "tty") == _tree(tmp_path / "quiet")  # byte-identical files
    assert out_plain == out_tty == out_quiet
    assert b"clips: " in err_tty and b"/8 " in err_tty  # the bar counts clips of 8 (tqdm may skip the last refresh)
    assert b"clips: " not in err_plain and b"\r" not in err_plain  # not a terminal: no bar
    assert b"clips: " not in err_quiet and b"\r" not in err_quiet.replace(b"\r\n", b"")  # --quiet: no bar
    assert err_plain.splitlines()[-1].startswith(b"rendered 8 clips")

    table_plain, err_plain = _audfer(["models"], tty=False, cwd=tmp_path)
    table_tty, err_tty = _audfer(["models"], tty=True, cwd=tmp_path)
    assert table_plain == table_tty and table_plain.startswith(b"model ")  # the table on stdout, unchanged
    assert err_tty == err_plain == b""  # the official table is stored (no model is measured): nothing to show


def test_the_helper_is_silent_off_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))  # noqa: SIM115 - closed by the interpreter
    assert not progress.enabled()
    with progress.bar(total=3, desc="runs") as shown:
        assert shown.disable
    progress.set_quiet(True)
    try:
        assert not progress.enabled()
    finally:
        progress.set_quiet(False)


@pytest.mark.parametrize("command", ["au-labels", "knowledge", "synth", "evaluate", "cv", "ablate", "study", "models"])
def test_every_long_command_takes_quiet(command):
    from audfer.cli import build_parser

    assert "--quiet" in build_parser().commands[command]._option_string_actions


def test_loading_a_model_for_predict_and_export_shows_a_bar_only_when_bars_are_on(small_weights, monkeypatch):
    import io

    from audfer.predict.predictor import load_predictor

    for on in (True, False):
        err = io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        monkeypatch.setattr(progress, "enabled", lambda on=on: on)
        model = load_predictor(small_weights, "former_dfer_small")
        assert not model.training
        assert (f"loading {small_weights.name}" in err.getvalue()) is on
