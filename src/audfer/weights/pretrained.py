"""``model.pretrained``: where a run's weights start (any layout ``models.checkpoint.load_checkpoint`` reads), recorded
in the run's ``init.json``; a recipe whose official run starts from pretrained weights says so when none is given."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from audfer.config.schema import Config
from audfer.hints import Log
from audfer.models.base import DFERModel
from audfer.models.checkpoint import load_checkpoint

__all__ = ["initialise", "init_label"]


def initialise(model: DFERModel, cfg: Config, *, log: Log = print) -> dict[str, Any]:
    """``model.pretrained``: load it into ``model`` (any layout ``load_checkpoint`` reads) and say what happened.

    Returns the run's init record (``init.json``): ``init`` is ``"pretrained"`` or ``"from scratch"``,
    ``official_init`` what the official run started from (``model.official_init`` of the recipe), and the
    load report (loaded / re-initialised / unused keys). A recipe whose official run starts from
    pretrained weights warns when none is given: its numbers are then not comparable to the paper's."""

    m = cfg.model
    record: dict[str, Any] = {
        "init": "from scratch",
        "pretrained": None,
        "official_init": m.official_init,
        "load_report": None,
    }
    if m.pretrained:
        report = load_checkpoint(model, m.pretrained, trust_pickle=bool(m.trust_pickle))
        record.update(init="pretrained", pretrained=str(m.pretrained), load_report=report.as_dict())
        log(f"initialised from {m.pretrained}: {report.summary()}")
    elif m.official_init:
        msg = (
            f"WARNING: {cfg.model.name} trains FROM SCRATCH; the official run starts from {m.official_init} "
            f"(set model.pretrained=<file>, see docs/weights.md). Results will not be comparable to the paper's."
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
    return record


def init_label(record: dict[str, Any] | None) -> str:
    """``"pretrained (<file>)"``, ``"from scratch"`` or ``"from scratch (official: ...)"`` for reports."""
    if not record:
        return "unknown"
    if record["init"] == "pretrained":
        return f"pretrained ({Path(record['pretrained']).name})"
    return "from scratch" + (f" (official run: {record['official_init']})" if record.get("official_init") else "")
