"""Nothing lost, nothing silently wrong: resume keeps every finished epoch, a corrupt checkpoint falls back,
changed settings are refused, signals stop cleanly, one run per folder, outputs never clobber what is not
theirs. Faults are injected, not simulated by reading code."""

import json
import os
import signal
import stat
import subprocess
import sys

import polars as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from audfer import AudferError
from audfer.cli import main
from audfer.config import load_config
from audfer.engine import train
from audfer.errors import TrainingStopped
from audfer.files import atomic_path
from audfer.io import write_csv
from audfer.synth.dataset import SynthConfig, generate

from conftest import TINY, tiny_config

_cfg = tiny_config


def _weights(run, name="last.ckpt"):
    return torch.load(run / "checkpoints" / name, weights_only=False)["state_dict"]


class _Crash(Callback):
    """Fault injection: raise in the given epoch (0-based) after ``batch`` batches."""

    def __init__(self, epoch, batch=1, exc=RuntimeError("injected crash")):
        self.epoch, self.batch, self.exc = epoch, batch, exc

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx + 1 == self.batch:
            raise self.exc


class _Signal(Callback):
    def __init__(self, epoch, signum):
        self.epoch, self.signum, self.sent = epoch, signum, False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 0 and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


# ----------------------------------------------------------------------------------------------- resume
@pytest.mark.slow
def test_a_resumed_run_that_crashes_keeps_every_finished_epoch_row(synth, tmp_path):
    cfg = _cfg(synth, tmp_path / "r", "train.epochs=4")
    with pytest.raises(RuntimeError, match="injected"):
        train(cfg, callbacks=[_Crash(2)], log=lambda m: None, evaluate=False)
    rows = pl.read_csv(tmp_path / "r" / "epochs.csv")
    assert rows["epoch"].to_list() == [0, 1] and "train/ce" in rows.columns
    # the resumed run crashes too, before finishing anything: the first run's rows are still there
    with pytest.raises(RuntimeError, match="injected"):
        train(cfg, resume=True, callbacks=[_Crash(2)], log=lambda m: None, evaluate=False)
    assert pl.read_csv(tmp_path / "r" / "epochs.csv")["epoch"].to_list() == [0, 1]
    train(cfg, resume=True, log=lambda m: None, evaluate=False)
    rows = pl.read_csv(tmp_path / "r" / "epochs.csv")
    assert rows["epoch"].to_list() == [0, 1, 2, 3] and rows["train/ce"].null_count() == 0


@pytest.mark.slow
def test_truncated_last_checkpoint_falls_back_to_the_previous_one(synth, tmp_path):
    out = tmp_path / "t"
    cfg = _cfg(synth, out, "train.epochs=3")
    with pytest.raises(RuntimeError):
        train(cfg, callbacks=[_Crash(2)], log=lambda m: None, evaluate=False)
    last = out / "checkpoints" / "last.ckpt"
    assert torch.load(out / "checkpoints" / "previous.ckpt", weights_only=False)["epoch"] == 0
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # a crash while it was written
    logs = []
    train(cfg, resume=True, log=logs.append, evaluate=False)
    assert any(
        "last.ckpt: unreadable" in m and "resuming from previous.ckpt instead (1 finished epoch(s))" in m for m in logs
    )
    reference = train(_cfg(synth, tmp_path / "ref", "train.epochs=3"), log=lambda m: None, evaluate=False)
    a, b = _weights(out), _weights(reference)
    assert all(torch.equal(a[k], b[k]) for k in a)  # redoing epoch 2 from epoch 1 gives the same weights
    for name in ("last.ckpt", "previous.ckpt"):
        (out / "checkpoints" / name).write_text("not a checkpoint")
    with pytest.raises(AudferError, match=r"last\.ckpt: unreadable.*no good previous checkpoint"):
        train(cfg, resume=True, log=lambda m: None, evaluate=False)


@pytest.mark.slow
def test_resume_with_changed_settings_refuses_unless_accepted(synth, tmp_path):
    out = tmp_path / "c"
    with pytest.raises(RuntimeError):
        train(_cfg(synth, out, "train.epochs=3"), callbacks=[_Crash(1)], log=lambda m: None, evaluate=False)
    changed = _cfg(synth, out, "train.epochs=3", "optim.lr=0.002", "au.lam=0.5", "data.num_workers=0")
    with pytest.raises(
        AudferError, match=r"2 changed setting\(s\).*au\.lam: 0\.25 -> 0\.5; optim\.lr: 0\.004 -> 0\.002"
    ):
        train(changed, resume=True, log=lambda m: None, evaluate=False)
    logs = []
    train(changed, resume=True, accept_changes=True, log=logs.append, evaluate=False)
    record = json.loads((out / "changes.json").read_text())
    assert record == [{"from_epoch": 2, "changes": {"au.lam": [0.25, 0.5], "optim.lr": [0.004, 0.002]}}]
    assert any("settings changed from epoch 2" in m for m in logs)


