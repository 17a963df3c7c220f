"""Learning-rate schedules of the official recipes, per optimiser step, as multiples of the base lr.

``lr_factor(kind, step, ...)`` is the factor applied to every parameter group's lr at optimiser step
``step`` (0-based, over the whole run). Each kind reproduces one official scheduler exactly:

``cosine`` (MAE-DFER; sunlicai/MAE-DFER ``utils.py``, ``cosine_scheduler``, indexed by the global
iteration before each step in ``engine_for_finetuning.py``): warm-up ``np.linspace(0, 1, W)`` over the
first W steps (so step 0 has lr 0 and step W-1 the base lr), then a cosine *restarted* over the
remaining ``T - W`` steps, ``floor + (1 - floor) (1 + cos(pi i / (T - W))) / 2``.

``timm-cosine`` (M3DFEL; Tencent/TFace ``attribute/M3DFEL/utils.py``, ``build_scheduler``: timm's
``CosineLRScheduler(t_initial=T, lr_min, warmup_lr_init, warmup_t=W, cycle_limit=1, t_in_epochs=False)``
without ``warmup_prefix``; ``solver.py`` calls ``step_update(epoch * iters + i)`` *after* each step).
timm's value at t is ``w0 + t (1 - w0) / W`` for t < W and ``floor + (1 - floor) (1 + cos(pi t / T)) / 2``
after: the cosine spans the whole run and the warm-up replaces its start (at t = W the lr drops from
the base to the cosine's value there). Step j runs with timm's value at j - 1; step 0 with ``w0``
(timm sets ``warmup_lr_init`` at construction).

``step`` (Former-DFER) and ``none`` are per epoch / constant and handled by torch's own schedulers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from audfer.errors import ConfigError

if TYPE_CHECKING:
    from audfer.config.schema import TrainOptions

KINDS = ("cosine", "timm-cosine", "step", "none")


def global_batch(t: TrainOptions) -> int:
    """Clips per optimiser step over all processes: ``batch_size x devices x num_nodes``. The one place it is computed: MAE-DFER's
    lr scale (``AUDFERModule.lr_scale``, sunlicai/MAE-DFER ``run_class_finetuning.py``, ``main``: ``total_batch_size
    = batch_size * update_freq * world_size``) and the dry run read it here."""
    return t.batch_size * t.devices * t.num_nodes


def _cos(floor: float, progress: float) -> float:
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_factor(kind: str, step: int, total: int, warmup: int, floor: float, warmup_start: float = 0.0) -> float:
    """Factor of the base lr at optimiser step ``step`` of ``total`` (``warmup`` warm-up steps, cosine floor
    ``floor`` = min_lr / lr, timm's ``warmup_lr_init`` / lr = ``warmup_start``)."""
    if kind == "cosine":
        if step < warmup:
            return step / (warmup - 1) if warmup > 1 else 0.0
        rest = max(total - warmup, 1)
        return _cos(floor, min(step - warmup, rest) / rest)
    if kind == "timm-cosine":
        t = step - 1
        if t < 0:
            return warmup_start if warmup > 0 else _cos(floor, 0.0)
        if t < warmup:
            return warmup_start + t * (1.0 - warmup_start) / warmup
        return floor if t >= total else _cos(floor, t / total)
    raise ConfigError(f"lr_factor: {kind!r} is not a per-step schedule")
