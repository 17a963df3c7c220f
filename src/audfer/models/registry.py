"""Model registry: ``create_model(name, num_classes=7, au_head=True, **overrides)`` (timm-style)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audfer.errors import ConfigError
from audfer.models.base import DFERModel
from audfer.models.checkpoint import load_checkpoint
from audfer.models.custom import build_custom, import_factory, is_custom_name


@dataclass(frozen=True)
class ModelCost:
    """What ``audfer models`` prints for a model at its registered size, measured once by
    ``models.complexity.measure_cost`` and declared with the registration (``tests/test_model_costs.py`` recomputes it):
    parameters and MACs per clip without and with the AU head, and the input spec in words."""

    params: int
    params_au: int
    macs: int
    macs_au: int
    input: str


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, size defaults, description, whether it is the published architecture at its
    published size, and its declared cost (``ModelCost``; None: measured when asked)."""

    name: str
    builder: Callable[..., DFERModel]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    official: bool = False  #: the published architecture at its published size (``audfer models`` lists these)
    cost: ModelCost | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    builder: Callable[..., DFERModel],
    description: str = "",
    *,
    official: bool = False,
    cost: ModelCost | None = None,
    **defaults: Any,
) -> None:
    """Register ``builder`` (a ``DFERModel`` class or factory) as ``name``; ``defaults`` are size options, ``cost`` the
    figures ``audfer models`` prints (declared, so that listing builds no model). Each model registers itself and its
    small variants at the end of its own file."""
    _REGISTRY[name] = ModelEntry(name, builder, defaults, description, official, cost)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def model_entries() -> list[ModelEntry]:
    """Every registered model, in registration order (``data.sampling`` lists the models' recipes in it)."""
    return list(_REGISTRY.values())


def model_entry(name: str) -> ModelEntry:
    """The registered model ``name``, or a user's factory ``package.module:factory`` (``audfer.models.custom``)."""

    if is_custom_name(name):
        factory = import_factory(name)  # an error now, naming the module, not at the first batch
        if isinstance(factory, type) and issubclass(factory, DFERModel):  # a whole model, heads and hooks its own
            return ModelEntry(name, factory, {}, f"user model {name}")
        return ModelEntry(name, lambda **kw: build_custom(name, **kw), {}, f"user backbone {name} + audfer's heads")
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(
    name: str,
    num_classes: int = 7,
    au_head: bool = True,
    *,
    pretrained: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    trust_pickle: bool = False,
    **overrides: Any,
) -> DFERModel:
    """Build a registered model; ``overrides`` change sizes (width, depth, num_frames, img_size, ...). A name
    ``package.module:factory`` builds a user's backbone with audfer's expression and AU heads
    (``audfer.models.custom``); ``overrides`` are then the factory's keyword arguments. ``pretrained``: weights to
    load (a checkpoint, a package folder or a Hub id ``org/name`` at ``revision``; ``load_checkpoint``), read without
    pickle (``trust_pickle``: the file is trusted, as in ``load_checkpoint``); ``audfer.from_pretrained`` builds the
    model a package describes instead of the one named here."""
    entry = model_entry(name)
    kwargs = {**entry.defaults, **overrides}
    try:
        model = entry.builder(num_classes=num_classes, au_head=au_head, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad override ({exc})") from None
    model.model_name = name
    model.model_config = {"num_classes": num_classes, "au_head": au_head, **kwargs}
    if pretrained is not None:
        load_checkpoint(model, pretrained, revision=revision, trust_pickle=trust_pickle)
    return model


def size_options(name: str) -> dict[str, Any] | None:
    """The size options ``create_model(name, **overrides)`` accepts, with their defaults (the builder's keyword
    parameters and the registered defaults; for a user's backbone factory, the factory's own parameters); None
    when the builder takes any keyword (``**kwargs``)."""
    import inspect

    entry = model_entry(name)
    builder = entry.builder
    if is_custom_name(name) and not (isinstance(builder, type) and issubclass(builder, DFERModel)):
        builder = import_factory(name)  # the factory gets model.kwargs; audfer's heads take none of them
    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    options = {
        n: None if p.default is inspect.Parameter.empty else p.default  # no default: any value
        for n, p in params.items()
        if n not in ("num_classes", "au_head") and p.kind is not inspect.Parameter.VAR_POSITIONAL
    }
    return {**options, **{k: v for k, v in entry.defaults.items() if k in options}}
