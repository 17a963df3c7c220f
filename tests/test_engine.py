"""Training engine end to end on a tiny synthetic set: configs, metrics vs sklearn, selection rules,
exact resume after an interruption, DDP on 2 CPU processes, cv / ablation reports, demo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from audfer import AudferError
from audfer.cli import main
from audfer.config import load_config, shipped_configs
from audfer.config.load import defaults
from audfer.engine import train
from audfer.evaluation.metrics import classification_metrics

from conftest import TINY as BASE_TINY
from conftest import tiny_config

TINY = [*BASE_TINY, "train.epochs=2"]


def _cfg(synth, out, *extra):
    return tiny_config(synth, out, "train.epochs=2", *extra)


def test_every_shipped_config_loads_and_typos_are_errors(tmp_path):
    names = shipped_configs()
    assert {"m3dfel_dfew", "former_dfer_ferv39k", "mae_dfer_mafw", "synthetic_small"} <= set(names)
    for n in names:
        cfg = load_config(n)
        assert cfg.name == n
    mae = load_config("mae_dfer_dfew")
    assert (mae.optim.layer_decay, mae.data.test_views, mae.data.stride) == (0.75, 2, 4)
    assert (mae.data.randaugment, mae.data.erasing, mae.optim.mixup) == (
        "rand-m7-n4-mstd0.5-inc1",
        0.25,
        0.8,
    )
    assert load_config("mae_dfer_ferv39k").data.stride == 1
    assert load_config("former_dfer_dfew", ["au.lam=0.5", "optim.lr=0.1"]).au.lam == 0.5
    with pytest.raises(AudferError, match="unknown option 'au.lamda'"):
        load_config("m3dfel_dfew", ["au.lamda=0.5"])
    with pytest.raises(AudferError, match="au.strategy"):
        load_config("m3dfel_dfew", ["au.strategy=half"])
    child = tmp_path / "child.yaml"
    child.write_text("base: former_dfer_dfew\ntrain: {epochs: 3}\n")
    cfg = load_config(child)
    assert (cfg.train.epochs, cfg.optim.name, cfg.name) == (3, "sgd", "child")
    assert set(defaults()) == set(cfg.to_dict())


def test_one_model_size_override_keeps_the_configs_other_sizes():
    """``model.kwargs.width=12`` changes the width only; it used to replace the whole kwargs mapping, so the
    demo's 48 px / 4-frame model silently became the 64 px default with the other sizes dropped."""
    base = load_config("synthetic_small").model.kwargs
    one = load_config("synthetic_small", ["model.kwargs.width=12"]).model.kwargs
    assert one == {**base, "width": 12} and base["img_size"] == 48
    whole = load_config("synthetic_small", ["model.kwargs={width: 4}"]).model.kwargs
    assert whole == {"width": 4}  # a whole mapping still replaces the mapping


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 200)
    probs = rng.dirichlet(np.ones(7), 200)
    probs[np.arange(200), y] += rng.random(200) * 0.5
    m = classification_metrics(probs, y)
    pred = probs.argmax(1)
    assert m["war"] == pytest.approx(accuracy_score(y, pred))
    assert m["uar"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    cm = confusion_matrix(y, pred, labels=range(7))
    np.testing.assert_allclose(m["confusion"], cm / cm.sum(1, keepdims=True), atol=1e-6)


@pytest.mark.slow
def test_train_then_evaluate_writes_consistent_outputs(synth, tmp_path, capsys):
    # brackets and a star in the run folder: polars globbed such paths and every epoch's log merge crashed
    out = train(_cfg(synth, tmp_path / "run [1]*", "train.selection=best-val"), log=lambda m: None)
    assert pl.read_csv(out / "epochs.csv", glob=False)["epoch"].to_list() == [0, 1]
    sel = json.loads((out / "selection.json").read_text())
    assert (
        sel["rule"] == "best-val" and sel["checkpoint"] == "checkpoints/best.ckpt" and "validation split" in sel["note"]
    )
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    preds = pl.read_csv(out / "eval" / "predictions.csv", glob=False, schema_overrides={"clip_id": pl.String})
    assert preds.columns[:3] == ["clip_id", "label", "pred"] and preds.columns[3:10] == [
        "Happy",
        "Sad",
        "Neutral",
        "Angry",
        "Surprise",
        "Disgust",
        "Fear",
    ]
    assert preds.columns[10:] == [
        f"AU{n}"
        for n in (
            "01",
            "02",
            "04",
            "05",
            "06",
            "07",
            "09",
            "10",
            "12",
            "14",
            "15",
            "17",
            "20",
            "23",
            "25",
            "26",
            "28",
            "45",
        )
    ]
    test_ids = pl.read_csv(synth / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_1.csv")["video_name"]
    assert sorted(preds["clip_id"]) == sorted(f"{i:05d}" for i in test_ids)
    y, p = preds["label"].to_numpy(), preds["pred"].to_numpy()
    assert metrics["war"] == pytest.approx(accuracy_score(y, p)) and metrics["uar"] == pytest.approx(
        balanced_accuracy_score(y, p)
    )
    np.testing.assert_allclose(
        preds.select(["Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"]).to_numpy().sum(1),
        1,
        atol=1e-4,
    )
    assert metrics["selection"]["rule"] == "best-val" and 0 <= metrics["au_f1_mean"] <= 1
    assert np.load(out / "eval" / "features.npy").shape[0] == preds.height
    # evaluate CLI: same checkpoint -> same numbers, in the folder asked for
    assert main(["evaluate", str(out / "checkpoints" / "best.ckpt"), "--out", str(tmp_path / "ev")]) == 0
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["war"] == metrics["war"] and again["uar"] == metrics["uar"]
    # a second train into the same folder would overwrite: refused, nothing touched
    before = (out / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    assert main(["train", "synthetic_small", f"data.root={synth}", f"out={out}", *TINY]) == 2
    assert "already has checkpoints" in capsys.readouterr().err
    assert (out / "checkpoints" / "last.ckpt").stat().st_mtime_ns == before


@pytest.mark.slow
def test_best_test_selection_is_labelled_as_such(synth, tmp_path):
    out = train(
        _cfg(synth, tmp_path / "bt", "train.selection=best-test", "au.strategy=none", "train.epochs=1"),
        log=lambda m: None,
    )
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["selection"]["rule"] == "best-test" and "TEST split" in metrics["selection"]["note"]
    assert "au_f1" not in metrics  # the baseline has no AU head


class _Crash(Exception):
    pass


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(synth, tmp_path):
    from lightning.pytorch.callbacks import Callback

    class CrashAt(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 2:
                raise _Crash()

    extra = ("train.epochs=3", "data.num_workers=0")
    full = train(_cfg(synth, tmp_path / "full", *extra), log=lambda m: None, evaluate=False)
    with pytest.raises(_Crash):
        train(_cfg(synth, tmp_path / "cut", *extra), callbacks=[CrashAt()], log=lambda m: None, evaluate=False)
    assert torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1  # 2 epochs kept
    with pytest.raises(AudferError, match="nothing to resume"):
        train(_cfg(synth, tmp_path / "none", *extra), resume=True, log=lambda m: None)
    cut = train(_cfg(synth, tmp_path / "cut", *extra), resume=True, log=lambda m: None, evaluate=False)
    log = pl.read_csv(cut / "logs" / "metrics.csv")
    assert sorted(set(log.filter(pl.col("train/ce").is_not_null())["epoch"])) == [
        0,
        1,
        2,
    ]  # finished epochs' log rows kept
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(synth, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable,
        "-m",
        "audfer.cli",
        "train",
        "synthetic_small",
        f"data.root={synth}",
        f"out={out}",
        *TINY,
        "train.epochs=1",
        "train.devices=2",
        "train.strategy=ddp",
        "train.accelerator=cpu",
        "train.threads=1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 12 and (out / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_cv_and_ablation_reports(synth, tmp_path):
    from audfer.engine.experiments import run_ablation, run_cv

    agg = run_cv(_cfg(synth, tmp_path / "cv", "train.epochs=1"), folds=(1, 2), log=lambda m: None)
    folds = [json.loads((tmp_path / "cv" / f"fold_{k}" / "eval" / "metrics.json").read_text()) for k in (1, 2)]
    assert agg["war"]["mean"] == pytest.approx(np.mean([f["war"] for f in folds]))
    assert agg["uar"]["std"] == pytest.approx(np.std([f["uar"] for f in folds], ddof=1))
    report = (tmp_path / "cv" / "report.md").read_text()
    assert (
        "| fold 2 |" in report
        and "mean ± std" in report
        and "last" in report
        and "Initialisation: from scratch" in report
    )
    res = run_ablation(
        _cfg(synth, tmp_path / "abl", "train.epochs=1"),
        seeds=(0, 1),
        strategies=("none", "distinct"),
        lams=(0.5,),
        log=lambda m: None,
    )
    assert set(res["strategies"]) == {"none", "distinct"} and set(res["lambda"]) == {0.5}
    cfg_lam = json.loads((tmp_path / "abl" / "lambda_0.5" / "seed_1" / "eval" / "metrics.json").read_text())
    assert (cfg_lam["lam"], cfg_lam["au_strategy"]) == (0.5, "distinct")
    report = (tmp_path / "abl" / "report.md").read_text()
    assert (
        "baseline (CE only)" in report
        and "+AU distinct" in report
        and "λ sweep" in report
        and "Initialisation: from scratch" in report
    )
    assert "AU labels from openface on" in report and "masked (unknown, not absent): none" in report
    for png in ("confusion.png", "tsne.png", "curves.png", "lambda.png", "knowledge.png"):
        assert (tmp_path / "abl" / png).stat().st_size > 1000, png
    # a rerun reuses finished runs instead of training again
    mtime = (tmp_path / "abl" / "none" / "seed_0" / "eval" / "metrics.json").stat().st_mtime_ns
    run_ablation(
        _cfg(synth, tmp_path / "abl", "train.epochs=1"),
        seeds=(0, 1),
        strategies=("none", "distinct"),
        lams=(0.5,),
        log=lambda m: None,
    )
    assert (tmp_path / "abl" / "none" / "seed_0" / "eval" / "metrics.json").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_runs_side_by_side_give_the_same_results_as_one_after_another(synth, tmp_path):
    """``jobs`` is incidental: with each run's thread count fixed, two spawned processes reproduce the sequential
    sweep bit for bit (metrics and weights), and refuse to run with the thread count left to the machine."""
    from audfer.engine.experiments import run_ablation, run_many

    kw = dict(seeds=(0,), strategies=("none", "distinct"), lams=(), log=lambda m: None)
    one = run_ablation(_cfg(synth, tmp_path / "one", "train.epochs=1", "train.threads=1"), jobs=1, **kw)
    two = run_ablation(_cfg(synth, tmp_path / "two", "train.epochs=1", "train.threads=1"), jobs=2, **kw)
    assert one["strategies"] == two["strategies"]
    for s in ("none", "distinct"):
        a = torch.load(tmp_path / "one" / s / "seed_0" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        b = torch.load(tmp_path / "two" / s / "seed_0" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    unpinned = [_cfg(synth, tmp_path / f"u{k}", "train.epochs=1", "train.threads=null") for k in range(2)]
    with pytest.raises(AudferError, match="needs train.threads set"):
        run_many(unpinned, jobs=2)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc to find the worker processes")
def test_runs_side_by_side_stop_when_their_parent_is_killed(synth, tmp_path):
    """A killed ``cv``/``ablate``/``demo`` leaves no orphan training on: each worker stops at a step boundary, its
    finished epochs saved for ``--resume``."""
    import signal
    import time

    outs = [tmp_path / f"r{k}" for k in range(2)]
    script = (
        "import sys\nfrom audfer.engine.experiments import run_many\nfrom conftest import tiny_config\n"
        f"cfgs = [tiny_config({str(synth)!r}, o, 'train.epochs=200', 'train.threads=1') for o in {[str(o) for o in outs]!r}]\n"
        "run_many(cfgs, jobs=2, log=lambda m: None)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "PYTHONWARNINGS": "ignore"}
    parent = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not all((o / "epochs.csv").is_file() for o in outs):  # both workers are training
            assert time.monotonic() < deadline and parent.poll() is None, "the runs did not start"
            time.sleep(0.2)
        workers = _children(parent.pid)
        assert len(workers) >= 2
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while any(
            Path(f"/proc/{w}").exists() and "Z" not in Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0]
            for w in workers
            if Path(f"/proc/{w}").exists()
        ):
            assert time.monotonic() < deadline, "workers still training 30 s after their parent was killed"
            time.sleep(0.2)
    finally:
        parent.kill()
        for w in workers if "workers" in locals() else []:
            if Path(f"/proc/{w}").exists():
                os.kill(w, signal.SIGKILL)
    for o in outs:
        assert (o / "checkpoints" / "last.ckpt").is_file()
        assert len(pl.read_csv(o / "epochs.csv")) < 200


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--clips", "70", "--seeds", "0", "--epochs", "1"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "Synthetic results, not DFEW results" in report and "baseline (CE only)" in report and "+AU minor" in report
    for name in (
        "K.csv",
        "K.png",
        "video_au_labels.csv",
        "pos_weights_minor.csv",
        "model.ckpt",
        "model/model.safetensors",
        "model/README.md",
        "confusion.png",
        "synth/preview.png",
    ):
        assert (tmp_path / name).is_file(), name
    r = float(report.split("activation probabilities the clips were drawn with (17 AUs x 7): **")[1].split("**")[0])
    assert r > 0.5
    for section in (
        "## Floor, colour probe and AU oracles",
        "AU oracle: logistic regression on the renderer's exact clip AU labels",
        "## The θ filter of §3.1 (Eq. 3)",
        "Frames the filter keeps:",  # reported even where the filtered K cannot be built
        "## The AU effect, seed by seed",
        "one seed: no uncertainty estimate",
        "vs exact | vs OpenFace (Eq. 4)",
        "## `audfer predict` on rendered videos",
    ):
        assert section in report, section
    from audfer.tasks.artifacts import FIELDS  # the demo writes its artifacts as the CLI and Python users do

    common = {"what", "dataset", "fold", "split", "source", "audfer_version", "n_clips", "clip_ids_sha256", "clip_ids"}
    for name, kind in (
        ("video_au_labels.csv", "video AU labels"),
        ("pos_weights_minor.csv", "pos-weights"),
        ("K.csv", "knowledge"),
    ):
        record = json.loads((tmp_path / f"{name}.provenance.json").read_text())
        assert set(record) == common | set(FIELDS[kind]) and record["what"] == kind, name
    ceilings = pl.read_csv(tmp_path / "ceilings.csv")
    assert set(ceilings["line"]) == {"majority", "colour", "au_oracle_exact", "au_oracle_openface"}
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) >= 5 and {
        Path(k).name for k in json.loads((tmp_path / "videos" / "predictions.json").read_text())
    } == {v.name for v in videos}
    pytest.importorskip("onnxruntime", reason="onnx extra not installed")
    assert (
        main(["export", "model.ckpt", "--onnx", "model.onnx"]) == 0
    )  # the README's export step on the demo's checkpoint
    assert (tmp_path / "model.onnx").stat().st_size > 10_000


def test_sweeps_change_configs_through_the_one_checked_override_mechanism(synth, tmp_path):
    """``cv``/``ablate`` set their per-run values as ``key=value`` overrides do (``config.with_values``): the same
    merged config, and a bad value is refused naming the key, the value and the sweep."""
    from audfer.config.load import apply_overrides, with_values
    from audfer.engine.experiments import run_cv

    cfg = _cfg(synth, tmp_path / "x")
    assert with_values(cfg, {"data.fold": 3, "au.lam": 0.5, "model.kwargs.width": 4}, source="test") == apply_overrides(
        cfg, ["data.fold=3", "au.lam=0.5", "model.kwargs.width=4"]
    )
    with pytest.raises(AudferError, match=r"data\.fold = 6 \(from cv\); expected an integer"):
        run_cv(cfg, folds=(6,), log=lambda m: None)
    with pytest.raises(AudferError, match="unknown option 'au.lamda'"):
        with_values(cfg, {"au.lamda": 0.5}, source="test")
