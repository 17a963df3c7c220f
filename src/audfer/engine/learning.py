"""Does the run learn at all? A recipe whose settings leave no optimiser step at a non-zero learning rate (``optim.lr``
0, a warm-up as long as the run whose steps all sit at lr 0, ``train.limit_train_batches`` that rounds to no batch)
trains nothing and reports the untrained model's scores as if they were results. ``check_learning`` says so in one
line before training (``audfer train``, sweeps) and in ``--dry-run``'s plan."""

from __future__ import annotations

import warnings
from collections.abc import Callable

from audfer.config.schema import Config
from audfer.errors import ConfigError


def check_learning(cfg: Config, steps_per_epoch: int, lr_at: Callable[[int], float]) -> str | None:
    """The run's learning problem in one line (also issued as a ``UserWarning``), or None when it learns.

    ``lr_at(step)``: the scheduled lr of the full-lr parameter group at optimiser step ``step``
    (``AUDFERModule.lr_at``). No batch per epoch is refused (``ConfigError``): Lightning could not run it. Every step at
    lr 0 and a warm-up that lasts the whole run (the lr never reaches ``optim.lr``, no decay) are warnings: a run at
    lr 0 is occasionally meant (checking that an initialisation survives a step unchanged)."""
    t, o = cfg.train, cfg.optim
    if steps_per_epoch < 1:
        raise ConfigError(
            f"config: train.limit_train_batches = {t.limit_train_batches} leaves no training batch per epoch (a share "
            f"of the epoch's batches rounds down to 0): raise it, or set it to null for every batch"
        )
    total = t.epochs * steps_per_epoch
    warm = o.warmup_epochs * steps_per_epoch if o.scheduler in ("cosine", "timm-cosine") else 0
    problem = None
    if not any(lr_at(step) > 0 for step in range(total)):  # stops at the first step that learns
        cause = (
            f"optim.lr = {o.lr}"
            if o.lr == 0
            else f"all are warm-up steps: optim.warmup_epochs = {o.warmup_epochs} >= train.epochs = {t.epochs}, "
            f"{steps_per_epoch} step(s) per epoch"
        )
        problem = (
            f"no optimiser step at a non-zero learning rate: each of the run's {total} step(s) has lr 0 ({cause}); "
            f"the weights never change and the scores are the untrained model's"
        )
    elif warm >= total:
        top = max(lr_at(step) for step in range(total))
        problem = (
            f"the warm-up (optim.warmup_epochs = {o.warmup_epochs}) lasts the whole run (train.epochs = {t.epochs}): "
            f"the lr climbs from {lr_at(0):.3g} to {top:.3g} (optim.lr {o.lr:g}) and never decays; lower "
            f"optim.warmup_epochs or raise train.epochs"
        )
    if problem:
        warnings.warn(problem, UserWarning, stacklevel=2)
    return problem
