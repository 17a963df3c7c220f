"""A recipe that leaves no optimiser step at a non-zero lr is flagged before training (issue 37 item 2): lr 0, a
warm-up as long as the run, limit_train_batches that leaves no batch; `--dry-run` flags each."""

from __future__ import annotations

import json
import warnings

import pytest
from lightning.pytorch.callbacks import Callback

from audfer.cli import main
from audfer.config.load import load_config
from audfer.engine.datamodule import steps_per_epoch
from audfer.engine.learning import check_learning
from audfer.engine.module import AUDFERModule
from audfer.errors import ConfigError
from audfer.method.knowledge import paper_knowledge

from conftest import TINY, tiny_config


def _check(overrides, n_train=49):
    cfg = load_config("synthetic_small", [*TINY, "au.strategy=none", *overrides])
    steps = steps_per_epoch(n_train, cfg.train)
    module = AUDFERModule.from_config(cfg, paper_knowledge().tolist(), None, steps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = check_learning(cfg, steps, module.lr_at)
    assert [str(w.message) for w in caught] == ([problem] if problem else [])
    return problem, steps, module


def test_a_recipe_that_learns_passes_silently():
    problem, steps, module = _check(["train.epochs=3", "optim.warmup_epochs=1"], n_train=64)
    assert problem is None and steps == 8 and module.lr_at(1) > 0


def test_lr_0_is_flagged():
    problem, steps, _ = _check(["optim.lr=0", "train.epochs=2"], n_train=64)
    assert problem.startswith("no optimiser step at a non-zero learning rate: each of the run's 16 step(s) has lr 0")
    assert "optim.lr = 0" in problem


@pytest.mark.parametrize("scheduler", ["cosine", "timm-cosine"])
def test_a_one_epoch_run_spent_in_warm_up_at_lr_0_is_flagged(scheduler):
    # the case: one step per epoch, one epoch, one warm-up epoch: the only step runs at lr 0
    problem, steps, module = _check(["train.epochs=1", "optim.warmup_epochs=1", f"optim.scheduler={scheduler}"], 8)
    assert steps == 1 and module.lr_at(0) == 0
    assert "no optimiser step at a non-zero learning rate" in problem and "all are warm-up steps" in problem


def test_a_warm_up_longer_than_the_run_is_flagged():
    problem, steps, module = _check(["train.epochs=2", "optim.warmup_epochs=3"], n_train=64)
    top = max(module.lr_at(s) for s in range(2 * steps))
    assert 0 < top < 0.004  # it climbs but never reaches optim.lr
    assert problem.startswith("the warm-up (optim.warmup_epochs = 3) lasts the whole run (train.epochs = 2)")
    assert f"to {top:.3g} (optim.lr 0.004)" in problem


def test_limit_train_batches_that_leaves_no_batch_is_refused():
    with pytest.raises(ConfigError, match=r"train\.limit_train_batches = 0 .*expected a number > 0"):
        load_config("synthetic_small", ["train.limit_train_batches=0"])
    cfg = load_config("synthetic_small", [*TINY, "train.limit_train_batches=0.1"])
    assert steps_per_epoch(49, cfg.train) == 0  # 6 batches x 0.1 rounds down to none, as Lightning rounds
    assert steps_per_epoch(160, cfg.train) == 2  # a share of the 20 batches, not int(0.1) = 0 batches
    with pytest.raises(ConfigError, match=r"limit_train_batches = 0\.1 leaves no training batch per epoch"):
        check_learning(cfg, 0, lambda step: 0.004)


@pytest.mark.parametrize(
    "overrides, flagged",
    [
        (["optim.lr=0"], "no optimiser step at a non-zero learning rate"),
        (["train.epochs=1", "optim.warmup_epochs=1", "train.batch_size=64"], "all are warm-up steps"),
        (["train.epochs=2", "optim.warmup_epochs=2"], "the warm-up (optim.warmup_epochs = 2) lasts the whole run"),
        (["train.limit_train_batches=0.01"], "audfer: error: config: train.limit_train_batches = 0.01 leaves no"),
        (["train.limit_train_batches=0"], "audfer: error: config: train.limit_train_batches = 0 (from override"),
    ],
)
def test_dry_run_flags_each(synth, tmp_path, capsys, overrides, flagged):
    out = tmp_path / "run"
    args = ["train", "synthetic_small", f"data.root={synth}", f"out={out}", *TINY, *overrides, "--dry-run"]
    if flagged.startswith("audfer: error"):  # refused in one line, nothing written
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(flagged) and "\n" not in err and not out.exists()
        return
    with pytest.warns(UserWarning) as caught:  # the CLI prints it as one "warning: ..." line
        assert main(args) == 0
    lines = [str(w.message) for w in caught if "learning rate" in str(w.message) or "warm-up" in str(w.message)]
    assert len(lines) == 1 and flagged in lines[0] and "\n" not in lines[0]
    assert json.loads((out / "plan.json").read_text())["learning"] == lines[0]


class _StopAtStart(Callback):
    def on_train_start(self, trainer, pl_module):
        raise RuntimeError("training started")


def test_train_warns_before_training(synth, tmp_path):
    from audfer.engine.train import train

    cfg = tiny_config(synth, tmp_path / "run", "optim.lr=0", "train.epochs=1")
    with pytest.warns(UserWarning, match="no optimiser step at a non-zero learning rate") as caught:
        with pytest.raises(RuntimeError, match="training started"):
            train(cfg, callbacks=[_StopAtStart()], log=lambda m: None)
    assert len([w for w in caught if "non-zero learning rate" in str(w.message)]) == 1
