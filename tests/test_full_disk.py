"""Every write survives a full disk (issue 33, item 6), with a real one: the writer runs in a process whose file-size
limit (``RLIMIT_FSIZE``, no root needed) makes the kernel fail ``write()`` with ``EFBIG`` mid-file, as a full disk
fails it with ``ENOSPC``. Each writer category (tables, report figures, checkpoints, synth, the CLI) leaves the
previous file intact and says so in one line naming the path; the CLI exits 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics of Linux")

SRC = str(Path(__file__).resolve().parents[1] / "src")

LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
"""


def _run(code: str, limit: int, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AUDFER_CACHE_DIR": str(tmp_path / "c")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MPLCONFIGDIR"] = str(
        tmp_path / "mpl"
    )  # warmed up below, without the limit  # a .pyc cut off by the limit would be installed (a short write)
    script = LIMITED.format(limit=limit) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    # libav's own log (``[mov,mp4,... @ 0x...] moov atom not found`` while the cut-off video is checked) is not ours
    err = [
        line
        for line in proc.stderr.strip().splitlines()
        if not line.startswith("warning:") and not (line.startswith("[") and " @ 0x" in line)
    ]
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return err[0]


def test_a_table_write_on_a_full_disk_names_the_path_and_keeps_the_previous_file(tmp_path):
    out = tmp_path / "table.csv"
    out.write_text("kept\n")
    proc = _run(
        f"""
        import polars as pl
        from audfer.errors import AudferError
        from audfer.io import write_csv
        try:
            write_csv(pl.DataFrame({{"x": list(range(100_000))}}), {str(out)!r})
        except AudferError as exc:
            print(exc, file=sys.stderr)
            sys.exit(2)
        """,
        20_000,
        tmp_path,
    )
    assert proc.returncode == 2
    assert _one_line(proc) == f"{out}: cannot write here (File too large); the previous file is intact"
    assert out.read_text() == "kept\n" and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_report_figure_on_a_full_disk_names_the_path_and_keeps_the_previous_file(tmp_path):
    out = tmp_path / "K.png"
    out.write_bytes(b"previous figure")
    assert _run("import matplotlib.font_manager", 1 << 30, tmp_path).returncode == 0  # matplotlib's own font cache
    proc = _run(
        f"""
        from audfer.errors import AudferError
        from audfer.evaluation.reports import plot_knowledge
        from audfer.method.knowledge import paper_knowledge
        try:
            plot_knowledge(paper_knowledge(), {str(out)!r})
        except AudferError as exc:
            print(exc, file=sys.stderr)
            sys.exit(2)
        """,
        4_000,
        tmp_path,
    )
    assert proc.returncode == 2
    assert _one_line(proc) == f"{out}: cannot write here (File too large); the previous file is intact"
    assert out.read_bytes() == b"previous figure"


def test_a_checkpoint_on_a_full_disk_names_last_ckpt_and_keeps_the_previous_one(tmp_path):
    """The run's checkpoint callback with torch's real writer (whose failure is a ``RuntimeError`` without errno)."""
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    (ckdir / "last.ckpt").write_bytes(b"epoch 1")
    proc = _run(
        f"""
        from pathlib import Path
        import torch
        from audfer.engine.callbacks import EveryEpoch
        from audfer.errors import AudferError

        class Trainer:  # what the callback asks of Lightning's trainer; the file is written by torch.save
            current_epoch, is_global_zero = 1, True
            def save_checkpoint(self, path):
                torch.save({{"w": torch.zeros(100_000)}}, path)

        cb = EveryEpoch(Path({str(ckdir)!r}), Path({str(tmp_path / "epochs.csv")!r}))
        try:
            cb.on_train_epoch_end(Trainer(), torch.nn.Linear(2, 2))
        except AudferError as exc:
            print(exc, file=sys.stderr)
            sys.exit(2)
        """,
        50_000,
        tmp_path,
    )
    assert proc.returncode == 2
    line = _one_line(proc)
    assert line.startswith(f"{ckdir / 'last.ckpt'}: cannot write the checkpoint of epoch 2 (")
    assert line.endswith("the previous last.ckpt is intact")
    assert (ckdir / "last.ckpt").read_bytes() == b"epoch 1" and sorted(p.name for p in ckdir.iterdir()) == ["last.ckpt"]


