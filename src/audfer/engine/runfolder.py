"""The run folder between runs: what a resume continues from (``last.ckpt``, with ``previous.ckpt`` as fallback), which
settings changed since, the best epochs of ``epochs.csv``, the selection rules' notes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audfer.config.load import with_defaults
from audfer.config.paths import absolute_values, relocated_values, with_paths
from audfer.config.schema import Config, incidental_options
from audfer.errors import AudferError
from audfer.files import read_yaml, write_json
from audfer.hints import Log
from audfer.io import write_csv
from audfer.models.checkpoint import read_checkpoint
from audfer.run_layout import RunLayout, checkpoint_file

if TYPE_CHECKING:
    pass


SELECTION_NOTE = {
    "last": "last epoch",
    "best-val": "best epoch on a validation split carved from the training fold",
    "best-test": "best epoch on the TEST split (what the published numbers did; optimistic)",
}


def config_changes(old: Config | dict, new: Config | dict) -> dict[str, tuple]:
    """``{"section.key": (old, new)}`` for every result-affecting setting that differs (the incidental ones left out);
    a config is a ``Config`` or its YAML form (a run folder's ``config.yaml``)."""
    old, new = (c.to_dict() if isinstance(c, Config) else c for c in (old, new))
    incidental = incidental_options()  # declared with each option (audfer/options.py)
    diff = {}
    for section in ("model", "data", "au", "optim", "train"):
        a, b = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(a) | set(b)):
            if f"{section}.{key}" not in incidental and a.get(key) != b.get(key):
                diff[f"{section}.{key}"] = (a.get(key), b.get(key))
    return diff


def _readable_checkpoint(path: Path, trust_pickle: bool = False) -> tuple[int | None, str | None]:
    """(epochs finished, None) for a complete training checkpoint, (None, why) otherwise; read weights-only
    (``read_checkpoint``), so a planted pickle is refused, not run."""

    if not path.is_file():
        return None, "missing"
    try:
        ck = read_checkpoint(path, trust_pickle=trust_pickle)
    except AudferError as exc:  # truncated zip, garbage, a pickle that imports code
        return None, f"unreadable ({str(exc).removeprefix(f'{path}: ')})"
    if not isinstance(ck, dict) or "state_dict" not in ck or "epoch" not in ck:
        return None, "not an audfer training checkpoint"
    return int(ck["epoch"]) + 1, None


def has_checkpoint(out: Path) -> bool:
    """Whether the run folder ``out`` has something ``train(resume=True)`` can continue from."""
    run = RunLayout(Path(out))
    return run.last.is_file() or run.previous.is_file()


def resume_point(ckdir: Path, *, log: Log = print, trust_pickle: bool = False) -> tuple[Path, int]:
    """The checkpoint a resumed run starts from and its finished epochs: ``last.ckpt``, or, when it is truncated
    or corrupt (a crash while it was written), the previous good one (``previous.ckpt``), saying so."""
    last, prev = checkpoint_file(ckdir, "last"), checkpoint_file(ckdir, "previous")
    epochs, why = _readable_checkpoint(last, trust_pickle)
    if epochs is not None:
        return last, epochs
    p_epochs, p_why = _readable_checkpoint(prev, trust_pickle)
    if p_epochs is not None:
        log(f"{last}: {why}; resuming from {prev.name} instead ({p_epochs} finished epoch(s))")
        return prev, p_epochs
    raise AudferError(f"{last}: {why}, and no good previous checkpoint ({prev.name}: {p_why}); nothing to resume from")


#: Result-affecting settings a resume cannot apply from the resumed epoch on (everything else is rebuilt from the new
#: config: data, augmentation, the loss's λ / scale / smoothing, and the optimiser's lr, decay, betas and schedule,
#: re-set at the resumed epoch by ``AUDFERModule.on_train_start``), with why.
NOT_APPLIED_ON_RESUME = {
    "model.name": "the network is the checkpoint's",
    "model.kwargs": "the network's sizes are the checkpoint's",
    "model.pretrained": "the weights come from the checkpoint, not from model.pretrained",
    "au.strategy": "the AU head and loss are the checkpoint's",
    "au.knowledge": "K is restored from the checkpoint",
    "au.pos_weights": "the pos-weights are restored from the checkpoint",
    "au.minor": "the pos-weights are restored from the checkpoint",
    "optim.name": "the optimiser's state is the old optimiser's",
    "optim.layer_decay": "the parameter groups are the checkpoint's",
    "optim.no_decay_norms": "the parameter groups are the checkpoint's",
    "optim.scheduler": "the scheduler's state is the old scheduler's",
    "train.seed": "the random states are restored from the checkpoint",
}


