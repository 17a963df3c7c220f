"""An audfer training checkpoint read back without Lightning and without running the file's code.

``audfer train`` stores the run's plain config, K, pos-weights and tensors (``AUDFERModule``); ``read_run_checkpoint``
reads them weights-only (``models.checkpoint.read_checkpoint``) and checks them, ``StoredRun.build_model`` rebuilds the
model for inference (``audfer predict``, ``export``), ``engine.train.load_module`` the whole training module. The
builders ``model_from_config`` and ``loss_from_config`` are the one place a config becomes a model and the AU-DFER loss
(Eq. 10).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audfer.config.load import with_defaults
from audfer.config.schema import Config
from audfer.errors import CheckpointError, ConfigError
from audfer.hints import PathLike
from audfer.method.losses import AUDFERLoss
from audfer.models.base import DFERModel
from audfer.models.checkpoint import read_checkpoint
from audfer.models.registry import create_model
from audfer.trust import check_stored_config

__all__ = ["StoredRun", "read_run_checkpoint", "model_from_config", "loss_from_config", "check_state_fits"]


def _config(cfg: Config | Mapping[str, Any]) -> Config:
    return cfg if isinstance(cfg, Config) else Config.from_dict(with_defaults(dict(cfg)))


def model_from_config(cfg: Config | Mapping[str, Any]) -> DFERModel:
    """The model ``cfg.model`` names, with the AU head exactly when the AU loss is on (``au.strategy`` not none)."""
    cfg = _config(cfg)
    m = cfg.model
    return create_model(m.name, num_classes=cfg.num_classes, au_head=cfg.au.strategy != "none", **m.to_dict()["kwargs"])


def loss_from_config(cfg: Config | Mapping[str, Any], knowledge: Any, pos_weight: Any = None) -> AUDFERLoss:
    """Eq. 10 as ``cfg`` sets it: K (§3.1), the Eq. 6-8 pos-weights (None: 1), λ = ``au.lam`` (0 without the AU
    loss), ``optim.label_smoothing``, ``au.scale``."""
    cfg = _config(cfg)
    use_au = cfg.au.strategy != "none"
    return AUDFERLoss(
        np.asarray(knowledge),
        None if pos_weight is None else np.asarray(pos_weight),
        au_weight=cfg.au.lam if use_au else 0.0,
        label_smoothing=cfg.optim.label_smoothing,
        scale=cfg.au.scale,
    )


def check_state_fits(path: PathLike, own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> None:
    """``CheckpointError`` naming the missing, unexpected and other-shape tensors unless ``state`` fits ``own``."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [
            f"{what} {len(keys)}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", wrong))
            if keys
        ]
        raise CheckpointError(
            f"{path}: its tensors do not fit the model its config describes ({'; '.join(parts)}); a damaged file, "
            f"or written by another audfer version: load its weights with model.pretrained / --model NAME"
        )


@dataclass(frozen=True)
class StoredRun:
    """What an audfer training checkpoint holds: the run's config (plain, defaults filled), K, pos-weights, steps per
    epoch and the module's tensors (``model.*`` the network, ``criterion.*`` the loss buffers)."""

    path: Path
    cfg: dict[str, Any]
    knowledge: list[Any]
    pos_weight: list[Any] | None
    steps_per_epoch: int
    state_dict: dict[str, torch.Tensor]

    def model_state(self) -> dict[str, torch.Tensor]:
        """The network's tensors, ``model.`` prefix removed."""
        return {k[len("model.") :]: v for k, v in self.state_dict.items() if k.startswith("model.")}

    def build_model(self) -> DFERModel:
        """The stored network in eval mode, without Lightning (what ``audfer predict`` and ``export`` run)."""
        model = self.guarded(lambda: model_from_config(self.cfg))
        state = self.model_state()
        check_state_fits(self.path, model.state_dict(), state)
        model.load_state_dict(state)
        return model.eval()

    def guarded(self, build: Any) -> Any:
        """``build()``, with a ``ConfigError`` of the stored config reported as this file's ``CheckpointError``."""
        try:
            return build()
        except ConfigError as exc:
            raise CheckpointError(
                f"{self.path}: its stored config does not load here ({exc}); written by another audfer version? "
                f"Retrain, or load its weights with model.pretrained / --model NAME"
            ) from None


def read_run_checkpoint(checkpoint: PathLike, *, trust_pickle: bool = False) -> StoredRun:
    """An audfer training checkpoint, read weights-only. A stored config whose ``model.name`` names code to import
    (``package.module:factory``) is refused unless ``trust_pickle`` says the file is trusted: importing it would run
    that module (docs/weights.md)."""
    path = Path(checkpoint)
    ck = read_checkpoint(path, trust_pickle=trust_pickle)
    hp = ck.get("hyper_parameters") if isinstance(ck, dict) else None
    if not isinstance(ck, dict) or "state_dict" not in ck or not isinstance(hp, dict) or "cfg" not in hp:
        raise CheckpointError(
            f"{path}: not an audfer training checkpoint (no state_dict with hyper_parameters.cfg); for a model's "
            f"released weights use model.pretrained (train) or --model NAME (predict)"
        )
    cfg = hp["cfg"]
    if not isinstance(cfg, dict) and hasattr(cfg, "to_dict"):  # a trusted file from an audfer that pickled its Config
        cfg = cfg.to_dict()
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: hyper_parameters.cfg is a {type(cfg).__name__}, expected the run's config")
    check_stored_config(cfg, path, trusted=trust_pickle)  # before anything builds it (that imports the code)
    if hp.get("model_from_config") is False:
        raise CheckpointError(
            f"{path}: trained with a model built by its user (AUDFERModule(model, loss)), not from its config; build "
            f"that model and load this file's model.* tensors into it"
        )
    try:
        return StoredRun(
            path,
            with_defaults(cfg),
            hp["knowledge"],
            hp.get("pos_weight"),
            int(hp.get("steps_per_epoch", 1)),
            dict(ck["state_dict"]),
        )
    except ConfigError as exc:
        raise CheckpointError(
            f"{path}: its stored config does not load here ({exc}); written by another audfer version? "
            f"Retrain, or load its weights with model.pretrained / --model NAME"
        ) from None
    except (KeyError, TypeError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a complete audfer training checkpoint ({type(exc).__name__}: {detail}); for a model's "
            f"released weights use model.pretrained (train) or --model NAME (predict)"
        ) from None