@pytest.mark.slow
@pytest.mark.parametrize("schedule", [[], ["optim.scheduler=step", "optim.step_size=1", "optim.gamma=0.5"]])
def test_a_resume_trains_with_the_accepted_lr_like_a_fresh_run_from_the_resumed_epoch(synth, tmp_path, schedule):
    """``--accept-changes`` records a new ``optim.lr``: the resumed epochs run with it, the schedule recomputed for
    it (per-step cosine with warm-up, or per-epoch step decay), exactly as a fresh run with the new lr runs those
    epochs (``epochs.csv``'s ``lr``: the lr of each epoch's first step)."""
    resumed, fresh = tmp_path / "resumed", tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        train(
            _cfg(synth, resumed, "train.epochs=3", *schedule), callbacks=[_Crash(1)], log=lambda m: None, evaluate=False
        )
    new = ["train.epochs=3", "optim.lr=0.04", *schedule]
    train(_cfg(synth, resumed, *new), resume=True, accept_changes=True, log=lambda m: None, evaluate=False)
    train(_cfg(synth, fresh, *new), log=lambda m: None, evaluate=False)
    a, b = (pl.read_csv(r / "epochs.csv").sort("epoch") for r in (resumed, fresh))
    assert a["epoch"].to_list() == b["epoch"].to_list() == [0, 1, 2]
    assert a["lr"][0] != pytest.approx(b["lr"][0])  # the first epoch ran with the old lr
    assert a["lr"][1:].to_list() == pytest.approx(b["lr"][1:].to_list(), rel=1e-12)
    assert json.loads((resumed / "changes.json").read_text()) == [
        {"from_epoch": 2, "changes": {"optim.lr": [0.004, 0.04]}}
    ]


@pytest.mark.slow
def test_a_resume_refuses_an_accepted_change_it_cannot_apply(synth, tmp_path):
    out = tmp_path / "r"
    train(_cfg(synth, out, "train.epochs=1"), log=lambda m: None, evaluate=False)
    changed = _cfg(synth, out, "train.epochs=2", "optim.lr=0.01", "optim.name=sgd")
    with pytest.raises(AudferError, match=r"cannot apply optim\.name \(the optimiser's state.*would apply optim\.lr"):
        train(changed, resume=True, accept_changes=True, log=lambda m: None, evaluate=False)
    assert not (out / "changes.json").exists()


def test_incidental_settings_are_not_changes():
    from audfer.engine.runfolder import config_changes

    a = load_config("synthetic_small", [])
    b = load_config(
        "synthetic_small", ["data.num_workers=2", "train.threads=1", "train.progress=false", "data.cache=null"]
    )
    assert config_changes(a, b) == {}
    assert config_changes(a, load_config("synthetic_small", ["train.seed=3"])) == {"train.seed": (0, 3)}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_at_a_step_boundary_and_the_run_resumes_exactly(synth, tmp_path, signum):
    out = tmp_path / "s"
    cfg = _cfg(synth, out, "train.epochs=3")
    with pytest.raises(
        TrainingStopped,
        match=rf"stopped by {signal.Signals(signum).name} after step \d+ \(epoch 2\); the 1 "
        r"finished epoch\(s\) are in",
    ) as info:
        train(cfg, callbacks=[_Signal(1, signum)], log=lambda m: None, evaluate=False)
    assert info.value.exit_code == 128 + signum
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
    assert (
        torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    )  # no partial-epoch checkpoint
    train(cfg, resume=True, log=lambda m: None, evaluate=False)
    reference = train(_cfg(synth, tmp_path / "ref", "train.epochs=3"), log=lambda m: None, evaluate=False)
    a, b = _weights(out), _weights(reference)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_sigterm_through_the_cli_exits_143(synth, tmp_path):
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-c",
        "import os, signal, sys\n"
        "from lightning.pytorch.callbacks import Callback\n"
        "import importlib\n"
        "t = importlib.import_module('audfer.engine.train')\n"
        "class K(Callback):\n"
        "    def on_train_batch_end(self, tr, m, o, b, i):\n"
        "        if tr.current_epoch == 1: os.kill(os.getpid(), signal.SIGTERM)\n"
        "orig = t._train_locked\n"
        "t._train_locked = lambda cfg, **kw: orig(cfg, **{**kw, 'callbacks': [K()]})\n"
        "from audfer.cli import main\n"
        f"sys.exit(main(['train', 'synthetic_small', 'data.root={synth}', 'out={out}', 'train.epochs=2', *{TINY!r}]))\n",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "audfer: error: stopped by SIGTERM" in proc.stderr and "--resume" in proc.stderr