def test_synth_on_a_full_disk_is_exit_2_naming_the_folder_and_keeps_the_previous_dataset(tmp_path):
    out = tmp_path / "synth"
    proc = _run(
        f"""
        from audfer.cli import main
        sys.exit(main(["synth", "--out", {str(out)!r}, "--clips", "8", "--frames", "4", "--size", "32",
                       "--workers", "1"]))
        """,
        1 << 30,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    proc = _run(
        f"""
        from audfer.cli import main
        sys.exit(main(["synth", "--out", {str(out)!r}, "--clips", "8", "--frames", "4", "--size", "256",
                       "--workers", "2", "--overwrite"]))
        """,
        4_000,
        tmp_path,
    )
    assert proc.returncode == 2
    assert _one_line(proc) == (
        f"audfer: error: {out}: cannot write here (File too large); the previous folder is intact"
    )
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".synth")] == []


def test_an_oserror_without_a_path_is_never_printed_with_an_empty_path(capsys, monkeypatch):
    import errno
    import os

    from audfer import cli

    def fails(args):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    args, _ = parser.parse_known_args(["models"])
    monkeypatch.setattr(parser, "parse_known_args", lambda argv=None: (args, []))
    monkeypatch.setattr(args, "func", fails)
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err.strip() == f"audfer: error: {os.strerror(errno.EIO)}"


@pytest.mark.slow
def test_train_on_a_full_disk_is_exit_2_naming_a_path_and_keeps_the_finished_epoch(synth, tmp_path):
    """``audfer train`` resumed on a disk that then fills: one error line naming the checkpoint (never
    ``: No space ...``), the first epoch's ``last.ckpt`` intact, exit 2."""
    from conftest import TINY

    out = tmp_path / "run"
    argv = ["train", "synthetic_small", f"data.root={synth}", f"out={out}", *TINY]

    def train(*extra: str) -> str:
        return f"""
        from audfer.cli import main
        sys.exit(main({[*argv, *extra]!r}))
        """

    assert _run(train("train.epochs=1"), 1 << 30, tmp_path).returncode == 0
    first = (out / "checkpoints" / "last.ckpt").read_bytes()
    proc = _run(train("train.epochs=2", "--resume", "--accept-changes"), len(first) // 2, tmp_path)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("audfer: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr  # the rest is the run's progress log
    assert errors[0] == (
        f"audfer: error: {out / 'checkpoints' / 'last.ckpt'}: cannot write the checkpoint of epoch 2 (File too "
        f"large); the previous last.ckpt is intact"
    )
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == first


def test_rendered_videos_on_a_full_disk_are_checked_before_they_replace_anything(synth, tmp_path):
    """OpenCV's video writer does not raise when the disk fills: the file is decoded back before the rename."""
    out = tmp_path / "videos"
    code = f"""
        from pathlib import Path
        from audfer.errors import AudferError
        from audfer.synth.videos import render_videos
        try:
            made = render_videos(Path({str(synth)!r}), Path({str(out)!r}), size=64)
        except AudferError as exc:
            print(exc, file=sys.stderr)
            sys.exit(2)
        print(len(made))
        """
    proc = _run(code, 1 << 30, tmp_path)
    assert proc.returncode == 0, proc.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert any(name.endswith(".mp4") for name in before)
    proc = _run(code, 3_000, tmp_path)
    assert proc.returncode == 2
    line = _one_line(proc)
    assert line.startswith(str(out)) and "the previous file is intact" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing half-written, nothing left over