def check_resume_settings(out: Path, cfg: Config, start_epoch: int, accept_changes: bool, log: Log) -> None:
    """A resume with result-affecting settings changed since the run began is refused unless ``accept_changes``
    (then recorded in ``changes.json`` with the epoch, and applied from that epoch on); a change that cannot be
    applied to a resumed run (``NOT_APPLIED_ON_RESUME``) is refused even then. Options an older run lacked take
    their defaults, said so."""
    run = RunLayout(out)
    old_file = run.config
    if not old_file.is_file():
        return
    stored = read_yaml(old_file, "the run's config (YAML)") or {}
    if not isinstance(stored, dict):
        raise AudferError(f"{old_file}: expected the run's config (a mapping of sections)")
    old = with_defaults(stored)  # a run folder from an older audfer: options it did not have take their defaults
    lacking = sorted(
        f"{sec}.{key}"
        for sec, keys in old.items()
        if isinstance(keys, dict)
        for key in keys
        if not isinstance(stored.get(sec), dict) or key not in stored[sec]
    )
    if lacking:
        log(
            f"{old_file}: written by an older audfer, without {len(lacking)} option(s) ({', '.join(lacking[:6])}"
            f"{' ...' if len(lacking) > 6 else ''}); their defaults are assumed for the finished epochs"
        )
    old = with_paths(old, absolute_values(old))  # an older run's relative paths, as the new config states them
    old = with_paths(old, relocated_values(old, out))  # a moved run: its data where it is now (config/paths.py)
    diff = config_changes(old, cfg)
    if not diff:
        return
    shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:8]) + (
        " ..." if len(diff) > 8 else ""
    )
    if not accept_changes:
        raise AudferError(
            f"{out}: --resume with {len(diff)} changed setting(s) that change the result ({shown}); "
            f"resume with the run's own settings, or pass --accept-changes to continue with the new ones "
            f"(the run folder records at which epoch they changed)"
        )
    refused = {k: NOT_APPLIED_ON_RESUME[k] for k in diff if k in NOT_APPLIED_ON_RESUME}
    if refused:
        applied = [k for k in diff if k not in refused]
        raise AudferError(
            f"{out}: --resume cannot apply {', '.join(f'{k} ({why})' for k, why in refused.items())}"
            + (f"; it would apply {', '.join(applied)}" if applied else "")
            + "; resume with the run's own value, or start a new run"
        )
    record = json.loads(run.changes.read_text()) if run.changes.is_file() else []
    record.append({"from_epoch": start_epoch + 1, "changes": {k: list(v) for k, v in diff.items()}})
    write_json(record, run.changes)
    log(f"settings changed from epoch {start_epoch + 1} on (recorded in {run.changes.name}): {shown}")


def best_epochs(epochs_csv: Path) -> dict[str, Any]:
    """The epochs of the best watched WAR and of the best watched UAR, each with both metrics (TFace's M3DFEL
    reports the two bests separately, from possibly different epochs); ``{}`` when no split was watched. First
    epoch wins a tie."""
    import polars as pl

    if not epochs_csv.is_file():
        return {}
    rows = pl.read_csv(epochs_csv, glob=False)
    if not {"val/war", "val/uar"} <= set(rows.columns) or rows["val/war"].drop_nulls().len() == 0:
        return {}
    rows = rows.filter(pl.col("val/war").is_not_null())
    out = {}
    for name, col in (("best_war", "val/war"), ("best_uar", "val/uar")):
        best = rows[col].arg_max()
        assert best is not None  # the rows are not empty (checked above)
        row = rows.row(int(best), named=True)
        out[name] = {"epoch": int(row["epoch"]) + 1, "war": float(row["val/war"]), "uar": float(row["val/uar"])}
    return out


def keep_earlier_log(log_file: Path, earlier: bytes) -> None:
    """Lightning's CSV logger starts a new file on resume: put the finished epochs' rows back in front."""
    import io

    import polars as pl

    old = pl.read_csv(io.BytesIO(earlier))
    new = pl.read_csv(log_file, glob=False) if log_file.is_file() else old.clear()
    first = new["epoch"].min() if new.height else None
    if first is not None:
        old = old.filter(pl.col("epoch") < first)
    merged = pl.concat([old, new], how="diagonal_relaxed")
    write_csv(merged.select(sorted(merged.columns, key=lambda c: (c not in ("epoch", "step"), c))), log_file)