@pytest.mark.slow
def test_sigterm_to_one_ddp_rank_stops_every_rank(synth, tmp_path):
    """A scheduler may signal one process only: the other rank must not hang in the next all-reduce."""
    out = tmp_path / "ddp"
    script = tmp_path / "run_ddp.py"
    script.write_text(
        "import os, signal, sys, importlib\n"
        "from lightning.pytorch.callbacks import Callback\n"
        "t = importlib.import_module('audfer.engine.train')\n"
        "class K(Callback):\n"
        "    def on_train_batch_end(self, tr, m, o, b, i):\n"
        "        if tr.current_epoch == 1 and tr.global_rank == 1: os.kill(os.getpid(), signal.SIGTERM)\n"
        "orig = t._train_locked\n"
        "t._train_locked = lambda cfg, **kw: orig(cfg, **{**kw, 'callbacks': [K()]})\n"
        "from audfer.cli import main\n"
        "if __name__ == '__main__':\n"
        f"    sys.exit(main(['train', 'synthetic_small', 'data.root={synth}', 'out={out}', 'train.epochs=3', *{TINY!r},\n"
        "                   'train.devices=2', 'train.strategy=ddp', 'train.accelerator=cpu', 'train.threads=1']))\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 143, proc.stderr[-2000:]  # rank 0 was never signalled, yet stops with SIGTERM's status
    assert "stopped by SIGTERM" in proc.stderr and "(epoch 2)" in proc.stderr
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0  # the finished epoch only


# ----------------------------------------------------------------------------------------------- lock
@pytest.mark.slow
def test_a_run_folder_in_use_refuses_and_a_dead_lock_is_taken_over(synth, tmp_path, capsys):
    out = tmp_path / "l"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".audfer.lock").write_text(
            json.dumps(
                {"pid": sleeper.pid, "host": os.uname().nodename, "command": "audfer train other", "started": "now"}
            )
        )
        with pytest.raises(AudferError, match=rf"run folder in use by process {sleeper.pid} .*audfer train other"):
            train(_cfg(synth, out, "train.epochs=1"), log=lambda m: None, evaluate=False)
        assert main(["cv", "synthetic_small", f"data.root={synth}", f"out={out}", *TINY, "--folds", "1"]) == 2
        assert f"run folder in use by process {sleeper.pid}" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait()
    logs = []
    train(_cfg(synth, out, "train.epochs=1"), log=logs.append, evaluate=False)  # the process is gone now
    assert any(f"its process {sleeper.pid} (audfer train other) is gone" in m for m in logs)
    assert not (out / ".audfer.lock").exists()  # released


# ----------------------------------------------------------------------------------------------- outputs
def test_writes_follow_symlinks_refuse_folders_and_devices_and_use_usual_permissions(tmp_path):
    target = tmp_path / "real" / "K.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    os.chmod(target, 0o640)
    link = tmp_path / "K.csv"
    link.symlink_to(target)
    write_csv(pl.DataFrame({"a": [1]}), link)
    assert link.is_symlink() and target.read_text() == "a\n1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the replaced file's mode is kept
    old = os.umask(0o022)
    try:
        write_csv(pl.DataFrame({"a": [1]}), tmp_path / "new.csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o644
    (tmp_path / "adir").mkdir()
    with pytest.raises(AudferError, match=r"adir: is a folder; expected a file path"):
        write_csv(pl.DataFrame({"a": [1]}), tmp_path / "adir")
    with pytest.raises(AudferError, match=r"/dev/null: is not a regular file"):
        with atomic_path("/dev/null") as tmp:
            tmp.write_text("x")
    assert [p.name for p in (tmp_path / "real").iterdir()] == ["K.csv"]  # no temporary file left behind


@pytest.mark.slow
def test_synth_overwrite_deletes_only_its_own_output(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert main(["synth", "--out", str(mine), "--clips", "10", "--size", "32", "--frames", "4", "--overwrite"]) == 2
    assert "--overwrite replaces only an earlier `audfer synth` output" in capsys.readouterr().err
    assert (mine / "thesis.tex").read_text() == "precious"
    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--clips", "10", "--size", "32", "--frames", "4"]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["synth", "--out", str(out), "--clips", "10", "--size", "32", "--frames", "4", "--overwrite"]) == 2
    assert "holds files audfer did not write as an earlier `audfer synth` output (notes.txt)" in capsys.readouterr().err
    assert (out / "notes.txt").exists()
    (out / "notes.txt").unlink()
    assert (
        main(
            ["synth", "--out", str(out), "--clips", "10", "--size", "32", "--frames", "4", "--seed", "3", "--overwrite"]
        )
        == 0
    )
    assert json.loads((out / "synth.json").read_text())["seed"] == 3


def test_demo_does_not_reuse_a_synthetic_set_made_with_other_settings(tmp_path):
    from audfer.synth.dataset import synth_settings_differ

    out = generate(tmp_path / "s", SynthConfig(clips=10, size=32, frames=4, seed=1), workers=1)
    assert synth_settings_differ(out, SynthConfig(clips=10, size=32, frames=4, seed=1)) == {}
    assert synth_settings_differ(out, SynthConfig(clips=12, size=32, frames=4, seed=1)) == {"clips": (10, 12)}
