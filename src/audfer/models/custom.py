"""Bring your own backbone: ``model.name: mypackage.mymodule:build`` (AU-DFER's claim that AU knowledge plugs
into *any* DFER network, §3.2).

The factory named by ``module:attribute`` is imported and called with the config's ``model.kwargs``; it returns
a ``torch.nn.Module`` mapping clips ``(B, T, 3, H, W)`` to a pooled feature ``(B, D)`` and has ``num_features``
(D). It may state its input as ``input_spec`` (an ``InputSpec``, or a mapping with ``frames``, ``size`` and
optionally ``mean``/``std``); without one, audfer feeds 16 frames of 112 x 112 in [0, 1], as M3DFEL and
Former-DFER take them. audfer adds the expression classifier ``fc = Linear(D, classes)`` and the AU head
``au_head = Linear(D, 18)``; the backbone's weights live under ``backbone.`` in the ``state_dict``. Everything
else (training, cross-validation, ablation, evaluation, ``audfer predict``, ONNX export) treats it as a shipped
model: checkpoints record the factory's name and kwargs, so the module must be importable when they are loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from audfer.errors import ConfigError
from audfer.models.base import DFERModel, InputSpec
from audfer.plugins import import_named

#: What a backbone without ``input_spec`` is fed: 16 frames of 112 x 112, as M3DFEL (Tencent/TFace
#: ``attribute/M3DFEL/options.py``) and Former-DFER (zengqunzhao/Former-DFER ``main.py``) are trained.
DEFAULT_SPEC = InputSpec(16, 112)


def is_custom_name(name: str) -> bool:
    """``package.module:factory`` names a user's factory; registered names never hold a colon."""
    return ":" in name


def import_factory(name: str) -> Callable[..., Any]:
    """The callable named by ``package.module:attribute`` (dots after the colon walk attributes;
    ``audfer.plugins.import_named``)."""
    obj = import_named(name, f"model.name {name!r}", expected="'package.module:factory'")
    if not callable(obj):
        attr = name.partition(":")[2]
        raise ConfigError(f"model.name {name!r}: {attr!r} is not callable (expected a factory returning an nn.Module)")
    return obj


def _spec(value: object, name: str) -> InputSpec:
    if value is None:
        return DEFAULT_SPEC
    if isinstance(value, InputSpec):
        return value
    if isinstance(value, dict):
        try:
            return InputSpec(
                int(value["frames"]),
                int(value["size"]),
                tuple(value.get("mean", (0.0, 0.0, 0.0))),
                tuple(value.get("std", (1.0, 1.0, 1.0))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"model {name!r}: input_spec needs frames and size (and optionally mean, std): {exc}"
            ) from None
    raise ConfigError(
        f"model {name!r}: input_spec must be an audfer InputSpec or a mapping, got {type(value).__name__}"
    )


class CustomDFER(DFERModel):
    """A user's backbone with audfer's two heads (``fc`` and ``au_head``) on its pooled feature."""

    def __init__(
        self, backbone: nn.Module, num_classes: int = 7, au_head: bool = True, *, name: str = "custom"
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise ConfigError(
                f"model {name!r}: the factory returned {type(backbone).__name__}, expected a torch.nn.Module"
            )
        d = getattr(backbone, "num_features", None)
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ConfigError(
                f"model {name!r}: the backbone needs an integer attribute num_features (the pooled feature "
                f"size D), got {d!r}"
            )
        self.backbone = backbone
        self.num_features = d
        self.input_spec = _spec(getattr(backbone, "input_spec", None), name)
        self.fc = nn.Linear(d, num_classes)
        self._init_au_head(au_head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        if feats.ndim != 2 or feats.shape[1] != self.num_features:
            raise ConfigError(
                f"model {self.model_name!r}: the backbone returned features of shape {tuple(feats.shape)}, "
                f"expected (B, {self.num_features})"
            )
        return feats


def build_custom(name: str, num_classes: int = 7, au_head: bool = True, **kwargs: Any) -> CustomDFER:
    """Import ``name``'s factory, call it with ``kwargs``, wrap the backbone with the two heads."""
    factory = import_factory(name)
    try:
        backbone = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: the factory refused model.kwargs {kwargs} ({exc})") from None
    return CustomDFER(backbone, num_classes, au_head, name=name)
