"""The Lightning callbacks of a run: one row of ``epochs.csv`` and ``last.ckpt`` per finished epoch, a stop on
SIGINT / SIGTERM at the next step boundary, a stop when the loss or the weights stop being finite."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch.callbacks import Callback

from audfer.errors import AudferError
from audfer.files import out_of_room
from audfer.io import write_csv
from audfer.run_layout import checkpoint_file, partial_checkpoint

if TYPE_CHECKING:
    pass


class EveryEpoch(Callback):
    """At the end of every training epoch: a complete checkpoint replaces ``last.ckpt`` (written beside it
    first; the one it replaces is kept as ``previous.ckpt``), and the epoch's metrics are added to
    ``epochs.csv``, a log that no later run truncates (a rerun epoch replaces only its own row)."""

    def __init__(self, ckdir: Path, epochs_csv: Path) -> None:
        self.ckdir, self.epochs_csv = ckdir, epochs_csv
        self.lr: float | None = None

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """Remember the lr the epoch's first step runs with (the full-lr group): ``epochs.csv``'s ``lr``."""
        self.lr = _current_lr(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Write ``last.ckpt`` (the previous one kept as ``previous.ckpt``) and the epoch's row; never non-finite weights."""
        last = checkpoint_file(self.ckdir, "last")
        broken = [n for n, p in pl_module.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
        if broken:  # the epoch's last update left non-finite weights: never save them as last.ckpt
            raise AudferError(
                f"training diverged: {len(broken)} weight tensor(s) are not finite after epoch "
                f"{trainer.current_epoch + 1}, step {trainer.global_step} (lr {_current_lr(trainer):.3g}; e.g. "
                f"{broken[0]}); lower optim.lr; {last} was not replaced"
            )
        partial = partial_checkpoint(self.ckdir)
        try:
            trainer.save_checkpoint(str(partial))
        except (OSError, RuntimeError) as exc:  # a full disk (torch's writer: a RuntimeError): the previous one stays
            why = out_of_room(exc) or (exc.strerror if isinstance(exc, OSError) else None)
            if why is None:
                raise
            if partial.exists():
                partial.unlink()
            raise AudferError(
                f"{last}: cannot write the checkpoint of epoch {trainer.current_epoch + 1} ({why}); "
                f"the previous {last.name} is intact"
            ) from None
        if not trainer.is_global_zero:
            return
        if last.is_file():
            os.replace(last, checkpoint_file(self.ckdir, "previous"))
        os.replace(partial, last)
        self._log_epoch(trainer)

    def _log_epoch(self, trainer) -> None:
        import polars as pl

        row: dict[str, float] = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step)}
        if self.lr is not None:
            row["lr"] = self.lr
        for k, v in sorted(trainer.callback_metrics.items()):
            try:
                row[k] = float(v)
            except (TypeError, ValueError):
                continue
        old = pl.read_csv(self.epochs_csv, glob=False) if self.epochs_csv.is_file() else pl.DataFrame()
        if old.height:
            old = old.filter(pl.col("epoch") < row["epoch"])
        write_csv(pl.concat([old, pl.DataFrame([row])], how="diagonal_relaxed"), self.epochs_csv)


def _current_lr(trainer: Any) -> float:
    """The lr of the full-lr parameter group now (layer decay lowers the others), nan without an optimiser."""
    groups = trainer.optimizers[0].param_groups if trainer.optimizers else []
    return max((float(g["lr"]) for g in groups), default=float("nan"))


class Stop(Exception):
    """Raised at a step boundary after SIGINT / SIGTERM (``StopOnSignal``); ``train`` turns it into ``TrainingStopped``."""

    def __init__(self, signum: int) -> None:
        self.signum, self.name = signum, signal.Signals(signum).name


class StopOnSignal(Callback):
    """SIGINT/SIGTERM set a flag; the next training step boundary raises ``Stop`` (no partial-epoch checkpoint
    is written, so ``last.ckpt`` stays the last finished epoch and resume is exact)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int, frame: Any) -> None:
        """The signal handler: remember the signal; the run stops at the next step boundary."""
        self.signum = signum

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Put our SIGTERM handler in front of Lightning's (see below)."""
        # Lightning >= 2.5 puts its own SIGTERM handler in front of ours; under DDP it broadcasts from inside the
        # handler and stops only the signalled rank, leaving the others in a collective. Ours alone decides.
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is not self.request
        ):
            signal.signal(signal.SIGTERM, self.request)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Stop on a requested signal, or on a loss that is not finite."""
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        bad = float(loss is not None and not bool(torch.isfinite(loss.detach()).all()))
        signum = self.signum or 0
        if trainer.world_size > 1:  # DDP: a signal or a diverged loss seen by any rank stops every rank at the same
            # step (no rank is left waiting in a collective); one small all-reduce per step
            flags = torch.tensor([float(signum), bad], device=pl_module.device)
            signum, bad = (int(v) for v in trainer.strategy.reduce(flags, reduce_op="max").tolist())
        if bad:
            raise Diverged(trainer, loss)
        if signum:
            raise Stop(signum)


class Diverged(AudferError):
    """The training loss became NaN or infinite: the run stops at that step (no checkpoint of the epoch)."""

    def __init__(self, trainer, loss) -> None:
        lr = _current_lr(trainer)
        value = "not finite" if loss is None or loss.numel() != 1 else f"{float(loss):g}"
        super().__init__(
            f"training diverged: the loss is {value} at epoch {trainer.current_epoch + 1}, step "
            f"{trainer.global_step} (lr {lr:.3g}); the likely cause is a learning rate too high for this batch "
            f"size and model (lower optim.lr), or inputs that are not finite; no checkpoint of this epoch was "
            f"written (last.ckpt, if any, is the last finished epoch)"
        )
