"""``train.num_nodes``: a run across machines. Two "nodes" on this machine, each a torchrun agent with one process
(gloo over loopback, c10d rendezvous on 127.0.0.1), each in its own working folder as if they shared no disk: the run
trains, only global rank 0 writes the run folder, and the result equals two devices on one node (same seed, same
global batch)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import polars as pl
import pytest
import torch

from conftest import TINY

TIMEOUT_S = 420  # each run; the whole test stays bounded even if a rendezvous never completes


def test_the_global_batch_spans_devices_and_nodes_alike(tmp_path):
    """Steps per epoch and MAE-DFER's batch / 256 lr scaling follow the processes of all nodes: 2 devices x 2 nodes
    step like 4 devices on one node (96 clips / 4 processes / batch 8 = 3 steps)."""
    from audfer.config import load_config
    from audfer.engine.datamodule import steps_per_epoch
    from audfer.engine.module import AUDFERModule

    def cfg(devices: int, nodes: int):
        values = [
            f"train.devices={devices}",
            f"train.num_nodes={nodes}",
            "train.batch_size=8",
            "optim.lr_scale=batch256",
        ]
        return load_config("synthetic_small", [f"out={tmp_path}", *values])

    spread, single = cfg(2, 2), cfg(4, 1)
    assert steps_per_epoch(96, spread.train) == steps_per_epoch(96, single.train) == 3
    assert steps_per_epoch(96, cfg(2, 1).train) == 6
    assert AUDFERModule.lr_scale(cast(Any, SimpleNamespace(cfg=spread))) == 8 * 4 / 256
    assert AUDFERModule.lr_scale(cast(Any, SimpleNamespace(cfg=single))) == 8 * 4 / 256


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _args(synth: Path, out: str, *extra: str) -> list[str]:
    common = ["train.epochs=2", "train.accelerator=cpu", "train.strategy=ddp", "train.threads=1"]
    return ["-m", "audfer.cli", "train", "synthetic_small", f"data.root={synth}", f"out={out}", *TINY, *common, *extra]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "PYTHONWARNINGS": "ignore",
        "GLOO_SOCKET_IFNAME": "lo",  # loopback only
        "MASTER_ADDR": "127.0.0.1",
        # what torchrun sets; the one-node run gets it too (with another value the runs differ in the 7th digit,
        # train.threads=1 notwithstanding)
        "OMP_NUM_THREADS": "1",
    }


def _run_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


@pytest.mark.slow
def test_two_torchrun_nodes_train_like_two_devices_on_one_node(synth, tmp_path):
    one = tmp_path / "one_node"
    proc = subprocess.run(
        [sys.executable, *_args(synth, str(one), "train.devices=2")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    port = _free_port()
    nodes = []
    for node in (0, 1):
        cwd = tmp_path / f"node{node}"  # each "machine" its own disk: the run folder is relative to it
        cwd.mkdir()
        torchrun = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc-per-node=1",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}",
            "--rdzv-id=audfer-test",
            "--local-addr=127.0.0.1",
            "--max-restarts=0",
            "--monitor-interval=1",
        ]
        cmd = [*torchrun, *_args(synth, "run", "train.devices=1", "train.num_nodes=2")]
        log = (tmp_path / f"node{node}.log").open("w")
        nodes.append((subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=log, stderr=subprocess.STDOUT), log))
    try:
        codes = [p.wait(timeout=TIMEOUT_S) for p, _ in nodes]
    finally:
        for p, log in nodes:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    logs = [(tmp_path / f"node{n}.log").read_text()[-3000:] for n in (0, 1)]
    assert codes == [0, 0], logs

    # the rendezvous decides which node holds global rank 0: its folder has the run, the other node's has nothing
    runs = sorted((tmp_path / f"node{n}" / "run" for n in (0, 1)), key=lambda r: not (r / "config.yaml").is_file())
    written = _run_files(runs[0])
    assert {"config.yaml", "init.json", "epochs.csv", "selection.json", "checkpoints/last.ckpt"} <= set(written)
    assert "eval/metrics.json" in written and "logs/metrics.csv" in written
    assert _run_files(runs[1]) == []  # rank 1 wrote nothing: no run file, no lock

    # the same training as two devices on one node, bit for bit: epochs, losses, weights, test metrics
    a, b = pl.read_csv(one / "epochs.csv"), pl.read_csv(runs[0] / "epochs.csv")
    assert a["epoch"].to_list() == b["epoch"].to_list() == [0, 1]
    assert a["step"].to_list() == b["step"].to_list()
    for col in a.columns:
        assert b[col].to_list() == a[col].to_list(), col
    wa = torch.load(one / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    wb = torch.load(runs[0] / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=0, msg=k)
    ma = json.loads((one / "eval" / "metrics.json").read_text())
    mb = json.loads((runs[0] / "eval" / "metrics.json").read_text())
    assert ma["n"] == mb["n"] == 12
    assert {k: mb[k] for k in ("war", "uar", "per_class_recall")} == {
        k: ma[k] for k in ("war", "uar", "per_class_recall")
    }
    assert "num_nodes: 2" in (runs[0] / "config.yaml").read_text()
